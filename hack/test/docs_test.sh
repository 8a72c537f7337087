#!/usr/bin/env bash
# The example pod README shows is the one make local-up starts: README's first
# yaml block under "## The API" must be docs/examples/fileprobe-demo.yaml from
# its apiVersion line on (the file's header comment says where it runs).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

example="${FP_ROOT}/docs/examples/fileprobe-demo.yaml"
want=$(sed -n '/^apiVersion:/,$p' "${example}")
have=$(awk '/^## The API$/ {api = 1} api && /^```yaml$/ {block = 1; next} block && /^```$/ {exit} block' "${FP_ROOT}/README.md")
if [[ -z "${have}" || "${want}" != "${have}" ]]; then
  diff -u --label "${example#"${FP_ROOT}/"}" --label "README.md (## The API)" <(echo "${want}") <(echo "${have}") || true
  echo "FAIL: README's example pod differs from ${example#"${FP_ROOT}/"}: change both"
  exit 1
fi
echo "ok:   README's example pod is ${example#"${FP_ROOT}/"}"
