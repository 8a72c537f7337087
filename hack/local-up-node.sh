#!/usr/bin/env bash
# Brings up a real single-node cluster from the fork's binaries, and tears it
# down again, leaving the host as it was (see docs/local-node.md).
#
#   hack/local-up-node.sh up       (re)start the stack: etcd, kube-apiserver,
#                                  kube-controller-manager, kube-scheduler,
#                                  containerd and the kubelet
#   hack/local-up-node.sh down     stop everything it started, remove its state
#   hack/local-up-node.sh status   what runs, and the node
#   hack/local-up-node.sh restart COMPONENT [NODE]
#                                  restart one component of the running stack
#                                  (kubelet, containerd, kube-apiserver,
#                                  kube-controller-manager, kube-scheduler)
#                                  with the current environment, e.g.
#                                  FILEPROBE_GATE=false ... restart kubelet,
#                                  FP_UPSTREAM_COMPONENTS=kube-scheduler ...
#                                  restart kube-scheduler (upstream's);
#                                  containerd's shims and containers keep
#                                  running through its restart. NODE (kubelet,
#                                  containerd) names another node of a
#                                  multi-node stack, e.g. fileprobe-node-2;
#                                  FP_NODE_KUBELET (ours, ours-gate-on,
#                                  ours-gate-off, upstream; default ours, with
#                                  FILEPROBE_GATE) says which kubelet it runs.
#                                  kube-apiserver restarts the controller
#                                  manager and the scheduler after it, as
#                                  they ran (restart_apiserver_clients).
#   hack/local-up-node.sh ctr ARGS...
#                                  containerd's ctr on the running stack's
#                                  containerd, namespace k8s.io (the kubelet's),
#                                  e.g. ctr images ls
#
# Environment:
#   FP_BIN                    the Kubernetes binaries and etcd (default _output/bin)
#   FILEPROBE_GATE            FileContainerProbe on the kubelet (default true)
#   APISERVER_FILEPROBE_GATE  FileContainerProbe on kube-apiserver (default true)
#   FP_APISERVER_PORT         apiserver port, also forwarded to the host's 127.0.0.1 (default 6443)
#   FP_UP_TIMEOUT             seconds each component may take to become ready (default 60)
#   FP_POD_CIDR               the pod network, the bridge CNI's host-local range (default 10.244.0.0/24)
#   FP_MAX_PODS               the kubelet's maxPods (default 110, as upstream); make bench raises both
#   FP_CONTAINERD_STATS_PERIOD  how often containerd's CRI plugin polls every shim for CPU stats
#                             (stats_collect_period; default 1s, containerd's own; make bench sets 10s)
#   FP_SHIMLESS_BIN           containerd-shim-shimless-v2, the runtime handler and RuntimeClass
#                             shimless (default _output/bin/, built by hack/shimless.sh when missing)
#   FP_CONTAINERD_NOFILE      containerd's soft RLIMIT_NOFILE (default 1024; the hard limit stays
#                             ours): what systemd gives containerd 2.x, whose unit sets no
#                             LimitNOFILE (1024 soft, 524288 hard), so that what the shims
#                             hand down to containers can be seen against it
#   FP_KUBELET_V              the kubelet's log verbosity, --v (default 2; 3 adds each probe result
#                             and each pod status update, 4 each file probe and watch)
#
# Several nodes, and upstream binaries beside ours (docs/local-node.md, "Several nodes"):
#   FP_NODES                  how many nodes (default 1, or as many as FP_NODE_KUBELETS names).
#                             Node 1, fileprobe-node, is the single node's: in the control plane's
#                             namespaces. Node N >= 2, fileprobe-node-N, has namespaces, a
#                             containerd, a root dir, a cgroup root (fileprobe-local-N) and state
#                             (_output/local/nodes/fileprobe-node-N/) of its own, node IP
#                             10.245.0.N and pods in 10.246.N.0/24, and a veth to the control
#                             plane's network namespace, which routes between the nodes
#   FP_NODE_KUBELETS          the kubelet of each node, in order, one word each: ours (our kubelet,
#                             FileContainerProbe as FILEPROBE_GATE says), ours-gate-on,
#                             ours-gate-off, upstream (FP_UPSTREAM_BIN/kubelet; no feature gate
#                             set). Default: ours on every node
#   FP_UPSTREAM_COMPONENTS    control-plane components to run from FP_UPSTREAM_BIN instead of
#                             FP_BIN, without the FileContainerProbe gate: any of kube-apiserver,
#                             kube-controller-manager, kube-scheduler (default none)
#   FP_UPSTREAM_BIN           upstream's binaries of the pinned version (default _output/upstream/bin,
#                             built by hack/build-upstream.sh)
#
# Every daemon runs in one private mount namespace and one private network
# namespace, both persisted as bind mounts under _output/local/ns/. Inside
# them: /run is a tmpfs, /var/lib and /var/log are overlays whose writes land
# under _output/local/, and the sysctls the kubelet insists on are plain files.
# The host keeps its mounts, sysctls, iptables, /run, /var and network.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# --- Pinned versions of what the stack installs (the one place) -------------
FP_CONTAINERD_VERSION=v2.4.2   # github.com/containerd/containerd/v2, go install -tags no_btrfs
FP_RUNC_VERSION=v1.5.2         # github.com/opencontainers/runc, go install -tags seccomp
# Debian packages: CNI plugins, the images' busybox, runc's libseccomp, the
# host-side apiserver forwarder, and iptables for the portmap plugin.
FP_NODE_DEBS=(containernetworking-plugins busybox-static libseccomp-dev socat iptables)
FP_BUSYBOX_IMAGE=localhost/busybox:fileprobe
FP_PAUSE_IMAGE=localhost/pause:fileprobe

# --- Settings ----------------------------------------------------------------
FP_BIN=${FP_BIN:-${FP_OUT}/bin}
FILEPROBE_GATE=${FILEPROBE_GATE:-true}
APISERVER_FILEPROBE_GATE=${APISERVER_FILEPROBE_GATE:-true}
FP_APISERVER_PORT=${FP_APISERVER_PORT:-6443}
FP_UP_TIMEOUT=${FP_UP_TIMEOUT:-60}
FP_POD_CIDR=${FP_POD_CIDR:-10.244.0.0/24}
FP_MAX_PODS=${FP_MAX_PODS:-110}
FP_CONTAINERD_STATS_PERIOD=${FP_CONTAINERD_STATS_PERIOD:-1s}
FP_KUBELET_V=${FP_KUBELET_V:-2}
FP_CONTAINERD_NOFILE=${FP_CONTAINERD_NOFILE:-1024}
FP_SHIMLESS_BIN=${FP_SHIMLESS_BIN:-${FP_OUT}/bin/containerd-shim-shimless-v2}
FP_UPSTREAM_BIN=${FP_UPSTREAM_BIN:-${FP_OUT}/upstream/bin}
FP_UPSTREAM_COMPONENTS=${FP_UPSTREAM_COMPONENTS:-}
FP_NODE_KUBELETS=${FP_NODE_KUBELETS:-}
FP_NODES=${FP_NODES:-}

