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

// Package e2eskew is the version-skew suite: file probes on a cluster of
// several nodes whose kubelets differ (ours with the FileContainerProbe gate
// on, ours with it off, upstream's of the same version), brought up by
// hack/local-up-node.sh (FP_NODE_KUBELETS) from real binaries: make
// e2e-skew (hack/e2e-skew.sh, the last step of make test) does. It checks
// every row of docs/version-skew.md: mixed nodes (file-probed Pods,
// Deployments and Jobs land only on nodes that declare FileContainerProbe,
// other pods anywhere, Pending with the scheduler's message when no node
// does), an upstream kubelet, kube-scheduler, kube-controller-manager and
// kube-apiserver each beside ours, the apiserver's gate turned off under
// file-probed templates, and the rolling upgrade and its roll-back. The
// cases share the cluster and restart its components, so they run one after
// another; each puts back what it changed.
package e2eskew

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

const (
	busyboxImage     = "localhost/busybox:fileprobe" // built by the local stack, imported on every node
	probeVolume      = "probe-volume"
	probeDir         = "/probe-dir"
	fileProbeFeature = "FileContainerProbe"
	hostnameLabel    = "kubernetes.io/hostname"
	// timeout for pods to be scheduled and Ready: three kubelets, three
	// containerds and the control plane share two cores.
	podTimeout = 2 * time.Minute
)

// node is one node of the cluster and the kubelet hack/local-up-node.sh runs there.
type node struct {
	name string
	kind string // ours, ours-gate-on, ours-gate-off, upstream (FP_NODE_KUBELETS)
}

// capable says whether the node's kubelet runs file probes: ours with the gate on.
func (n node) capable() bool {
	return n.kind == "ours-gate-on" || (n.kind == "ours" && envOr("FILEPROBE_GATE", "true") == "true")
}

type env struct {
	root       string
	kubeconfig string
	client     kubernetes.Interface
	nodes      []node
	version    string // the pinned upstream version, e.g. v1.37.2
}

var cluster *env

func TestMain(m *testing.M) {
	e, err := newEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e-skew: the local cluster is not usable (make e2e-skew brings one up): %v\n", err)
		os.Exit(1)
	}
	cluster = e
	os.Exit(m.Run())
}

func newEnv() (*env, error) {
	root := os.Getenv("FP_ROOT")
	if root == "" {
		return nil, fmt.Errorf("FP_ROOT (the repository root) is not set")
	}
	kinds := strings.Fields(os.Getenv("FP_NODE_KUBELETS"))
	if len(kinds) < 2 {
		return nil, fmt.Errorf("FP_NODE_KUBELETS must name the kubelets of at least 2 nodes, not %q", os.Getenv("FP_NODE_KUBELETS"))
	}
	e := &env{
		root:       root,
		kubeconfig: envOr("KUBECONFIG", filepath.Join(root, "_output", "local", "kubeconfig")),
		version:    os.Getenv("FP_UPSTREAM_VERSION"),
	}
	if e.version == "" {
		return nil, fmt.Errorf("FP_UPSTREAM_VERSION (the pinned upstream version) is not set")
	}
	for i, k := range kinds {
		name := "fileprobe-node" // hack/local-up-node.sh's names
		if i > 0 {
			name = fmt.Sprintf("fileprobe-node-%d", i+1)
		}
		e.nodes = append(e.nodes, node{name: name, kind: k})
	}
	config, err := clientcmd.BuildConfigFromFlags("", e.kubeconfig)
	if err != nil {
		return nil, err
	}
	config.QPS, config.Burst = 50, 100
	if e.client, err = kubernetes.NewForConfig(config); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var seen int
	err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		seen = 0
		for _, n := range list.Items {
			if nodeReady(&n) {
				seen++
			}
		}
		return len(list.Items) == len(e.nodes) && seen == len(e.nodes), nil
	})
	if err != nil {
		return nil, fmt.Errorf("want %d Ready nodes (FP_NODE_KUBELETS), have %d: %w", len(e.nodes), seen, err)
	}
	return e, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// capableNodes and otherNodes are the names of the nodes whose kubelet runs
// file probes, and of the others.
func capableNodes() []string { return nodeNames(true) }
func otherNodes() []string   { return nodeNames(false) }

func nodeNames(capable bool) []string {
	var names []string
	for _, n := range cluster.nodes {
		if n.capable() == capable {
			names = append(names, n.name)
		}
	}
	return names
}

