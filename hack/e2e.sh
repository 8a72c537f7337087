#!/usr/bin/env bash
# make e2e: the end-to-end suite for file probes (test/e2e_fileprobe) on a real
# single-node cluster from our binaries (hack/local-up-node.sh): etcd, our
# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet,
# containerd and runc, locally built images. Brings the cluster up, runs the
# suite, and always brings the cluster down again (E2E_KEEP=1 keeps it up, to
# look around after a failure). E2E_RUN selects tests (go test -run);
# E2E_RELEASE_IMAGES=1 also runs the images of _output/release (make release)
# on the node first. E2E_PARALLEL (default 8) is how many of the suite's
# parallel cases run at once: they mostly wait on the node, and go test's
# default (GOMAXPROCS, 2 on CI's machine) would run them nearly one by one.
#
# Needs the binaries from `make`; builds them if they are missing.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly E2E_PKG=./test/e2e_fileprobe

main() {
  fp::local_cluster_up "${E2E_KEEP:-}"
  # make test sets E2E_RELEASE_IMAGES=1: the release's images are tested on
  # this node while it is up (hack/test/release_test.sh images).
  if [[ "${E2E_RELEASE_IMAGES:-}" == 1 ]]; then
    fp::timed "release images on the local node" "${FP_ROOT}/hack/test/release_test.sh" images
  fi
  fp::timed "e2e suite" run_suite
}

run_suite() {
  (cd "${FP_TREE}" && FP_ROOT="${FP_ROOT}" FP_BIN="${FP_OUT}/bin" KUBECONFIG="${FP_OUT}/local/kubeconfig" \
    GOFLAGS=-buildvcs=false go test -count=1 -timeout 30m -parallel "${E2E_PARALLEL:-8}" -v "${E2E_PKG}" ${E2E_RUN:+-run "${E2E_RUN}"})
}

main "$@"
