#!/usr/bin/env bash
# make release: packages the binaries in _output/bin as a release under
# _output/release/ (see docs/release.md), in upstream's layouts:
#
#   kubernetes-server-linux-amd64.tar.gz   kubernetes/server/bin/: the five binaries, and the
#                                          kube-apiserver, kube-controller-manager and kube-scheduler
#                                          images (<name>.tar, OCI archives, and <name>.docker_tag)
#   kubernetes-node-linux-amd64.tar.gz     kubernetes/node/bin/: kubelet, kubectl
#   containerd-shim-shimless-v2-linux-amd64.tar.gz   bin/containerd-shim-shimless-v2 and LICENSE,
#                                          containerd's layout (docs/shimless.md)
#   bin/linux/amd64/<binary>               as on dl.k8s.io, and the images' <name>.tar, <name>.docker_tag
#   <artifact>.sha256                      for each binary, image and tarball (the hex digest alone, as dl.k8s.io's)
#   <artifact>.spdx.json                   an SPDX 2.3 SBOM of each binary, image and tarball
#   SHA256SUMS                             every file, for `sha256sum -c SHA256SUMS`
#
# The version, commit and date come from the binaries themselves (what they
# print with --version=raw), so the release describes what it contains; they
# must be this repository's fork version. If any binary is missing, all five are
# built (hack/build.sh), so that they come from one commit; a missing shim is
# built by hack/shimless.sh, and must say the same fork version.
# The same binaries always give the same bytes (hack/test/release_test.sh).
#
# Environment:
#   IMAGE_REPOSITORY   images are <repository>/<binary>:<tag> (default localhost/kubelet-fileprobe:
#                      a name that is no registry's, never registry.k8s.io's)
#   RELEASE_DIR        where to write (default _output/release; replaced as a whole, on success)
#   RELEASE_SOURCE_URL the source label of the images (default https://<module path of go.mod>)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

FP_RELEASE_BINARIES=("${FP_BINARIES[@]##*/}")
RELEASE_DIR=${RELEASE_DIR:-${FP_OUT}/release}
IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-localhost/kubelet-fileprobe}
BIN="${FP_OUT}/bin"
TOOL="${FP_OUT}/tools/release"

# version_info BINARY prints "gitVersion gitCommit gitTreeState buildDate" of BINARY.
version_info() {
  local b=$1
  if [[ "$(basename "${b}")" == kubectl ]]; then
    "${b}" version --client -o json | tr -d ' \n' |
      sed -E 's/.*"gitVersion":"([^"]*)","gitCommit":"([^"]*)","gitTreeState":"([^"]*)","buildDate":"([^"]*)".*/\1 \2 \3 \4/'
  else
    "${b}" --version=raw |
      sed -E 's/.*GitVersion:"([^"]*)", GitCommit:"([^"]*)", GitTreeState:"([^"]*)", BuildDate:"([^"]*)".*/\1 \2 \3 \4/'
  fi
}

# build_tool builds the packager (hack/release, a module of its own) into _output/tools.
build_tool() {
  (cd "${FP_ROOT}/hack/release" && GOFLAGS=-buildvcs=false go build -o "${TOOL}" .)
}

main() {
  local b
  for b in "${FP_RELEASE_BINARIES[@]}"; do
    [[ -x "${BIN}/${b}" ]] || { fp::timed "build the binaries" "${FP_ROOT}/hack/build.sh"; break; }
  done
  [[ -x "${BIN}/containerd-shim-shimless-v2" ]] || fp::timed "build the shim" "${FP_ROOT}/hack/shimless.sh"
  [[ -f "${FP_TREE}/LICENSE" ]] || "${FP_ROOT}/hack/assemble.sh"

  local info first="" version commit state date
  for b in "${FP_RELEASE_BINARIES[@]}"; do
    info=$(version_info "${BIN}/${b}")
    [[ -n "${first}" ]] || first=${info}
    [[ "${info}" == "${first}" ]] || fp::die "${b} is ${info}, ${FP_RELEASE_BINARIES[0]} ${first}: rebuild with make"
  done
  read -r version commit state date <<<"${first}"
  [[ "${version}" == "$(fp::fork_version)" ]] ||
    fp::die "the binaries are ${version}, this repository is $(fp::fork_version): rebuild with make"
  [[ "${state}" == clean ]] || fp::log "warning: the binaries were built from a dirty tree (gitTreeState ${state})"
  local containerd shim_version shim_commit
  containerd=$(fp::containerd_version)
  shim_version=$("${BIN}/containerd-shim-shimless-v2" -v | sed -n 's/^ *Version: *//p')
  shim_commit=$("${BIN}/containerd-shim-shimless-v2" -v | sed -n 's/^ *Revision: *//p')
  [[ "${shim_version}" == "${containerd}+shimless.${version/+/-}" ]] ||
    fp::die "containerd-shim-shimless-v2 is ${shim_version}, want ${containerd}+shimless.${version/+/-}: rebuild with make shimless"
  [[ "${shim_commit}" == "${commit}" ]] ||
    fp::log "note: containerd-shim-shimless-v2 is from commit ${shim_commit}, the Kubernetes binaries from ${commit}"
  local head
  head=$(git -C "${FP_ROOT}" rev-parse HEAD 2>/dev/null || true)
  [[ "${commit}" == "${head}" ]] ||
    fp::log "note: the binaries are from commit ${commit}, HEAD is ${head}: the release names ${commit}"

  local module
  module=$(cd "${FP_ROOT}" && go mod edit -json | sed -n 's/^\t\t"Path": "\(.*\)"$/\1/p' | head -n1)
  fp::timed "build the release packager" build_tool
  # Written aside and moved into place at the end: a failed run leaves the
  # previous release as it was.
  rm -rf "${RELEASE_DIR}.tmp"
  trap 'rm -rf "${RELEASE_DIR}.tmp"' EXIT
  mkdir -p "${RELEASE_DIR}.tmp"
  fp::log "packaging ${version} (commit ${commit}, built ${date}) into ${RELEASE_DIR}, images ${IMAGE_REPOSITORY}/<name>:${version/+/_}"
  fp::timed "package the release" "${TOOL}" package -bin "${BIN}" -out "${RELEASE_DIR}.tmp" -root "${FP_ROOT}" \
    -version "${version}" -revision "${commit}" -created "${date}" -arch "$(go env GOARCH)" \
    -image-repository "${IMAGE_REPOSITORY}" -source "${RELEASE_SOURCE_URL:-https://${module}}" \
    -license "${FP_TREE}/LICENSE" -containerd "${containerd}"
  rm -rf "${RELEASE_DIR}"
  mv "${RELEASE_DIR}.tmp" "${RELEASE_DIR}"
  fp::log "release in ${RELEASE_DIR}: $(cd "${RELEASE_DIR}" && find . -type f | wc -l) files, $(du -sh "${RELEASE_DIR}" | cut -f1)"
}

main "$@"
