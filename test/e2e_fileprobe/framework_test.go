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

// Package e2efileprobe is the end-to-end suite for file probes. It runs
// against the single-node cluster of hack/local-up-node.sh (etcd, our
// kube-apiserver, kube-controller-manager, kube-scheduler and kubelet,
// containerd and runc, locally built images), which `make e2e` brings up.
// Nothing here is faked, and nothing is skipped: a part of the stack that
// does not work fails the suite.
package e2efileprobe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

const (
	// busyboxImage is built from Debian's busybox-static by the local stack
	// and imported into containerd: no registry is reachable.
	busyboxImage = "localhost/busybox:fileprobe"
	// probeVolume is the emptyDir volume the probe files live in, mounted
	// at probeDir in the containers.
	probeVolume = "probe-volume"
	probeDir    = "/probe-dir"
)

// env is the cluster the suite runs against.
type env struct {
	root       string // the repository
	bin        string // our binaries
	kubeconfig string
	client     kubernetes.Interface
	node       string
}

var cluster *env

func TestMain(m *testing.M) {
	e, err := newEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the local cluster is not usable (run `make local-up`, or `make e2e` which does): %v\n", err)
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
	e := &env{
		root:       root,
		bin:        envOr("FP_BIN", filepath.Join(root, "_output", "bin")),
		kubeconfig: envOr("KUBECONFIG", filepath.Join(root, "_output", "local", "kubeconfig")),
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
	err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		nodes, err := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, nil
		}
		e.node = nodes.Items[0].Name
		return nodeReady(&nodes.Items[0]), nil
	})
	if err != nil {
		return nil, fmt.Errorf("no Ready node: %w", err)
	}
	return e, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func nodeReady(node *v1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
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
	ns, err := cluster.client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	// Pods need the namespace's default service account.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.client.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no default service account in %s: %v", ns.Name, err)
	}
	if v, ok := runtimeClasses.Load(t); ok {
		ct := v.(*classedTest)
		ct.mu.Lock()
		ct.namespaces = append(ct.namespaces, ns.Name)
		ct.mu.Unlock()
		runtimeClasses.Store(ns.Name, ct.class)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, ns.Name)
		}
		_ = cluster.client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	return ns.Name
}

// dumpNamespace logs the pods of a failed test, and writes them with the
// namespace's events to _output/local/logs/failed/<namespace>.txt: a busy
// namespace's events run to a hundred lines, and inline they pushed the
// test's own errors out of the tail of the log that CI keeps.
func dumpNamespace(t *testing.T, ns string) {
	pods, err := kubectl("get", "pods", "-n", ns, "-o", "wide")
	events, _ := kubectl("get", "events", "-n", ns, "-o", "wide", "--sort-by=.lastTimestamp")
	dir := filepath.Join(cluster.root, "_output", "local", "logs", "failed")
	file := filepath.Join(dir, ns+".txt")
	werr := os.MkdirAll(dir, 0o755)
	if werr == nil {
		werr = os.WriteFile(file, []byte(pods+"\n"+events), 0o644)
	}
	t.Logf("pods in %s (%v), with their events in %s (%v):\n%s", ns, err, file, werr, pods)
}

// kubectl runs our kubectl against the cluster and returns its output.
func kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(cluster.bin, "kubectl"), append([]string{"--kubeconfig", cluster.kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// fileProbe returns a file probe handler probing /probe-volume/<file>.
func fileProbe(file string, validity int32, periodSeconds, failureThreshold int32) *v1.Probe {
	return &v1.Probe{
		ProbeHandler:     v1.ProbeHandler{File: &v1.FileAction{Path: "/" + probeVolume + "/" + file, Validity: validity}},
		PeriodSeconds:    periodSeconds,
		FailureThreshold: failureThreshold,
	}
}

// shell returns a busybox container running script with the probe volume
// mounted at /probe-dir.
func shell(name, script string) v1.Container {
	return v1.Container{
		Name:            name,
		Image:           busyboxImage,
		ImagePullPolicy: v1.PullNever,
		Command:         []string{"/bin/sh", "-c", script},
		VolumeMounts:    []v1.VolumeMount{{Name: probeVolume, MountPath: probeDir}},
	}
}

// heartbeat is a script refreshing /probe-dir/<file> every second, forever.
func heartbeat(file string) string {
	return fmt.Sprintf("while true; do touch %s/%s; sleep 1; done", probeDir, file)
}

// podWith returns a pod with the probe volume and the given containers.
func podWith(name string, medium v1.StorageMedium, containers ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			Containers:                    containers,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Volumes: []v1.Volume{{
				Name:         probeVolume,
				VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: medium}},
			}},
		},
	}
}

// heartbeatPods creates n pods named <prefix>-<i> whose container refreshes
// its probe file every second, probed by readiness and liveness file probes
// every second, and waits until they are Ready. It returns their names.
func heartbeatPods(t *testing.T, ns, prefix string, n int) []string {
	t.Helper()
	var names []string
	for i := 0; i < n; i++ {
		c := shell("app", heartbeat("probe"))
		c.ReadinessProbe = fileProbe("probe", 5, 1, 1)
		c.LivenessProbe = fileProbe("probe", 5, 1, 3)
		names = append(names, fmt.Sprintf("%s-%d", prefix, i))
		createPod(t, ns, podWith(names[i], "", c))
	}
	for _, name := range names {
		waitForPod(t, ns, name, podTimeout, "Ready", podReady)
	}
	return names
}