var nonDNSLabel = regexp.MustCompile(`[^a-z0-9]+`)

// namespace creates a namespace for one test and deletes it afterwards.
func namespace(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := strings.Trim(nonDNSLabel.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "-")
	}
	name += "-" + fmt.Sprint(time.Now().UnixNano()%100000)
	if _, err := cluster.client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no default service account in %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			// As in test/e2e_fileprobe: the events go to a file, lest they
			// push the test's errors out of the tail of CI's log.
			pods, err := runKubectl("get", "pods", "-n", name, "-o", "wide")
			events, _ := runKubectl("get", "events", "-n", name, "-o", "wide", "--sort-by=.lastTimestamp")
			dir := filepath.Join(cluster.root, "_output", "local", "logs", "failed")
			file := filepath.Join(dir, name+".txt")
			werr := os.MkdirAll(dir, 0o755)
			if werr == nil {
				werr = os.WriteFile(file, append(append(pods, '\n'), events...), 0o644)
			}
			t.Logf("pods in %s (%v), with their events in %s (%v):\n%s", name, err, file, werr, pods)
		}
		_ = cluster.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	return name
}

// fileProbed returns a pod spec whose container refreshes /probe-dir/probe
// every second (for ever, or for `seconds` when > 0) and is probed by a
// readiness file probe on it, with a soft topology spread over the nodes:
// the scheduler would rather spread such pods over every node, so that only
// its feature filter keeps them on the capable ones.
func fileProbed(labels map[string]string, seconds int) v1.PodSpec {
	loop := fmt.Sprintf("while true; do touch %s/probe; sleep 1; done", probeDir)
	if seconds > 0 {
		loop = fmt.Sprintf("i=0; while [ $i -lt %d ]; do touch %s/probe; sleep 1; i=$((i+1)); done", seconds, probeDir)
	}
	spec := plainSpec(labels, "trap 'exit 0' TERM; "+loop, v1.ScheduleAnyway)
	spec.Containers[0].ReadinessProbe = fileProbe()
	return spec
}

// plainSpec returns a pod spec with no probe, spread over the nodes by
// hostname (maxSkew 1) as whenUnsatisfiable says.
func plainSpec(labels map[string]string, script string, whenUnsatisfiable v1.UnsatisfiableConstraintAction) v1.PodSpec {
	return v1.PodSpec{
		Containers: []v1.Container{{
			Name:            "app",
			Image:           busyboxImage,
			ImagePullPolicy: v1.PullNever,
			Command:         []string{"/bin/sh", "-c", script},
			VolumeMounts:    []v1.VolumeMount{{Name: probeVolume, MountPath: probeDir}},
		}},
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		Volumes:                       []v1.Volume{{Name: probeVolume, VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}},
		TopologySpreadConstraints: []v1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       hostnameLabel,
			WhenUnsatisfiable: whenUnsatisfiable,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
		}},
	}
}

// podsOn lists the pods of ns that selector selects and returns how many run
// on each node, failing the test if any is not scheduled, or (wantReady) not Ready.
func podsOn(t *testing.T, ns, selector string, want int, wantReady bool) map[string]int {
	t.Helper()
	pods, err := cluster.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	if len(pods.Items) != want {
		t.Fatalf("%d pods selected by %s, want %d", len(pods.Items), selector, want)
	}
	on := map[string]int{}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" {
			t.Fatalf("pod %s is not scheduled: %+v", p.Name, p.Status.Conditions)
		}
		if wantReady && !podReady(&p) {
			t.Fatalf("pod %s on %s is not Ready: %+v", p.Name, p.Spec.NodeName, p.Status.Conditions)
		}
		on[p.Spec.NodeName]++
	}
	return on
}

// onlyOn fails the test unless every node of on is one of nodes.
func onlyOn(t *testing.T, what string, on map[string]int, nodes []string) {
	t.Helper()
	for n, count := range on {
		if !slices.Contains(nodes, n) {
			t.Errorf("%d %s on node %s, which does not declare %s (only %v do)", count, what, n, fileProbeFeature, nodes)
		}
	}
	t.Logf("%s per node: %v", what, on)
}

