/*
Copyright The kubelet-fileprobe Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package filecontainerprobe declares the node feature "FileContainerProbe":
// the kubelet can run probes with a file handler. A pod that uses one is only
// scheduled to nodes that declare it. A kubelet that does not know file probes
// would see a probe without a handler, report it as failing, and restart the
// container on every liveness check.
package filecontainerprobe

import (
	"runtime"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/component-helpers/nodedeclaredfeatures/types"
)

// Ensure the feature struct implements the unified Feature interface.
var _ types.Feature = &fileContainerProbeFeature{}

// FileContainerProbeFeatureGate is the kubelet feature gate that enables file probes.
const FileContainerProbeFeatureGate = "FileContainerProbe"

// Feature is the implementation of the `FileContainerProbe` node feature.
var Feature = &fileContainerProbeFeature{}

type fileContainerProbeFeature struct{}

func (f *fileContainerProbeFeature) Name() string {
	return FileContainerProbeFeatureGate
}

// Discover declares the feature on Linux nodes whose kubelet has the gate
// enabled and can run file probes on its kernel. It runs in the kubelet: file
// probes need Linux (openat2, statx), and a kubelet on another OS, or on a
// kernel without openat2 (or behind a seccomp filter that refuses it), errors
// on every file probe, so it never declares the feature.
func (f *fileContainerProbeFeature) Discover(cfg *types.NodeConfiguration) bool {
	if goos != "linux" || !cfg.FeatureGates.Enabled(FileContainerProbeFeatureGate) {
		return false
	}
	check := supportCheck.Load()
	return check == nil || (*check)() == nil
}

// goos is the kubelet's OS; a variable for tests.
var goos = runtime.GOOS

// supportCheck, when set, tells whether this node can run file probes.
var supportCheck atomic.Pointer[func() error]

// SetSupportCheck sets the check by which Discover tells whether this node
// can run file probes (the kubelet's prober sets it to a check of its kernel,
// which logs why once when it fails). Discover calls it only when the gate is
// on, as often as node features are discovered: it should cache its result.
func SetSupportCheck(check func() error) {
	if check == nil {
		supportCheck.Store(nil)
		return
	}
	supportCheck.Store(&check)
}

func (f *fileContainerProbeFeature) Requirements() *types.FeatureRequirements {
	return &types.FeatureRequirements{
		EnabledFeatureGates: []string{FileContainerProbeFeatureGate},
	}
}

// InferForScheduling requires the feature for pods with a file probe on any
// container or init container (ephemeral containers cannot have probes).
func (f *fileContainerProbeFeature) InferForScheduling(podInfo *types.PodInfo) bool {
	for _, containers := range [][]v1.Container{podInfo.Spec.InitContainers, podInfo.Spec.Containers} {
		for i := range containers {
			c := &containers[i]
			for _, p := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p != nil && p.File != nil {
					return true
				}
			}
		}
	}
	return false
}

// InferForUpdate never requires the feature: probes of a pod are immutable.
func (f *fileContainerProbeFeature) InferForUpdate(oldPodInfo, newPodInfo *types.PodInfo) bool {
	return false
}

func (f *fileContainerProbeFeature) MaxVersion() *version.Version {
	return nil
}