func createPod(t *testing.T, ns string, pod *v1.Pod) *v1.Pod {
	t.Helper()
	if class, ok := runtimeClasses.Load(ns); ok && pod.Spec.RuntimeClassName == nil {
		pod.Spec.RuntimeClassName = ptr.To(class.(string))
	}
	created, err := cluster.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return created
}

// runtimeClasses maps each test run by withRuntimeClass (its *testing.T) to
// its *classedTest, and each namespace such a test made (its name) to the
// RuntimeClass.
var runtimeClasses sync.Map

// classedTest is a test run by withRuntimeClass: its RuntimeClass and the
// namespaces it made.
type classedTest struct {
	class      string
	mu         sync.Mutex
	namespaces []string
}

// withRuntimeClass runs the test f with every pod it creates through
// createPod, in every namespace it makes through namespace(t), in the
// RuntimeClass class (unless the pod names a class itself), so that a
// scenario written for the default class runs unchanged in another one.
// Once f returned, while its pods still exist, check is called with them
// (at least one), to show where they really ran; it is not called when f
// failed. Only namespaces made with f's own t count, not those of its
// subtests.
func withRuntimeClass(class string, f func(*testing.T), check func(t *testing.T, pods []v1.Pod)) func(*testing.T) {
	return func(t *testing.T) {
		ct := &classedTest{class: class}
		runtimeClasses.Store(t, ct)
		f(t)
		ct.mu.Lock()
		namespaces := ct.namespaces
		ct.mu.Unlock()
		var pods []v1.Pod
		for _, ns := range namespaces {
			list, err := cluster.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatalf("list pods in %s: %v", ns, err)
			}
			for _, p := range list.Items {
				if c := ptr.Deref(p.Spec.RuntimeClassName, ""); c != class {
					t.Errorf("pod %s/%s has RuntimeClass %q, want %q", ns, p.Name, c, class)
				}
			}
			pods = append(pods, list.Items...)
		}
		if len(pods) == 0 {
			t.Fatalf("no pod of RuntimeClass %s to check in namespaces %v", class, namespaces)
		}
		check(t, pods)
	}
}

// waitForPod polls the pod until cond holds, and fails the test with the
// last state seen otherwise.
func waitForPod(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	var last *v1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pod, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, err
			}
			return false, nil
		}
		last = pod
		return cond(pod), nil
	})
	if err != nil {
		var status any
		if last != nil {
			status = last.Status
		}
		t.Fatalf("pod %s/%s: %s: not within %v: %v; last status: %+v", ns, name, what, timeout, err, status)
	}
	return last
}

func podReady(pod *v1.Pod) bool {
	return podCondition(pod, v1.PodReady)
}

func podCondition(pod *v1.Pod, t v1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func containerStatus(pod *v1.Pod, name string) *v1.ContainerStatus {
	for _, list := range [][]v1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// waitForEvent waits for an event about the object whose reason is reason
// and whose message contains substr, and returns its message.
func waitForEvent(t *testing.T, ns, object, reason, substr string, timeout time.Duration) string {
	t.Helper()
	var message string
	var seen []string
	selector := fields.Set{"involvedObject.name": object, "reason": reason}.AsSelector().String()
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		events, err := cluster.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, e := range events.Items {
			seen = append(seen, e.Message)
			if strings.Contains(e.Message, substr) {
				message = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s event for %s/%s containing %q within %v; %s events seen: %q", reason, ns, object, substr, timeout, reason, seen)
	}
	return message
}

// kubeletMetric sums the samples of a counter in one of the kubelet's
// metrics endpoints (metrics or metrics/probes), read through the
// apiserver's node proxy, over the samples whose labels contain every
// label="value" pair of match.
func kubeletMetric(t *testing.T, endpoint, name string, match ...string) float64 {
	t.Helper()
	raw, err := cluster.client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", cluster.node, "proxy", endpoint).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("read the kubelet's /%s: %v", endpoint, err)
	}
	var sum float64
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		matches := true
		for _, m := range match {
			matches = matches && strings.Contains(line, m)
		}
		if !matches {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// localUp runs hack/local-up-node.sh with the given arguments and
// environment, e.g. to restart the kubelet with its gate off.
func localUp(t *testing.T, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(cluster.root, "hack", "local-up-node.sh"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hack/local-up-node.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("hack/local-up-node.sh %s:\n%s", strings.Join(args, " "), out)
}

// errDone, returned by a watchPods check, ends the watch successfully.
var errDone = errors.New("done")

// watchPods follows every state of the pods of ns that fieldSelector selects
// (all of them when it is empty) until ctx ends, through the API's watch, so
// that no state in between two polls is missed: first the current state of
// each, then every update (the watch is taken again from the last resource
// version seen when the apiserver closes it). It returns the first error of
// check, nil when ctx ended or check returned errDone, and an error when a
// watched pod is deleted or the watch fails.
func watchPods(ctx context.Context, ns, fieldSelector string, check func(*v1.Pod) error) error {
	pods := cluster.client.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: fieldSelector})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("list pods: %w", err)
	}
	for i := range list.Items {
		if err := check(&list.Items[i]); err != nil {
			return doneIsNil(err)
		}
	}
	rv := list.ResourceVersion
	for ctx.Err() == nil {
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fieldSelector, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch pods: %w", err)
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Error:
				w.Stop()
				if ctx.Err() != nil {
					// The end of the window cut the watch off.
					return nil
				}
				return fmt.Errorf("watch pods: %v", apierrors.FromObject(ev.Object))
			case watch.Bookmark:
				if pod, ok := ev.Object.(*v1.Pod); ok {
					rv = pod.ResourceVersion
				}
			case watch.Deleted:
				w.Stop()
				return fmt.Errorf("pod %s was deleted while watched", ev.Object.(*v1.Pod).Name)
			default:
				pod := ev.Object.(*v1.Pod)
				rv = pod.ResourceVersion
				if err := check(pod); err != nil {
					w.Stop()
					return doneIsNil(err)
				}
			}
		}
		w.Stop()
	}
	return nil
}