// TestSkew runs the cases in order.
func TestSkew(t *testing.T) {
	if len(capableNodes()) == 0 || len(otherNodes()) == 0 {
		t.Fatalf("the suite needs nodes with and without file probes: FP_NODE_KUBELETS=%q", os.Getenv("FP_NODE_KUBELETS"))
	}
	t.Run("each node declares FileContainerProbe exactly when its kubelet runs file probes", testDeclaredFeatures)
	t.Run("file-probed Pods land only on nodes that declare FileContainerProbe", testPods)
	t.Run("a file-probed Deployment lands only on nodes that declare FileContainerProbe", testDeployment)
	t.Run("a file-probed Job runs only on nodes that declare FileContainerProbe", testJob)
	t.Run("pods without file probes land on every node", testPlainPods)
	t.Run("pods on different nodes reach each other", testPodNetwork)
	t.Run("with no node declaring FileContainerProbe, file-probed pods stay Pending", testNoCapableNode)
	t.Run("a file-probed pod bound to an upstream kubelet runs, never Ready, never restarted", testUpstreamKubeletBoundPod)
	t.Run("an upstream kube-scheduler binds file-probed pods to any node", testUpstreamScheduler)
	t.Run("an upstream kube-controller-manager cannot create pods from file-probed templates", testUpstreamControllerManager)
	t.Run("an upstream kube-apiserver loses the file probes of objects it writes", testUpstreamAPIServer)
	t.Run("with the apiserver's gate off, file-probed templates stall until their probes change", testAPIServerGateOffTemplates)
	t.Run("the rolling upgrade and its roll-back keep a Deployment Ready", testRollingUpgrade)
}

// testDeclaredFeatures: ours with the gate on declares the feature; ours with
// the gate off and upstream's do not; each node runs the kubelet the stack
// says (its version: upstream's, or ours with +fileprobe.N).
func testDeclaredFeatures(t *testing.T) {
	for _, n := range cluster.nodes {
		obj, err := cluster.client.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get node %s: %v", n.name, err)
		}
		version := obj.Status.NodeInfo.KubeletVersion
		if n.kind == "upstream" {
			if version != cluster.version {
				t.Errorf("node %s (upstream kubelet) runs kubelet %s, want %s", n.name, version, cluster.version)
			}
		} else if !strings.HasPrefix(version, cluster.version+"+fileprobe.") {
			t.Errorf("node %s (%s) runs kubelet %s, want %s+fileprobe.N", n.name, n.kind, version, cluster.version)
		}
		declares := slices.Contains(obj.Status.DeclaredFeatures, fileProbeFeature)
		if declares != n.capable() {
			t.Errorf("node %s (%s kubelet %s) declares %v, want %s declared: %v", n.name, n.kind, version,
				obj.Status.DeclaredFeatures, fileProbeFeature, n.capable())
		}
		t.Logf("node %s: %s kubelet %s, declared features %v", n.name, n.kind, version, obj.Status.DeclaredFeatures)
	}
}

func testPods(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "file-probed-pod"}
	const n = 6
	for i := 0; i < n; i++ {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("file-probed-%d", i), Labels: labels}, Spec: fileProbed(labels, 0)}
		if _, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
	}
	waitPods(t, ns, "app=file-probed-pod", n)
	onlyOn(t, "file-probed pods", podsOn(t, ns, "app=file-probed-pod", n, true), capableNodes())
}

// waitPods waits until want pods that selector selects are Ready.
func waitPods(t *testing.T, ns, selector string, want int) {
	t.Helper()
	var ready int
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		ready = 0
		for _, p := range pods.Items {
			if podReady(&p) {
				ready++
			}
		}
		return ready == want, nil
	})
	if err != nil {
		t.Fatalf("%d of %d pods (%s) Ready within %v: %v", ready, want, selector, podTimeout, err)
	}
}

func testDeployment(t *testing.T) {
	ns := namespace(t)
	labels := map[string]string{"app": "file-probed-deployment"}
	const replicas = 4
	deployment(t, ns, "file-probed", labels, replicas, fileProbed(labels, 0))
	waitPods(t, ns, "app=file-probed-deployment", replicas)
	on := podsOn(t, ns, "app=file-probed-deployment", replicas, true)
	onlyOn(t, "pods of the file-probed Deployment", on, capableNodes())
}

func deployment(t *testing.T, ns, name string, labels map[string]string, replicas int32, spec v1.PodSpec) {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
	if _, err := cluster.client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
}

