#!/usr/bin/env bash
# Assembles the build tree _output/kubernetes from
#   1. the pinned upstream modules (go.mod/go.sum: k8s.io/kubernetes and its
#      staging modules, fetched and checksum-verified by the Go module proxy),
#      committed as the pristine baseline on branch "upstream";
#   2. the patch series in patches/, applied with `git am`, one commit each;
#   3. this repository's new files (api/ cmd/ pkg/ staging/ test/), laid in at
#      the same paths and committed as one last commit.
#
# Re-running with unchanged inputs is a no-op. When an input changed, the tree is
# reset to the baseline and steps 2-3 are redone (the baseline itself is only
# rebuilt when the upstream version changes). Work committed inside the tree that
# was not exported yet is never thrown away: the script refuses instead
# (FORCE=1 overrides).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

STAMP="${FP_OUT}/assemble.stamp"
OVERLAY_SUBJECT="fileprobe: lay in new files from the kubelet-fileprobe repository (not a patch)"

# input_fingerprint hashes everything the tree is made of.
input_fingerprint() {
  (
    cd "${FP_ROOT}"
    sha256sum go.mod go.sum hack/assemble.sh hack/lib/common.sh
    find patches -name '*.patch' -type f | LC_ALL=C sort | xargs -r sha256sum
    fp::overlay_files | xargs -r sha256sum
  ) | sha256sum | cut -d' ' -f1
}

# tree_git runs git inside the assembled tree.
tree_git() { git -C "${FP_TREE}" "$@"; }

# upstream_fingerprint identifies the pristine baseline: module versions and hashes.
upstream_fingerprint() {
  (cd "${FP_ROOT}" && grep -E '^k8s\.io/' go.sum | grep -v '/go.mod ' | LC_ALL=C sort) | sha256sum | cut -d' ' -f1
}

# restore_upstream_quirks puts back what module zips cannot carry.
restore_upstream_quirks() {
  # Module zips have no symlinks: upstream's root Makefile is a link.
  ln -sfn build/root/Makefile "${FP_TREE}/Makefile"
  # Module zips have no exec bits: restore them on shell scripts and on every
  # file that starts with "#!" (this is what upstream marks executable).
  (cd "${FP_TREE}" && find . -path ./.git -prune -o -type f -print0 |
    xargs -0 perl -e 'for (@ARGV) { if (/\.sh$/) { chmod 0755, $_; next }
      open(my $f, "<", $_) or next; my $b = ""; read($f, $b, 2); close $f;
      chmod 0755, $_ if $b eq "#!" }')
}

build_baseline() {
  local version
  version=$(fp::upstream_version)
  fp::log "building pristine baseline for k8s.io/kubernetes ${version}"
  local -a mods=(k8s.io/kubernetes)
  local path ver
  while read -r path ver; do mods+=("${path}"); done < <(fp::staging_modules)
  # go mod download verifies every zip against go.sum (and the checksum
  # database for anything go.sum does not list yet, which then fails the
  # go.sum check below).
  local json sum_before
  sum_before=$(sha256sum "${FP_ROOT}/go.sum")
  json=$(cd "${FP_ROOT}" && go mod download -json "${mods[@]}")
  [[ "$(sha256sum "${FP_ROOT}/go.sum")" == "${sum_before}" ]] ||
    fp::die "go.sum lacked the checksums of some upstream modules (now added): review and commit go.sum, then re-run"
  local kdir
  kdir=$(echo "${json}" | awk -F'"' '/"Path": "k8s.io\/kubernetes"/{p=1} p && /"Dir":/{print $4; exit}')
  [[ -d "${kdir}" ]] || fp::die "k8s.io/kubernetes ${version} not in the module cache"

  rm -rf "${FP_TREE}" "${STAMP}"
  mkdir -p "${FP_OUT}"
  cp -a "${kdir}" "${FP_TREE}.tmp"
  chmod -R u+w "${FP_TREE}.tmp"
  mv "${FP_TREE}.tmp" "${FP_TREE}"
  while read -r path ver; do
    local dir
    dir=$(echo "${json}" | awk -F'"' -v m="${path}" '$0 ~ "\"Path\": \"" m "\"" {p=1} p && /"Dir":/{print $4; exit}')
    [[ -d "${dir}" ]] || fp::die "${path}@${ver} not in the module cache"
    rm -rf "${FP_TREE}/staging/src/${path}"
    mkdir -p "$(dirname "${FP_TREE}/staging/src/${path}")"
    cp -a "${dir}" "${FP_TREE}/staging/src/${path}"
  done < <(fp::staging_modules)
  chmod -R u+w "${FP_TREE}"
  restore_upstream_quirks

  tree_git init -q -b "${FP_BASE_REF}"
  tree_git config core.autocrlf false
  tree_git config gc.auto 0
  # Store every file byte for byte as the module zip has it (upstream's
  # .gitattributes would normalise CRLF in some test data).
  echo '* -text' > "${FP_TREE}/.git/info/attributes"
  tree_git add -A
  GIT_AUTHOR_DATE="${FP_FIXED_DATE}" GIT_COMMITTER_DATE="${FP_FIXED_DATE}" \
    tree_git commit -q --no-verify -m "upstream: k8s.io/kubernetes ${version} and its staging modules from the Go module proxy"
  tree_git tag -f "upstream-${version}" >/dev/null
  echo "$(upstream_fingerprint)" > "${FP_OUT}/baseline.stamp"
}

