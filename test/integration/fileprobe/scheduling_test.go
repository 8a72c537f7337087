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

package fileprobe

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	"k8s.io/kubernetes/pkg/features"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	testutils "k8s.io/kubernetes/test/integration/util"
)

// TestFileProbeScheduling runs our kube-scheduler (in process) against our
// apiserver: a pod with a file probe only lands on a node whose kubelet
// declares the FileContainerProbe node feature, and stays Pending with the
// scheduler's reason otherwise.
func TestFileProbeScheduling(t *testing.T) {
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.FileContainerProbe, true)

	capable := st.MakeNode().Name("capable").DeclaredFeatures([]string{"FileContainerProbe"}).Obj()
	incapable := st.MakeNode().Name("incapable").Obj()
	incapable.Status.DeclaredFeatures = []string{}

	filePod := func() *v1.Pod { return designPod("file-probed") }
	execPod := func() *v1.Pod {
		pod := designPod("exec-probed")
		for _, p := range []*v1.Probe{pod.Spec.Containers[0].ReadinessProbe, pod.Spec.Containers[0].LivenessProbe} {
			p.ProbeHandler = v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}
		}
		return pod
	}

	for _, tc := range []struct {
		name     string
		pod      *v1.Pod
		nodes    []*v1.Node
		wantNode string // "": unschedulable
	}{
		{"file probe, only a node without the feature", filePod(), []*v1.Node{incapable}, ""},
		{"file probe, one capable node", filePod(), []*v1.Node{incapable, capable}, "capable"},
		{"exec probe, node without the feature", execPod(), []*v1.Node{incapable}, "incapable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testCtx := testutils.InitTestSchedulerWithNS(t, "file-probe-scheduling")
			cs, ns := testCtx.ClientSet, testCtx.NS.Name
			for _, node := range tc.nodes {
				if _, err := testutils.CreateNode(cs, node.DeepCopy()); err != nil {
					t.Fatal(err)
				}
			}
			if err := testutils.WaitForNodesInCache(testCtx.Ctx, testCtx.Scheduler, len(tc.nodes)); err != nil {
				t.Fatal(err)
			}
			pod := tc.pod.DeepCopy()
			pod.Namespace = ns
			if _, err := cs.CoreV1().Pods(ns).Create(testCtx.Ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.wantNode != "" {
				if err := wait.PollUntilContextTimeout(testCtx.Ctx, 100*time.Millisecond, wait.ForeverTestTimeout, false,
					testutils.PodScheduledIn(cs, ns, pod.Name, []string{tc.wantNode})); err != nil {
					t.Fatalf("pod not scheduled on %s: %v", tc.wantNode, err)
				}
				return
			}
			const reason = "node(s) didn't match Pod's required features"
			var message string
			err := wait.PollUntilContextTimeout(testCtx.Ctx, 100*time.Millisecond, wait.ForeverTestTimeout, false,
				func(ctx context.Context) (bool, error) {
					got, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
					if err != nil {
						return false, err
					}
					for _, c := range got.Status.Conditions {
						if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
							message = c.Message
							return got.Spec.NodeName == "" && strings.Contains(message, reason), nil
						}
					}
					return false, nil
				})
			if err != nil {
				t.Fatalf("want the pod Unschedulable with %q, last message %q: %v", reason, message, err)
			}
		})
	}
}
