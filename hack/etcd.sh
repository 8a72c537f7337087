#!/usr/bin/env bash
# Builds etcd into _output/bin/etcd from the Go module proxy, at the version
# the assembled tree pins (go.etcd.io/etcd/server/v3 in its go.mod, checked by
# its go.sum; upstream's hack/lib/etcd.sh downloads the same version from
# GitHub, which these machines cannot reach). Used by the integration tests
# and the local node stack.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  [[ -d "${FP_TREE}/.git" ]] || "${FP_ROOT}/hack/assemble.sh" >/dev/null
  local version
  version=$(fp::tree_dep_version "${FP_TREE}" go.etcd.io/etcd/server/v3)
  [[ -n "${version}" ]] || fp::die "the tree does not pin go.etcd.io/etcd/server/v3"
  local bin="${FP_OUT}/bin/etcd"
  # No pipes into grep -q or head here: with pipefail, the SIGPIPE they can
  # cause in etcd would fail the script (exit 141).
  local out
  if [[ -x "${bin}" ]] && out=$("${bin}" --version 2>/dev/null) && [[ $'\n'"${out}"$'\n' == *$'\n'"etcd Version: ${version#v}"$'\n'* ]]; then
    fp::log "etcd ${version} already built"
    return
  fi
  fp::log "building etcd ${version}"
  mkdir -p "${FP_OUT}/bin"
  (cd "${FP_TREE}" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -o "${bin}" go.etcd.io/etcd/server/v3)
  out=$("${bin}" --version)
  echo "${out%%$'\n'*}"
}

main "$@"
