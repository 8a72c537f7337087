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

package validation

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	podtest "k8s.io/kubernetes/pkg/api/pod/testing"
	"k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/utils/ptr"
)

// fileProbe returns a probe with a file handler and upstream's defaults.
func fileProbe(path string, validity int32) *core.Probe {
	return &core.Probe{
		ProbeHandler:     core.ProbeHandler{File: &core.FileAction{Path: path, Validity: validity}},
		TimeoutSeconds:   1,
		PeriodSeconds:    10,
		SuccessThreshold: 1,
		FailureThreshold: 3,
	}
}

// fileProbePod is the design document's example: a container with a
// readiness and a liveness file probe on the emptyDir volume "probe-volume",
// plus a configMap volume "config" that file probes may not read.
func fileProbePod(tweak func(*core.Pod)) *core.Pod {
	pod := podtest.MakePod("file-probe",
		podtest.SetVolumes(
			core.Volume{Name: "probe-volume", VolumeSource: core.VolumeSource{EmptyDir: &core.EmptyDirVolumeSource{}}},
			core.Volume{Name: "memory", VolumeSource: core.VolumeSource{EmptyDir: &core.EmptyDirVolumeSource{Medium: core.StorageMediumMemory}}},
			core.Volume{Name: "config", VolumeSource: core.VolumeSource{ConfigMap: &core.ConfigMapVolumeSource{LocalObjectReference: core.LocalObjectReference{Name: "cm"}}}},
		),
	)
	pod.Spec.Containers[0].ReadinessProbe = fileProbe("/probe-volume/probe", 30)
	pod.Spec.Containers[0].LivenessProbe = fileProbe("/probe-volume/probe", 10)
	if tweak != nil {
		tweak(pod)
	}
	return pod
}

// fileProbePath returns a path of exactly n bytes in the volume "probe-volume",
// made of segments of at most segment bytes.
func fileProbePath(n, segment int) string {
	var b strings.Builder
	b.WriteString("/probe-volume")
	for b.Len() < n {
		b.WriteByte('/')
		b.WriteString(strings.Repeat("a", min(segment, n-b.Len())))
	}
	if b.Len() != n || strings.HasSuffix(b.String(), "/") {
		panic("fileProbePath: cannot make a path of that length")
	}
	return b.String()
}

var (
	readinessFile = field.NewPath("spec", "containers").Index(0).Child("readinessProbe", "file")
	livenessFile  = field.NewPath("spec", "containers").Index(0).Child("livenessProbe", "file")
)

// wantErr is one expected error: type, field and a part of its detail.
type wantErr struct {
	typ    field.ErrorType
	field  string
	detail string
}

func checkErrs(t *testing.T, errs field.ErrorList, want []wantErr) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs.ToAggregate())
	}
	for i, w := range want {
		e := errs[i]
		if e.Type != w.typ || e.Field != w.field || !strings.Contains(e.Detail, w.detail) {
			t.Errorf("error %d: got %s %s %q, want %s %s containing %q", i, e.Type, e.Field, e.Detail, w.typ, w.field, w.detail)
		}
	}
}

