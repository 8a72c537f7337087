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

package e2eskew

// Upstream binaries beside ours: an upstream kubelet given a file-probed pod
// directly, an upstream kube-scheduler and kube-controller-manager in front
// of our apiserver, and the rolling upgrade (and roll-back) of
// docs/version-skew.md. What each case asserts is what that document says.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// restart restarts one component of the running stack (hack/local-up-node.sh
// restart COMPONENT [NODE]) with env added to the suite's environment, and
// says how long it took.
func restart(component, node string, env ...string) (time.Duration, error) {
	start := time.Now()
	args := []string{"restart", component}
	if node != "" {
		args = append(args, node)
	}
	cmd := exec.Command(filepath.Join(cluster.root, "hack", "local-up-node.sh"), args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("restart %s (%v): %v\n%s", strings.Join(args[1:], " "), env, err, out)
	}
	return time.Since(start).Round(time.Millisecond), nil
}

// controlPlane restarts a control-plane component as upstream's or ours; the
// apiserver (ours) with the FileContainerProbe gate as gate says.
func controlPlane(t *testing.T, component string, upstream, gate bool) {
	t.Helper()
	env := controlPlaneEnv(component, upstream, gate)
	took, err := restart(component, "", env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted %s (%s) in %v", component, strings.Join(env, " "), took)
}

func controlPlaneEnv(component string, upstream, gate bool) []string {
	env := []string{"FP_UPSTREAM_COMPONENTS=", fmt.Sprintf("APISERVER_FILEPROBE_GATE=%v", gate)}
	if upstream {
		env[0] = "FP_UPSTREAM_COMPONENTS=" + component
	}
	return env
}

var controlPlaneComponents = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// kubelets restarts the kubelet of every node named in kinds (node -> kind),
// in parallel, and waits until each declares FileContainerProbe exactly when
// it runs file probes.
func kubelets(t *testing.T, kinds map[string]string) {
	t.Helper()
	for _, line := range switchKubelets(t, kinds) {
		t.Log(line)
	}
}

// switchKubelets is kubelets, returning what it would log.
func switchKubelets(t *testing.T, kinds map[string]string) []string {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		lines []string
	)
	errs := make(chan error, len(kinds))
	for name, kind := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := switchKubelet(name, kind)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			lines = append(lines, fmt.Sprintf("restarted the kubelet of %s as %s in %v", name, kind, took))
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	for name, kind := range kinds {
		waitDeclared(t, name, node{name: name, kind: kind}.capable())
	}
	sort.Strings(lines)
	return lines
}

// restoreCluster puts the stack back as the suite found it: our control plane
// (apiserver gate on), each node's kubelet as FP_NODE_KUBELETS says, every
// node uncordoned. It logs one line: it runs when a case ends, after the
// case's errors, and what it logs would push them out of the tail of CI's
// log.
func restoreCluster(t *testing.T) {
	t.Helper()
	start := time.Now()
	for _, c := range controlPlaneComponents {
		if _, err := restart(c, "", controlPlaneEnv(c, false, true)...); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[string]string{}
	for _, n := range cluster.nodes {
		kinds[n.name] = n.kind
	}
	switchKubelets(t, kinds)
	for _, n := range cluster.nodes {
		if out, err := runKubectl("uncordon", n.name); err != nil {
			t.Errorf("uncordon %s: %v\n%s", n.name, err, out)
		}
	}
	t.Logf("put the cluster back (our control plane, kubelets %v) in %v", os.Getenv("FP_NODE_KUBELETS"), time.Since(start).Round(time.Millisecond))
}

// kubectl runs our kubectl against the cluster and fails the test if it fails.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runKubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runKubectl runs our kubectl against the cluster and returns its output
// (stdout and stderr).
func runKubectl(args ...string) ([]byte, error) {
	return exec.Command(filepath.Join(cluster.root, "_output", "bin", "kubectl"),
		append([]string{"--kubeconfig", cluster.kubeconfig}, args...)...).CombinedOutput()
}

// nodeOfKind returns a node whose kubelet is kind.
func nodeOfKind(t *testing.T, kind string) string {
	t.Helper()
	for _, n := range cluster.nodes {
		if n.kind == kind {
			return n.name
		}
	}
	t.Fatalf("the cluster has no node with the %s kubelet (FP_NODE_KUBELETS=%q)", kind, os.Getenv("FP_NODE_KUBELETS"))
	return ""
}

// waitEvent waits until object name of ns has an event of reason whose
// message contains want, and returns that message.
func waitEvent(t *testing.T, ns, name, reason, want string, timeout time.Duration) string {
	t.Helper()
	var seen []string
	var found string
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		events, err := cluster.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": name, "reason": reason}.AsSelector().String(),
		})
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, e := range events.Items {
			seen = append(seen, e.Message)
			if strings.Contains(e.Message, want) {
				found = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s event on %s/%s saying %q within %v; seen: %q", reason, ns, name, want, timeout, seen)
	}
	return found
}

