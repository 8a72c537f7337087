#!/usr/bin/env bash
# make e2e-skew: the version-skew suite (test/e2e_skew) on a real multi-node
# cluster whose kubelets differ (hack/local-up-node.sh, FP_NODE_KUBELETS;
# default: ours with the FileContainerProbe gate on, ours with it off,
# upstream's of the pinned version, built from the assembler's baseline by
# hack/build-upstream.sh when missing). Brings the cluster up, runs the suite,
# and always brings the cluster down again (E2E_KEEP=1 keeps it up). E2E_RUN
# selects tests (go test -run).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly E2E_PKG=./test/e2e_skew
export FP_NODE_KUBELETS=${FP_NODE_KUBELETS:-ours-gate-on ours-gate-off upstream}

main() {
  [[ $(id -u) == 0 ]] || fp::die "must run as root (the local nodes make namespaces, mounts and cgroups)"
  fp::local_cluster_up "${E2E_KEEP:-}"
  fp::timed "e2e skew suite" run_suite
}

run_suite() {
  (cd "${FP_TREE}" && FP_ROOT="${FP_ROOT}" FP_UPSTREAM_VERSION="$(fp::upstream_version)" \
    KUBECONFIG="${FP_OUT}/local/kubeconfig" \
    GOFLAGS=-buildvcs=false go test -count=1 -timeout 20m -v "${E2E_PKG}" ${E2E_RUN:+-run "${E2E_RUN}"})
}

main "$@"
