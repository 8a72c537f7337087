#!/usr/bin/env bash
# Moves the fork onto another upstream release:
#
#   hack/rebase.sh v1.37.2
#
# Rewrites go.mod (k8s.io/kubernetes and every staging module it replaces, at
# the matching v0.X.Y), rebuilds go.sum from the Go module proxy (checked
# against the checksum database), then tries to assemble the tree. When a patch
# no longer applies, the tree is left in the middle of `git am` for you to
# resolve; README.md ("Rebasing onto another upstream release") says how.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  local version=${1:-}
  [[ "${version}" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || fp::die "usage: $0 v1.MINOR.PATCH"
  local staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  cd "${FP_ROOT}"

  # The staging modules of the new release are the replace block of its go.mod.
  local gomod
  gomod=$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "${gomod}" ]] || fp::die "k8s.io/kubernetes@${version} is not on the module proxy"
  local -a mods=()
  mapfile -t mods < <(sed -n '/^replace (/,/^)/p' "${gomod}" | awk '/=>/{print $1}')

  local path ver
  while read -r path ver; do
    go mod edit -droprequire "${path}" -dropreplace "${path}"
  done < <(fp::staging_modules)
  go mod edit -require "k8s.io/kubernetes@${version}"
  for path in "${mods[@]}"; do
    go mod edit -require "${path}@${staging_version}" -replace "${path}=${path}@${staging_version}"
  done
  : > go.sum
  go mod download k8s.io/kubernetes "${mods[@]}"
  fp::log "go.mod now pins k8s.io/kubernetes ${version} and ${#mods[@]} staging modules at ${staging_version}"
  "${FP_ROOT}/hack/assemble.sh"
}

main "$@"
