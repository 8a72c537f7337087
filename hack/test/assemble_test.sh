#!/usr/bin/env bash
# Tests of the assembler and of the patch workflow, on a scratch copy of this
# repository whose tree starts from the already assembled pristine baseline.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

[[ -d "${FP_TREE}/.git" ]] || fp::die "run hack/assemble.sh first"
SCRATCH=$(mktemp -d)
trap 'rm -rf "${SCRATCH}"' EXIT
fails=0

# new_copy makes a fresh copy of the repository (committed and uncommitted
# files) in $SCRATCH/repo. Its tree is cloned from the pristine baseline once,
# and afterwards kept: the assembler resets it itself.
new_copy() {
  if [[ -d "${SCRATCH}/repo/_output/kubernetes" ]]; then
    find "${SCRATCH}/repo" -mindepth 1 -maxdepth 1 ! -name _output -exec rm -rf {} +
    git -C "${SCRATCH}/repo/_output/kubernetes" am --abort >/dev/null 2>&1 || true
    rm -f "${SCRATCH}/repo/_output/assemble.stamp"
  else
    mkdir -p "${SCRATCH}/repo/_output"
    git clone -q --shared --no-checkout -b "${FP_BASE_REF}" "${FP_TREE}" "${SCRATCH}/repo/_output/kubernetes"
    git -C "${SCRATCH}/repo/_output/kubernetes" checkout -q "${FP_BASE_REF}"
    cp "${FP_TREE}/.git/info/attributes" "${SCRATCH}/repo/_output/kubernetes/.git/info/attributes"
    cp "${FP_OUT}/baseline.stamp" "${SCRATCH}/repo/_output/baseline.stamp"
  fi
  tar -C "${FP_ROOT}" --exclude=./_output --exclude=./.git -cf - . | tar -C "${SCRATCH}/repo" -xf -
}

# expect NAME WANT(0|1) PATTERN CMD...: CMD must succeed (0) or fail (1) and print PATTERN.
expect() {
  local name=$1 want=$2 pattern=$3; shift 3
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if { [[ "${want}" == 0 && ${rc} -ne 0 ]] || [[ "${want}" == 1 && ${rc} -eq 0 ]]; } ||
    ! grep -qE -- "${pattern}" <<<"${out}"; then
    echo "FAIL: ${name} (exit ${rc}, want $([[ ${want} == 0 ]] && echo success || echo failure) and /${pattern}/)"
    tail -n 20 <<<"${out}" | sed 's/^/    /'
    fails=$((fails + 1))
  else
    echo "ok:   ${name}"
  fi
}

R="${SCRATCH}/repo"
tg() { git -C "${R}/_output/kubernetes" "$@"; }

new_copy
npatches=$(find "${R}/patches" -name '*.patch' | wc -l)
expect "assembles the series on the baseline" 0 "assembled " "${R}/hack/assemble.sh"
expect "one commit per patch plus the overlay commit" 0 "^$((npatches + 2))\$" tg rev-list --count HEAD
expect "re-running on unchanged inputs is a no-op" 0 "is up to date" "${R}/hack/assemble.sh"

cp -r "${R}/patches" "${SCRATCH}/patches.orig"
expect "export of an unchanged tree" 0 "exported ${npatches} patches" "${R}/hack/patches.sh" export
expect "export is byte-stable" 0 "^$" diff -r "${SCRATCH}/patches.orig" "${R}/patches"
expect "the series verifies" 0 "verified ${npatches} patches" "${R}/hack/patches.sh" verify

# A commit made in the tree but not exported must not be thrown away.
echo "// scratch" >> "${R}/_output/kubernetes/pkg/features/kube_features.go"
tg commit -q -am "UPSTREAM: <carry>: features: scratch change" -m "Why: a test."
mkdir -p "${R}/pkg/fileprobe_test_only" && echo "package x" > "${R}/pkg/fileprobe_test_only/x.go"
expect "refuses to reset unexported commits" 1 "not in patches/" "${R}/hack/assemble.sh"
echo "// dirty" >> "${R}/_output/kubernetes/pkg/features/kube_features.go"
expect "refuses to reset uncommitted changes" 1 "uncommitted changes" "${R}/hack/assemble.sh"
tg checkout -q -- .
expect "export writes the new commit as the next patch" 0 "exported $((npatches + 1)) patches" "${R}/hack/patches.sh" export
expect "exported patch is named after its subject" 0 "$(printf '%04d' $((npatches + 1)))-features-scratch-change.patch" ls "${R}/patches"
expect "new files land at their path" 0 "package x" cat "${R}/_output/kubernetes/pkg/fileprobe_test_only/x.go"

