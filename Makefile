# kubelet-fileprobe: pinned upstream Kubernetes + patches/ + new files -> _output/bin/
#
#   make              assemble the tree and build the five binaries, and containerd-shim-shimless-v2
#   make test         everything CI runs (see README)
#
# See README.md for the layout and the patch workflow.

SHELL := /usr/bin/env bash

.PHONY: all build shimless upstream tree test verify verify-patches unit-test e2e e2e-skew bench release export-patches local-up local-down local-status clean help

all: build shimless

## build: assemble _output/kubernetes and build kubelet, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
build:
	hack/build.sh

## shimless: build containerd-shim-shimless-v2 (shimless/, its own Go module) into _output/bin; see docs/shimless.md
shimless:
	hack/shimless.sh

## upstream: build upstream's kubelet, kube-apiserver, kube-controller-manager, kube-scheduler (unpatched, the pinned version) from the tree's baseline into _output/upstream/bin, for mixed-version local clusters; cached
upstream:
	hack/build-upstream.sh

## tree: assemble _output/kubernetes only (pinned upstream + patches/ + new files)
tree:
	hack/assemble.sh

## test: verify the patch series, then run our unit tests and upstream's tests of every package we touch
test:
	hack/test.sh

## verify: patch series, go.mod pins, and generated code exactly as upstream's generators emit it (part of make test)
verify:
	hack/test.sh --verify-only

## verify-patches: patches/ is in normal form and applies to pristine upstream with git am
verify-patches:
	hack/patches.sh verify

## unit-test: the Go tests only (no patch verification)
unit-test:
	hack/test.sh --unit-only

## release: package _output/bin as a release in _output/release: upstream's server/node tarballs and dl.k8s.io layout, control plane images (OCI archives), .sha256, SHA256SUMS, SPDX SBOMs (docs/release.md)
release:
	hack/release.sh

## export-patches: write the commits of _output/kubernetes back to patches/
export-patches:
	hack/patches.sh export

## e2e: the end-to-end suite (test/e2e_fileprobe) on the local cluster: up, run, down (part of make test)
e2e:
	hack/e2e.sh

## e2e-skew: the version-skew suite (test/e2e_skew) on a local cluster of 3 nodes: our kubelet gate on, gate off, upstream's (FP_NODE_KUBELETS): up, run, down
e2e-skew:
	hack/e2e-skew.sh

## bench: per-probe cost, node cost at density, readiness latency and a noisy neighbour's cost on the local cluster (_output/bench/; docs/benchmarks.md)
bench:
	hack/bench.sh

## local-up: build what is missing, (re)start a real single-node cluster from _output/bin (or FP_BIN) with the example pod; see docs/local-node.md
local-up:
	hack/local-up.sh

## local-down: stop the local cluster and remove its state (logs stay in _output/local/logs)
local-down:
	hack/local-up-node.sh down

## local-status: which of the local cluster's daemons run, and its node
local-status:
	hack/local-up-node.sh status

## clean: remove _output/ (the Go caches are kept)
clean:
	rm -rf _output

help:
	@sed -n 's/^## //p' Makefile