// hasFileProbe says whether every probe of spec's first container is a file probe.
func hasFileProbe(spec *v1.PodSpec, probes ...func(*v1.Container) *v1.Probe) bool {
	for _, p := range probes {
		probe := p(&spec.Containers[0])
		if probe == nil || probe.File == nil {
			return false
		}
	}
	return true
}

func readiness(c *v1.Container) *v1.Probe { return c.ReadinessProbe }
func liveness(c *v1.Container) *v1.Probe  { return c.LivenessProbe }
func startup(c *v1.Container) *v1.Probe   { return c.StartupProbe }

// fileProbe is a file probe on the file fileProbed's container refreshes.
func fileProbe() *v1.Probe {
	return &v1.Probe{
		ProbeHandler:     v1.ProbeHandler{File: &v1.FileAction{Path: "/" + probeVolume + "/probe", Validity: 5}},
		PeriodSeconds:    1,
		FailureThreshold: 1,
	}
}

// testUpstreamKubeletBoundPod binds file-probed pods straight to the node of
// the upstream kubelet (spec.nodeName: no scheduler) and to that of our
// kubelet with the gate off. Upstream's decodes the pod without `file`: the
// probes have no handler, every run errors ("missing probe handler") and its
// result is thrown away, so the pod runs but is never Ready (never started,
// with a startup probe), and is never restarted. Ours with the gate off
// rejects the pod at admission.
func testUpstreamKubeletBoundPod(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	upstream := nodeOfKind(t, "upstream")
	gateOff := nodeOfKind(t, "ours-gate-off")

	probed := fileProbed(map[string]string{"app": "bound"}, 0)
	probed.Containers[0].LivenessProbe = fileProbe()
	started := fileProbed(map[string]string{"app": "bound"}, 0)
	started.Containers[0].ReadinessProbe = nil
	started.Containers[0].StartupProbe = fileProbe()
	pods := []struct {
		name, node string
		spec       v1.PodSpec
	}{
		{"readiness-liveness", upstream, probed},
		{"startup", upstream, started},
		{"gate-off", gateOff, probed},
	}
	for _, p := range pods {
		spec := *p.spec.DeepCopy()
		spec.NodeName = p.node
		spec.TopologySpreadConstraints = nil
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name}, Spec: spec}
		if _, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.name, err)
		}
	}

	// Our kubelet with the gate off: rejected at admission.
	rejected := waitPod(t, ns, "gate-off", "Failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if rejected.Status.Reason != "PodFeatureUnsupported" {
		t.Errorf("our kubelet with the gate off failed the bound pod with reason %q (%s), want PodFeatureUnsupported",
			rejected.Status.Reason, rejected.Status.Message)
	}
	t.Logf("our kubelet, gate off: %s: %s", rejected.Status.Reason, rejected.Status.Message)

	// The upstream kubelet: running, probes erroring.
	for _, p := range []struct{ pod, probe string }{{"readiness-liveness", "Readiness"}, {"readiness-liveness", "Liveness"}, {"startup", "Startup"}} {
		msg := waitEvent(t, ns, p.pod, "Unhealthy", p.probe+" probe errored", podTimeout)
		if !strings.Contains(msg, "missing probe handler") {
			t.Errorf("%s: Unhealthy event %q, want it to say the probe has no handler", p.pod, msg)
		}
		t.Logf("upstream kubelet, %s: %s", p.pod, msg)
	}
	// For a while (the probes run every second, failureThreshold 1): never
	// Ready, never started, never restarted.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range []string{"readiness-liveness", "startup"} {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Status.Phase != v1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
				t.Fatalf("pod %s on the upstream kubelet is %s (%s), want Running", name, p.Status.Phase, p.Status.Reason)
			}
			s := p.Status.ContainerStatuses[0]
			if podReady(p) || s.Ready || s.RestartCount != 0 || (name == "startup" && ptr.Deref(s.Started, false)) {
				t.Fatalf("pod %s on the upstream kubelet: Ready %v, container ready %v, started %v, restarts %d; want none",
					name, podReady(p), s.Ready, ptr.Deref(s.Started, false), s.RestartCount)
			}
		}
		time.Sleep(time.Second)
	}
}

