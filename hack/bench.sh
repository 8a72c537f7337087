#!/usr/bin/env bash
# make bench: what probes cost, in three parts (docs/benchmarks.md):
#
# 0. The prober's machinery at density (test/bench_fileprobe/proberload), in
#    this process, no cluster: the kubelet's real prober manager with N
#    file-probed pods per case (mixes of readiness, liveness and startup
#    probes, periods 1 and 10), the kubelet's CPU per probe and per pod,
#    probes run vs due, lateness p99, heap, stacks and goroutines per pod,
#    against the tight-loop cost of the check itself at the same N. It runs
#    first, before the cluster is up. Results: _output/bench/proberload.{txt,json}
#    and proberload.md (the table of docs/benchmarks.md).
# 1. Per-probe cost of each handler (test/bench_fileprobe), with the kubelet's
#    own probe code against one running pod, on the real node stack: a file probe, a bare lstat of the
#    same file (the floor), an exec probe (CRI ExecSync of `true` through the
#    kubelet's CRI client) and an httpGet probe (busybox httpd in the pod). The
#    benchmark binary runs inside the stack's mount and network namespaces,
#    where the CRI socket and the pod network are. Results: the raw `go test`
#    output and a JSON summary (medians) in _output/bench/probecost.*, a table.
# 2. Node cost at density and readiness latency (test/bench_fileprobe/density):
#    series of N pods per probe variant, CPU and memory of the kubelet,
#    containerd, shims and pods, probe failures, share Ready; then the time
#    from a pod's first heartbeat to Ready, with and without the kubelet's
#    watch, split where the kubelet took the Ready result (its log's
#    "SyncLoop (probe)" lines). A series may run its pods in a RuntimeClass
#    (file/1@shimless: one containerd-shim-shimless-v2 for all of them,
#    docs/shimless.md); at its last step the shared shim is killed with
#    kill -9 and the blast radius measured: its processes that live on,
#    the time until every pod is Ready again, restarts per pod. Then the
#    noisy run: N file-probed pods waiting for their first heartbeat, without
#    and then with one pod rewriting a file of its watched volume root as
#    fast as it can; the kubelet's CPU while they wait (target: below 0.05
#    cores with the noisy pod) and their readiness latency after their
#    heartbeats. Results: _output/bench/density.{json,txt},
#    and density.md (the tables of docs/benchmarks.md).
#
#   BENCH_PARTS            which parts (default "prober probecost density"); the cluster
#                          comes up only for probecost and density
#   BENCH_PROBER_SERIES    the prober part's cases, MIX/PERIOD:N,N,... (default: proberload's)
#   BENCH_PROBER_WINDOW    its window per rep at periodSeconds 1 (period P: P times that, at
#                          most 4 times; default 4s), BENCH_PROBER_REPS its reps (default 3)
#   BENCH_COUNT            runs of each per-probe benchmark (default 5); medians are quoted
#   BENCH_SERIES           density series, variant/periodSeconds[@RuntimeClass][:own steps] (default
#                          below; empty: none). exec/1 starts at 10 pods: it fails at 50 here;
#                          file/1@shimless runs file/1's pods in RuntimeClass shimless
#   BENCH_KILL_SHIM        false: do not kill -9 the shared shim at the last step of each series
#                          with a RuntimeClass (default true)
#   BENCH_STEPS            pods per step of each series (default 50,100,300)
#   BENCH_WINDOW           steady-state window per step (default 60s)
#   BENCH_LATENCY_PODS     pods per variant of the latency run (default 100; 0 skips it)
#   BENCH_LATENCY_VARIANTS variants of the latency run (default "file polled")
#   BENCH_LATENCY_AT_REST  false: start the latency run's heartbeats while its pods are
#                          being created, instead of once they all run (default true)
#   BENCH_NOISY            false: skip the noisy run (default true)
#   BENCH_NOISY_PODS       file-probed pods waiting in each noisy run (default 100)
#   BENCH_NOISY_WINDOW     the noisy runs' window while the pods wait (default 60s)
#   BENCH_KEEP=1           keep the cluster up afterwards (as E2E_KEEP)
#   FP_KUBELET_V           the kubelet's --v (default 2; 3 logs each probe result and status update)
#
# The stack runs with room for the pods (a /22 pod network, maxPods 1100) and
# containerd's CRI stats collection every 10s instead of every 1s (see
# docs/benchmarks.md: at 1s it alone saturated both cores at 200 pods).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

