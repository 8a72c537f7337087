#!/usr/bin/env bash
# Builds containerd-shim-shimless-v2 (shimless/, a Go module of its own; see
# docs/shimless.md) into _output/bin/, beside the fork's Kubernetes binaries,
# with the Go toolchain upstream's .go-version names (hack/lib/common.sh).
#
#   hack/shimless.sh          build (make shimless, part of make)
#   hack/shimless.sh test     go vet and go test of the module
#
# The module must pin the containerd the local node runs (FP_CONTAINERD_VERSION
# in hack/local-up-node.sh): the shim is containerd's runc shim, and a shim of
# another version than its containerd is not what we test.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

SHIMLESS_DIR="${FP_ROOT}/shimless"
SHIMLESS_BIN="${FP_OUT}/bin/containerd-shim-shimless-v2"

# check_pin fails unless shimless/go.mod requires the node's containerd.
check_pin() {
  local node pinned
  node=$(fp::containerd_version)
  pinned=$(cd "${SHIMLESS_DIR}" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
  [[ -n "${node}" && "${pinned}" == "${node}" ]] ||
    fp::die "shimless/go.mod pins containerd ${pinned}, the local node runs ${node} (hack/local-up-node.sh)"
  echo "${pinned}"
}

build() {
  local containerd version commit
  containerd=$(check_pin)
  version=$(fp::fork_version)
  commit=$(git -C "${FP_ROOT}" rev-parse HEAD 2>/dev/null || echo unknown)
  mkdir -p "${FP_OUT}/bin"
  # Static and reproducible, as containerd's own shim is installed
  # (hack/local-up-node.sh: CGO_ENABLED=0, -trimpath). --version prints
  # containerd's version and ours: v2.4.2+shimless.v1.37.2-fileprobe.1.
  (cd "${SHIMLESS_DIR}" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=${containerd}+shimless.${version/+/-} -X github.com/containerd/containerd/v2/version.Revision=${commit}" \
    -o "${SHIMLESS_BIN}" ./cmd/containerd-shim-shimless-v2)
  fp::log "built ${SHIMLESS_BIN} (containerd ${containerd})"
}

unit() {
  check_pin > /dev/null
  (cd "${SHIMLESS_DIR}" && GOFLAGS=-buildvcs=false go vet ./... && GOFLAGS=-buildvcs=false go test -count=1 ./...)
}

case "${1:-build}" in
  build) build ;;
  test) unit ;;
  *) fp::die "usage: $0 [build|test]" ;;
esac