NODE_NAME=fileprobe-node
NODE_IP=10.245.0.1         # on lo of the private netns (the kubelet refuses 127.0.0.1)
SERVICE_CIDR=10.0.0.0/24
CGROUP_ROOT=fileprobe-local  # the kubelet's --cgroup-root, created in each hierarchy and removed by down
# The kernel tunables the kubelet sets (pkg/kubelet/cm setupKernelTunables):
# inside the mount namespace they are plain files holding the host's values.
KUBELET_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

NODE_TOOLS="${FP_OUT}/node"          # cached installs: bin/ and images/, kept by down
NODE_BIN="${NODE_TOOLS}/bin"
STATE="${FP_OUT}/local"              # one running stack; down keeps only logs/
NS_DIR="${STATE}/ns"
MNT_NS="${NS_DIR}/mnt"
NET_NS="${NS_DIR}/net"
PKI="${STATE}/pki"
CONF="${STATE}/etc"
DATA="${STATE}/data"
LOGS="${STATE}/logs"
PIDS="${STATE}/pids"
ADMIN_KUBECONFIG="${STATE}/kubeconfig"
CONTAINERD_SOCK=/run/containerd/containerd.sock   # inside the mount namespace (/run is private)
# In start order.
DAEMONS=(etcd kube-apiserver apiserver-forward kube-controller-manager kube-scheduler containerd kubelet)

# The node whose settings the functions below use: node 1 (the settings
# above) unless node_env switched to another one (in a subshell).
NODE_INDEX=1
NODE_SUFFIX=""                  # of its daemons' names (containerd, kubelet), certificates and pids
KUBELET_KIND=ours               # ours, ours-gate-on, ours-gate-off or upstream
NODES_DIR="${STATE}/nodes"      # nodes 2..N
CP_NET_NS="${NET_NS}"           # the control plane's network namespace (node 1's)
CP_NODE_IP="${NODE_IP}"
# With several nodes, the pods' default route (through their node's cni0)
# takes them to the other nodes' pods; one node needs none.
POD_ROUTES=""

# --- Helpers -----------------------------------------------------------------

# in_ns CMD... runs CMD inside the stack's mount and network namespaces.
in_ns() { nsenter --mount="${MNT_NS}" --net="${NET_NS}" -- "$@"; }

ns_mounted() { grep -qF " $1 " /proc/self/mountinfo; }

kubectl_admin() { "${FP_BIN}/kubectl" --kubeconfig="${ADMIN_KUBECONFIG}" "$@"; }

ctr_k8s() { in_ns "${NODE_BIN}/ctr" --address "${CONTAINERD_SOCK}" --namespace k8s.io "$@"; }

# ns_inode FILE prints the inode of the namespace FILE refers to (empty if none).
ns_inode() { stat -L -c %i "$1" 2>/dev/null || true; }

check_bool() {
  [[ "$2" == true || "$2" == false ]] || fp::die "$1 must be true or false, not '$2'"
}

# --- Nodes and binaries ------------------------------------------------------------

# node_count prints how many nodes the stack has: FP_NODES, or as many as
# FP_NODE_KUBELETS names, or 1.
node_count() {
  local -a kinds
  read -r -a kinds <<< "${FP_NODE_KUBELETS}"
  if [[ -n "${FP_NODES}" ]]; then
    if ! [[ "${FP_NODES}" =~ ^[1-9][0-9]*$ ]] || ((FP_NODES > 200)); then
      fp::die "FP_NODES must be 1..200, not '${FP_NODES}'"
    fi
    ((${#kinds[@]} == 0 || ${#kinds[@]} == FP_NODES)) ||
      fp::die "FP_NODE_KUBELETS names ${#kinds[@]} kubelets, FP_NODES says ${FP_NODES} nodes"
    echo "${FP_NODES}"
  elif ((${#kinds[@]} > 0)); then
    echo "${#kinds[@]}"
  else
    echo 1
  fi
}

# node_kind I prints which kubelet node I runs (FP_NODE_KUBELETS; default ours).
node_kind() {
  local -a kinds
  read -r -a kinds <<< "${FP_NODE_KUBELETS}"
  echo "${kinds[$(($1 - 1))]:-ours}"
}

# set_kubelet_kind KIND makes the current node's kubelet KIND: sets
# KUBELET_KIND and, for our kubelet, FILEPROBE_GATE.
set_kubelet_kind() {
  case "$1" in
    ours) check_bool FILEPROBE_GATE "${FILEPROBE_GATE}" ;;
    ours-gate-on) FILEPROBE_GATE=true ;;
    ours-gate-off) FILEPROBE_GATE=false ;;
    upstream) ;;
    *) fp::die "a node's kubelet is ours, ours-gate-on, ours-gate-off or upstream, not '$1'" ;;
  esac
  KUBELET_KIND=$1
}

# kubelet_desc prints the current node's kubelet, for the logs.
kubelet_desc() {
  if [[ "${KUBELET_KIND}" == upstream ]]; then echo "upstream kubelet"; else echo "our kubelet, FileContainerProbe=${FILEPROBE_GATE}"; fi
}

kubelet_bin() {
  if [[ "${KUBELET_KIND}" == upstream ]]; then echo "${FP_UPSTREAM_BIN}/kubelet"; else echo "${FP_BIN}/kubelet"; fi
}

# is_upstream COMPONENT: FP_UPSTREAM_COMPONENTS names COMPONENT.
is_upstream() { [[ " ${FP_UPSTREAM_COMPONENTS} " == *" $1 "* ]]; }

# component_bin COMPONENT prints the control-plane binary to run: upstream's or ours.
component_bin() {
  if is_upstream "$1"; then echo "${FP_UPSTREAM_BIN}/$1"; else echo "${FP_BIN}/$1"; fi
}

check_upstream_components() {
  local c
  for c in ${FP_UPSTREAM_COMPONENTS}; do
    case "${c}" in
      kube-apiserver | kube-controller-manager | kube-scheduler) ;;
      *) fp::die "FP_UPSTREAM_COMPONENTS: '${c}' is none of kube-apiserver, kube-controller-manager, kube-scheduler" ;;
    esac
  done
}

