#!/usr/bin/env bash
# Smoke tests of the built binaries: fork version, and the FileContainerProbe
# gate accepted (and listed) by every component that has feature gates, while
# an unknown gate is still rejected as upstream does.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

BIN="${FP_OUT}/bin"
want_version=$(fp::fork_version)
fails=0

# check NAME WANT(0|1) PATTERN CMD...: CMD must succeed (0) or fail (1) and print PATTERN.
check() {
  local name=$1 want=$2 pattern=$3; shift 3
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if { [[ "${want}" == 0 && ${rc} -ne 0 ]] || [[ "${want}" == 1 && ${rc} -eq 0 ]]; } ||
    ! grep -qF -- "${pattern}" <<<"${out}"; then
    echo "FAIL: ${name} (exit ${rc}, want $([[ ${want} == 0 ]] && echo success || echo failure) and '${pattern}')"
    tail -n 5 <<<"${out}" | sed 's/^/    /'
    fails=$((fails + 1))
  else
    echo "ok:   ${name}"
  fi
}

check "kubectl client version" 0 "Client Version: ${want_version}" "${BIN}/kubectl" version --client
for c in kubelet kube-apiserver kube-controller-manager kube-scheduler; do
  check "${c} --version" 0 "Kubernetes ${want_version}" "${BIN}/${c}" --version
  check "${c} accepts FileContainerProbe=true" 0 "Kubernetes ${want_version}" \
    "${BIN}/${c}" --feature-gates=FileContainerProbe=true --version
  check "${c} --help lists the gate" 0 "FileContainerProbe=true|false (ALPHA - default=false)" "${BIN}/${c}" --help
done
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  check "${c} rejects an unknown gate" 1 "unrecognized feature gate: NoSuchGate" \
    "${BIN}/${c}" --feature-gates=NoSuchGate=true --version
done

# The kubelet, like upstream's, prints --version before it applies feature
# gates, so check the gates on a real start that then stops at configuration
# validation (eventRecordQPS: -1 is invalid): a known gate gets past the gate
# check, an unknown one does not. Nothing is started on the host either way.
tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT
kubelet_config() {
  printf 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\neventRecordQPS: -1\n%s\n' "$1" > "${tmp}/kubelet.yaml"
}
kubelet_config 'featureGates: {FileContainerProbe: true}'
check "kubelet config file: FileContainerProbe=true passes the gate check" 1 "eventRecordQPS (--event-qps) -1 must not be a negative number" \
  "${BIN}/kubelet" --config="${tmp}/kubelet.yaml"
check "kubelet flag: FileContainerProbe=true passes the gate check" 1 "eventRecordQPS (--event-qps) -1 must not be a negative number" \
  "${BIN}/kubelet" --config="${tmp}/kubelet.yaml" --feature-gates=FileContainerProbe=true
kubelet_config ''
check "kubelet flag: rejects an unknown gate" 1 "unrecognized feature gate: NoSuchGate" \
  "${BIN}/kubelet" --config="${tmp}/kubelet.yaml" --feature-gates=NoSuchGate=true
kubelet_config 'featureGates: {NoSuchGate: true}'
check "kubelet config file: rejects an unknown gate" 1 "unrecognized feature gate: NoSuchGate" \
  "${BIN}/kubelet" --config="${tmp}/kubelet.yaml"

((fails == 0)) || fp::die "${fails} binary check(s) failed"
fp::log "binaries: ${want_version}, FileContainerProbe gate known to every component"