func TestValidateFileProbe(t *testing.T) {
	setReadiness := func(path string, validity int32) func(*core.Pod) {
		return func(pod *core.Pod) { pod.Spec.Containers[0].ReadinessProbe = fileProbe(path, validity) }
	}
	rp := readinessFile.String()
	cases := []struct {
		name  string
		tweak func(*core.Pod)
		want  []wantErr
	}{
		{name: "design document example", tweak: nil},
		{name: "nested file", tweak: setReadiness("/probe-volume/a/b/c/heartbeat", 1)},
		{name: "medium Memory emptyDir", tweak: setReadiness("/memory/probe", 86400)},
		{name: "startup probe", tweak: func(pod *core.Pod) { pod.Spec.Containers[0].StartupProbe = fileProbe("/probe-volume/started", 5) }},
		{name: "longest path: its kubelet path fills PATH_MAX", tweak: setReadiness(fileProbePath(4027, 255), 30)},
		{name: "longest file name (NAME_MAX)", tweak: setReadiness("/probe-volume/"+strings.Repeat("f", 255), 30)},
		{name: "longest directory name (NAME_MAX)", tweak: setReadiness("/probe-volume/"+strings.Repeat("d", 255)+"/probe", 30)},
		{
			name:  "path required",
			tweak: setReadiness("", 30),
			want:  []wantErr{{field.ErrorTypeRequired, rp + ".path", "/<emptyDir volume name>/<file in the volume>"}},
		},
		{
			name:  "relative path",
			tweak: setReadiness("probe-volume/probe", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "must be an absolute path"}},
		},
		{
			name:  "trailing slash",
			tweak: setReadiness("/probe-volume/probe/", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "must not end with '/'"}},
		},
		{
			name:  "empty segment",
			tweak: setReadiness("/probe-volume//probe", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "must not contain empty segments"}},
		},
		{
			name:  "dot segment",
			tweak: setReadiness("/probe-volume/./probe", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "must not contain '.' or '..' segments"}},
		},
		{
			name:  "dot-dot segment escaping the volume",
			tweak: setReadiness("/probe-volume/../config/key", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "must not contain '.' or '..' segments"}},
		},
		{
			name:  "only a volume",
			tweak: setReadiness("/probe-volume", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "must name a file inside an emptyDir volume"}},
		},
		{
			name:  "root",
			tweak: setReadiness("/", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "must not end with '/'"}},
		},
		{
			name:  "one byte too long for PATH_MAX behind the kubelet's prefix",
			tweak: setReadiness(fileProbePath(4028, 255), 30),
			want:  []wantErr{{field.ErrorTypeTooLong, rp + ".path", "may not be more than 4027 bytes (the node's PATH_MAX of 4096 bytes"}},
		},
		{
			name:  "PATH_MAX itself is too long",
			tweak: setReadiness(fileProbePath(4096, 255), 30),
			want:  []wantErr{{field.ErrorTypeTooLong, rp + ".path", "may not be more than 4027 bytes"}},
		},
		{
			name:  "file name one byte over NAME_MAX",
			tweak: setReadiness("/probe-volume/"+strings.Repeat("f", 256), 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", `segment 2 ("ffffffffffffffffffffffffffffffff"...) is 256 bytes long: each segment must be at most 255 bytes (NAME_MAX)`}},
		},
		{
			name:  "directory name one byte over NAME_MAX",
			tweak: setReadiness("/probe-volume/a/"+strings.Repeat("d", 256)+"/probe", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", `segment 3 ("dddddddddddddddddddddddddddddddd"...) is 256 bytes long`}},
		},
		{
			name:  "volume name over NAME_MAX",
			tweak: setReadiness("/"+strings.Repeat("v", 300)+"/probe", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "segment 1 (" + `"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"...) is 300 bytes long`}},
		},
		{
			name:  "NUL byte",
			tweak: setReadiness("/probe-volume/pro\x00be", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", "must not contain NUL bytes"}},
		},
		{
			name:  "unknown volume names the emptyDir volumes",
			tweak: setReadiness("/nope/probe", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", `there is no volume "nope" (emptyDir volumes: "memory", "probe-volume")`}},
		},
		{
			name:  "volume that is not an emptyDir",
			tweak: setReadiness("/config/key", 30),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".path", `volume "config" is not an emptyDir volume`}},
		},
		{
			name: "pod without emptyDir volumes",
			tweak: func(pod *core.Pod) {
				pod.Spec.Volumes = pod.Spec.Volumes[2:]
				pod.Spec.Containers[0].LivenessProbe = nil
			},
			want: []wantErr{{field.ErrorTypeInvalid, rp + ".path", "the pod has no emptyDir volumes"}},
		},
		{
			name:  "validity required",
			tweak: setReadiness("/probe-volume/probe", 0),
			want:  []wantErr{{field.ErrorTypeRequired, rp + ".validity", "must be between 1 and 86400, inclusive"}},
		},
		{
			name:  "negative validity",
			tweak: setReadiness("/probe-volume/probe", -1),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".validity", "must be between 1 and 86400, inclusive"}},
		},
		{
			name:  "validity above a day",
			tweak: setReadiness("/probe-volume/probe", 86401),
			want:  []wantErr{{field.ErrorTypeInvalid, rp + ".validity", "must be between 1 and 86400, inclusive"}},
		},
		{
			name:  "path and validity both wrong",
			tweak: setReadiness("/config/key", 0),
			want: []wantErr{
				{field.ErrorTypeInvalid, rp + ".path", "is not an emptyDir volume"},
				{field.ErrorTypeRequired, rp + ".validity", "between 1 and 86400"},
			},
		},
		{
			name: "more than one handler",
			tweak: func(pod *core.Pod) {
				pod.Spec.Containers[0].ReadinessProbe.Exec = &core.ExecAction{Command: []string{"true"}}
			},
			want: []wantErr{{field.ErrorTypeForbidden, rp, "may not specify more than 1 handler type"}},
		},
		{
			name: "probe fields keep upstream rules",
			tweak: func(pod *core.Pod) {
				pod.Spec.Containers[0].LivenessProbe.SuccessThreshold = 2
			},
			want: []wantErr{{field.ErrorTypeInvalid, "spec.containers[0].livenessProbe.successThreshold", "must be 1"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidatePodCreate(fileProbePod(tc.tweak), PodValidationOptions{AllowFileProbe: true})
			checkErrs(t, errs, tc.want)
		})
	}
}