func testJob(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "file-probed-job"}
	const completions = 3
	spec := fileProbed(labels, 6)
	spec.RestartPolicy = v1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "file-probed"},
		Spec: batchv1.JobSpec{
			Completions:  ptr.To[int32](completions),
			Parallelism:  ptr.To[int32](completions),
			BackoffLimit: ptr.To[int32](0),
			Template:     v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
	if _, err := cluster.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create job: %v", err)
	}
	var last *batchv1.Job
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		j, err := cluster.client.BatchV1().Jobs(ns).Get(ctx, "file-probed", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = j
		return j.Status.Succeeded == completions || j.Status.Failed > 0, nil
	})
	if err != nil || last.Status.Succeeded != completions {
		t.Fatalf("job not complete: %v; status %+v", err, last.Status)
	}
	onlyOn(t, "pods of the file-probed Job", podsOn(t, ns, "app=file-probed-job", completions, false), capableNodes())
}

// testPlainPods: a Deployment without file probes, spread over the nodes by
// a hard constraint, runs on every node, whatever its kubelet: the feature
// filter keeps away only pods that need the feature.
func testPlainPods(t *testing.T) {
	ns := namespace(t)
	labels := map[string]string{"app": "plain"}
	replicas := int32(2 * len(cluster.nodes))
	deployment(t, ns, "plain", labels, replicas, plainSpec(labels, "trap 'exit 0' TERM; while true; do sleep 1; done", v1.DoNotSchedule))
	waitPods(t, ns, "app=plain", int(replicas))
	on := podsOn(t, ns, "app=plain", int(replicas), true)
	for _, n := range cluster.nodes {
		if on[n.name] != 2 {
			t.Errorf("node %s (%s kubelet) runs %d pods of the Deployment, want 2", n.name, n.kind, on[n.name])
		}
	}
	t.Logf("pods without file probes per node: %v", on)
}

// testNoCapableNode turns the gate off on every capable kubelet (restarting
// it), so that no node declares the feature: a file-probed pod that was
// running there is rejected when the kubelet re-admits it, and stopped; a
// new file-probed pod stays Pending
// with the scheduler's reason; once one kubelet declares it again, the pod is
// scheduled there and becomes Ready.
func testNoCapableNode(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	capable := capableNodes()
	// Whatever happens, the kubelets get their gate back.
	off := map[string]bool{}
	t.Cleanup(func() {
		for _, n := range capable {
			if off[n] {
				restartKubelet(t, n, "ours-gate-on")
			}
		}
	})
	// A file-probed pod that runs when its kubelet comes back with the gate off.
	running := fileProbed(map[string]string{"app": "running"}, 0)
	running.NodeSelector = map[string]string{hostnameLabel: capable[0]}
	if _, err := cluster.client.CoreV1().Pods(ns).Create(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "running", Labels: map[string]string{"app": "running"}}, Spec: running}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	waitPods(t, ns, "app=running", 1)

	for _, n := range capable {
		off[n] = true
		restartKubelet(t, n, "ours-gate-off")
		waitDeclared(t, n, false)
	}
	// Re-admitted when the kubelet starts (NodeDeclaredFeatures, locked on
	// since 1.37), it is rejected like a new pod, and its container stopped:
	// the pod ends, not restarted (its container exits 0 on SIGTERM).
	t.Logf("the pod that ran before: %s", waitEvent(t, ns, "running", "PodFeatureUnsupported", "FileContainerProbe", podTimeout))
	ended := waitPod(t, ns, "running", "ended", func(p *v1.Pod) bool {
		return p.Status.Phase == v1.PodFailed || p.Status.Phase == v1.PodSucceeded
	})
	if len(ended.Status.ContainerStatuses) != 1 || ended.Status.ContainerStatuses[0].RestartCount != 0 || ended.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Errorf("the pod that ran before the gate went off: container statuses %+v, want one terminated, never restarted", ended.Status.ContainerStatuses)
	}
	t.Logf("the pod that ran before: %s %s %s", ended.Status.Phase, ended.Status.Reason, ended.Status.Message)

	labels := map[string]string{"app": "pending"}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "file-probed", Labels: labels}, Spec: fileProbed(labels, 0)}
	if _, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	total := len(cluster.nodes)
	want := fmt.Sprintf("0/%d nodes are available: %d node(s) didn't match Pod's required features", total, total)
	var message string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		events, err := cluster.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": "file-probed", "reason": "FailedScheduling"}.AsSelector().String(),
		})
		if err != nil || len(events.Items) == 0 {
			return false, nil
		}
		message = events.Items[len(events.Items)-1].Message
		return true, nil
	})
	if err != nil {
		t.Fatalf("no FailedScheduling event for the file-probed pod: %v", err)
	}
	if !strings.Contains(message, want) {
		t.Fatalf("FailedScheduling: %q, want it to say %q", message, want)
	}
	t.Logf("FailedScheduling: %s", message)
	// Pending for a while: no node takes it.
	time.Sleep(5 * time.Second)
	p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "file-probed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "" || p.Status.Phase != v1.PodPending {
		t.Fatalf("pod is %s on %q, want Pending and unscheduled", p.Status.Phase, p.Spec.NodeName)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && (c.Status != v1.ConditionFalse || c.Reason != v1.PodReasonUnschedulable || !strings.Contains(c.Message, want)) {
			t.Errorf("PodScheduled condition %+v, want False, Unschedulable, %q", c, want)
		}
	}

	// One capable kubelet again: the scheduler retries the pod on the node's update.
	restartKubelet(t, capable[0], "ours-gate-on")
	off[capable[0]] = false
	waitDeclared(t, capable[0], true)
	waitPods(t, ns, "app=pending", 1)
	onlyOn(t, "file-probed pods", podsOn(t, ns, "app=pending", 1, true), capable[:1])
}