func doneIsNil(err error) error {
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

// watchPod follows every state of one pod for d (see watchPods) and fails
// the test at the first state that check rejects; check may end the watch
// early with errDone. Last, it fetches the pod again and checks that state
// too, and returns it.
func watchPod(t *testing.T, ns, name string, d time.Duration, what string, check func(*v1.Pod) error) *v1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	if err := watchPods(ctx, ns, "metadata.name="+name, check); err != nil {
		t.Fatalf("pod %s/%s, %v into watching (%s): %v", ns, name, time.Since(start).Round(time.Millisecond), what, err)
	}
	pod, err := cluster.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	if err := check(pod); err != nil && !errors.Is(err, errDone) {
		t.Fatalf("pod %s/%s after %v of watching (%s): %v", ns, name, time.Since(start).Round(time.Millisecond), what, err)
	}
	return pod
}

// watchUntil follows every state of one pod (see watchPods) until check
// returns errDone, and fails the test at the first state check rejects or
// when check is not done within timeout.
func watchUntil(t *testing.T, ns, name string, timeout time.Duration, what string, check func(*v1.Pod) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	done := false
	err := watchPods(ctx, ns, "metadata.name="+name, func(p *v1.Pod) error {
		err := check(p)
		done = done || errors.Is(err, errDone)
		return err
	})
	if err != nil {
		t.Fatalf("pod %s/%s, %v into watching (%s): %v", ns, name, time.Since(start).Round(time.Millisecond), what, err)
	}
	if !done {
		pod, _ := cluster.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		var status any
		if pod != nil {
			status = pod.Status
		}
		t.Fatalf("pod %s/%s: %s: not within %v; last status: %+v", ns, name, what, timeout, status)
	}
}

// probeCount is the kubelet's count of the probes of one type (Liveness,
// Readiness, Startup) of one container that ran, whatever their result
// (prober_probe_total, which is per container), with result="..." in match
// to count only one result.
func probeCount(t *testing.T, ns, pod, container, probeType string, match ...string) float64 {
	t.Helper()
	return kubeletMetric(t, "metrics/probes", "prober_probe_total", append([]string{
		`namespace="` + ns + `"`, `pod="` + pod + `"`, `container="` + container + `"`, `probe_type="` + probeType + `"`,
	}, match...)...)
}

// waitProbed waits until the kubelet has counted a successful probe of the
// given type for the container: cases that measure a steady state start
// after the probe's initialDelaySeconds.
func waitProbed(t *testing.T, ns, pod, container, probeType string) {
	t.Helper()
	deadline := time.Now().Add(podTimeout)
	for probeCount(t, ns, pod, container, probeType, `result="successful"`) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no successful %s probe of %s/%s container %s in %v", probeType, ns, pod, container, podTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// forceDelete deletes a pod without grace, for pods whose own grace period
// is long, so that they do not outlive their test by minutes.
func forceDelete(t *testing.T, ns, name string) {
	t.Cleanup(func() {
		_ = cluster.client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
}

// started reports whether the container status says Started.
func started(s *v1.ContainerStatus) bool {
	return s != nil && s.Started != nil && *s.Started
}

// unhealthyEvents returns the messages of the Unhealthy events of the pod (or
// of every pod of ns when pod is "") last seen at or after since.
func unhealthyEvents(t *testing.T, ns, pod string, since time.Time) []string {
	t.Helper()
	set := fields.Set{"reason": "Unhealthy"}
	if pod != "" {
		set["involvedObject.name"] = pod
	}
	events, err := cluster.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: set.AsSelector().String()})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	var messages []string
	for _, e := range events.Items {
		last := e.LastTimestamp.Time
		if last.IsZero() {
			last = e.EventTime.Time
		}
		if !last.Before(since.Truncate(time.Second)) {
			messages = append(messages, e.InvolvedObject.Name+": "+e.Message)
		}
	}
	return messages
}