# node_env I switches the node settings to node I >= 2 (call it in a subshell).
node_env() {
  NODE_INDEX=$1
  NODE_NAME="fileprobe-node-$1"
  NODE_SUFFIX="-node-$1"
  NODE_IP="10.245.0.$1"
  FP_POD_CIDR="10.246.$1.0/24"
  CGROUP_ROOT="fileprobe-local-$1"
  local dir="${NODES_DIR}/${NODE_NAME}"
  NS_DIR="${dir}/ns"
  MNT_NS="${NS_DIR}/mnt"
  NET_NS="${NS_DIR}/net"
  CONF="${dir}/etc"
  DATA="${dir}/data"
}

# extra_nodes prints the index of every node >= 2 that has state or a cgroup
# root (those of a previous up, whatever FP_NODES says now).
extra_nodes() {
  local d
  {
    for d in "${NODES_DIR}"/fileprobe-node-*; do
      [[ -d "${d}" ]] && echo "${d##*-}"
    done
    for d in /sys/fs/cgroup/*/fileprobe-local-*; do
      [[ -d "${d}" ]] && echo "${d##*-}"
    done
  } | grep -E '^[0-9]+$' | sort -nu || true
}

# --- Install (cached under _output/node/) ------------------------------------

install_debs() {
  local -a missing=()
  local p
  for p in "${FP_NODE_DEBS[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return
  fp::log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# go_module_version BINARY prints the version of the main module BINARY was built from.
go_module_version() {
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" {print $3; exit}'
}

# go_install VERSION TAGS CGO PACKAGE... installs PACKAGE@VERSION into _output/node/bin
# unless the first one is already there at VERSION.
go_install() {
  local version=$1 tags=$2 cgo=$3; shift 3
  local first; first=$(basename "$1")
  [[ "$(go_module_version "${NODE_BIN}/${first}")" == "${version}" ]] && return
  fp::log "go install ${*/%/@${version}} (tags ${tags})"
  mkdir -p "${NODE_BIN}"
  GOBIN="${NODE_BIN}" CGO_ENABLED="${cgo}" GOFLAGS=-buildvcs=false \
    go install -trimpath -tags "${tags}" "${@/%/@${version}}"
}

install_runtime() {
  local m=github.com/containerd/containerd/v2/cmd
  go_install "${FP_CONTAINERD_VERSION}" no_btrfs 0 "$m/containerd" "$m/containerd-shim-runc-v2" "$m/ctr"
  go_install "${FP_RUNC_VERSION}" seccomp 1 github.com/opencontainers/runc
  if [[ ! -x "${FP_SHIMLESS_BIN}" && "${FP_SHIMLESS_BIN}" == "${FP_OUT}/bin/containerd-shim-shimless-v2" ]]; then
    "${FP_ROOT}/hack/shimless.sh"
  fi
  [[ -x "${FP_SHIMLESS_BIN}" ]] || fp::die "${FP_SHIMLESS_BIN} is missing (hack/shimless.sh builds it)"
}

# oci_image ROOTFS_TAR NAME CMD_JSON OUT writes an OCI image layout tarball of
# one layer, named NAME (io.containerd.image.name), for `ctr images import`.
oci_image() {
  local layer_tar=$1 name=$2 cmd=$3 out=$4
  local dir; dir=$(mktemp -d)
  local arch; arch=$(dpkg --print-architecture)
  mkdir -p "${dir}/blobs/sha256"
  local diff_id layer layer_size config config_size manifest manifest_size
  diff_id=$(sha256sum < "${layer_tar}" | cut -d' ' -f1)
  gzip -n -9 < "${layer_tar}" > "${dir}/layer"
  layer=$(blob "${dir}" "${dir}/layer")
  layer_size=$(stat -c %s "${dir}/blobs/sha256/${layer}")
  printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "${arch}" "${cmd}" "${diff_id}" > "${dir}/config"
  config=$(blob "${dir}" "${dir}/config")
  config_size=$(stat -c %s "${dir}/blobs/sha256/${config}")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
    "${config}" "${config_size}" "${layer}" "${layer_size}" > "${dir}/manifest"
  manifest=$(blob "${dir}" "${dir}/manifest")
  manifest_size=$(stat -c %s "${dir}/blobs/sha256/${manifest}")
  printf '{"imageLayoutVersion":"1.0.0"}' > "${dir}/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "${manifest}" "${manifest_size}" "${arch}" "${name}" "${name##*:}" > "${dir}/index.json"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "${dir}" -cf "${out}" oci-layout index.json blobs
  rm -rf "${dir}"
}

# blob DIR FILE moves FILE into DIR's content store and prints its digest.
blob() {
  local digest; digest=$(sha256sum < "$2" | cut -d' ' -f1)
  mv "$2" "$1/blobs/sha256/${digest}"
  echo "${digest}"
}

# busybox_rootfs TAR writes a root filesystem of Debian's busybox-static (with
# its applet links) as a reproducible tarball.
busybox_rootfs() {
  local root; root=$(mktemp -d)
  mkdir -p "${root}"/{bin,etc,tmp,proc,sys,dev,root,var/run}
  cp /bin/busybox "${root}/bin/busybox"
  local applet
  for applet in $("${root}/bin/busybox" --list); do
    [[ "${applet}" == busybox ]] || ln -sf busybox "${root}/bin/${applet}"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "${root}/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "${root}/etc/group"
  chmod 1777 "${root}/tmp"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "${root}" -cf "$1" .
  rm -rf "${root}"
}

build_images() {
  local dir="${NODE_TOOLS}/images" stamp
  stamp="busybox-static $(dpkg-query -W -f='${Version}' busybox-static)"
  [[ -f "${dir}/busybox.oci.tar" && -f "${dir}/pause.oci.tar" && "$(cat "${dir}/stamp" 2>/dev/null)" == "${stamp}" ]] && return
  fp::log "building ${FP_BUSYBOX_IMAGE} and ${FP_PAUSE_IMAGE} from ${stamp}"
  mkdir -p "${dir}"
  busybox_rootfs "${dir}/rootfs.tar"
  oci_image "${dir}/rootfs.tar" "${FP_BUSYBOX_IMAGE}" '["/bin/sh"]' "${dir}/busybox.oci.tar"
  # The sandbox's process: sleeps until told to stop.
  oci_image "${dir}/rootfs.tar" "${FP_PAUSE_IMAGE}" \
    '["/bin/sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait $!; done"]' "${dir}/pause.oci.tar"
  rm -f "${dir}/rootfs.tar"
  echo "${stamp}" > "${dir}/stamp"
}

install_all() {
  install_debs
  install_runtime
  build_images
  local b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
    [[ -x "${FP_BIN}/${b}" ]] || fp::die "${FP_BIN}/${b} is missing (make local-up builds what is missing), or set FP_BIN"
  done
  local -a upstream
  read -r -a upstream <<< "${FP_UPSTREAM_COMPONENTS}"
  local i
  for ((i = 1; i <= $(node_count); i++)); do
    if [[ "$(node_kind "${i}")" == upstream ]]; then upstream+=(kubelet); break; fi
  done
  for b in "${upstream[@]}"; do
    [[ -x "${FP_UPSTREAM_BIN}/${b}" ]] ||
      fp::die "${FP_UPSTREAM_BIN}/${b} is missing (hack/build-upstream.sh builds it), or set FP_UPSTREAM_BIN"
  done
}

# --- PKI and configuration -----------------------------------------------------

# cert NAME SUBJECT EXT_KEY_USAGE [SUBJECT_ALT_NAMES] issues pki/NAME.{crt,key} from the CA.
cert() {
  local name=$1 subject=$2 eku=$3 sans=${4:-}
  openssl req -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "${subject}" \
    -keyout "${PKI}/${name}.key" -out "${PKI}/${name}.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=${eku}"
    [[ -z "${sans}" ]] || echo "subjectAltName=${sans}"
  } > "${PKI}/${name}.ext"
  openssl x509 -req -in "${PKI}/${name}.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" -CAcreateserial \
    -days 365 -extfile "${PKI}/${name}.ext" -out "${PKI}/${name}.crt" 2>/dev/null
  rm -f "${PKI}/${name}.csr" "${PKI}/${name}.ext"
}

