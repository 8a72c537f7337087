#!/usr/bin/env bash
# Runs upstream's own code generators (hack/update-codegen.sh and friends) in
# the assembled tree, and proves that the generated patches are exactly what
# they emit.
#
#   hack/codegen.sh update [GENERATOR...]   regenerate in _output/kubernetes
#                                           (all of update-codegen.sh's
#                                           generators, or only the named ones,
#                                           e.g. deepcopy conversions protobuf)
#   hack/codegen.sh verify                  regenerate everything in a scratch
#                                           worktree of the tree's HEAD and
#                                           fail on any difference
#
# The module zips lack two things upstream's scripts rely on; they are supplied
# here, outside of git (listed in the tree's .git/info/exclude), never as patches:
#   - hack/tools, upstream's tools module: a stub module that pins
#     golang.org/x/tools at the tree's version, for goimports;
#   - protoc 23.4, which upstream downloads from GitHub: Debian's
#     protobuf-compiler behind a wrapper that reports 23.4 (its output is byte
#     for byte the same for every API group, which `verify` keeps proving), and
#     gogo's .proto files, linked from the module cache into vendor/.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

UPSTREAM_PROTOC_VERSION=23.4
# update-codegen.sh's generators that we run. Left out, because the module zips
# cannot feed them and nothing of ours is in their scope:
#   register     its only target is sample-controller, whose register code is
#                made by that subproject's own script (run here, it deletes it);
#   subprojects  code-generator/examples is a nested module the zips do not have;
#   protobindings  CRI/device-plugin gRPC bindings, untouched by the series.
GENERATORS=(protobuf deepcopy swagger prerelease defaults validation conversions openapi applyconfigs clients listers informers)

ensure_protoc() {
  if ! [[ -x /usr/bin/protoc ]]; then
    command -v apt-get >/dev/null || fp::die "protoc is missing: install Debian's protobuf-compiler"
    fp::log "installing Debian's protobuf-compiler"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    ${sudo} apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null ||
      { ${sudo} apt-get update -qq && ${sudo} apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null; }
  fi
}

# prepare TREE supplies what the generators need and the module zips lack.
prepare() {
  local tree=$1
  ensure_protoc
  local exclude="${tree}/.git/info/exclude"
  [[ -f "${tree}/.git" ]] && exclude="$(git -C "${tree}" rev-parse --git-common-dir)/info/exclude"
  grep -qx '/hack/tools/' "${exclude}" 2>/dev/null || printf '%s\n' /hack/tools/ /vendor/github.com/ >> "${exclude}"

  if ! [[ -f "${tree}/hack/tools/go.sum" ]]; then
    local xtools
    xtools=$(fp::tree_dep_version "${tree}" golang.org/x/tools)
    mkdir -p "${tree}/hack/tools"
    printf 'module k8s.io/kubernetes/hack/tools\n\ngo 1.26.0\n' > "${tree}/hack/tools/go.mod"
    (cd "${tree}/hack/tools" && GOWORK=off GOFLAGS=-mod=mod go get "golang.org/x/tools@${xtools}" >/dev/null)
  fi

  # update-codegen.sh installs its generators with GOPROXY=off: fetch their
  # modules first (checked against the tree's go.sum).
  (cd "${tree}" && go list -deps k8s.io/code-generator/cmd/... k8s.io/kube-openapi/cmd/openapi-gen \
    ./cmd/genswaggertypedocs ./pkg/generated/openapi/cmd/models-schema >/dev/null)

  local gogo
  gogo=$(fp::tree_dep_version "${tree}" github.com/gogo/protobuf)
  mkdir -p "${tree}/vendor/github.com/gogo"
  ln -sfn "${GOMODCACHE}/github.com/gogo/protobuf@${gogo}" "${tree}/vendor/github.com/gogo/protobuf"
  [[ -d "${tree}/vendor/github.com/gogo/protobuf/gogoproto" ]] ||
    (cd "${tree}" && go mod download "github.com/gogo/protobuf@${gogo}")

  # Upstream's installer keeps protoc in third_party/protoc -> protoc-vX-os-arch
  # and skips the download when that link is in place (third_party/protoc* is
  # git-ignored upstream).
  local dir="protoc-v${UPSTREAM_PROTOC_VERSION}-linux-$(go env GOARCH)"
  mkdir -p "${tree}/third_party/${dir}"
  cat > "${tree}/third_party/${dir}/protoc" <<EOF
#!/bin/sh
# Debian's protoc, answering --version as the ${UPSTREAM_PROTOC_VERSION} that upstream pins.
[ "\$1" = "--version" ] && { echo "libprotoc ${UPSTREAM_PROTOC_VERSION}"; exit 0; }
exec /usr/bin/protoc "\$@"
EOF
  chmod +x "${tree}/third_party/${dir}/protoc"
  ln -sfn "${dir}" "${tree}/third_party/protoc"

  # hack/update-openapi-spec.sh runs etcd, which upstream downloads to
  # third_party/etcd -> etcd-vX-os-arch (also git-ignored): use the one
  # hack/etcd.sh builds from the Go module proxy at the same version.
  "${FP_ROOT}/hack/etcd.sh" >/dev/null
  local etcd_version
  etcd_version=$(fp::tree_dep_version "${tree}" go.etcd.io/etcd/server/v3)
  dir="etcd-${etcd_version}-linux-$(go env GOARCH)"
  mkdir -p "${tree}/third_party/${dir}"
  ln -sfn "${FP_OUT}/bin/etcd" "${tree}/third_party/${dir}/etcd"
  ln -sfn "${dir}" "${tree}/third_party/etcd"
}