// waitPod waits until pod name of ns satisfies cond and returns it.
func waitPod(t *testing.T, ns, name, what string, cond func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	var last *v1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s not %s within %v: %v; last status %+v", name, what, podTimeout, err, last.Status)
	}
	return last
}

// testUpstreamScheduler runs upstream's kube-scheduler in front of our
// apiserver: it decodes pods without `file`, so it infers no required
// feature and binds file-probed pods to any node. A pod for each node (its
// nodeSelector names it) is bound there: Ready on ours with the gate on,
// rejected by ours with the gate off, never Ready on the upstream kubelet.
// The pods keep their file probes (the scheduler only binds).
func testUpstreamScheduler(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	t.Cleanup(func() { controlPlane(t, "kube-scheduler", false, true) })
	controlPlane(t, "kube-scheduler", true, true)

	// One pod per node, each asking for its node by name: our scheduler
	// would keep those for nodes without the feature Pending.
	for _, n := range cluster.nodes {
		labels := map[string]string{"app": "upstream-scheduled"}
		spec := fileProbed(labels, 0)
		spec.TopologySpreadConstraints = nil
		spec.NodeSelector = map[string]string{hostnameLabel: n.name}
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "on-" + n.name, Labels: labels}, Spec: spec}
		if _, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
	}
	var pods *v1.PodList
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		var err error
		if pods, err = cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
			return false, nil
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" {
				return false, nil
			}
		}
		return len(pods.Items) == len(cluster.nodes), nil
	})
	if err != nil {
		t.Fatalf("upstream's scheduler did not bind every pod within %v: %v", podTimeout, err)
	}
	byNode := map[string]string{}
	for _, p := range pods.Items {
		byNode[p.Spec.NodeName] = p.Name
		if !hasFileProbe(&p.Spec, readiness) {
			t.Errorf("pod %s lost its file probe: %+v", p.Name, p.Spec.Containers[0].ReadinessProbe)
		}
	}
	t.Logf("upstream's scheduler bound the file-probed pods: %v", byNode)
	for _, n := range cluster.nodes {
		name, ok := byNode[n.name]
		if !ok {
			t.Errorf("no pod on node %s (%s kubelet): upstream's scheduler kept it away", n.name, n.kind)
			continue
		}
		switch {
		case n.capable():
			waitPod(t, ns, name, "Ready", podReady)
		case n.kind == "upstream":
			msg := waitEvent(t, ns, name, "Unhealthy", "Readiness probe errored", podTimeout)
			if p := waitPod(t, ns, name, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }); podReady(p) {
				t.Errorf("pod %s on the upstream kubelet is Ready", name)
			}
			t.Logf("on %s (upstream kubelet): %s", n.name, msg)
		default:
			p := waitPod(t, ns, name, "Failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
			if p.Status.Reason != "PodFeatureUnsupported" {
				t.Errorf("pod %s on %s (%s kubelet): reason %q, want PodFeatureUnsupported", name, n.name, n.kind, p.Status.Reason)
			}
			t.Logf("on %s (%s kubelet): %s: %s", n.name, n.kind, p.Status.Reason, p.Status.Message)
		}
	}
}