make_pki() {
  mkdir -p "${PKI}"
  openssl req -x509 -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 3650 \
    -subj "/CN=fileprobe-local-ca" -keyout "${PKI}/ca.key" -out "${PKI}/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:${NODE_IP},IP:${SERVICE_CIDR%.*}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  cert admin "/O=system:masters/CN=fileprobe-admin" clientAuth
  cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert scheduler "/CN=system:kube-scheduler" clientAuth
  node_certs
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "${PKI}/sa.key" 2>/dev/null
  openssl pkey -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null
  chmod 0600 "${PKI}"/*.key
}

# node_certs issues the current node's kubelet client and serving certificates.
node_certs() {
  cert "kubelet-client${NODE_SUFFIX}" "/O=system:nodes/CN=system:node:${NODE_NAME}" clientAuth
  cert "kubelet-serving${NODE_SUFFIX}" "/CN=${NODE_NAME}" serverAuth "IP:${NODE_IP},IP:127.0.0.1,DNS:${NODE_NAME},DNS:localhost"
}

# kubeconfig FILE CERT_NAME [SERVER] writes a self-contained kubeconfig for
# pki/CERT_NAME (default server: the apiserver at 127.0.0.1, in the control
# plane's network namespace and, through the forwarder, on the host).
kubeconfig() {
  local file=$1 name=$2 server=${3:-https://127.0.0.1:${FP_APISERVER_PORT}}
  cat > "${file}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fileprobe-local
  cluster:
    server: ${server}
    certificate-authority-data: $(base64 -w0 < "${PKI}/ca.crt")
users:
- name: ${name}
  user:
    client-certificate-data: $(base64 -w0 < "${PKI}/${name}.crt")
    client-key-data: $(base64 -w0 < "${PKI}/${name}.key")
contexts:
- name: fileprobe-local
  context: {cluster: fileprobe-local, user: ${name}, namespace: default}
current-context: fileprobe-local
EOF
  chmod 0600 "${file}"
}

write_containerd_config() {
  mkdir -p "${CONF}/cni" "${DATA}/containerd" "${DATA}/cni-ipam"
  cat > "${CONF}/containerd.toml" <<EOF
version = 3
root = "${DATA}/containerd"
state = "/run/containerd"
[grpc]
  address = "${CONTAINERD_SOCK}"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "${FP_PAUSE_IMAGE}"
[plugins.'io.containerd.cri.v1.runtime']
  # root here lacks CAP_SYS_RESOURCE: never ask runc for a lower oom_score_adj than containerd's.
  restrict_oom_score_adj = true
  cdi_spec_dirs = []
  # One Task.Metrics call to every shim per period, for every container and sandbox.
  stats_collect_period = "${FP_CONTAINERD_STATS_PERIOD}"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    runtime_path = "${NODE_BIN}/containerd-shim-runc-v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "${NODE_BIN}/runc"
      SystemdCgroup = false
  # RuntimeClass shimless (docs/shimless.md): the same runc shim and options,
  # one shim process for all pods of the handler instead of one per pod.
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.shimless]
    runtime_type = "io.containerd.runc.v2"
    runtime_path = "${FP_SHIMLESS_BIN}"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.shimless.options]
      BinaryName = "${NODE_BIN}/runc"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "${CONF}/cni"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
  cat > "${CONF}/cni/10-fileprobe.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "fileprobe",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "${FP_POD_CIDR}"}]]${POD_ROUTES}, "dataDir": "${DATA}/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
  # An upstream kubelet does not know the gate, and would refuse to start.
  local gates=""
  [[ "${KUBELET_KIND}" == upstream ]] || gates=$'featureGates:\n  FileContainerProbe: '"${FILEPROBE_GATE}"$'\n'
  cat > "${CONF}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
${gates}containerRuntimeEndpoint: unix://${CONTAINERD_SOCK}
maxPods: ${FP_MAX_PODS}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${PKI}/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: ${PKI}/kubelet-serving${NODE_SUFFIX}.crt
tlsPrivateKeyFile: ${PKI}/kubelet-serving${NODE_SUFFIX}.key
# cgroup v1, no systemd; a cgroup root of our own, removed by down.
cgroupDriver: cgroupfs
cgroupRoot: /${CGROUP_ROOT}
failCgroupV1: false
# Negative oom_score_adj needs CAP_SYS_RESOURCE, which root lacks here.
oomScoreAdj: 0
resolvConf: /etc/resolv.conf
# The images cannot be pulled again: never garbage-collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%"
  imagefs.available: "1%"
EOF
}

write_config() {
  mkdir -p "${CONF}" "${DATA}" "${LOGS}" "${PIDS}"
  make_pki
  kubeconfig "${ADMIN_KUBECONFIG}" admin
  kubeconfig "${CONF}/controller-manager.kubeconfig" controller-manager
  kubeconfig "${CONF}/scheduler.kubeconfig" scheduler
  kubeconfig "${CONF}/kubelet.kubeconfig" kubelet-client
  write_containerd_config
  write_kubelet_config
}

# write_node_config writes the configuration of the current node >= 2: its
# certificates, its kubelet's kubeconfig (the apiserver at the control plane's
# node IP, through the node's veth), containerd's and the kubelet's.
write_node_config() {
  mkdir -p "${CONF}" "${DATA}"
  node_certs
  kubeconfig "${CONF}/kubelet.kubeconfig" "kubelet-client${NODE_SUFFIX}" "https://${CP_NODE_IP}:${FP_APISERVER_PORT}"
  write_containerd_config
  write_kubelet_config
}

# --- Namespaces ------------------------------------------------------------------

# make_namespaces creates the network namespace (lo up, the node IP on lo), then
# the mount namespace, which sees the netns file because it copies the host's
# mounts. Inside it: a private /run, overlays over /var/lib and /var/log (the
# CNI cache, /var/log/pods and /var/log/containers), the kubelet's sysctls as files.
make_namespaces() {
  mkdir -p "${NS_DIR}"
  touch "${NET_NS}" "${MNT_NS}"
  unshare --net="${NET_NS}" true
  nsenter --net="${NET_NS}" ip link set lo up
  nsenter --net="${NET_NS}" ip addr add "${NODE_IP}/32" dev lo
  unshare --mount="${MNT_NS}" --propagation slave true
  # mount -n: libmount would otherwise create /run/mount on the host's /run.
  local m="nsenter --mount=${MNT_NS} --"
  $m mount -n -t tmpfs -o mode=0755 fileprobe-run /run
  local d
  for d in /var/lib /var/log; do
    local o="${DATA}/overlay${d//\//-}"
    mkdir -p "${o}/upper" "${o}/work"
    $m mount -n -t overlay -o "lowerdir=${d},upperdir=${o}/upper,workdir=${o}/work" fileprobe-overlay "${d}"
  done
  mkdir -p "${DATA}/sysctl"
  local s f
  for s in "${KUBELET_SYSCTLS[@]}"; do
    f="${DATA}/sysctl/${s//\//.}"
    cat "/proc/sys/${s}" > "${f}"
    $m mount -n --bind "${f}" "/proc/sys/${s}"
  done
}

# connect_node links the current node >= 2 to the control plane's network
# namespace with a veth pair (fpnN there, eth0 in the node's), and routes: the
# node's IP and its pod network through fpnN there; everything from the node
# through the control plane's namespace, which forwards between the nodes
# (and to node 1's pods on its cni0). No address on either end: each side
# speaks from its node IP (on lo), with routes to the other's.
connect_node() {
  local link="fpn${NODE_INDEX}"
  local -a cp=(nsenter --net="${CP_NET_NS}") node=(nsenter --net="${NET_NS}")
  "${cp[@]}" ip link add "${link}" type veth peer name eth0 netns "${NET_NS}"
  "${cp[@]}" ip link set "${link}" up
  "${cp[@]}" ip route add "${NODE_IP}/32" dev "${link}" src "${CP_NODE_IP}"
  "${cp[@]}" ip route add "${FP_POD_CIDR}" via "${NODE_IP}" dev "${link}"
  "${cp[@]}" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  "${node[@]}" ip link set eth0 up
  "${node[@]}" ip route add "${CP_NODE_IP}/32" dev eth0 src "${NODE_IP}"
  "${node[@]}" ip route add default via "${CP_NODE_IP}" dev eth0 src "${NODE_IP}"
  "${node[@]}" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
}

# make_cgroup_root creates the kubelet's cgroup root in every hierarchy (the
# kubelet requires it to exist); cpuset needs its cpus and mems set.
make_cgroup_root() {
  local h
  for h in $(cgroup_hierarchies); do
    mkdir -p "${h}/${CGROUP_ROOT}"
  done
  local cpuset=/sys/fs/cgroup/cpuset
  if [[ -d "${cpuset}/${CGROUP_ROOT}" ]]; then
    cat "${cpuset}/cpuset.cpus" > "${cpuset}/${CGROUP_ROOT}/cpuset.cpus"
    cat "${cpuset}/cpuset.mems" > "${cpuset}/${CGROUP_ROOT}/cpuset.mems"
  fi
}

# cgroup_hierarchies prints the mount points of the host's cgroup hierarchies
# (v1, and the hybrid layout's v2 one, where runc creates cgroups too).
cgroup_hierarchies() {
  awk '{for (i = 7; $i != "-"; i++); if ($(i + 1) ~ /^cgroup2?$/) print $5}' /proc/self/mountinfo
}

# --- Daemons ---------------------------------------------------------------------

# start NAME CMD... starts CMD in the namespaces, in a session of its own, with
# its output in logs/NAME.log; pids/NAME holds its pid and executable.
start() {
  local name=$1; shift
  fp::log "starting ${name}"
  setsid nsenter --mount="${MNT_NS}" --net="${NET_NS}" -- "$@" > "${LOGS}/${name}.log" 2>&1 < /dev/null &
  printf '%s %s\n' "$!" "$1" > "${PIDS}/${name}"
}

# pid_of NAME prints NAME's pid if that process is still the one we started
# (its executable may have been replaced by a rebuild since: "... (deleted)"),
# or is still on its way to it: start's background subshell (bash) execs
# setsid, which execs nsenter, which execs the daemon, all in the same
# process, which on a loaded machine can take longer than the first
# readiness check.
pid_of() {
  local pid exe running
  read -r pid exe 2>/dev/null < "${PIDS}/$1" || return 0
  running=$(readlink "/proc/${pid}/exe" 2>/dev/null) || return 0
  running=${running% (deleted)}
  [[ "${running}" == "$(readlink -f "${exe}")" || "${running##*/}" =~ ^(bash|setsid|nsenter)$ ]] &&
    echo "${pid}"
  return 0
}

