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

package filecontainerprobe_test

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/component-helpers/nodedeclaredfeatures"
	"k8s.io/component-helpers/nodedeclaredfeatures/features"
	"k8s.io/component-helpers/nodedeclaredfeatures/features/filecontainerprobe"
	"k8s.io/component-helpers/nodedeclaredfeatures/types"
)

func TestRequirements(t *testing.T) {
	reqs := filecontainerprobe.Feature.Requirements()
	if reqs == nil || len(reqs.EnabledFeatureGates) != 1 || reqs.EnabledFeatureGates[0] != filecontainerprobe.FileContainerProbeFeatureGate {
		t.Fatalf("Requirements() = %+v, want exactly the %s feature gate", reqs, filecontainerprobe.FileContainerProbeFeatureGate)
	}
	if filecontainerprobe.Feature.Name() != "FileContainerProbe" {
		t.Errorf("Name() = %q", filecontainerprobe.Feature.Name())
	}
	if filecontainerprobe.Feature.MaxVersion() != nil {
		t.Errorf("MaxVersion() = %v, want nil", filecontainerprobe.Feature.MaxVersion())
	}
}

func TestDiscover(t *testing.T) {
	for _, test := range []struct {
		os      string
		enabled bool
		want    bool
	}{
		{"linux", true, true},
		{"linux", false, false},
		// file probes need Linux: other kubelets never declare the feature
		{"windows", true, false},
		{"windows", false, false},
	} {
		restore := filecontainerprobe.SetGOOSForTest(test.os)
		cfg := &types.NodeConfiguration{FeatureGates: types.FeatureGateMap{filecontainerprobe.FileContainerProbeFeatureGate: test.enabled}}
		if got := filecontainerprobe.Feature.Discover(cfg); got != test.want {
			t.Errorf("%s, gate %v: Discover() = %v, want %v", test.os, test.enabled, got, test.want)
		}
		restore()
	}
}

func TestDiscoverSupportCheck(t *testing.T) {
	restore := filecontainerprobe.SetGOOSForTest("linux")
	defer restore()
	defer filecontainerprobe.SetSupportCheck(nil)
	cfg := func(enabled bool) *types.NodeConfiguration {
		return &types.NodeConfiguration{FeatureGates: types.FeatureGateMap{filecontainerprobe.FileContainerProbeFeatureGate: enabled}}
	}
	calls := 0
	for _, test := range []struct {
		name      string
		enabled   bool
		err       error
		want      bool
		wantCalls int
	}{
		{"supported", true, nil, true, 1},
		// a kernel without openat2, or a seccomp filter refusing it
		{"unsupported kernel", true, errors.New("openat2(2) is not available"), false, 1},
		// with the gate off the kernel is not even checked
		{"gate off", false, nil, false, 0},
	} {
		calls = 0
		err := test.err
		filecontainerprobe.SetSupportCheck(func() error { calls++; return err })
		if got := filecontainerprobe.Feature.Discover(cfg(test.enabled)); got != test.want || calls != test.wantCalls {
			t.Errorf("%s: Discover() = %v after %d checks, want %v after %d", test.name, got, calls, test.want, test.wantCalls)
		}
	}
}

func fileProbe() *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{File: &v1.FileAction{Path: "/probe-volume/probe", Validity: 30}}}
}

func execProbe() *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}
}

func TestInferForScheduling(t *testing.T) {
	tests := []struct {
		name     string
		pod      *v1.PodSpec
		expected bool
	}{
		{"no probes", &v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}, false},
		{"exec probes only", &v1.PodSpec{Containers: []v1.Container{{Name: "c", ReadinessProbe: execProbe(), LivenessProbe: execProbe()}}}, false},
		{"readiness file probe", &v1.PodSpec{Containers: []v1.Container{{Name: "a"}, {Name: "c", ReadinessProbe: fileProbe()}}}, true},
		{"liveness file probe", &v1.PodSpec{Containers: []v1.Container{{Name: "c", LivenessProbe: fileProbe()}}}, true},
		{"startup file probe", &v1.PodSpec{Containers: []v1.Container{{Name: "c", StartupProbe: fileProbe()}}}, true},
		{"sidecar file probe", &v1.PodSpec{
			InitContainers: []v1.Container{{Name: "s", ReadinessProbe: fileProbe()}},
			Containers:     []v1.Container{{Name: "c", ReadinessProbe: execProbe()}},
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := filecontainerprobe.Feature.InferForScheduling(&types.PodInfo{Spec: tc.pod}); got != tc.expected {
				t.Errorf("InferForScheduling() = %v, want %v", got, tc.expected)
			}
		})
	}
}

func TestInferForUpdate(t *testing.T) {
	old := &types.PodInfo{Spec: &v1.PodSpec{Containers: []v1.Container{{Name: "c", ReadinessProbe: fileProbe()}}}}
	if filecontainerprobe.Feature.InferForUpdate(old, old) {
		t.Error("InferForUpdate() = true, want false: probes are immutable")
	}
}

// TestRegisteredAndMatched goes through the default framework as the
// scheduler and the kubelet do: the feature is registered, a pod with a file
// probe requires it, and only a node that declares it satisfies the pod.
func TestRegisteredAndMatched(t *testing.T) {
	registered := false
	for _, f := range features.AllFeatures {
		registered = registered || f.Name() == filecontainerprobe.FileContainerProbeFeatureGate
	}
	if !registered {
		t.Fatalf("%s is not in features.AllFeatures", filecontainerprobe.FileContainerProbeFeatureGate)
	}
	fw := nodedeclaredfeatures.DefaultFramework
	spec := &v1.PodSpec{Containers: []v1.Container{{Name: "c", ReadinessProbe: fileProbe()}}}
	reqs, err := fw.InferForPodScheduling(&types.PodInfo{Spec: spec}, version.MustParse("1.37.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, gate := range []bool{true, false} {
		declared := fw.DiscoverNodeFeatures(&types.NodeConfiguration{FeatureGates: types.FeatureGateMap{filecontainerprobe.FileContainerProbeFeatureGate: gate}})
		node := &v1.Node{Status: v1.NodeStatus{DeclaredFeatures: declared}}
		res, err := fw.MatchNode(reqs, node)
		if err != nil {
			t.Fatal(err)
		}
		if res.IsMatch != gate {
			t.Errorf("node with gate %v: match = %v (unsatisfied %v)", gate, res.IsMatch, res.UnsatisfiedRequirements)
		}
	}
}