// testUpstreamControllerManager runs upstream's kube-controller-manager in
// front of our apiserver: it decodes templates without `file` and creates
// ReplicaSets and Pods whose probe has no handler, which the apiserver
// rejects; the Deployment and the Job keep their file probes, and once our
// controller-manager is back they roll out. A Deployment without file probes
// is unaffected.
func testUpstreamControllerManager(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	upstream := true
	t.Cleanup(func() {
		if upstream {
			controlPlane(t, "kube-controller-manager", false, true)
		}
	})
	controlPlane(t, "kube-controller-manager", true, true)

	fileLabels := map[string]string{"app": "file-probed"}
	deployment(t, ns, "file-probed", fileLabels, 2, fileProbed(fileLabels, 0))
	plainLabels := map[string]string{"app": "plain"}
	deployment(t, ns, "plain", plainLabels, 2, plainSpec(plainLabels, "trap 'exit 0' TERM; while true; do sleep 1; done", v1.ScheduleAnyway))
	jobLabels := map[string]string{"app": "file-probed-job"}
	jobSpec := fileProbed(jobLabels, 3)
	jobSpec.RestartPolicy = v1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "file-probed"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template:     v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: jobLabels}, Spec: jobSpec},
		},
	}
	if _, err := cluster.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create job: %v", err)
	}

	const rejected = "must specify a handler type"
	t.Logf("Deployment: %s", waitEvent(t, ns, "file-probed", "ReplicaSetCreateError", rejected, podTimeout))
	t.Logf("Job: %s", waitEvent(t, ns, "file-probed", "FailedCreate", rejected, podTimeout))
	waitPods(t, ns, "app=plain", 2)
	rss, err := cluster.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=file-probed"})
	if err != nil || len(rss.Items) != 0 {
		t.Fatalf("ReplicaSets of the file-probed Deployment: %v (%v), want none", rss, err)
	}
	if pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app in (file-probed, file-probed-job)"}); err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods of the file-probed Deployment and Job: %d (%v), want none", len(pods.Items), err)
	}
	// Nothing lost: the objects still have their file probes.
	d, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "file-probed", metav1.GetOptions{})
	if err != nil || !hasFileProbe(&d.Spec.Template.Spec, readiness) {
		t.Fatalf("the Deployment lost its file probe (%v): %+v", err, d.Spec.Template.Spec.Containers[0].ReadinessProbe)
	}
	j, err := cluster.client.BatchV1().Jobs(ns).Get(ctx, "file-probed", metav1.GetOptions{})
	if err != nil || !hasFileProbe(&j.Spec.Template.Spec, readiness) {
		t.Fatalf("the Job lost its file probe (%v): %+v", err, j.Spec.Template.Spec.Containers[0].ReadinessProbe)
	}

	// Our controller-manager again: both roll out.
	controlPlane(t, "kube-controller-manager", false, true)
	upstream = false
	waitPods(t, ns, "app=file-probed", 2)
	onlyOn(t, "pods of the file-probed Deployment", podsOn(t, ns, "app=file-probed", 2, true), capableNodes())
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		j, err = cluster.client.BatchV1().Jobs(ns).Get(ctx, "file-probed", metav1.GetOptions{})
		return err == nil && (j.Status.Succeeded == 1 || j.Status.Failed > 0), nil
	})
	if err != nil || j.Status.Succeeded != 1 {
		t.Fatalf("the Job did not complete under our controller-manager: %v; status %+v", err, j.Status)
	}
}