# wait_ready NAME WHAT CHECK... waits until CHECK succeeds; fails fast with
# the tail of NAME's log if NAME exits or is not ready within FP_UP_TIMEOUT.
wait_ready() {
  local name=$1 what=$2; shift 2
  local start=${SECONDS}
  until "$@" > /dev/null 2>&1; do
    [[ -n "$(pid_of "${name}")" ]] || fail "${name}" "exited"
    ((SECONDS - start < FP_UP_TIMEOUT)) || fail "${name}" "not ready (${what}) after ${FP_UP_TIMEOUT}s"
    sleep 0.5
  done
  fp::log "ready: ${name} (${what}) in $((SECONDS - start))s"
}

fail() {
  echo "--- last 30 lines of ${LOGS}/$1.log:" >&2
  tail -n 30 "${LOGS}/$1.log" >&2 || true
  fp::die "$1 $2; the stack is left as is for inspection: hack/local-up-node.sh down"
}

curl_ns() { in_ns curl -fsS --max-time 2 "$@"; }

start_etcd() {
  start etcd "${FP_BIN}/etcd" --name "${NODE_NAME}" --data-dir "${DATA}/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "${NODE_NAME}=http://127.0.0.1:2380" --log-level warn
  wait_ready etcd /health curl_ns http://127.0.0.1:2379/health
}

