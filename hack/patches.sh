#!/usr/bin/env bash
# The patch series workflow.
#
#   hack/patches.sh export   write every commit of the assembled tree (except the
#                            overlay commit) back to patches/ in normal form
#   hack/patches.sh verify   check that patches/ is in normal form and applies
#                            with `git am` to pristine upstream, in a scratch
#                            worktree (the assembled tree is left alone)
#
# Normal form: one `git format-patch` file per commit, named
# NNNN-<area>-<what>.patch after its subject "UPSTREAM: <carry>: <area>: <what>",
# with full blob ids, a zero "From" hash and no signature, so that applying and
# re-exporting a series gives the same bytes.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

OVERLAY_SUBJECT_PREFIX="fileprobe: lay in new files"
SUBJECT_RE='^UPSTREAM: <(carry|drop)>: ([a-z0-9/._-]+): (.+)$'

# patch_name SUBJECT NUMBER prints the file name for a commit subject.
patch_name() {
  local subject=$1 num=$2
  [[ "${subject}" =~ ${SUBJECT_RE} ]] ||
    fp::die "subject does not read 'UPSTREAM: <carry>: <area>: <what>': ${subject}"
  local area=${BASH_REMATCH[2]} what=${BASH_REMATCH[3]}
  local slug
  slug=$(printf '%s-%s' "${area}" "${what}" | tr 'A-Z' 'a-z' | sed -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/^-//' -e 's/-$//' | cut -c1-60 | sed 's/-$//')
  printf '%04d-%s.patch' "${num}" "${slug}"
}

# export_series TREE BASE DEST writes the series between BASE and TREE's HEAD into DEST.
export_series() {
  local tree=$1 base=$2 dest=$3
  local -a commits=()
  mapfile -t commits < <(git -C "${tree}" rev-list --reverse --topo-order "${base}..HEAD")
  local c subject n=0 name
  for c in "${commits[@]}"; do
    subject=$(git -C "${tree}" log -1 --format=%s "${c}")
    [[ "${subject}" == "${OVERLAY_SUBJECT_PREFIX}"* ]] && continue
    [[ -n "$(git -C "${tree}" log -1 --format=%b "${c}")" ]] ||
      fp::die "commit ${c} (${subject}) has no body: say why the change is needed"
    # A commit must not touch the files this repository lays in itself.
    local f
    while read -r f; do
      [[ -f "${FP_ROOT}/${f}" ]] && fp::die "commit ${c} (${subject}) changes ${f}, which is a new file of this repository: edit it here, not in the tree"
    done < <(git -C "${tree}" diff-tree --no-commit-id --name-only -r "${c}")
    n=$((n + 1))
    name=$(patch_name "${subject}" "${n}")
    git -C "${tree}" -c core.abbrev=no -c diff.noprefix=false -c diff.mnemonicPrefix=false -c diff.renames=true \
      format-patch --stdout --no-signature --zero-commit --full-index --no-numbered --stat=80 \
      --encoding=UTF-8 -1 "${c}" > "${dest}/${name}"
  done
  echo "${n}"
}

cmd_export() {
  [[ -d "${FP_TREE}/.git" ]] || fp::die "no assembled tree: run 'make tree' first"
  [[ -z "$(git -C "${FP_TREE}" status --porcelain --untracked-files=no)" ]] ||
    fp::die "${FP_TREE} has uncommitted changes: commit them first"
  local tmp n
  tmp=$(mktemp -d)
  n=$(export_series "${FP_TREE}" "${FP_BASE_REF}" "${tmp}") || { rm -rf "${tmp}"; exit 1; }
  rm -f "${FP_PATCHES}"/*.patch
  cp "${tmp}"/*.patch "${FP_PATCHES}/" 2>/dev/null || true
  rm -rf "${tmp}"
  fp::log "exported ${n} patches to ${FP_PATCHES}"
  # Nothing in the tree is unexported any more: reassemble it from the series
  # just written, which also proves that the series applies.
  FORCE=1 "${FP_ROOT}/hack/assemble.sh"
}

cmd_verify() {
  [[ -d "${FP_TREE}/.git" ]] || "${FP_ROOT}/hack/assemble.sh"
  local scratch="${FP_OUT}/verify-patches"
  fp::scratch_worktree "${scratch}" "${FP_BASE_REF}"
  local -a series=()
  mapfile -t series < <(find "${FP_PATCHES}" -name '*.patch' -type f | LC_ALL=C sort)
  local p i=0 subject
  for p in "${series[@]}"; do
    i=$((i + 1))
    # The Subject header may be folded over several lines.
    subject=$(awk '/^Subject: \[PATCH\] /{s=substr($0, 18); f=1; next}
      f && /^ /{s=s $0; next} f{print s; exit}' "${p}")
    [[ "$(basename "${p}")" == "$(patch_name "${subject}" "${i}")" ]] ||
      fp::die "$(basename "${p}"): expected the name $(patch_name "${subject}" "${i}") (numbered in order, named after the subject)"
    git -C "${scratch}" am -q --committer-date-is-author-date --whitespace=nowarn "${p}" ||
      fp::die "$(basename "${p}") does not apply with git am on top of the patches before it (pristine $(fp::upstream_version))"
  done
  local out
  out=$(mktemp -d)
  export_series "${scratch}" "${FP_BASE_REF}" "${out}" >/dev/null
  if ! diff -r "${FP_PATCHES}" "${out}" >/dev/null 2>&1; then
    diff -ru "${FP_PATCHES}" "${out}" | head -n 60 >&2 || true
    rm -rf "${out}"
    fp::die "patches/ is not in normal form: re-export it with 'make export-patches'"
  fi
  rm -rf "${out}"
  fp::log "verified ${#series[@]} patches: normal form, apply with git am to pristine $(fp::upstream_version)"
}

case "${1:-}" in
  export) cmd_export ;;
  verify) cmd_verify ;;
  *) fp::die "usage: $0 export|verify" ;;
esac
