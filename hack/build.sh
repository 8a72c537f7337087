#!/usr/bin/env bash
# Builds the fork's binaries from the assembled tree with upstream's own build
# (make WHAT=...: same tags, static/cgo choices, -trimpath and ldflags as an
# upstream release build), stamped v1.37.X+fileprobe.N, into _output/bin/,
# with the Go toolchain upstream's .go-version names (GOTOOLCHAIN, hack/lib/common.sh).
#
#   hack/build.sh                 the five binaries
#   hack/build.sh cmd/kubelet     only these
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  local -a what=("$@")
  ((${#what[@]} > 0)) || what=("${FP_BINARIES[@]}")
  "${FP_ROOT}/hack/assemble.sh"

  local version upstream
  version=$(fp::fork_version)
  upstream=$(fp::upstream_version)
  local major minor
  major=$(echo "${upstream#v}" | cut -d. -f1)
  minor=$(echo "${upstream#v}" | cut -d. -f2)
  # gitCommit names the commit of this repository the binaries come from, so a
  # running kubelet can be traced back to its patch series.
  local commit="" state="clean" epoch
  if commit=$(git -C "${FP_ROOT}" rev-parse HEAD 2>/dev/null); then
    [[ -z "$(git -C "${FP_ROOT}" status --porcelain -- . ':(exclude)_output')" ]] || state="dirty"
    epoch=$(git -C "${FP_ROOT}" log -1 --format=%ct)
  else
    commit=$(git -C "${FP_TREE}" rev-parse HEAD)
    epoch=$(date +%s)
  fi

  fp::log "building ${what[*]} at ${version}"
  # KUBE_GIT_* are read by upstream's hack/lib/version.sh instead of asking git
  # (the tree's git history is ours, not upstream's). SOURCE_DATE_EPOCH fixes
  # the build date for reproducible binaries.
  make -C "${FP_TREE}" --no-print-directory all \
    WHAT="${what[*]}" \
    KUBE_GIT_VERSION="${version}" KUBE_GIT_MAJOR="${major}" KUBE_GIT_MINOR="${minor}" \
    KUBE_GIT_COMMIT="${commit}" KUBE_GIT_TREE_STATE="${state}" \
    SOURCE_DATE_EPOCH="${epoch}" \
    GOCACHE="${GOCACHE}" GOMODCACHE="${GOMODCACHE}" GOFLAGS=-buildvcs=false

  mkdir -p "${FP_OUT}/bin"
  local w bin
  for w in "${what[@]}"; do
    bin=$(basename "${w}")
    install -m 0755 "${FP_TREE}/_output/local/bin/$(go env GOOS)/$(go env GOARCH)/${bin}" "${FP_OUT}/bin/${bin}"
  done
  fp::log "binaries in ${FP_OUT}/bin: $(cd "${FP_OUT}/bin" && echo *)"
}

main "$@"
