#!/usr/bin/env bash
# make local-up: the product working, from a fresh clone, in one command.
#
#   1. builds what is missing (fp::local_cluster_up): the tree, each missing
#      binary, etcd; hack/local-up-node.sh installs the node tools (Debian
#      packages, containerd, runc) and builds the images if they are missing;
#   2. brings the single-node cluster up (hack/local-up-node.sh up) and keeps it
#      up (make local-down stops it);
#   3. starts README's example Pod (docs/examples/fileprobe-demo.yaml: a
#      heartbeat loop and file probes), waits until its file probe made it
#      Ready, and prints how to watch it.
#
# make e2e and make bench bring the same cluster up without the example
# (fp::local_cluster_up only), so that it skews neither.
#
# Environment: that of hack/local-up-node.sh (FP_BIN, FILEPROBE_GATE, ...), and
#   FP_DEMO_TIMEOUT   seconds the example Pod may take to become Ready (default 60)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly DEMO_MANIFEST="${FP_ROOT}/docs/examples/fileprobe-demo.yaml"
readonly DEMO_POD=fileprobe-demo
readonly NODE_NAME=fileprobe-node # hack/local-up-node.sh's
readonly KUBECTL="${FP_BIN:-${FP_OUT}/bin}/kubectl"
readonly KUBECONFIG_FILE="${FP_OUT}/local/kubeconfig"
FP_DEMO_TIMEOUT=${FP_DEMO_TIMEOUT:-60}

kubectl() { "${KUBECTL}" --kubeconfig="${KUBECONFIG_FILE}" "$@"; }

main() {
  # Before a build that can take half an hour: the node needs root.
  [[ $(id -u) == 0 ]] || fp::die "must run as root (the local node makes namespaces, mounts and cgroups)"
  fp::local_cluster_up 1
  start_demo
  print_hints
}

# start_demo starts the example Pod and waits until it is Ready, that is until
# its readiness probe, a file probe, succeeded. When it does not, the cluster
# stays up for inspection (as when hack/local-up-node.sh up fails).
start_demo() {
  local start=${SECONDS}
  fp::log "starting the example pod ${DEMO_POD} (${DEMO_MANIFEST#"${FP_ROOT}/"})"
  kubectl apply -f "${DEMO_MANIFEST}" > /dev/null
  if ! kubectl wait --for=condition=Ready "pod/${DEMO_POD}" --timeout="${FP_DEMO_TIMEOUT}s" > /dev/null; then
    kubectl describe pod "${DEMO_POD}" >&2 || true
    fp::die "pod ${DEMO_POD} is not Ready after ${FP_DEMO_TIMEOUT}s (kubectl describe above); the cluster stays up: make local-down"
  fi
  fp::log "ready: pod ${DEMO_POD} in $((SECONDS - start))s (its readiness probe is a file probe)"
  kubectl get pod "${DEMO_POD}" -o wide
}

print_hints() {
  local k=${KUBECTL}
  cat <<EOF

The local node runs the example pod ${DEMO_POD}, Ready through its file probe. Watch it:

  export KUBECONFIG=${KUBECONFIG_FILE}
  ${k} get pod ${DEMO_POD} -w
  ${k} describe pod ${DEMO_POD}
  ${k} get --raw /api/v1/nodes/${NODE_NAME}/proxy/metrics/probes | grep prober_file_probe

describe shows the probes (Readiness: file /probe-volume/probe validity=30s ...) and their events; the
metrics are the kubelet's, read through the apiserver's node proxy. To see the probes fail, stop the
heartbeat: within about 40 s the liveness probe restarts the container (Unhealthy events: "file
/probe-volume/probe last modified 14s ago (validity 10s)"), and the new instance, whose heartbeat runs
again, is Ready once its readiness probe's initial delay (5 s) is over:

  ${k} exec ${DEMO_POD} -- touch /tmp/stop

The daemons' logs: ${FP_OUT}/local/logs/. Stop everything: make local-down.
EOF
}

main "$@"