# check_no_unexported_work refuses to reset a tree that holds work not in patches/.
check_no_unexported_work() {
  [[ "${FORCE:-0}" == 1 ]] && return 0
  [[ -f "${STAMP}" ]] || return 0
  local head
  head=$(sed -n 's/^head //p' "${STAMP}")
  # Changes to our new files do not count: their source is this repository
  # (copying one into the tree to try it out is fine).
  local dirty
  dirty=$(tree_git status --porcelain --untracked-files=no | cut -c4- | grep -vxF -f <(fp::overlay_files) || true)
  if [[ -n "${dirty}" ]]; then
    fp::die "${FP_TREE} has uncommitted changes. Commit them and run 'make export-patches', or discard them with FORCE=1."
  fi
  if [[ "$(tree_git rev-parse HEAD)" != "${head}" ]]; then
    fp::die "${FP_TREE} has commits that are not in patches/ (HEAD moved since assembly). Run 'make export-patches', or discard them with FORCE=1."
  fi
}

apply_series() {
  tree_git checkout -q -f -B "${FP_BRANCH}" "${FP_BASE_REF}"
  tree_git clean -q -fd
  local -a series=()
  mapfile -t series < <(find "${FP_PATCHES}" -name '*.patch' -type f | LC_ALL=C sort)
  if ((${#series[@]} > 0)); then
    fp::log "applying ${#series[@]} patches"
    tree_git am -q --committer-date-is-author-date --whitespace=nowarn "${series[@]}" || {
      if [[ "${FP_KEEP_AM:-0}" == 1 ]]; then
        # hack/rebase.sh: leave the tree inside git am, to resolve the patch.
        fp::die "$(tree_git am --show-current-patch=raw 2>/dev/null | sed -n 's/^Subject: \[PATCH\] //p' | head -n1):
    does not apply to upstream $(fp::upstream_version). ${FP_TREE} is left inside 'git am' to resolve it:
      cd ${FP_TREE}
      git apply --reject --whitespace=nowarn \"\$(git rev-parse --git-path rebase-apply/patch)\"   # then fix each *.rej
      git add -A && git am --continue          # for a 'generated:' patch: git am --skip, regenerate later
    and, once git am is done: make export-patches && make. docs/rebasing.md has the whole procedure."
      fi
      tree_git am --abort || true
      fp::die "the patch series does not apply to upstream $(fp::upstream_version) (see the git am output above)"
    }
  fi
}

lay_in_overlay() {
  local f n=0
  while read -r f; do
    if tree_git cat-file -e "HEAD:${f}" 2>/dev/null; then
      fp::die "${f} shadows a file of the upstream tree (after patches). Change upstream files through patches/ only."
    fi
    mkdir -p "$(dirname "${FP_TREE}/${f}")"
    cp "${FP_ROOT}/${f}" "${FP_TREE}/${f}"
    n=$((n + 1))
  done < <(fp::overlay_files)
  fp::log "laying in ${n} new files"
  tree_git add -A
  GIT_AUTHOR_DATE="${FP_FIXED_DATE}" GIT_COMMITTER_DATE="${FP_FIXED_DATE}" \
    tree_git commit -q --no-verify --allow-empty -m "${OVERLAY_SUBJECT}"
}

main() {
  command -v git >/dev/null || fp::die "git is required"
  command -v perl >/dev/null || fp::die "perl is required"
  local fp
  fp=$(input_fingerprint)
  if [[ -f "${STAMP}" && -d "${FP_TREE}/.git" ]] && [[ "$(sed -n 's/^inputs //p' "${STAMP}")" == "${fp}" ]]; then
    fp::log "${FP_TREE} is up to date"
    return 0
  fi
  [[ -d "${FP_TREE}/.git" ]] && check_no_unexported_work
  if ! [[ -d "${FP_TREE}/.git" && -f "${FP_OUT}/baseline.stamp" ]] ||
    [[ "$(cat "${FP_OUT}/baseline.stamp")" != "$(upstream_fingerprint)" ]]; then
    build_baseline
  fi
  apply_series
  lay_in_overlay
  printf 'inputs %s\nhead %s\n' "${fp}" "$(tree_git rev-parse HEAD)" > "${STAMP}"
  fp::log "assembled ${FP_TREE} at $(tree_git rev-parse --short HEAD) ($(fp::fork_version))"
}

main "$@"