export FP_POD_CIDR=${FP_POD_CIDR:-10.244.0.0/22}
export FP_MAX_PODS=${FP_MAX_PODS:-1100}
export FP_CONTAINERD_STATS_PERIOD=${FP_CONTAINERD_STATS_PERIOD:-10s}
readonly BENCH_PARTS=${BENCH_PARTS:-prober probecost density}
readonly BENCH_SERIES=${BENCH_SERIES-none file/1 file/1@shimless exec/1:10,25,50,100,300 httpGet/1 file/10 polled/10 exec/10 httpGet/10}

readonly BENCH_OUT="${FP_OUT}/bench"
readonly KUBECTL="${FP_OUT}/bin/kubectl"
readonly NS_DIR="${FP_OUT}/local/ns"
readonly HTTP_PORT=8080

kubectl() { "${KUBECTL}" --kubeconfig="${FP_OUT}/local/kubeconfig" "$@"; }

# target_pod starts the pod the benchmarks probe and waits until it runs.
target_pod() {
  kubectl delete pod probe-cost --ignore-not-found --wait=true > /dev/null
  kubectl apply -f - > /dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: probe-cost
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/busybox:fileprobe
    imagePullPolicy: Never
    command: ["/bin/sh", "-c"]
    args:
    - |
      mkdir -p /www && echo ok > /www/healthz
      httpd -p ${HTTP_PORT} -h /www
      while true; do touch /probe-dir/probe; sleep 1; done
    volumeMounts:
    - {name: probe-volume, mountPath: /probe-dir}
  volumes:
  - {name: probe-volume, emptyDir: {}}
YAML
  kubectl wait --for=condition=Ready pod/probe-cost --timeout=60s > /dev/null
}

# pod_field prints a jsonpath of the target pod.
pod_field() { kubectl get pod probe-cost -o "jsonpath=$1"; }

run_benchmarks() {
  mkdir -p "${BENCH_OUT}"
  local bin="${BENCH_OUT}/probecost.test"
  (cd "${FP_TREE}" && GOFLAGS=-buildvcs=false go test -c -o "${bin}" ./test/bench_fileprobe) || return
  local cid
  cid=$(pod_field '{.status.containerStatuses[0].containerID}')
  # Inside the namespaces: the CRI socket is in the stack's private /run, the
  # pod IP on its bridge.
  nsenter --mount="${NS_DIR}/mnt" --net="${NS_DIR}/net" -- env \
    BENCH_PODS_DIR="${FP_OUT}/local/data/kubelet/pods" \
    BENCH_POD_UID="$(pod_field '{.metadata.uid}')" \
    BENCH_CONTAINER_ID="${cid#containerd://}" \
    BENCH_POD_IP="$(pod_field '{.status.podIP}')" \
    BENCH_HTTP_PORT="${HTTP_PORT}" \
    BENCH_CRI_ENDPOINT=/run/containerd/containerd.sock \
    "${bin}" -test.run '^$' -test.bench . -test.benchmem -test.count "${BENCH_COUNT:-5}" \
    | tee "${BENCH_OUT}/probecost.txt"
}

# summarize writes the medians of every metric of every benchmark to
# probecost.json and prints them as a table, with ratios to the file probe.
summarize() {
  awk -v date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" -v cores="$(nproc)" \
    -v mem="$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)" '
    function median(key,   n, i, j, t, a) {
      n = split(vals[key], a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    /^Benchmark/ {
      name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
      if (!(name in seen)) { seen[name] = 1; order[++nb] = name }
      for (i = 3; i < NF; i += 2) {
        unit = $(i + 1)
        has[name, unit] = 1
        if (!(unit in useen)) { useen[unit] = 1; units[++nu] = unit }
        vals[name, unit] = vals[name, unit] " " $i
      }
    }
    END {
      json = "{\"date\": \"" date "\", \"cores\": " cores ", \"memory\": \"" mem "\", \"medians\": {"
      printf "%-16s", "benchmark"; for (u = 1; u <= nu; u++) printf " %18s", units[u]; printf "\n"
      for (b = 1; b <= nb; b++) {
        name = order[b]; printf "%-16s", name
        json = json (b > 1 ? ", " : "") "\"" name "\": {"
        sep = ""
        for (u = 1; u <= nu; u++) {
          m = ""
          if ((name, units[u]) in has) m = sprintf("%.10g", median(name SUBSEP units[u]))
          printf " %18s", m
          if (m != "") { json = json sep "\"" units[u] "\": " m; sep = ", " }
        }
        printf "\n"; json = json "}"
      }
      print json "}}" > out
    }' out="${BENCH_OUT}/probecost.json" "${BENCH_OUT}/probecost.txt"
  fp::log "raw results in ${BENCH_OUT}/probecost.txt, medians in ${BENCH_OUT}/probecost.json"
}

# machine_info describes the machine and the versions a result comes from.
machine_info() {
  local kubelet containerd runc
  kubelet=$("${FP_OUT}/bin/kubelet" --version)
  containerd=$("${FP_OUT}/node/bin/containerd" --version | awk '{print $3}')
  runc=$("${FP_OUT}/node/bin/runc" --version | awk 'NR == 1 {print $3}')
  printf '%s cores, %s, kernel %s; %s, containerd %s, runc %s' "$(nproc)" \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)" "$(uname -r)" \
    "${kubelet}" "${containerd}" "${runc}"
}

