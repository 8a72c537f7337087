#!/usr/bin/env bash
# Tests of make release (hack/release.sh, the packager in hack/release/).
#
#   hack/test/release_test.sh          make release into _output/release, then a second packaging
#                                      pass of the same binaries into another directory: the two
#                                      SHA256SUMS must be identical (reproducible); every checksum
#                                      verifies; the image binaries are static; the images are valid
#                                      OCI archives shaped like upstream's; the SBOMs are valid SPDX
#   hack/test/release_test.sh unit     go test of the packager (tar, gzip, tag, image, SBOM logic)
#   hack/test/release_test.sh images   with the local node up (hack/e2e.sh runs it when
#                                      E2E_RELEASE_IMAGES=1): imports each image of _output/release
#                                      into the node's containerd and runs it with --version, which
#                                      must print the fork version
#
# Reproducibility is tested on the packaging only: the binaries are built once
# (make test builds them before), and their build is reproducible on its own
# (upstream's -trimpath, and hack/build.sh's SOURCE_DATE_EPOCH, the commit
# time, as the build date). Packaging takes the version, commit and date from
# the binaries, so two passes over the same binaries must give the same bytes.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

RELEASE="${FP_OUT}/release"
SECOND="${FP_OUT}/release-test"
DL="${RELEASE}/bin/linux/$(go env GOARCH)"
IMAGES=(kube-apiserver kube-controller-manager kube-scheduler)
fails=0

ok() { echo "ok:   $*"; }
bad() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}

# check NAME CMD...: CMD must succeed.
check() {
  local name=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if ((rc == 0)); then ok "${name}"; else
    bad "${name} (exit ${rc})"
    tail -n 20 <<<"${out}" | sed 's/^/    /'
  fi
}

# verify_sha256_files checks each <file>.sha256 (the digest alone, as
# dl.k8s.io's) against its file, the way upstream documents it:
# echo "$(cat kubectl.sha256)  kubectl" | sha256sum --check
verify_sha256_files() {
  local f n=0
  while IFS= read -r f; do
    (cd "$(dirname "${f}")" && echo "$(cat "$(basename "${f}")")  $(basename "${f%.sha256}")" | sha256sum --check --quiet) ||
      return 1
    n=$((n + 1))
  done < <(find "${RELEASE}" -name '*.sha256' | LC_ALL=C sort)
  # The five binaries and the shim, the three images and the three tarballs.
  ((n == 12)) || { echo "${n} .sha256 files, want 12"; return 1; }
}

# sums_cover_everything: SHA256SUMS lists every other file of the release.
sums_cover_everything() {
  diff <(cd "${RELEASE}" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort) \
    <(awk '{print $2}' "${RELEASE}/SHA256SUMS" | LC_ALL=C sort)
}

# static_binaries: the images' binaries must run on an empty base (upstream
# builds them with CGO_ENABLED=0), and the shim on any node, as containerd's
# own. The kubelet, like upstream's, uses cgo.
static_binaries() {
  local b
  for b in "${IMAGES[@]}" kubectl containerd-shim-shimless-v2; do
    file -L "${DL}/${b}" | grep -q 'statically linked' || { file -L "${DL}/${b}"; return 1; }
  done
}

# tool_verify runs the packager's own checks of the release (go-containerregistry's
# validate on each image, layouts, tar headers, SPDX documents).
tool_verify() {
  local raw version commit date module
  raw=$("${FP_OUT}/bin/kube-apiserver" --version=raw)
  version=$(sed -E 's/.*GitVersion:"([^"]*)".*/\1/' <<<"${raw}")
  commit=$(sed -E 's/.*GitCommit:"([^"]*)".*/\1/' <<<"${raw}")
  date=$(sed -E 's/.*BuildDate:"([^"]*)".*/\1/' <<<"${raw}")
  module=$(cd "${FP_ROOT}" && go mod edit -json | sed -n 's/^\t\t"Path": "\(.*\)"$/\1/p' | head -n1)
  "${FP_OUT}/tools/release" verify -out "${RELEASE}" -root "${FP_ROOT}" -arch "$(go env GOARCH)" \
    -version "${version}" -revision "${commit}" -created "${date}" \
    -image-repository "${IMAGE_REPOSITORY:-localhost/kubelet-fileprobe}" -source "${RELEASE_SOURCE_URL:-https://${module}}" \
    -containerd "$(fp::containerd_version)"
}

