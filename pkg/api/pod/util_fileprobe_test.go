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

package pod

import (
	"fmt"
	"strings"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	podtest "k8s.io/kubernetes/pkg/api/pod/testing"
	api "k8s.io/kubernetes/pkg/apis/core"
	apivalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/utils/ptr"
)

func testFileProbe() *api.Probe {
	return &api.Probe{
		ProbeHandler:     api.ProbeHandler{File: &api.FileAction{Path: "/probe-volume/probe", Validity: 30}},
		TimeoutSeconds:   1,
		PeriodSeconds:    10,
		SuccessThreshold: 1,
		FailureThreshold: 3,
	}
}

func testExecProbe() *api.Probe {
	p := testFileProbe()
	p.ProbeHandler = api.ProbeHandler{Exec: &api.ExecAction{Command: []string{"true"}}}
	return p
}

// podWithProbe returns a valid pod whose container of the given kind has probe
// as its readiness probe ("none" gives a pod without probes).
func podWithProbe(kind string, probe *api.Probe) *api.Pod {
	pod := podtest.MakePod("p", podtest.SetVolumes(podtest.MakeEmptyVolume("probe-volume")))
	pod.ResourceVersion = "1"
	switch kind {
	case "container":
		pod.Spec.Containers[0].ReadinessProbe = probe
	case "liveness":
		pod.Spec.Containers[0].LivenessProbe = probe
	case "startup":
		pod.Spec.Containers[0].StartupProbe = probe
	case "sidecar":
		c := podtest.MakeContainer("sidecar")
		c.RestartPolicy = ptr.To(api.ContainerRestartPolicyAlways)
		c.ReadinessProbe = probe
		pod.Spec.InitContainers = []api.Container{c}
	case "none":
	default:
		panic(kind)
	}
	return pod
}

func TestFileProbeInUse(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec *api.PodSpec
		want bool
	}{
		{"nil spec", nil, false},
		{"no probes", &podWithProbe("none", nil).Spec, false},
		{"exec probe", &podWithProbe("container", testExecProbe()).Spec, false},
		{"readiness", &podWithProbe("container", testFileProbe()).Spec, true},
		{"liveness", &podWithProbe("liveness", testFileProbe()).Spec, true},
		{"startup", &podWithProbe("startup", testFileProbe()).Spec, true},
		{"sidecar", &podWithProbe("sidecar", testFileProbe()).Spec, true},
		{"ephemeral container", func() *api.PodSpec {
			s := podWithProbe("none", nil).Spec
			s.EphemeralContainers = []api.EphemeralContainer{{EphemeralContainerCommon: api.EphemeralContainerCommon{Name: "e", ReadinessProbe: testFileProbe()}}}
			return &s
		}(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fileProbeInUse(tc.spec); got != tc.want {
				t.Errorf("fileProbeInUse() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFileProbeGate checks create and update of pods and pod templates with
// the gate on and off, and with the old object using file probes or not: the
// field is never dropped; it is rejected, naming the gate, only where the gate
// is off and the old object does not use it already.
func TestFileProbeGate(t *testing.T) {
	withImage := func(pod *api.Pod, image string) *api.Pod {
		pod.Spec.Containers[0].Image = image
		return pod
	}
	for _, gate := range []bool{true, false} {
		for _, kind := range []string{"container", "liveness", "startup", "sidecar"} {
			// Pods: probes are immutable, so an update can only keep them.
			for _, tc := range []struct {
				name    string
				old     *api.Pod // nil: create
				new     *api.Pod
				wantErr bool
			}{
				{"create without file probe", nil, podWithProbe(kind, testExecProbe()), false},
				{"create with file probe", nil, podWithProbe(kind, testFileProbe()), !gate},
				{"update keeps file probe", podWithProbe(kind, testFileProbe()), withImage(podWithProbe(kind, testFileProbe()), "image:2"), false},
			} {
				t.Run(fmt.Sprintf("pod/gate=%v/%s/%s", gate, kind, tc.name), func(t *testing.T) {
					featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.FileContainerProbe, gate)
					before := tc.new.DeepCopy()
					DropDisabledPodFields(tc.new, tc.old)
					if !apiequality.Semantic.DeepEqual(before, tc.new) {
						t.Fatalf("DropDisabledPodFields changed the pod: the file probe must never be dropped")
					}
					var errs []string
					if tc.old == nil {
						opts := GetValidationOptionsFromPodSpecAndMeta(&tc.new.Spec, nil, &tc.new.ObjectMeta, nil)
						for _, e := range apivalidation.ValidatePodCreate(tc.new, opts) {
							errs = append(errs, e.Error())
						}
					} else {
						opts := GetValidationOptionsFromPodSpecAndMeta(&tc.new.Spec, &tc.old.Spec, &tc.new.ObjectMeta, &tc.old.ObjectMeta)
						for _, e := range apivalidation.ValidatePodUpdate(tc.new, tc.old, opts) {
							errs = append(errs, e.Error())
						}
					}
					checkGateErrs(t, errs, tc.wantErr)
				})
			}

			// Pod templates (Deployments, Jobs, ...) are mutable.
			for _, tc := range []struct {
				name    string
				old     *api.Pod // nil: create
				new     *api.Pod
				wantErr bool
			}{
				{"create without file probe", nil, podWithProbe(kind, testExecProbe()), false},
				{"create with file probe", nil, podWithProbe(kind, testFileProbe()), !gate},
				{"update adds file probe", podWithProbe(kind, testExecProbe()), podWithProbe(kind, testFileProbe()), !gate},
				{"update keeps file probe", podWithProbe(kind, testFileProbe()), withImage(podWithProbe(kind, testFileProbe()), "image:2"), false},
				{"update removes file probe", podWithProbe(kind, testFileProbe()), podWithProbe(kind, testExecProbe()), false},
			} {
				t.Run(fmt.Sprintf("template/gate=%v/%s/%s", gate, kind, tc.name), func(t *testing.T) {
					featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.FileContainerProbe, gate)
					newTemplate := &api.PodTemplateSpec{Spec: tc.new.Spec}
					var oldTemplate *api.PodTemplateSpec
					if tc.old != nil {
						oldTemplate = &api.PodTemplateSpec{Spec: tc.old.Spec}
					}
					before := newTemplate.DeepCopy()
					DropDisabledTemplateFields(newTemplate, oldTemplate)
					if !apiequality.Semantic.DeepEqual(before, newTemplate) {
						t.Fatalf("DropDisabledTemplateFields changed the template: the file probe must never be dropped")
					}
					var errs []string
					for _, e := range apivalidation.ValidatePodTemplateSpec(newTemplate, nil, GetValidationOptionsFromPodTemplate(newTemplate, oldTemplate)) {
						errs = append(errs, e.Error())
					}
					checkGateErrs(t, errs, tc.wantErr)
				})
			}
		}
	}
}

func checkGateErrs(t *testing.T, errs []string, wantErr bool) {
	t.Helper()
	if !wantErr {
		if len(errs) > 0 {
			t.Errorf("unexpected errors: %v", errs)
		}
		return
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "Probe.file: Forbidden: may not be set when the FileContainerProbe feature gate is disabled") {
		t.Errorf("want exactly one Forbidden error at .file naming the FileContainerProbe gate, got %v", errs)
	}
}