func TestValidateFileProbeContainerKinds(t *testing.T) {
	sidecar := func(pod *core.Pod) {
		c := podtest.MakeContainer("sidecar")
		c.RestartPolicy = ptr.To(core.ContainerRestartPolicyAlways)
		c.ReadinessProbe = fileProbe("/probe-volume/sidecar", 5)
		c.StartupProbe = fileProbe("/nope/sidecar", 5)
		pod.Spec.InitContainers = []core.Container{c}
	}
	initContainer := func(pod *core.Pod) {
		c := podtest.MakeContainer("init")
		c.ReadinessProbe = fileProbe("/probe-volume/init", 5)
		pod.Spec.InitContainers = []core.Container{c}
	}
	cases := []struct {
		name  string
		tweak func(*core.Pod)
		want  []wantErr
	}{
		{
			name:  "restartable init container (sidecar)",
			tweak: sidecar,
			want:  []wantErr{{field.ErrorTypeInvalid, "spec.initContainers[0].startupProbe.file.path", `there is no volume "nope"`}},
		},
		{
			name:  "init container: probes stay forbidden as upstream",
			tweak: initContainer,
			want:  []wantErr{{field.ErrorTypeForbidden, "spec.initContainers[0].readinessProbe", "may not be set for init containers without restartPolicy=Always"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidatePodCreate(fileProbePod(tc.tweak), PodValidationOptions{AllowFileProbe: true})
			checkErrs(t, errs, tc.want)
		})
	}

	t.Run("ephemeral container: probes stay forbidden as upstream", func(t *testing.T) {
		old := fileProbePod(nil)
		old.ResourceVersion = "1"
		pod := old.DeepCopy()
		ec := core.EphemeralContainer{EphemeralContainerCommon: core.EphemeralContainerCommon(podtest.MakeContainer("debug"))}
		ec.ReadinessProbe = fileProbe("/probe-volume/probe", 5)
		pod.Spec.EphemeralContainers = []core.EphemeralContainer{ec}
		errs := ValidatePodEphemeralContainersUpdate(pod, old, PodValidationOptions{AllowFileProbe: true})
		checkErrs(t, errs, []wantErr{{field.ErrorTypeForbidden, "spec.ephemeralContainers[0].readinessProbe", "cannot be set for an Ephemeral Container"}})
	})
}

func TestValidateFileProbeOS(t *testing.T) {
	withOS := func(name core.OSName, tweak func(*core.Pod)) func(*core.Pod) {
		return func(pod *core.Pod) {
			pod.Spec.OS = &core.PodOS{Name: name}
			if tweak != nil {
				tweak(pod)
			}
		}
	}
	sidecar := func(pod *core.Pod) {
		c := podtest.MakeContainer("sidecar")
		c.RestartPolicy = ptr.To(core.ContainerRestartPolicyAlways)
		c.StartupProbe = fileProbe("/probe-volume/sidecar", 5)
		pod.Spec.InitContainers = []core.Container{c}
	}
	const windows = "cannot be set for a windows pod"
	cases := []struct {
		name      string
		tweak     func(*core.Pod)
		allowFile bool
		want      []wantErr
	}{
		{name: "no spec.os", tweak: nil, allowFile: true},
		{name: "linux pod", tweak: withOS(core.Linux, nil), allowFile: true},
		{
			name:      "windows pod: every file probe is forbidden",
			tweak:     withOS(core.Windows, nil),
			allowFile: true,
			want: []wantErr{
				{field.ErrorTypeForbidden, livenessFile.String(), windows},
				{field.ErrorTypeForbidden, readinessFile.String(), windows},
			},
		},
		{
			name: "windows pod: the path is not checked any further",
			tweak: withOS(core.Windows, func(pod *core.Pod) {
				pod.Spec.Containers[0].ReadinessProbe = fileProbe("/config/key", 0)
				pod.Spec.Containers[0].LivenessProbe = nil
			}),
			allowFile: true,
			want:      []wantErr{{field.ErrorTypeForbidden, readinessFile.String(), windows}},
		},
		{
			name:      "windows pod: restartable init container",
			tweak:     withOS(core.Windows, sidecar),
			allowFile: true,
			want: []wantErr{
				{field.ErrorTypeForbidden, livenessFile.String(), windows},
				{field.ErrorTypeForbidden, readinessFile.String(), windows},
				{field.ErrorTypeForbidden, "spec.initContainers[0].startupProbe.file", windows},
			},
		},
		{
			name: "windows pod: other handlers stay allowed",
			tweak: withOS(core.Windows, func(pod *core.Pod) {
				pod.Spec.Containers[0].ReadinessProbe.File = nil
				pod.Spec.Containers[0].ReadinessProbe.Exec = &core.ExecAction{Command: []string{"cmd", "/c", "exit 0"}}
			}),
			allowFile: true,
			want:      []wantErr{{field.ErrorTypeForbidden, livenessFile.String(), windows}},
		},
		{
			name:      "windows pod with the gate off: the gate is reported",
			tweak:     withOS(core.Windows, nil),
			allowFile: false,
			want: []wantErr{
				{field.ErrorTypeForbidden, livenessFile.String(), "FileContainerProbe feature gate"},
				{field.ErrorTypeForbidden, readinessFile.String(), "FileContainerProbe feature gate"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidatePodCreate(fileProbePod(tc.tweak), PodValidationOptions{AllowFileProbe: tc.allowFile})
			checkErrs(t, errs, tc.want)
		})
	}

	t.Run("windows pod template", func(t *testing.T) {
		pod := fileProbePod(withOS(core.Windows, nil))
		template := &core.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}
		template.Labels = map[string]string{"app": "x"}
		errs := ValidatePodTemplateSpec(template, field.NewPath("spec", "template"), PodValidationOptions{AllowFileProbe: true})
		checkErrs(t, errs, []wantErr{
			{field.ErrorTypeForbidden, "spec.template.spec.containers[0].livenessProbe.file", windows},
			{field.ErrorTypeForbidden, "spec.template.spec.containers[0].readinessProbe.file", windows},
		})
	})
}

func TestValidateFileProbeGateOff(t *testing.T) {
	errs := ValidatePodCreate(fileProbePod(nil), PodValidationOptions{AllowFileProbe: false})
	checkErrs(t, errs, []wantErr{
		{field.ErrorTypeForbidden, livenessFile.String(), "FileContainerProbe feature gate"},
		{field.ErrorTypeForbidden, readinessFile.String(), "FileContainerProbe feature gate"},
	})

	template := &core.PodTemplateSpec{ObjectMeta: fileProbePod(nil).ObjectMeta, Spec: fileProbePod(nil).Spec}
	template.Labels = map[string]string{"app": "x"}
	errs = ValidatePodTemplateSpec(template, field.NewPath("spec", "template"), PodValidationOptions{AllowFileProbe: false})
	checkErrs(t, errs, []wantErr{
		{field.ErrorTypeForbidden, "spec.template.spec.containers[0].livenessProbe.file", "FileContainerProbe feature gate"},
		{field.ErrorTypeForbidden, "spec.template.spec.containers[0].readinessProbe.file", "FileContainerProbe feature gate"},
	})
}