// waitNamespacesGone waits until only the cluster's own namespaces are left
// (the earlier cases' are deleted when they end), so that no object with a
// file probe is left when an upstream apiserver serves.
func waitNamespacesGone(t *testing.T, keep ...string) {
	t.Helper()
	var left []string
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cluster.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		left = left[:0]
		for _, n := range list.Items {
			if !slices.Contains([]string{"default", "kube-system", "kube-public", "kube-node-lease"}, n.Name) && !slices.Contains(keep, n.Name) {
				left = append(left, n.Name)
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("namespaces of earlier cases still there: %v: %v", left, err)
	}
}

// rollout waits until Deployment name of ns has rolled out (the newest
// generation observed, every replica updated, Ready and available, no old
// pod left, not even terminating) and checks that no pod of it was ever
// restarted (noRestarts); the test ends there if anything went wrong.
func rollout(t *testing.T, ns, name, step string) {
	t.Helper()
	start := time.Now()
	ctx := context.Background()
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		var err error
		if d, err = cluster.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		want := ptr.Deref(d.Spec.Replicas, 1)
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != want || s.AvailableReplicas != want ||
			s.ReadyReplicas != want || s.Replicas != want {
			return false, nil
		}
		// and the old pods are gone (the status does not count terminating ones)
		pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
			LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
		if err != nil || len(pods.Items) != int(want) {
			return false, nil
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || !podReady(&p) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s: Deployment %s not rolled out within %v: %v; status %+v", step, name, podTimeout, err, d.Status)
	}
	noRestarts(t, ns, step)
	if t.Failed() {
		// Stop at the step that went wrong: the next steps would start
		// from a state no operator would go on from, and their logs would
		// bury this step's errors.
		t.FailNow()
	}
	t.Logf("%s: Deployment %s rolled out, %d Ready, in %v", step, name, d.Status.ReadyReplicas, time.Since(start).Round(time.Millisecond))
}

// noRestarts fails the test if any container of ns was restarted, killed
// for a failed liveness probe, or had a liveness probe fail or error while
// its pod runs. A liveness probe of a pod being deleted (drained, or replaced
// by a rollout) may fail or error as its container stops: an exec probe
// started just before the container got SIGTERM ends with the container
// (exit code 137, or "no running task found"). Upstream's kubelet acts on
// none of these (it stops the liveness probe of a terminating pod); they are
// logged, not counted.
func noRestarts(t *testing.T, ns, step string) {
	t.Helper()
	ctx := context.Background()
	pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{} // pod UID -> running, not being deleted
	for _, p := range pods.Items {
		running[string(p.UID)] = p.DeletionTimestamp == nil
		for _, s := range p.Status.ContainerStatuses {
			if s.RestartCount != 0 {
				t.Errorf("%s: container %s of pod %s (node %s) restarted %d times", step, s.Name, p.Name, p.Spec.NodeName, s.RestartCount)
			}
		}
	}
	events, err := cluster.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		switch {
		case e.Reason == "Killing" && strings.Contains(e.Message, "probe"):
			t.Errorf("%s: %s %s: %s", step, e.Reason, e.InvolvedObject.Name, e.Message)
		case e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Liveness"):
			if running[string(e.InvolvedObject.UID)] {
				t.Errorf("%s: %s %s (running): %s", step, e.Reason, e.InvolvedObject.Name, e.Message)
			} else if !loggedEvents[e.UID] {
				loggedEvents[e.UID] = true
				t.Logf("%s: %s %s (deleted since, or being deleted): %s", step, e.Reason, e.InvolvedObject.Name, e.Message)
			}
		}
	}
}

// loggedEvents are the events noRestarts has logged, lest every later step
// log them again.
var loggedEvents = map[types.UID]bool{}

// drainTo drains node, restarts its kubelet as kind, uncordons it, and waits
// for Deployment name of ns to be whole again.
func drainTo(t *testing.T, ns, name, node, kind string) {
	t.Helper()
	step := fmt.Sprintf("node %s to the %s kubelet", node, kind)
	kubectl(t, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=2m")
	kubelets(t, map[string]string{node: kind})
	kubectl(t, "uncordon", node)
	rollout(t, ns, name, step)
}

// updateDeployment gets Deployment name of ns, changes it and updates it,
// again from a fresh copy when the controllers updated it in between.
func updateDeployment(ns, name string, change func(*appsv1.Deployment)) error {
	ctx := context.Background()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = cluster.client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
}

// setProbes makes the Deployment's readiness and liveness probes file probes
// (file) or exec probes on the same heartbeat, and waits for the rollout.
func setProbes(t *testing.T, ns, name string, file bool, step string) {
	t.Helper()
	ctx := context.Background()
	if err := updateDeployment(ns, name, func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		c.ReadinessProbe, c.LivenessProbe = heartbeatProbes(file)
	}); err != nil {
		t.Fatalf("%s: update the Deployment's probes: %v", step, err)
	}
	rollout(t, ns, name, step)
	pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if hasFileProbe(&p.Spec, readiness, liveness) != file {
			t.Errorf("%s: pod %s has file probes: %v, want %v", step, p.Name, !file, file)
		}
	}
}

// heartbeatProbes are readiness and liveness probes on the file the
// container touches every second: file probes, or exec probes that check
// the same (busybox find -mmin cannot do seconds: test that it exists).
func heartbeatProbes(file bool) (readinessProbe, livenessProbe *v1.Probe) {
	if file {
		l := fileProbe()
		l.FailureThreshold = 3
		return fileProbe(), l
	}
	exec := func(threshold int32) *v1.Probe {
		return &v1.Probe{
			ProbeHandler:     v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"test", "-f", probeDir + "/probe"}}},
			PeriodSeconds:    2,
			TimeoutSeconds:   5,
			FailureThreshold: threshold,
		}
	}
	return exec(1), exec(3)
}

