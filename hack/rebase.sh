#!/usr/bin/env bash
# Moves the fork onto another upstream release:
#
#   hack/rebase.sh v1.37.2
#
# 1. Rewrites the version of every pin in go.mod in place (k8s.io/kubernetes,
#    and each staging module of the new release at the matching v0.X.Y), so the
#    diff of go.mod is one line per module and nothing else moves. Staging
#    modules the new release adds are added, those it dropped are dropped.
# 2. A staging module whose new version the Go module proxy refuses for good
#    (403/404/410, e.g. "This module version is not available") is held at its
#    current version and marked on its require line: `// held: <why>`. A
#    network error stops the script instead (nothing is ever held silently).
#    `make verify` lists every held module and fails if one of them is compiled
#    into a binary we ship. The next rebase asks the proxy again.
# 3. Rebuilds go.sum from the proxy (checked against the checksum database),
#    resets FILEPROBE_RELEASE to 1 when the upstream version changes (the first
#    fork release on a new upstream release is +fileprobe.1), and assembles the
#    tree. When a patch no longer applies, the script stops and tells you what
#    to do; docs/rebasing.md has the whole procedure.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# served PATH VERSION: 0 if the proxy serves it, 1 if it refuses it for good;
# dies on any other error (network, proxy down), which must not hold a module.
served() {
  local out
  if out=$(cd "$(mktemp -d)" && go mod download -json "$1@$2" 2>&1); then
    return 0
  fi
  if grep -qE '"Error": ".*(: (403|404|410) |not available|not found)' <<<"${out}"; then
    return 1
  fi
  fp::die "cannot tell whether the Go module proxy serves $1@$2: ${out}"
}

# hold PATH WHY marks PATH's require line in go.mod as held.
hold() {
  local path=$1 why=$2
  sed -i -E "s|^(\s*)(${path//./\\.}) (v[^ ]+)( //.*)?\$|\1\2 \3 // held: ${why}|" go.mod
}

# unhold PATH removes the held mark from PATH's require line.
unhold() {
  sed -i -E "s|^(\s*)(${1//./\\.}) (v[^ ]+) // held:.*\$|\1\2 \3|" go.mod
}

main() {
  local version=${1:-}
  [[ "${version}" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || fp::die "usage: $0 v1.MINOR.PATCH"
  local staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  cd "${FP_ROOT}"
  local old_version
  old_version=$(fp::upstream_version)

  # The staging modules of the new release are the replace block of its go.mod.
  local gomod
  gomod=$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "${gomod}" ]] || fp::die "k8s.io/kubernetes@${version} is not on the module proxy"
  local -a mods=()
  mapfile -t mods < <(sed -n '/^replace (/,/^)/p' "${gomod}" | awk '/=>/{print $1}')
  ((${#mods[@]} > 0)) || fp::die "k8s.io/kubernetes@${version} replaces no staging modules?"

  declare -A pinned=()
  local path ver
  while read -r path ver; do pinned[${path}]=${ver}; done < <(fp::staging_modules)

  # Modules upstream dropped.
  for path in "${!pinned[@]}"; do
    if ! printf '%s\n' "${mods[@]}" | grep -qxF "${path}"; then
      fp::log "dropping ${path}: k8s.io/kubernetes ${version} no longer has it"
      go mod edit -droprequire "${path}" -dropreplace "${path}"
    fi
  done

  go mod edit -require "k8s.io/kubernetes@${version}"
  local -a held=()
  for path in "${mods[@]}"; do
    if served "${path}" "${staging_version}"; then
      go mod edit -require "${path}@${staging_version}" -replace "${path}=${path}@${staging_version}"
      unhold "${path}"
    elif [[ -n "${pinned[${path}]:-}" ]]; then
      held+=("${path}")
      hold "${path}" "${staging_version} is not served by the Go module proxy (hack/rebase.sh ${version})"
      fp::log "HOLDING ${path} at ${pinned[${path}]}: the Go module proxy refuses ${staging_version}"
    else
      fp::die "${path}@${staging_version} is new in ${version} and not served by the Go module proxy: nothing to hold it at"
    fi
  done

  # go.sum: exactly the modules the assembler downloads, from the proxy.
  : > go.sum
  local -a all=(k8s.io/kubernetes)
  while read -r path ver; do all+=("${path}"); done < <(fp::staging_modules)
  go mod download "${all[@]}"

  if [[ "${version}" != "${old_version}" ]]; then
    echo 1 > FILEPROBE_RELEASE
    fp::log "FILEPROBE_RELEASE reset to 1: the first fork release on ${version} is $(fp::fork_version)"
  fi
  fp::log "go.mod now pins k8s.io/kubernetes ${version} and $((${#mods[@]} - ${#held[@]})) of its ${#mods[@]} staging modules at ${staging_version}${held[*]:+ (held back: ${held[*]})}"
  fp::log "toolchain: upstream's .go-version for ${version} is $(fp::go_version) (GOTOOLCHAIN=$(go env GOTOOLCHAIN) in this shell)"
  FP_KEEP_AM=1 "${FP_ROOT}/hack/assemble.sh"
}

main "$@"