# gate_flag COMPONENT VALUE prints the --feature-gates flag of our COMPONENT,
# nothing for upstream's (which does not know the gate and would refuse it).
gate_flag() {
  is_upstream "$1" || echo "--feature-gates=FileContainerProbe=$2"
}

# start_apiserver: --shutdown-watch-termination-grace-period makes a stopping
# apiserver end its watches itself; without it, its HTTP server waits for
# them up to the request timeout (60 s), and stop kills it after 10 s: its
# restart (the e2e and skew suites do a dozen) took 15 s instead of 5.
start_apiserver() {
  local -a gate
  mapfile -t gate < <(gate_flag kube-apiserver "${APISERVER_FILEPROBE_GATE}")
  start kube-apiserver "$(component_bin kube-apiserver)" \
    "${gate[@]}" \
    --etcd-servers=http://127.0.0.1:2379 \
    --secure-port="${FP_APISERVER_PORT}" --advertise-address="${NODE_IP}" \
    --tls-cert-file="${PKI}/apiserver.crt" --tls-private-key-file="${PKI}/apiserver.key" \
    --client-ca-file="${PKI}/ca.crt" \
    --kubelet-client-certificate="${PKI}/apiserver-kubelet-client.crt" \
    --kubelet-client-key="${PKI}/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="${PKI}/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="${PKI}/sa.pub" \
    --service-account-signing-key-file="${PKI}/sa.key" \
    --service-cluster-ip-range="${SERVICE_CIDR}" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --shutdown-watch-termination-grace-period=2s
  wait_ready kube-apiserver /readyz curl_ns --cacert "${PKI}/ca.crt" "https://127.0.0.1:${FP_APISERVER_PORT}/readyz"
}

# start_apiserver_forward makes the apiserver reachable from the host at
# 127.0.0.1:FP_APISERVER_PORT (what the kubeconfig says): a socat on the host
# that hands each connection to a socat inside the network namespace.
start_apiserver_forward() {
  local port=${FP_APISERVER_PORT}
  setsid socat "TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork" \
    "EXEC:nsenter --net=${NET_NS} socat STDIO TCP\:127.0.0.1\:${port}" \
    > "${LOGS}/apiserver-forward.log" 2>&1 < /dev/null &
  printf '%s %s\n' "$!" "$(command -v socat)" > "${PIDS}/apiserver-forward"
  fp::log "starting apiserver-forward (host 127.0.0.1:${port})"
  wait_ready apiserver-forward "host 127.0.0.1:${port}" kubectl_admin get --raw /readyz
}

start_controller_manager() {
  local kc="${CONF}/controller-manager.kubeconfig"
  local -a gate
  mapfile -t gate < <(gate_flag kube-controller-manager true)
  start kube-controller-manager "$(component_bin kube-controller-manager)" \
    "${gate[@]}" \
    --kubeconfig="${kc}" --authentication-kubeconfig="${kc}" --authorization-kubeconfig="${kc}" \
    --bind-address=127.0.0.1 --leader-elect=false \
    --service-account-private-key-file="${PKI}/sa.key" --root-ca-file="${PKI}/ca.crt" \
    --use-service-account-credentials=true --service-cluster-ip-range="${SERVICE_CIDR}"
  wait_ready kube-controller-manager /healthz curl_ns -k https://127.0.0.1:10257/healthz
}

start_scheduler() {
  local kc="${CONF}/scheduler.kubeconfig"
  local -a gate
  mapfile -t gate < <(gate_flag kube-scheduler true)
  start kube-scheduler "$(component_bin kube-scheduler)" \
    "${gate[@]}" \
    --kubeconfig="${kc}" --authentication-kubeconfig="${kc}" --authorization-kubeconfig="${kc}" \
    --bind-address=127.0.0.1 --leader-elect=false
  wait_ready kube-scheduler /healthz curl_ns -k https://127.0.0.1:10259/healthz
}

start_containerd() {
  # A soft limit below the hard one, as under systemd: Go programs
  # (containerd, the shims, runc) raise their own soft limit to the hard one
  # and hand the original down to what they start, so a container's limit
  # shows what its shim did (with equal limits, as here by default, it
  # would not). The e2e suite compares the shimless shim's containers with
  # runc's.
  (ulimit -Sn "${FP_CONTAINERD_NOFILE}" && start "containerd${NODE_SUFFIX}" "${NODE_BIN}/containerd" --config "${CONF}/containerd.toml")
  wait_ready "containerd${NODE_SUFFIX}" "ctr version" in_ns "${NODE_BIN}/ctr" --address "${CONTAINERD_SOCK}" version
  local image out
  for image in busybox pause; do
    out=$(ctr_k8s images import "${NODE_TOOLS}/images/${image}.oci.tar" 2>&1) || fp::die "importing ${image}: ${out}"
  done
  fp::log "imported ${FP_BUSYBOX_IMAGE} and ${FP_PAUSE_IMAGE} into containerd's k8s.io namespace"
}

start_kubelet() {
  make_cgroup_root
  start "kubelet${NODE_SUFFIX}" "$(kubelet_bin)" --config="${CONF}/kubelet.yaml" \
    --kubeconfig="${CONF}/kubelet.kubeconfig" --root-dir="${DATA}/kubelet" \
    --hostname-override="${NODE_NAME}" --node-ip="${NODE_IP}" --v="${FP_KUBELET_V}"
  wait_ready "kubelet${NODE_SUFFIX}" /healthz curl_ns http://127.0.0.1:10248/healthz
  wait_ready "kubelet${NODE_SUFFIX}" "node ${NODE_NAME} Ready" \
    kubectl_admin wait --for=condition=Ready "node/${NODE_NAME}" --timeout=2s
  # Pods in namespace default need its ServiceAccount, made by the controller-manager.
  wait_ready kube-controller-manager "serviceaccount default/default" kubectl_admin get serviceaccount default
}

# create_runtime_classes offers containerd's runtime handler shimless (one
# shim for all its pods, docs/shimless.md) as RuntimeClass shimless.
create_runtime_classes() {
  kubectl_admin apply -f - > /dev/null <<EOF
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: shimless
handler: shimless
EOF
  fp::log "RuntimeClass shimless (handler shimless: ${FP_SHIMLESS_BIN})"
}

# --- Teardown ----------------------------------------------------------------------