// testRollingUpgrade plays docs/version-skew.md's rolling upgrade on a
// running Deployment, then its roll-back, and checks the Deployment after
// every step: all replicas Ready, no container restarted, no liveness
// failure.
//
// Upgrade: an all-upstream cluster; our control plane, the apiserver's gate
// off; each node drained, its kubelet switched to ours (gate on),
// uncordoned; the apiserver's gate on; the Deployment's probes switched to
// file probes: it rolls out on the upgraded nodes. Roll-back, in reverse:
// the Deployment's probes back to exec; the apiserver's gate off; each node
// drained, switched to the upstream kubelet, uncordoned; the upstream
// control plane.
func testRollingUpgrade(t *testing.T) {
	waitNamespacesGone(t)
	ns := namespace(t)
	t.Cleanup(func() { restoreCluster(t) })

	// An all-upstream cluster.
	for _, c := range controlPlaneComponents {
		controlPlane(t, c, true, false)
	}
	all := func(kind string) map[string]string {
		kinds := map[string]string{}
		for _, n := range cluster.nodes {
			kinds[n.name] = kind
		}
		return kinds
	}
	kubelets(t, all("upstream"))
	labels := map[string]string{"app": "web"}
	spec := plainSpec(labels, fmt.Sprintf("trap 'exit 0' TERM; while true; do touch %s/probe; sleep 1; done", probeDir), v1.ScheduleAnyway)
	c := &spec.Containers[0]
	c.ReadinessProbe, c.LivenessProbe = heartbeatProbes(false)
	replicas := int32(len(cluster.nodes))
	deployment(t, ns, "web", labels, replicas, spec)
	rollout(t, ns, "web", "all upstream")

	// Upgrade.
	for _, comp := range controlPlaneComponents {
		controlPlane(t, comp, false, false)
		rollout(t, ns, "web", "our "+comp+", apiserver gate off")
	}
	for _, n := range cluster.nodes {
		drainTo(t, ns, "web", n.name, "ours-gate-on")
	}
	controlPlane(t, "kube-apiserver", false, true)
	rollout(t, ns, "web", "apiserver gate on")
	setProbes(t, ns, "web", true, "file probes")
	t.Logf("file-probed pods per node: %v", podsOn(t, ns, "app=web", int(replicas), true))

	// Roll-back.
	setProbes(t, ns, "web", false, "exec probes again")
	controlPlane(t, "kube-apiserver", false, false)
	rollout(t, ns, "web", "apiserver gate off")
	for _, n := range cluster.nodes {
		drainTo(t, ns, "web", n.name, "upstream")
	}
	for _, comp := range slices.Backward(controlPlaneComponents) {
		controlPlane(t, comp, true, false)
		rollout(t, ns, "web", "upstream "+comp)
	}
}

// testUpstreamAPIServer runs upstream's kube-apiserver over objects that have
// file probes, to show why docs/version-skew.md says never to: it decodes
// them without `file`, so it serves probes without a handler, rejects every
// update of a Deployment (its template no longer validates), and writes the
// loss back to etcd with the first status update of a pod; our apiserver,
// back, reads the pod without its file probe.
func testUpstreamAPIServer(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	upstream := true
	t.Cleanup(func() {
		if upstream {
			controlPlane(t, "kube-apiserver", false, true)
		}
	})
	labels := map[string]string{"app": "file-probed"}
	deployment(t, ns, "file-probed", labels, 1, fileProbed(labels, 0))
	// The pod's heartbeat stops when /probe-dir/stop appears.
	spec := fileProbed(map[string]string{"app": "pod"}, 0)
	spec.Containers[0].Command = []string{"/bin/sh", "-c",
		fmt.Sprintf("trap 'exit 0' TERM; while [ ! -e %[1]s/stop ]; do touch %[1]s/probe; sleep 1; done; while true; do sleep 1; done", probeDir)}
	if _, err := cluster.client.CoreV1().Pods(ns).Create(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod"}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	waitPods(t, ns, "app=file-probed", 1)
	waitPod(t, ns, "pod", "Ready", podReady)

	controlPlane(t, "kube-apiserver", true, true)
	d, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "file-probed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Spec.Template.Spec.Containers[0].ReadinessProbe; p == nil || p.File != nil || p.Exec != nil || p.HTTPGet != nil || p.TCPSocket != nil || p.GRPC != nil {
		t.Errorf("upstream's apiserver serves the Deployment's readiness probe as %+v, want one without a handler", p)
	}
	err = updateDeployment(ns, "file-probed", func(d *appsv1.Deployment) { d.Labels = map[string]string{"touched": "yes"} })
	if err == nil || !strings.Contains(err.Error(), "must specify a handler type") {
		t.Errorf("upstream's apiserver, updating the Deployment's labels: %v, want the template rejected (must specify a handler type)", err)
	} else {
		t.Logf("upstream's apiserver, updating the Deployment's labels: %v", err)
	}
	// The heartbeat stops: the kubelet (ours, still probing the file) marks
	// the pod not Ready, a status update upstream's apiserver writes whole.
	kubectl(t, "exec", "-n", ns, "pod", "--", "touch", probeDir+"/stop")
	waitPod(t, ns, "pod", "not Ready", func(p *v1.Pod) bool { return !podReady(p) })

	controlPlane(t, "kube-apiserver", false, true)
	upstream = false
	p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "pod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hasFileProbe(&p.Spec, readiness) {
		t.Errorf("the pod kept its file probe through upstream's apiserver's status update; docs/version-skew.md says it is lost")
	}
	t.Logf("our apiserver again: the pod's readiness probe is %+v (its file probe lost)", p.Spec.Containers[0].ReadinessProbe)
	d, err = cluster.client.AppsV1().Deployments(ns).Get(ctx, "file-probed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("our apiserver again: the Deployment's template has its file probe: %v", hasFileProbe(&d.Spec.Template.Spec, readiness))
}