# generate TREE [GENERATOR...] runs upstream's update-codegen.sh in TREE.
generate() {
  local tree=$1; shift
  prepare "${tree}"
  (
    cd "${tree}"
    export PATH="${tree}/third_party/protoc:${PATH}"
    local -a gens=("$@")
    ((${#gens[@]} > 0)) || gens=("${GENERATORS[@]}")
    GOFLAGS=-buildvcs=false hack/update-codegen.sh "${gens[@]}"
    # Upstream's other generated data: the API compatibility fixtures, and the
    # published OpenAPI documents (api/openapi-spec, from a running apiserver).
    hack/update-generated-api-compatibility-data.sh >/dev/null
    PATH="${tree}/third_party/etcd:${PATH}" hack/update-openapi-spec.sh >/dev/null
  )
}

cmd_update() {
  # Regenerate in the tree as it is: it may hold commits not exported yet.
  [[ -d "${FP_TREE}/.git" ]] || "${FP_ROOT}/hack/assemble.sh"
  generate "${FP_TREE}" "$@"
  git -C "${FP_TREE}" status --short
  fp::log "regenerated in ${FP_TREE}: commit the result as 'UPSTREAM: <carry>: generated: ...' and run 'make export-patches'"
}

cmd_verify() {
  "${FP_ROOT}/hack/assemble.sh"
  local scratch="${FP_OUT}/verify-codegen"
  fp::scratch_worktree "${scratch}" HEAD
  generate "${scratch}"
  local diff
  diff=$(git -C "${scratch}" status --porcelain)
  if [[ -n "${diff}" ]]; then
    echo "${diff}" >&2
    git -C "${scratch}" diff --stat >&2
    git -C "${scratch}" diff | head -n 80 >&2 || true
    fp::die "generated code differs from what upstream's generators emit: run 'hack/codegen.sh update' and export the result as a generated patch"
  fi
  fp::log "generated code is exactly what upstream's generators emit"
}

case "${1:-}" in
  update) shift; cmd_update "$@" ;;
  verify) cmd_verify ;;
  *) fp::die "usage: $0 update [GENERATOR...] | verify" ;;
esac