# stop NAME... sends SIGTERM to each NAME, waits up to 10 s for all of them to
# exit, then sends SIGKILL to those left.
stop() {
  local -a pids=()
  local name pid
  for name in "$@"; do
    pid=$(pid_of "${name}")
    rm -f "${PIDS}/${name}"
    [[ -n "${pid}" ]] || continue
    fp::log "stopping ${name} (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    pids+=("${pid}")
  done
  local i
  for ((i = 0; i < 100 && ${#pids[@]} > 0; i++)); do
    sleep 0.1
    mapfile -t pids < <(alive "${pids[@]}")
  done
  ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
}

# alive PID... prints the PIDs that still run.
alive() {
  local pid
  for pid in "$@"; do
    if kill -0 "${pid}" 2>/dev/null; then echo "${pid}"; fi
  done
}

# remove_containers kills and deletes every task and container of the CRI
# namespace while containerd still runs (pod sandboxes are containers too).
remove_containers() {
  [[ -n "$(pid_of "containerd${NODE_SUFFIX}")" ]] || return 0
  local ids id
  ids=$(ctr_k8s tasks ls -q 2>/dev/null) || return 0
  [[ -z "${ids}" ]] || fp::log "removing pod sandboxes and containers: $(wc -w <<< "${ids}")"
  for id in ${ids}; do
    ctr_k8s tasks kill --signal SIGKILL "${id}" > /dev/null 2>&1 || true
  done
  for id in ${ids}; do
    ctr_k8s tasks delete --force "${id}" > /dev/null 2>&1 || true
  done
  for id in $(ctr_k8s containers ls -q 2>/dev/null); do
    ctr_k8s containers delete "${id}" > /dev/null 2>&1 || true
  done
}

# kill_leftovers kills what the daemons left behind: containerd's shims and
# socat's per-connection children (processes in our namespaces) and container
# processes (in the kubelet's cgroup root).
kill_leftovers() {
  local mnt="" net=""
  if ns_mounted "${MNT_NS}"; then mnt=$(ns_inode "${MNT_NS}"); fi
  if ns_mounted "${NET_NS}"; then net=$(ns_inode "${NET_NS}"); fi
  local -a pids=()
  local p
  for p in /proc/[0-9]*; do
    if [[ -n "${mnt}" && "$(ns_inode "${p}/ns/mnt")" == "${mnt}" ]] ||
      [[ -n "${net}" && "$(ns_inode "${p}/ns/net")" == "${net}" ]]; then
      pids+=("${p#/proc/}")
    fi
  done
  local cgroup=/sys/fs/cgroup/pids/${CGROUP_ROOT}
  if [[ -d "${cgroup}" ]]; then
    mapfile -t -O "${#pids[@]}" pids < <(find "${cgroup}" -name cgroup.procs -exec cat {} +)
  fi
  ((${#pids[@]} == 0)) && return
  fp::log "killing leftover processes: ${pids[*]}"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 0.5
}

remove_cgroup_root() {
  local h dir try
  for h in $(cgroup_hierarchies); do
    [[ -d "${h}/${CGROUP_ROOT}" ]] || continue
    for ((try = 0; try < 20; try++)); do
      find "${h}/${CGROUP_ROOT}" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d "${h}/${CGROUP_ROOT}" ]] || break
      sleep 0.25
    done
    [[ ! -d "${h}/${CGROUP_ROOT}" ]] || fp::log "warning: could not remove cgroup ${h}/${CGROUP_ROOT}"
  done
}

remove_namespaces() {
  local f
  for f in "${MNT_NS}" "${NET_NS}"; do
    if ns_mounted "${f}"; then umount -n "${f}"; fi
  done
  rm -rf "${NS_DIR}"
}

# remove_state deletes the stack's state except logs/, once nothing of it is
# mounted in the host's mount namespace any more.
remove_state() {
  if grep -qF " ${STATE}/" /proc/self/mountinfo; then
    fp::die "something under ${STATE} is still mounted; not removing it"
  fi
  rm -rf "${PKI}" "${CONF}" "${DATA}" "${PIDS}" "${ADMIN_KUBECONFIG}" "${NODES_DIR}"
}

# down stops the kubelets first (nothing restarts containers then), the pods,
# the rest, and etcd last (the apiserver's shutdown waits for etcd). Nodes >= 2
# go down with node 1, whatever FP_NODES says: those that have state or a
# cgroup root. Their namespaces are removed before node 1's: a node's veth
# goes with its network namespace.
down() {
  local -a nodes=() kubelets=() containerds=()
  mapfile -t nodes < <(extra_nodes)
  local i
  for i in "${nodes[@]}"; do
    kubelets+=("kubelet-node-${i}")
    containerds+=("containerd-node-${i}")
  done
  stop kubelet "${kubelets[@]}"
  remove_containers
  for i in "${nodes[@]}"; do (node_env "${i}"; remove_containers); done
  stop containerd "${containerds[@]}" kube-scheduler kube-controller-manager apiserver-forward kube-apiserver
  stop etcd
  kill_leftovers
  for i in "${nodes[@]}"; do (node_env "${i}"; kill_leftovers); done
  remove_cgroup_root
  for i in "${nodes[@]}"; do (node_env "${i}"; remove_cgroup_root; remove_namespaces); done
  remove_namespaces
  remove_state
}

# --- Commands ----------------------------------------------------------------------

cmd_up() {
  check_bool FILEPROBE_GATE "${FILEPROBE_GATE}"
  check_bool APISERVER_FILEPROBE_GATE "${APISERVER_FILEPROBE_GATE}"
  check_upstream_components
  local nodes i
  nodes=$(node_count)
  for ((i = 2; i <= nodes; i++)); do (set_kubelet_kind "$(node_kind "${i}")"); done
  set_kubelet_kind "$(node_kind 1)"
  local start=${SECONDS}
  down
  install_all
  if ((nodes > 1)); then POD_ROUTES=', "routes": [{"dst": "0.0.0.0/0"}]'; fi
  if socat -u OPEN:/dev/null "TCP:127.0.0.1:${FP_APISERVER_PORT}" 2>/dev/null; then
    fp::die "127.0.0.1:${FP_APISERVER_PORT} is taken on the host; set FP_APISERVER_PORT"
  fi
  write_config
  make_namespaces
  start_etcd
  start_apiserver
  start_apiserver_forward
  start_controller_manager
  start_scheduler
  start_containerd
  start_kubelet
  for ((i = 2; i <= nodes; i++)); do up_node "${i}"; done
  create_runtime_classes
  if ((nodes == 1)) && [[ "${KUBELET_KIND}" == ours && -z "${FP_UPSTREAM_COMPONENTS// /}" ]]; then
    fp::log "up in $((SECONDS - start))s: node ${NODE_NAME} Ready (FileContainerProbe: kubelet ${FILEPROBE_GATE}, apiserver ${APISERVER_FILEPROBE_GATE})"
  else
    fp::log "up in $((SECONDS - start))s: ${nodes} node(s) Ready, ${NODE_NAME}: $(kubelet_desc); control plane: $(control_plane_desc)"
  fi
  fp::log "KUBECONFIG=${ADMIN_KUBECONFIG} ${FP_BIN}/kubectl get nodes; logs in ${LOGS}/"
}

# up_node I brings node I >= 2 up: its namespaces, linked to the control
# plane's, its containerd and its kubelet.
up_node() {
  (
    node_env "$1"
    set_kubelet_kind "$(node_kind "$1")"
    write_node_config
    make_namespaces
    connect_node
    start_containerd
    start_kubelet
    fp::log "node ${NODE_NAME} Ready: $(kubelet_desc), IP ${NODE_IP}, pods ${FP_POD_CIDR}"
  )
}

# control_plane_desc says whose each control-plane component is, for the logs.
control_plane_desc() {
  local c out=""
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    if is_upstream "${c}"; then out+="${c} upstream, "; else out+="${c} ours, "; fi
  done
  echo "${out%, } (apiserver FileContainerProbe=${APISERVER_FILEPROBE_GATE})"
}

cmd_down() {
  local start=${SECONDS}
  down
  fp::log "down in $((SECONDS - start))s"
}

# cmd_restart restarts one component of a running stack (its previous log is
# kept as logs/NAME.previous.log); the e2e suite uses it to turn gates off
# and on, and to restart the kubelet under running pods.
cmd_restart() {
  [[ -n "$(pid_of kube-apiserver)" ]] || fp::die "the stack is not up: hack/local-up-node.sh up"
  local name=${1:-} target=${2:-fileprobe-node}
  if [[ "${target}" == fileprobe-node ]]; then
    restart_component "${name}"
    return
  fi
  [[ "${name}" == kubelet || "${name}" == containerd ]] || fp::die "only kubelet and containerd run on node ${target}"
  [[ "${target}" =~ ^fileprobe-node-([0-9]+)$ && -d "${NODES_DIR}/${target}" ]] || fp::die "the stack has no node ${target}"
  (
    node_env "${BASH_REMATCH[1]}"
    restart_component "${name}"
  )
}

# restart_component NAME restarts NAME on the current node (or the control plane's NAME).
restart_component() {
  local name=$1
  case "${name}" in
    kubelet) set_kubelet_kind "${FP_NODE_KUBELET:-ours}" ;;
    kube-apiserver) check_bool APISERVER_FILEPROBE_GATE "${APISERVER_FILEPROBE_GATE}" ;;
    kube-controller-manager | kube-scheduler | containerd) ;;
    *) fp::die "usage: $0 restart kubelet|containerd|kube-apiserver|kube-controller-manager|kube-scheduler [NODE]" ;;
  esac
  check_upstream_components
  local start=${SECONDS} daemon=${name}
  [[ "${name}" == kube-* ]] || daemon+=${NODE_SUFFIX}
  stop "${daemon}"
  if [[ -f "${LOGS}/${daemon}.log" ]]; then mv -f "${LOGS}/${daemon}.log" "${LOGS}/${daemon}.previous.log"; fi
  case "${name}" in
    kubelet)
      write_kubelet_config
      start_kubelet
      ;;
    kube-apiserver)
      start_apiserver
      wait_ready apiserver-forward "host 127.0.0.1:${FP_APISERVER_PORT}" kubectl_admin get --raw /readyz
      restart_apiserver_clients
      ;;
    kube-controller-manager) start_controller_manager ;;
    kube-scheduler) start_scheduler ;;
    # stop sent SIGTERM: containerd leaves its shims (and so the containers)
    # running, and reconnects to them when it starts again.
    containerd) start_containerd ;;
  esac
  if [[ "${name}" == kube-* ]]; then
    fp::log "restarted ${name} in $((SECONDS - start))s (control plane: $(control_plane_desc))"
  elif ((NODE_INDEX == 1)) && [[ "${KUBELET_KIND}" == ours ]]; then
    fp::log "restarted ${name} in $((SECONDS - start))s (FileContainerProbe: kubelet ${FILEPROBE_GATE}, apiserver ${APISERVER_FILEPROBE_GATE})"
  else
    fp::log "restarted ${daemon} in $((SECONDS - start))s (node ${NODE_NAME}: $(kubelet_desc))"
  fi
}

