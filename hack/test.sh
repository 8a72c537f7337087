#!/usr/bin/env bash
# `make test`: everything that proves the repository, in the order CI wants it.
#
#   1. go.mod pins one upstream version, and every staging module of it;
#   2. the patch series is in normal form and applies to pristine upstream;
#   3. the tree assembles (this fails if a new file shadows an upstream file);
#   4. generated code and data are exactly what upstream's generators emit
#      (feature gate lists, and hack/codegen.sh verify in a scratch worktree);
#   5. the tests of the assembler itself;
#   6. go test of our new packages (unit tests, and integration tests against
#      etcd built by hack/etcd.sh) and of every upstream package the patch
#      series touches (derived from the series), plus hack/test-packages.txt,
#      a short fuzz run of the file probe resolver, and a vet of the e2e suite
#      (which itself runs against a cluster: make e2e, hack/e2e.sh), and
#      the tests of containerd-shim-shimless-v2 (hack/shimless.sh test);
#   7. the binaries build (`make`, the shim too) and pass their smoke tests;
#   8. `make release` packages them reproducibly (two passes, same
#      SHA256SUMS), with valid checksums, images and SBOMs
#      (hack/test/release_test.sh; its unit tests run with step 5);
#   9. the e2e suite runs on a real single-node cluster made of them
#      (hack/e2e.sh: hack/local-up-node.sh up, the release's images run
#      in the node's containerd, test/e2e_fileprobe, down);
#  10. upstream's binaries of the pinned version build from the pristine
#      baseline (hack/build-upstream.sh, cached), and the version-skew suite
#      runs on a three-node cluster mixing them with ours (hack/e2e-skew.sh:
#      test/e2e_skew, docs/version-skew.md).
#
#   hack/test.sh --unit-only    step 6 only
#   hack/test.sh --verify-only  steps 1-4 (make verify)
#   hack/test.sh --pins-only    step 1 (hack/test/assemble_test.sh tests it)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# verify_pins checks that go.mod pins k8s.io/kubernetes and exactly its
# staging modules, all at the matching v0.X.Y, but those held back (go.mod
# "// held:", written by hack/rebase.sh when the Go module proxy refuses the
# new version): each is listed, and none may be compiled into a binary we ship.
verify_pins() {
  local version staging_version
  version=$(fp::upstream_version)
  [[ "${version}" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || fp::die "go.mod: k8s.io/kubernetes ${version} is not a release"
  staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  declare -A held=()
  local path ver why bad=0
  while read -r path ver why; do held[${path}]="${ver} ${why}"; done < <(fp::held_modules)
  while read -r path ver; do
    if [[ -n "${held[${path}]:-}" ]]; then
      if [[ "${ver}" == "${staging_version}" || "${held[${path}]%% *}" != "${ver}" ]]; then
        echo "go.mod: ${path} is marked held but pinned at ${ver}: drop the mark or fix the pin (hack/rebase.sh)" >&2
        bad=1
      else
        fp::log "HELD BACK: ${path} ${ver}, not ${staging_version}: ${held[${path}]#* }"
      fi
    elif [[ "${ver}" != "${staging_version}" ]]; then
      echo "go.mod: ${path} is ${ver}, want ${staging_version}" >&2
      bad=1
    fi
  done < <(fp::staging_modules)
  local want have
  want=$(sed -n '/^replace (/,/^)/p' "${FP_TREE}/go.mod" | awk '/=>/{print $1}' | LC_ALL=C sort)
  have=$(fp::staging_modules | awk '{print $1}' | LC_ALL=C sort)
  [[ "${want}" == "${have}" ]] || {
    diff <(echo "${want}") <(echo "${have}") >&2 || true
    echo "go.mod: the staging modules differ from the replace block of k8s.io/kubernetes ${version}" >&2
    bad=1
  }
  if ((${#held[@]} > 0)); then
    # A held module is older than the rest of the tree: acceptable only while
    # nothing we ship is built from it.
    local deps
    deps=$(cd "${FP_TREE}" && GOFLAGS=-buildvcs=false go list -deps -f '{{with .Module}}{{.Path}}{{end}}' "${FP_BINARIES[@]/#/./}" | LC_ALL=C sort -u) ||
      fp::die "go list -deps of the binaries failed"
    for path in "${!held[@]}"; do
      if grep -qxF "${path}" <<<"${deps}"; then
        echo "go.mod: ${path} is held at an older version but compiled into our binaries (${FP_BINARIES[*]})" >&2
        bad=1
      fi
    done
    ((bad == 0)) && fp::log "held-back modules are compiled into none of ${FP_BINARIES[*]}"
  fi
  ((bad == 0)) || fp::die "go.mod pins are inconsistent (hack/rebase.sh rewrites them; docs/rebasing.md)"
  fp::log "go.mod pins k8s.io/kubernetes ${version} and its ${staging_version} staging modules${held[*]:+ (${#held[@]} held back)}"
}

# go_packages prints the package directories to test, relative to the tree.
go_packages() {
  {
    # upstream packages changed by the patch series
    git -C "${FP_TREE}" diff --name-only "${FP_BASE_REF}" "$(fp_last_patch_commit)" -- '*.go'
    # our new packages, but the e2e suite and the benchmarks, which need a
    # cluster (make e2e, make bench)
    fp::overlay_files | grep '\.go$' | grep -v '^test/\(e2e_fileprobe\|e2e_skew\|bench_fileprobe\)/' || true
  } | xargs -r -n1 dirname | LC_ALL=C sort -u | sed 's|^|./|'
  # packages listed by hand (tests a patch affects outside its own package)
  if [[ -f "${FP_ROOT}/hack/test-packages.txt" ]]; then
    grep -v '^\s*\(#\|$\)' "${FP_ROOT}/hack/test-packages.txt" || true
  fi
}

# fp_last_patch_commit is the tree commit right before the overlay commit.
fp_last_patch_commit() { git -C "${FP_TREE}" rev-parse HEAD~1; }

verify_featuregates() {
  "${FP_TREE}/hack/verify-featuregates.sh"
}

unit_tests() {
  local -a pkgs=()
  mapfile -t pkgs < <(go_packages | LC_ALL=C sort -u)
  ((${#pkgs[@]} > 0)) || fp::die "no packages to test"
  fp::log "go test: ${pkgs[*]}"
  # The integration tests (test/integration/...) start etcd from PATH.
  (cd "${FP_TREE}" && PATH="${FP_OUT}/bin:${PATH}" GOFLAGS=-buildvcs=false go test -count=1 "${pkgs[@]}")
}

# fuzz_short runs the resolver's fuzz test for a short while (the long run is
# documented in pkg/probe/file/fuzz_test.go).
fuzz_short() {
  (cd "${FP_TREE}" && GOFLAGS=-buildvcs=false go test -run '^$' -fuzz FuzzProbeStaysInVolume -fuzztime 20s ./pkg/probe/file)
}

# vet_e2e compiles and vets the e2e suite and the benchmarks, which only run
# against a cluster (make e2e, make bench), so that they cannot rot, and runs
# the unit tests of the benchmarks' parsing and arithmetic.
vet_e2e() {
  (cd "${FP_TREE}" && GOFLAGS=-buildvcs=false go vet ./test/e2e_fileprobe ./test/e2e_skew ./test/bench_fileprobe/... &&
    GOFLAGS=-buildvcs=false go test -count=1 ./test/bench_fileprobe/density ./test/bench_fileprobe/procstat ./test/bench_fileprobe/proberload)
}

main() {
  if [[ "${1:-}" == "--unit-only" ]]; then
    "${FP_ROOT}/hack/assemble.sh"
    "${FP_ROOT}/hack/etcd.sh"
    fp::timed "unit tests" unit_tests
    fp::timed "shimless unit tests" "${FP_ROOT}/hack/shimless.sh" test
    return
  fi
  fp::timed "assemble tree" "${FP_ROOT}/hack/assemble.sh"
  fp::timed "verify go.mod pins" verify_pins
  [[ "${1:-}" == "--pins-only" ]] && return
  fp::timed "verify patch series" "${FP_ROOT}/hack/patches.sh" verify
  fp::timed "verify feature gate reference data" verify_featuregates
  fp::timed "verify generated code" "${FP_ROOT}/hack/codegen.sh" verify
  if [[ "${1:-}" == "--verify-only" ]]; then
    fp::log "make verify: all green"
    return
  fi
  fp::timed "assembler tests" "${FP_ROOT}/hack/test/assemble_test.sh"
  fp::timed "release packager unit tests" "${FP_ROOT}/hack/test/release_test.sh" unit
  fp::timed "build etcd" "${FP_ROOT}/hack/etcd.sh"
  fp::timed "unit and integration tests" unit_tests
  fp::timed "shimless unit tests" "${FP_ROOT}/hack/shimless.sh" test
  fp::timed "fuzz the file probe resolver (short run)" fuzz_short
  fp::timed "vet the e2e suite and the benchmarks" vet_e2e
  fp::timed "docs tests" "${FP_ROOT}/hack/test/docs_test.sh"
  fp::timed "build binaries" "${FP_ROOT}/hack/build.sh"
  fp::timed "build containerd-shim-shimless-v2" "${FP_ROOT}/hack/shimless.sh"
  fp::timed "binary smoke tests" "${FP_ROOT}/hack/test/binaries_test.sh"
  fp::timed "make release: reproducible, checksums, images, SBOMs" "${FP_ROOT}/hack/test/release_test.sh"
  fp::timed "e2e suite on a local node" env E2E_RELEASE_IMAGES=1 "${FP_ROOT}/hack/e2e.sh"
  fp::timed "build upstream's binaries (pristine baseline)" "${FP_ROOT}/hack/build-upstream.sh"
  fp::timed "e2e version-skew suite on three local nodes" "${FP_ROOT}/hack/e2e-skew.sh"
  fp::log "make test: all green"
}

main "$@"