// testAPIServerGateOffTemplates turns the gate off in our apiserver under a
// running file-probed Deployment, as docs/version-skew.md (3.) describes:
// the running pods keep running; an update that keeps the file probe is
// accepted and keeps it; but the controllers' new objects are rejected:
// scaling up stalls with FailedCreate on the ReplicaSet, a rollout with
// ReplicaSetCreateError on the Deployment. Changing the template's probe to
// another handler is accepted and rolls out.
func testAPIServerGateOffTemplates(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	gateOff := true
	t.Cleanup(func() {
		if gateOff {
			controlPlane(t, "kube-apiserver", false, true)
		}
	})
	labels := map[string]string{"app": "web"}
	spec := plainSpec(labels, fmt.Sprintf("trap 'exit 0' TERM; while true; do touch %s/probe; sleep 1; done", probeDir), v1.ScheduleAnyway)
	spec.Containers[0].ReadinessProbe, spec.Containers[0].LivenessProbe = heartbeatProbes(true)
	deployment(t, ns, "web", labels, 1, spec)
	rollout(t, ns, "web", "file probes, gate on")

	controlPlane(t, "kube-apiserver", false, false)
	rollout(t, ns, "web", "apiserver gate off")
	const forbidden = "may not be set when the FileContainerProbe feature gate is disabled"
	update := func(what string, change func(d *appsv1.Deployment)) error {
		err := updateDeployment(ns, "web", change)
		t.Logf("%s: %v", what, err)
		return err
	}
	// An update that keeps the file probe: accepted, the probe kept.
	if err := update("label the Deployment", func(d *appsv1.Deployment) { d.Labels = map[string]string{"touched": "yes"} }); err != nil {
		t.Fatalf("gate off: an update that keeps the file probe was rejected: %v", err)
	}
	// Scale up: the ReplicaSet's new pod is rejected.
	if err := update("scale to 2", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](2) }); err != nil {
		t.Fatalf("gate off: scaling was rejected: %v", err)
	}
	rss, err := cluster.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(rss.Items) != 1 {
		t.Fatalf("ReplicaSets of the Deployment: %v (%v), want one", rss, err)
	}
	t.Logf("scale up: %s", waitEvent(t, ns, rss.Items[0].Name, "FailedCreate", forbidden, podTimeout))
	// A rollout: the new ReplicaSet is rejected.
	if err := update("roll out (a template annotation)", func(d *appsv1.Deployment) {
		d.Spec.Template.Annotations = map[string]string{"rollout": "1"}
	}); err != nil {
		t.Fatalf("gate off: a template change that keeps the file probe was rejected: %v", err)
	}
	t.Logf("rollout: %s", waitEvent(t, ns, "web", "ReplicaSetCreateError", forbidden, podTimeout))
	noRestarts(t, ns, "apiserver gate off")
	if pods := podsOn(t, ns, "app=web", 1, true); len(pods) != 1 {
		t.Fatalf("running pods: %v, want the one that ran before", pods)
	}
	// The way out the document gives: another handler.
	setProbes(t, ns, "web", false, "exec probes, gate off")
	controlPlane(t, "kube-apiserver", false, true)
	gateOff = false
}