# run_density runs the density series, the readiness latency run and the
# noisy run, and cleans their namespaces up (the trap brings the stack down
# in any case).
# (Run through fp::timed, i.e. after ||, where errexit does not apply: each
# failure must be returned.)
run_density() {
  mkdir -p "${BENCH_OUT}"
  (cd "${FP_TREE}" && GOFLAGS=-buildvcs=false go build -o "${BENCH_OUT}/density" ./test/bench_fileprobe/density) || return
  "${BENCH_OUT}/density" \
    -kubeconfig "${FP_OUT}/local/kubeconfig" \
    -pods-dir "${FP_OUT}/local/data/kubelet/pods" \
    -pids-dir "${FP_OUT}/local/pids" \
    -kubelet-log "${FP_OUT}/local/logs/kubelet.log" \
    -series "${BENCH_SERIES}" \
    -steps "${BENCH_STEPS:-50,100,300}" \
    -window "${BENCH_WINDOW:-60s}" \
    -latency-pods "${BENCH_LATENCY_PODS:-100}" \
    -latency-variants "${BENCH_LATENCY_VARIANTS:-file polled}" \
    -latency-at-rest="${BENCH_LATENCY_AT_REST:-true}" \
    -noisy="${BENCH_NOISY:-true}" \
    -noisy-pods "${BENCH_NOISY_PODS:-100}" \
    -noisy-window "${BENCH_NOISY_WINDOW:-60s}" \
    -kill-shim="${BENCH_KILL_SHIM:-true}" \
    -info "$(machine_info)" \
    -out "${BENCH_OUT}/density.json" | tee "${BENCH_OUT}/density.txt" || return
  # The tables of docs/benchmarks.md, from the JSON.
  "${BENCH_OUT}/density" -markdown "${BENCH_OUT}/density.json" > "${BENCH_OUT}/density.md" || return
  fp::log "density results in ${BENCH_OUT}/density.{txt,json}, as Markdown tables in ${BENCH_OUT}/density.md"
}

# run_proberload runs the prober part: no cluster, only the assembled tree.
run_proberload() {
  mkdir -p "${BENCH_OUT}"
  "${FP_ROOT}/hack/assemble.sh" > /dev/null || return
  (cd "${FP_TREE}" && GOFLAGS=-buildvcs=false go build -o "${BENCH_OUT}/proberload" ./test/bench_fileprobe/proberload) || return
  local -a args=(-window "${BENCH_PROBER_WINDOW:-4s}" -reps "${BENCH_PROBER_REPS:-3}")
  [[ -n "${BENCH_PROBER_SERIES:-}" ]] && args+=(-series "${BENCH_PROBER_SERIES}")
  "${BENCH_OUT}/proberload" "${args[@]}" \
    -info "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)" \
    -out "${BENCH_OUT}/proberload.json" | tee "${BENCH_OUT}/proberload.txt" || return
  "${BENCH_OUT}/proberload" -markdown "${BENCH_OUT}/proberload.json" > "${BENCH_OUT}/proberload.md" || return
  fp::log "prober results in ${BENCH_OUT}/proberload.{txt,json}, as a Markdown table in ${BENCH_OUT}/proberload.md"
}

main() {
  if [[ " ${BENCH_PARTS} " == *" prober "* ]]; then
    fp::timed "the prober's machinery at density (in-process)" run_proberload
  fi
  [[ " ${BENCH_PARTS} " == *" probecost "* || " ${BENCH_PARTS} " == *" density "* ]] || return 0
  fp::local_cluster_up "${BENCH_KEEP:-}"
  if [[ " ${BENCH_PARTS} " == *" probecost "* ]]; then
    fp::timed "target pod" target_pod
    fp::timed "per-probe cost benchmarks" run_benchmarks
    summarize
    kubectl delete pod probe-cost --wait=true > /dev/null
  fi
  if [[ " ${BENCH_PARTS} " == *" density "* ]]; then
    fp::timed "density and readiness latency" run_density
  fi
}

main "$@"
