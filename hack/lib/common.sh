# Shared settings for the fileprobe hack/ scripts. Source it; do not run it.
#
# Everything derives from go.mod (the one place that states the upstream
# version) and from the fork release number in FILEPROBE_RELEASE.

set -o errexit
set -o nounset
set -o pipefail

FP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export FP_ROOT

# The assembled upstream tree (a git repository of its own, git-ignored here).
FP_OUT="${FP_ROOT}/_output"
FP_TREE="${FP_OUT}/kubernetes"
FP_PATCHES="${FP_ROOT}/patches"
# Top-level directories of this repository whose files are laid into the tree
# at the same path ("overlay"): new files only, never copies of upstream files.
FP_OVERLAY_DIRS=(api cmd pkg staging test)
# Git refs inside the assembled tree.
FP_BASE_REF="upstream"
FP_BRANCH="fileprobe"
# Fixed identity and dates make the tree's commits (and so the exported
# patches and the binaries' gitCommit) reproducible.
export GIT_AUTHOR_NAME="kubelet-fileprobe assembler" GIT_AUTHOR_EMAIL="assembler@kubelet-fileprobe.invalid"
export GIT_COMMITTER_NAME="kubelet-fileprobe assembler" GIT_COMMITTER_EMAIL="assembler@kubelet-fileprobe.invalid"
FP_FIXED_DATE="2000-01-01T00:00:00Z"
# Upstream's scripts (hack/lib/golang.sh) would move the Go caches under
# _output/ of the tree; keep them where every other go command finds them.
GOCACHE="${GOCACHE:-$(go env GOCACHE)}"
GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE)}"
export GOCACHE GOMODCACHE