test_package() {
  [[ -z "${RELEASE_DIR:-}" ]] || fp::die "unset RELEASE_DIR: the test writes ${RELEASE}"
  trap 'rm -rf "${SECOND}"' EXIT
  fp::timed "make release (first pass)" "${FP_ROOT}/hack/release.sh"
  fp::timed "packaging again into ${SECOND} (second pass)" env RELEASE_DIR="${SECOND}" "${FP_ROOT}/hack/release.sh"
  if diff -u "${RELEASE}/SHA256SUMS" "${SECOND}/SHA256SUMS"; then
    ok "reproducible: two passes give the same SHA256SUMS ($(wc -l < "${RELEASE}/SHA256SUMS") files)"
  else
    bad "two packaging passes of the same binaries differ (above)"
  fi
  rm -rf "${SECOND}"
  check "sha256sum -c SHA256SUMS" bash -c "cd '${RELEASE}' && sha256sum --check --strict --quiet SHA256SUMS"
  check "SHA256SUMS lists every file of the release" sums_cover_everything
  check "each .sha256 matches its file" verify_sha256_files
  check "the images' binaries, kubectl and the shim are statically linked" static_binaries
  local repo=${IMAGE_REPOSITORY:-localhost/kubelet-fileprobe}
  if [[ "${repo}" == registry.k8s.io* || "${repo}" == k8s.gcr.io* ]]; then
    bad "the image repository ${repo} impersonates upstream's"
  else
    ok "image repository ${repo} is not upstream's"
  fi
  check "the packager's checks: OCI images (go-containerregistry validate), layouts, tar headers, SPDX" tool_verify
  ((fails == 0)) || fp::die "${fails} release check(s) failed"
  fp::log "release: reproducible, checksums, images and SBOMs verified"
}

test_unit() {
  (cd "${FP_ROOT}/hack/release" && GOFLAGS=-buildvcs=false go vet . && GOFLAGS=-buildvcs=false go test -count=1 .)
}

# test_images imports each image into the local node's containerd (through
# hack/local-up-node.sh ctr, its ctr in the node's namespaces) and runs it as
# kubeadm's static Pods do: `command: [kube-apiserver, ...]`, found in PATH.
test_images() {
  local version tag repo node_bin="${FP_OUT}/node/bin"
  version=$(fp::fork_version)
  tag=${version/+/_}
  repo=${IMAGE_REPOSITORY:-localhost/kubelet-fileprobe}
  [[ -f "${DL}/kube-apiserver.tar" ]] || fp::die "no release in ${RELEASE}: make release"
  local name ref out before
  # The refs to remove afterwards: ours, and the sha256:<config> refs that
  # containerd's CRI plugin adds to the k8s.io namespace for every image.
  before=$(ctr_node images ls -q 2>/dev/null)
  for name in "${IMAGES[@]}"; do
    ref="${repo}/${name}:${tag}"
    out=$(ctr_node images import "${DL}/${name}.tar" 2>&1) || { bad "ctr images import ${name}.tar: ${out}"; continue; }
    if listed "${ref}"; then ok "ctr -n k8s.io images import ${name}.tar: ${ref}"; else
      bad "ctr images import ${name}.tar did not name the image ${ref}: ${out}; ctr images ls -q: ${listing}"
      continue
    fi
    # containerd finds the shim next to itself; runc is the node's. A cgroup
    # under the local node's cgroup root, which local-down removes.
    out=$(ctr_node run --rm --runc-binary "${node_bin}/runc" --cgroup "/fileprobe-local/release-test-${name}" \
      "${ref}" "release-test-${name}" "${name}" --version 2> "${FP_OUT}/release-test-ctr.log") || true
    if [[ "${out}" == "Kubernetes ${version}" ]]; then ok "ctr run ${ref} ${name} --version: ${out}"; else
      bad "ctr run ${ref} ${name} --version printed '${out}', want 'Kubernetes ${version}'"
      grep -v 'support for cgroup v1 is deprecated' "${FP_OUT}/release-test-ctr.log" | sed 's/^/    /'
    fi
  done
  rm -f "${FP_OUT}/release-test-ctr.log"
  for ref in $(comm -13 <(LC_ALL=C sort <<<"${before}") <(ctr_node images ls -q 2>/dev/null | LC_ALL=C sort)); do
    ctr_node images rm "${ref}" > /dev/null 2>&1 || true
  done
  ((fails == 0)) || fp::die "${fails} image check(s) failed"
  fp::log "release images: imported into the node's containerd, each prints Kubernetes ${version}"
}

ctr_node() { "${FP_ROOT}/hack/local-up-node.sh" ctr "$@"; }

# listed REF: containerd lists the image REF, within 5 tries a second apart
# (once, in CI, the listing right after the import did not show an image
# containerd had logged as created; what it printed is kept in $listing).
listing=""
listed() {
  local try
  for try in 1 2 3 4 5; do
    listing=$(ctr_node images ls -q 2>&1) && grep -qxF "$1" <<<"${listing}" && return 0
    sleep 1
  done
  return 1
}

case "${1:-}" in
  "") test_package ;;
  unit) test_unit ;;
  images) test_images ;;
  *) fp::die "usage: $0 [unit|images]" ;;
esac
