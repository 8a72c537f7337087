#!/usr/bin/env bash
# Builds upstream's kubelet, kube-apiserver, kube-controller-manager and
# kube-scheduler of the pinned version, unpatched, into _output/upstream/bin/,
# for the mixed-version local cluster (hack/local-up-node.sh: FP_NODE_KUBELETS,
# FP_UPSTREAM_COMPONENTS; docs/local-node.md).
#
# The sources are the assembler's pristine baseline: the commit of branch
# "upstream" of _output/kubernetes (the module zips of k8s.io/kubernetes and
# its staging modules, as hack/assemble.sh laid them out, before any patch),
# checked out as a detached worktree at _output/upstream/kubernetes. The build
# is upstream's own, exactly as hack/build.sh runs it for our binaries: `make
# all WHAT=...` in that tree (upstream's tags, static linking, -trimpath and
# ldflags), with the same Go toolchain (GOTOOLCHAIN, hack/lib/common.sh) and
# the same KUBE_GIT_* variables, but for these:
#   KUBE_GIT_VERSION     the pinned version alone (v1.37.2), no +fileprobe.N
#   KUBE_GIT_COMMIT      the baseline commit of _output/kubernetes: module zips
#                        do not say which upstream commit they come from
#   SOURCE_DATE_EPOCH    that commit's (fixed) date
# Nothing of it is committed: it all lives under _output/upstream/.
#
# Cached: when _output/upstream/bin holds the four binaries built from the same
# baseline commit, version, toolchain and this script (bin/build.stamp), it
# does nothing. FORCE=1 rebuilds.
#
#   hack/build-upstream.sh           build (or do nothing)
#   hack/build-upstream.sh --check   exit 0 when the binaries are up to date, 1 when not
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

UP_OUT="${FP_OUT}/upstream"
UP_TREE="${UP_OUT}/kubernetes"
UP_BIN="${UP_OUT}/bin"
UP_STAMP="${UP_BIN}/build.stamp"
UP_BINARIES=(cmd/kubelet cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler)

# baseline_commit prints the commit of the assembled tree's pristine baseline.
baseline_commit() {
  git -C "${FP_TREE}" rev-parse --verify -q "refs/heads/${FP_BASE_REF}^{commit}" ||
    fp::die "${FP_TREE} has no branch ${FP_BASE_REF} (hack/assemble.sh makes it)"
}

# want_stamp COMMIT prints what the binaries must have been built from.
want_stamp() {
  printf 'baseline %s\nversion %s\ntoolchain %s\nscript %s\n' "$1" "$(fp::upstream_version)" "${GOTOOLCHAIN}" \
    "$(sha256sum < "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
}

up_to_date() {
  local want=$1 b
  [[ -f "${UP_STAMP}" && "$(cat "${UP_STAMP}")" == "${want}" ]] || return 1
  for b in "${UP_BINARIES[@]}"; do
    [[ -x "${UP_BIN}/$(basename "${b}")" ]] || return 1
  done
}

# checkout COMMIT makes _output/upstream/kubernetes a clean, detached worktree
# of the assembled tree at COMMIT, reusing it (and upstream's build outputs in
# it) when it already is one.
checkout() {
  local commit=$1
  if [[ -e "${UP_TREE}/.git" ]] &&
    [[ "$(git -C "${UP_TREE}" rev-parse HEAD 2>/dev/null)" == "${commit}" ]] &&
    [[ "$(cd "${UP_TREE}" && realpath "$(git rev-parse --git-common-dir)" 2>/dev/null)" == "$(realpath "${FP_TREE}/.git")" ]]; then
    git -C "${UP_TREE}" reset -q --hard
    git -C "${UP_TREE}" clean -q -fdx -e /_output/
  else
    fp::log "checking out the baseline ${commit:0:12} into ${UP_TREE#"${FP_ROOT}/"}"
    rm -rf "${UP_TREE}"
    git -C "${FP_TREE}" worktree prune
    mkdir -p "${UP_OUT}"
    git -C "${FP_TREE}" worktree add -q --detach "${UP_TREE}" "${commit}"
  fi
  # The worktree is the baseline byte for byte: nothing modified, nothing added.
  local dirty
  dirty=$(git -C "${UP_TREE}" status --porcelain --ignored=no -- . ':(exclude)_output')
  [[ -z "${dirty}" ]] || fp::die "${UP_TREE} differs from the baseline ${commit}: ${dirty:0:300}"
}

main() {
  local check=0
  [[ "${1:-}" == --check ]] && check=1
  "${FP_ROOT}/hack/assemble.sh" > /dev/null
  local commit want
  commit=$(baseline_commit)
  want=$(want_stamp "${commit}")
  if [[ "${FORCE:-0}" != 1 ]] && up_to_date "${want}"; then
    ((check)) || fp::log "upstream binaries in ${UP_BIN#"${FP_ROOT}/"} are up to date (baseline ${commit:0:12})"
    return 0
  fi
  ((check == 0)) || return 1

  local version major minor epoch
  version=$(fp::upstream_version)
  major=$(echo "${version#v}" | cut -d. -f1)
  minor=$(echo "${version#v}" | cut -d. -f2)
  epoch=$(git -C "${FP_TREE}" log -1 --format=%ct "${commit}")
  checkout "${commit}"

  fp::log "building upstream ${UP_BINARIES[*]} at ${version} from the baseline ${commit:0:12}"
  rm -f "${UP_STAMP}"
  make -C "${UP_TREE}" --no-print-directory all \
    WHAT="${UP_BINARIES[*]}" \
    KUBE_GIT_VERSION="${version}" KUBE_GIT_MAJOR="${major}" KUBE_GIT_MINOR="${minor}" \
    KUBE_GIT_COMMIT="${commit}" KUBE_GIT_TREE_STATE=clean \
    SOURCE_DATE_EPOCH="${epoch}" \
    GOCACHE="${GOCACHE}" GOMODCACHE="${GOMODCACHE}" GOFLAGS=-buildvcs=false

  mkdir -p "${UP_BIN}"
  local w bin out
  for w in "${UP_BINARIES[@]}"; do
    bin=$(basename "${w}")
    install -m 0755 "${UP_TREE}/_output/local/bin/$(go env GOOS)/$(go env GOARCH)/${bin}" "${UP_BIN}/${bin}"
    out=$("${UP_BIN}/${bin}" --version 2>&1)
    [[ "${out}" == "Kubernetes ${version}" ]] || fp::die "${UP_BIN}/${bin} --version says '${out}', not 'Kubernetes ${version}'"
  done
  echo "${want}" > "${UP_STAMP}"
  fp::log "upstream binaries in ${UP_BIN#"${FP_ROOT}/"}: $(cd "${UP_BIN}" && echo kube*) (${version})"
}

main "$@"