fp::log() { printf '+++ [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fp::die() { printf '!!! %s\n' "$*" >&2; exit 1; }

# fp::upstream_version prints the pinned k8s.io/kubernetes version (e.g. v1.37.2).
fp::upstream_version() {
  (cd "${FP_ROOT}" && go mod edit -json | sed -n '/"Path": "k8s.io\/kubernetes"/{n;s/.*"Version": "\(.*\)".*/\1/p;q;}')
}

# fp::staging_modules prints "path version" for every k8s.io staging module pinned in go.mod.
fp::staging_modules() {
  (cd "${FP_ROOT}" && go mod edit -json) | awk '
    /"Replace": \[/ {inrep=1}
    inrep && /"Old": \{/ {old=1; next}
    inrep && /"New": \{/ {old=0; new=1; next}
    inrep && new && /"Path":/ {gsub(/[",]/,""); p=$2}
    inrep && new && /"Version":/ {gsub(/[",]/,""); print p, $2; new=0}'
}

# fp::held_modules prints "path version reason" for every staging module that
# go.mod holds at an older version (its require line ends in "// held: reason";
# hack/rebase.sh writes it when the Go module proxy refuses the new version).
fp::held_modules() {
  sed -n -E 's|^\s+(k8s\.io/[^ ]+) (v[^ ]+) // held: (.*)$|\1 \2 \3|p' "${FP_ROOT}/go.mod"
}

# The binaries this fork builds and ships (hack/build.sh, make release).
FP_BINARIES=(cmd/kubelet cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl)

# fp::fork_version prints the version stamped into every binary: v1.37.2+fileprobe.N
# fp::containerd_version prints the containerd the local node runs and
# containerd-shim-shimless-v2 is built from (FP_CONTAINERD_VERSION in
# hack/local-up-node.sh; hack/shimless.sh checks shimless/go.mod against it).
fp::containerd_version() {
  sed -n 's/^FP_CONTAINERD_VERSION=\([^ ]*\).*/\1/p' "${FP_ROOT}/hack/local-up-node.sh"
}

fp::fork_version() {
  local release
  release=$(tr -d '[:space:]' < "${FP_ROOT}/FILEPROBE_RELEASE")
  echo "$(fp::upstream_version)+fileprobe.${release}"
}

# fp::overlay_files prints the repository's overlay files (relative paths), sorted.
fp::overlay_files() {
  (cd "${FP_ROOT}" && for d in "${FP_OVERLAY_DIRS[@]}"; do
    if [[ -d "$d" ]]; then find "$d" -type f; fi
  done | LC_ALL=C sort)
}

# fp::tree_dep_version TREE MODULE prints the version of MODULE that TREE's go.mod requires.
fp::tree_dep_version() {
  awk -v m="$2" '$1 == m {print $2; exit}' "$1/go.mod"
}

# fp::scratch_worktree DIR REF makes DIR a fresh, detached worktree of the
# assembled tree at REF; it is removed when the script exits.
fp::scratch_worktree() {
  FP_SCRATCH=$1
  fp::remove_scratch
  git -C "${FP_TREE}" worktree add -q --detach "${FP_SCRATCH}" "$2"
  trap fp::remove_scratch EXIT
}

fp::remove_scratch() {
  git -C "${FP_TREE}" worktree remove --force "${FP_SCRATCH}" 2>/dev/null || rm -rf "${FP_SCRATCH}"
  git -C "${FP_TREE}" worktree prune
}

# fp::local_cluster_up KEEP brings the local single-node cluster up from
# _output/bin, for make local-up, make e2e and make bench, building first what
# is missing there (fp::build_missing; hack/local-up-node.sh installs the node
# tools). Unless KEEP is 1, the cluster goes down again when the calling
# script exits, whether it succeeded, failed or was interrupted.
fp::local_cluster_up() {
  local keep=$1
  fp::build_missing
  if [[ "${keep}" != 1 ]]; then
    trap 'fp::timed "local-down" "${FP_ROOT}/hack/local-up-node.sh" down' EXIT
  fi
  fp::timed "local-up" "${FP_ROOT}/hack/local-up-node.sh" up
}

# fp::build_missing assembles the tree (a no-op when it is up to date), builds
# each of the five binaries that is missing from _output/bin (only those: a
# full build takes 20-45 minutes on 2 cores), containerd-shim-shimless-v2 when
# missing (hack/shimless.sh, seconds) and etcd (hack/etcd.sh: only when
# missing, or not the version the tree pins). It rebuilds no binary that
# exists, even an older one than the tree: `make` does. With FP_BIN naming
# another directory, the binaries are taken from there as they are.
fp::build_missing() {
  # Upstream's binaries, when the stack is asked to run any
  # (hack/local-up-node.sh: FP_NODE_KUBELETS, FP_UPSTREAM_COMPONENTS) from
  # their default place: hack/build-upstream.sh builds them only when missing
  # or not from the tree's baseline.
  local upstream_components="${FP_UPSTREAM_COMPONENTS:-}"
  if [[ " ${FP_NODE_KUBELETS:-} " == *" upstream "* || -n "${upstream_components// /}" ]] &&
    [[ -z "${FP_UPSTREAM_BIN:-}" || "${FP_UPSTREAM_BIN%/}" == "${FP_OUT}/upstream/bin" ]]; then
    fp::timed "build the upstream binaries" "${FP_ROOT}/hack/build-upstream.sh"
  fi
  if [[ -n "${FP_BIN:-}" && "${FP_BIN%/}" != "${FP_OUT}/bin" ]]; then
    "${FP_ROOT}/hack/assemble.sh" > /dev/null
    return
  fi
  local -a missing=()
  local b
  for b in "${FP_BINARIES[@]}"; do
    [[ -x "${FP_OUT}/bin/$(basename "${b}")" ]] || missing+=("${b}")
  done
  if ((${#missing[@]} > 0)); then
    fp::timed "build the missing binaries: ${missing[*]}" "${FP_ROOT}/hack/build.sh" "${missing[@]}"
  fi
  if [[ ! -x "${FP_OUT}/bin/containerd-shim-shimless-v2" ]]; then
    fp::timed "build containerd-shim-shimless-v2" "${FP_ROOT}/hack/shimless.sh"
  fi
  "${FP_ROOT}/hack/assemble.sh" > /dev/null
  "${FP_ROOT}/hack/etcd.sh"
}

# fp::timed NAME CMD... runs CMD and reports how long it took (CI reads these lines).
fp::timed() {
  local name=$1; shift
  local start=$SECONDS rc=0
  fp::log "start: ${name}"
  "$@" || rc=$?
  fp::log "timing: ${name}: $((SECONDS - start))s (exit ${rc})"
  return "${rc}"
}

# fp::go_version prints the Go version upstream builds the pinned release with:
# the .go-version file of k8s.io/kubernetes (e.g. 1.26.10).
fp::go_version() {
  local dir
  # Outside of any module, so that no go.mod but the pinned release is read.
  dir=$(cd / && GOTOOLCHAIN=local GO111MODULE=on go mod download -json "k8s.io/kubernetes@$(fp::upstream_version)" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -f "${dir}/.go-version" ]] || fp::die "k8s.io/kubernetes $(fp::upstream_version) has no .go-version in the module cache (${dir})"
  tr -d '[:space:]' < "${dir}/.go-version"
}

# Build with the Go version upstream's .go-version names, fetched the way
# upstream's hack/lib/golang.sh fetches it: GOTOOLCHAIN=go<version> makes the
# machine's go command download that toolchain from the Go module proxy (once,
# into the module cache) and run it. A GOTOOLCHAIN set in the environment other
# than "auto" is respected, as upstream respects it.
if [[ "${GOTOOLCHAIN:-auto}" == auto ]]; then
  GOTOOLCHAIN="go$(fp::go_version)"
fi
export GOTOOLCHAIN