# A new file may not shadow an upstream file.
new_copy
mkdir -p "${R}/pkg/probe" && echo "package probe" > "${R}/pkg/probe/probe.go"
expect "shadowing an upstream file fails" 1 "pkg/probe/probe.go shadows a file of the upstream tree" "${R}/hack/assemble.sh"

# verify rejects a series that is not in normal form.
new_copy
first=$(find "${R}/patches" -name '*.patch' | LC_ALL=C sort | head -n1)
if [[ -n "${first}" ]]; then
  mv "${first}" "${R}/patches/0001-wrong-name.patch"
  expect "verify rejects a misnamed patch" 1 "expected the name" "${R}/hack/patches.sh" verify
  new_copy
  sed -i 's/^Date: .*/Date: Mon, 1 Jan 2001 00:00:00 +0000/' "${first}"
  expect "verify accepts a hand edit that stays in normal form" 0 "verified" "${R}/hack/patches.sh" verify
  sed -i 's/^index \([0-9a-f]\{7\}\)[0-9a-f]*\.\.\([0-9a-f]\{7\}\)[0-9a-f]* /index \1..\2 /' "${first}"
  expect "verify rejects abbreviated blob ids" 1 "not in normal form" "${R}/hack/patches.sh" verify
else
  echo "FAIL: the series is empty, the normal-form tests need a patch"; fails=$((fails + 1))
fi

# A patch that no longer applies (as after a rebase): hack/rebase.sh keeps the
# tree inside git am to resolve it; plain assembly aborts cleanly.
new_copy
last=$(find "${R}/patches" -name '*.patch' | LC_ALL=C sort | tail -n1)
# Make the first removed or context line of the last patch's first hunk wrong.
awk 'BEGIN{d=0} !d && /^@@/ {h=1; print; next} h && !d && /^[ -]/ {print substr($0,1,1) "no such line in upstream"; d=1; next} {print}' \
  "${last}" > "${last}.new" && mv "${last}.new" "${last}"
expect "a patch that does not apply fails assembly" 1 "does not apply to upstream" "${R}/hack/assemble.sh"
expect "... and leaves no git am behind" 1 "" tg am --show-current-patch=raw
expect "under hack/rebase.sh it stops inside git am" 1 "is left inside 'git am'" env FP_KEEP_AM=1 "${R}/hack/assemble.sh"
expect "... with that patch to resolve" 0 "Subject: \[PATCH\] UPSTREAM" tg am --show-current-patch=raw

# The pin check and the rebase script (go.mod's "// held:" marks).
new_copy
expect "rebasing onto the pinned version changes no pin" 0 "go.mod now pins k8s.io/kubernetes $(fp::upstream_version)" \
  "${R}/hack/rebase.sh" "$(fp::upstream_version)"
expect "... and leaves go.mod and go.sum as they were" 0 "^$" \
  bash -c "diff '${FP_ROOT}/go.mod' '${R}/go.mod' && diff '${FP_ROOT}/go.sum' '${R}/go.sum'"
expect "the pins verify" 0 "go.mod pins k8s.io/kubernetes" "${R}/hack/test.sh" --pins-only
if [[ -n "$(fp::held_modules)" ]]; then
  expect "held-back modules are listed" 0 "HELD BACK: $(fp::held_modules | head -n1 | cut -d' ' -f1-2)" "${R}/hack/test.sh" --pins-only
  sed -i 's| // held:.*||' "${R}/go.mod"
  expect "an older staging module without a held mark fails" 1 "is v[0-9.]*, want v0\." "${R}/hack/test.sh" --pins-only
  new_copy
fi
# Hold k8s.io/api, which every binary compiles in, at an older version.
old_api=v0.0.1
sed -i -E "s|^(\s+k8s\.io/api) v[^ ]+\$|\1 ${old_api} // held: a test|; s|^(\s+k8s\.io/api => k8s\.io/api) v[^ ]+\$|\1 ${old_api}|" "${R}/go.mod"
expect "a held module compiled into a binary fails" 1 "k8s.io/api is held at an older version but compiled into our binaries" \
  "${R}/hack/test.sh" --pins-only
new_copy
sed -i -E 's|^(\s+k8s\.io/api v[^ ]+)$|\1 // held: a stale mark|' "${R}/go.mod"
expect "a held mark on an up-to-date module fails" 1 "k8s.io/api is marked held but pinned at" "${R}/hack/test.sh" --pins-only

((fails == 0)) || fp::die "${fails} assembler test(s) failed"
fp::log "assembler tests passed"