// restartKubelet restarts the kubelet of node name as kind (hack/local-up-node.sh restart kubelet).
func restartKubelet(t *testing.T, name, kind string) {
	t.Helper()
	took, err := switchKubelet(name, kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted the kubelet of %s as %s in %v", name, kind, took)
}

// switchKubelet restarts the kubelet of node name as kind and says how long
// that took; safe to call for several nodes at once.
func switchKubelet(name, kind string) (time.Duration, error) {
	return restart("kubelet", name, "FP_NODE_KUBELET="+kind)
}

// waitDeclared waits until node name declares the feature (or not).
func waitDeclared(t *testing.T, name string, declared bool) {
	t.Helper()
	var features []string
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := cluster.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		features = n.Status.DeclaredFeatures
		return nodeReady(n) && slices.Contains(features, fileProbeFeature) == declared, nil
	})
	if err != nil {
		sort.Strings(features)
		t.Fatalf("node %s: declared features %v, want %s declared: %v: %v", name, features, fileProbeFeature, declared, err)
	}
}

// testPodNetwork: a web server on every node (busybox httpd serving its node's
// name), and from each of them, through kubectl exec (the apiserver to that
// node's kubelet), a request to every other one by pod IP.
func testPodNetwork(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	ips := map[string]string{} // node -> its server's pod IP
	for _, n := range cluster.nodes {
		spec := plainSpec(map[string]string{"app": "web"}, fmt.Sprintf(
			"trap 'exit 0' TERM; mkdir -p /www && echo served-by-%s > /www/index.html && httpd -f -p 8080 -h /www", n.name), v1.ScheduleAnyway)
		spec.NodeSelector = map[string]string{hostnameLabel: n.name}
		spec.Containers[0].ReadinessProbe = &v1.Probe{
			ProbeHandler:  v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1,
		}
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-" + n.name, Labels: map[string]string{"app": "web"}}, Spec: spec}
		if _, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
	}
	waitPods(t, ns, "app=web", len(cluster.nodes))
	for _, n := range cluster.nodes {
		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "web-"+n.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != n.name || p.Status.PodIP == "" {
			t.Fatalf("pod %s on %q with IP %q, want on %s with an IP", p.Name, p.Spec.NodeName, p.Status.PodIP, n.name)
		}
		ips[n.name] = p.Status.PodIP
	}
	t.Logf("pod IPs per node: %v", ips)
	for _, from := range cluster.nodes {
		for _, to := range cluster.nodes {
			if from.name == to.name {
				continue
			}
			out, err := runKubectl("exec", "-n", ns, "web-"+from.name, "--", "sh", "-c",
				fmt.Sprintf(`printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 5 %s 8080`, ips[to.name]))
			if err != nil || !strings.Contains(string(out), "served-by-"+to.name) {
				t.Errorf("from the pod on %s to the pod on %s (%s): %v\n%s", from.name, to.name, ips[to.name], err, out)
			}
		}
	}
}