# restart_apiserver_clients restarts the kube-controller-manager and the
# kube-scheduler, each as it ran (ours or upstream's), after the apiserver
# restarted. Their informers failed to relist while it was down (refused,
# then forbidden until its authorizer has synced), and client-go backs off
# from 0.8 s, doubling up to [30 s, 60 s), reset only after 2 minutes
# without a failure: after two or three apiserver restarts in a row (the
# version-skew suite does that), the controllers and the scheduler would
# act on nothing for up to a minute and a half. They keep no state, and
# restart in 1-3 s.
restart_apiserver_clients() {
  local c exe
  for c in kube-controller-manager kube-scheduler; do
    [[ -n "$(pid_of "${c}")" ]] || continue
    read -r _ exe < "${PIDS}/${c}"
    if [[ "${exe}" == "${FP_UPSTREAM_BIN}/"* ]]; then
      (FP_UPSTREAM_COMPONENTS=${c} restart_component "${c}")
    else
      (FP_UPSTREAM_COMPONENTS="" restart_component "${c}")
    fi
  done
}

cmd_status() {
  local name pid rc=0
  for name in "${DAEMONS[@]}"; do
    pid=$(pid_of "${name}")
    if [[ -n "${pid}" ]]; then
      printf '%-24s running (pid %s)\n' "${name}" "${pid}"
    else
      printf '%-24s not running\n' "${name}"
      rc=1
    fi
  done
  local i
  for i in $(extra_nodes); do
    for name in "containerd-node-${i}" "kubelet-node-${i}"; do
      pid=$(pid_of "${name}")
      if [[ -n "${pid}" ]]; then
        printf '%-24s running (pid %s)\n' "${name}" "${pid}"
      else
        printf '%-24s not running\n' "${name}"
        rc=1
      fi
    done
  done
  ((rc == 0)) || return "${rc}"
  kubectl_admin get nodes -o wide
}

main() {
  [[ $(id -u) == 0 ]] || fp::die "must run as root (namespaces, mounts, cgroups)"
  case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    restart) cmd_restart "${2:-}" "${3:-}" ;;
    ctr)
      [[ -n "$(pid_of containerd)" ]] || fp::die "containerd is not running: hack/local-up-node.sh up"
      shift
      ctr_k8s "$@"
      ;;
    *) fp::die "usage: $0 up|down|status|restart COMPONENT [NODE]|ctr ARGS..." ;;
  esac
}

main "$@"
