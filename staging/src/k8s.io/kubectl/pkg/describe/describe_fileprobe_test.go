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

package describe

import (
	"regexp"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestDescribeFileProbe(t *testing.T) {
	probe := &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{File: &corev1.FileAction{Path: "/probe-volume/probe", Validity: 30}},
		InitialDelaySeconds: 5,
		TimeoutSeconds:      1,
		PeriodSeconds:       10,
		SuccessThreshold:    1,
		FailureThreshold:    3,
	}
	want := "file /probe-volume/probe validity=30s delay=5s timeout=1s period=10s successThreshold=1 failureThreshold=3"
	if got := DescribeProbe(probe); got != want {
		t.Errorf("DescribeProbe() = %q, want %q", got, want)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "file-probe", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:           "c",
			Image:          "busybox",
			ReadinessProbe: probe,
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{File: &corev1.FileAction{Path: "/probe-volume/a/b", Validity: 10}}, PeriodSeconds: 1},
		}}},
	}
	d := PodDescriber{fake.NewSimpleClientset(pod)}
	out, err := d.Describe("default", "file-probe", DescriberSettings{ShowEvents: false})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`\n\s+Readiness:\s+` + regexp.QuoteMeta(want) + `\n`,
		`\n\s+Liveness:\s+file /probe-volume/a/b validity=10s delay=0s timeout=0s period=1s successThreshold=0 failureThreshold=0\n`,
	} {
		if !regexp.MustCompile(line).MatchString(out) {
			t.Errorf("kubectl describe pod output does not match %q:\n%s", line, out)
		}
	}
}
