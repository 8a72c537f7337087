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

package e2efileprobe

// What a container runtime must do, with pods of RuntimeClass shimless
// (containerd-shim-shimless-v2, docs/shimless.md: one shim process for all
// the class's pods): exit codes and restart policies, OOM kills, exec, logs,
// attach, port-forward, graceful deletion, the open-file limit, containerd
// and kubelet restarts, and many pods created and deleted. Where a case can
// run its pods in both classes cheaply, it does, and expects the same of
// both: a runc pod failing an expectation says the test is wrong, a shimless
// pod alone failing it says the shim is. Every case also checks where its
// pods really ran: under the one shared shimless shim (shimless pods) or a
// containerd-shim-runc-v2 (the others), found from the pods' cgroups.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

const (
	shimlessClass = "shimless"
	// cgroupRoot is the kubelet's cgroup root on the local node
	// (CGROUP_ROOT in hack/local-up-node.sh; cgroup v1, cgroupfs driver).
	cgroupRoot = "/sys/fs/cgroup/pids/fileprobe-local/kubepods"
	// gate makes a container wait, before it goes on, for the file go in
	// its probe volume, which release writes from the node: the test looks
	// at a running pod first, then lets its container exit.
	gate = "while [ ! -e " + probeDir + "/go ]; do sleep 0.2; done; "
)

// classes are the RuntimeClasses the comparing cases run their pods in: ""
// is the default (containerd-shim-runc-v2, a shim per pod).
var classes = []string{"", shimlessClass}

func className(class string) string {
	if class == "" {
		return "runc"
	}
	return class
}

func shimlessBin() string {
	return envOr("FP_SHIMLESS_BIN", filepath.Join(cluster.root, "_output", "bin", "containerd-shim-shimless-v2"))
}

func runcShimBin() string {
	return filepath.Join(cluster.root, "_output", "node", "bin", "containerd-shim-runc-v2")
}

// inShimless runs a scenario written for the default class with its pods in
// RuntimeClass shimless, and checks that they ran under the shared shim.
func inShimless(f func(*testing.T)) func(*testing.T) {
	return withRuntimeClass(shimlessClass, f, func(t *testing.T, pods []v1.Pod) {
		for i := range pods {
			assertShim(t, &pods[i], shimlessClass)
		}
	})
}

// inClass puts the pod in class ("" is the default).
func inClass(pod *v1.Pod, class string) *v1.Pod {
	if class != "" {
		pod.Spec.RuntimeClassName = ptr.To(class)
	}
	return pod
}

// podCgroup is the pod's cgroup directory (in the pids hierarchy), "" when
// it has none (any more).
func podCgroup(uid string) string {
	for _, qos := range []string{"", "besteffort", "burstable"} {
		dir := filepath.Join(cgroupRoot, qos, "pod"+uid)
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
	}
	return ""
}

// podProcesses maps each container of the pod that has a cgroup (its
// sandbox and containers, by containerd id) to the processes in it.
func podProcesses(uid string) map[string][]int {
	dir := podCgroup(uid)
	if dir == "" {
		return nil
	}
	out := map[string][]int{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "cgroup.procs"))
		if err != nil {
			continue
		}
		out[e.Name()] = nil
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			out[e.Name()] = append(out[e.Name()], pid)
		}
	}
	return out
}

// shimAncestor is the nearest ancestor of pid that is a containerd shim
// (ours or the stock runc one), 0 when there is none or pid is gone.
func shimAncestor(pid int) int {
	shims := []string{shimlessBin(), runcShimBin()}
	for p := parent(pid); p > 1; p = parent(p) {
		if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); slices.Contains(shims, link) {
			return p
		}
	}
	return 0
}

// isShimDaemon: containerd runs a shim binary as `... start` and
// `... delete` (short-lived) and `-info`; the long-lived shim is the one
// without an action.
func isShimDaemon(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	last := args[len(args)-1]
	return last != "start" && last != "delete" && !slices.Contains(args, "-info") && !slices.Contains(args, "-v")
}

// shimlessDaemons are the running shimless shims (not its short-lived
// start, delete and -info invocations).
func shimlessDaemons(t *testing.T) []int {
	var out []int
	for _, pid := range processesOf(t, shimlessBin()) {
		if isShimDaemon(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// shimOfPod returns the one shim every process of the pod (sandbox and
// containers, found in its cgroup) descends from, and fails the test when
// the pod has no process or its processes descend from different shims.
func shimOfPod(t *testing.T, pod *v1.Pod) int {
	t.Helper()
	shim, seen := 0, 0
	for id, pids := range podProcesses(string(pod.UID)) {
		for _, pid := range pids {
			s := shimAncestor(pid)
			if startTime(pid) == "" {
				continue // exited meanwhile (a heartbeat's touch or sleep)
			}
			if s == 0 {
				t.Fatalf("pod %s/%s: process %d of container %.12s descends from no shim", pod.Namespace, pod.Name, pid, id)
			}
			if shim != 0 && s != shim {
				t.Fatalf("pod %s/%s: its processes descend from shims %d and %d, want one", pod.Namespace, pod.Name, shim, s)
			}
			shim = s
			seen++
		}
	}
	if seen == 0 {
		t.Fatalf("pod %s/%s (uid %s): no process in its cgroup %q", pod.Namespace, pod.Name, pod.UID, podCgroup(string(pod.UID)))
	}
	return shim
}

// assertShim checks where the pod runs: for class shimless, under the
// shimless shim that is the only one running containers on the node (the
// shared shim); for the default class, under a containerd-shim-runc-v2. It
// returns that shim.
func assertShim(t *testing.T, pod *v1.Pod, class string) int {
	t.Helper()
	shim := shimOfPod(t, pod)
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", shim))
	if class == "" {
		if exe != runcShimBin() {
			t.Errorf("pod %s/%s of the default class runs under shim %d (%s), want a %s", pod.Namespace, pod.Name, shim, exe, runcShimBin())
		}
		return shim
	}
	if exe != shimlessBin() {
		t.Fatalf("pod %s/%s of RuntimeClass shimless runs under shim %d (%s), want %s", pod.Namespace, pod.Name, shim, exe, shimlessBin())
	}
	// Other shimless shims may be starting or exiting, but none may run
	// containers: one shim serves every shimless pod.
	for _, other := range shimlessDaemons(t) {
		if other != shim && len(descendants(other)) > 0 {
			t.Errorf("pod %s/%s runs under shimless shim %d, and another shimless shim %d runs %d processes: the shim is not shared", pod.Namespace, pod.Name, shim, other, len(descendants(other)))
		}
	}
	return shim
}

// release writes the file gate waits for into the pod's probe volume, from
// the node (the kubelet's root dir is _output/local/data/kubelet).
func release(t *testing.T, pod *v1.Pod) {
	t.Helper()
	path := filepath.Join(cluster.root, "_output", "local", "data", "kubelet", "pods", string(pod.UID), "volumes", "kubernetes.io~empty-dir", probeVolume, "go")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatalf("release pod %s: %v", pod.Name, err)
	}
}

func running(p *v1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil {
			return false
		}
	}
	return p.Status.Phase == v1.PodRunning
}

// testShimlessExitCodes: containers that exit 3 and 0 under restartPolicy
// Never, OnFailure (3, then 0) and Always (0), in both classes: the exit
// codes and reasons in the status (3 Error, 0 Completed), the phases and the
// restarts must be what Kubernetes defines, the same for both.
func testShimlessExitCodes(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	type want struct {
		phase       v1.PodPhase
		exitCode    int32
		reason      string
		minRestarts int32
		maxRestarts int32
		lastCode    int32 // -1: no last state
		lastReason  string
	}
	cases := []struct {
		name   string
		policy v1.RestartPolicy
		script string
		want   want
	}{
		{"never-3", v1.RestartPolicyNever, "exit 3", want{v1.PodFailed, 3, "Error", 0, 0, -1, ""}},
		{"never-0", v1.RestartPolicyNever, "exit 0", want{v1.PodSucceeded, 0, "Completed", 0, 0, -1, ""}},
		{"onfailure", v1.RestartPolicyOnFailure, fmt.Sprintf("if [ ! -e %[1]s/failed ]; then touch %[1]s/failed; exit 3; fi; exit 0", probeDir),
			want{v1.PodSucceeded, 0, "Completed", 1, 1, 3, "Error"}},
		{"always", v1.RestartPolicyAlways, "exit 0", want{v1.PodRunning, -1, "", 1, 100, 0, "Completed"}},
	}
	for _, class := range classes {
		for _, c := range cases {
			pod := podWith(className(class)+"-"+c.name, "", shell("app", gate+c.script))
			pod.Spec.RestartPolicy = c.policy
			createPod(t, ns, inClass(pod, class))
		}
	}
	for _, class := range classes {
		for _, c := range cases {
			pod := waitForPod(t, ns, className(class)+"-"+c.name, podTimeout, "running", running)
			assertShim(t, pod, class)
			release(t, pod)
		}
	}
	for _, class := range classes {
		for _, c := range cases {
			name := className(class) + "-" + c.name
			pod := waitForPod(t, ns, name, 2*podTimeout, fmt.Sprintf("phase %s, %d+ restarts", c.want.phase, c.want.minRestarts), func(p *v1.Pod) bool {
				s := containerStatus(p, "app")
				return p.Status.Phase == c.want.phase && s != nil && s.RestartCount >= c.want.minRestarts &&
					(c.want.exitCode < 0 || s.State.Terminated != nil)
			})
			s := containerStatus(pod, "app")
			var got []string
			if c.want.exitCode >= 0 && (s.State.Terminated.ExitCode != c.want.exitCode || s.State.Terminated.Reason != c.want.reason) {
				got = append(got, fmt.Sprintf("terminated %d %s, want %d %s", s.State.Terminated.ExitCode, s.State.Terminated.Reason, c.want.exitCode, c.want.reason))
			}
			if s.RestartCount > c.want.maxRestarts {
				got = append(got, fmt.Sprintf("%d restarts, want at most %d", s.RestartCount, c.want.maxRestarts))
			}
			last := s.LastTerminationState.Terminated
			switch {
			case c.want.lastCode < 0 && last != nil:
				got = append(got, fmt.Sprintf("a last state %+v, want none", last))
			case c.want.lastCode >= 0 && (last == nil || last.ExitCode != c.want.lastCode || last.Reason != c.want.lastReason):
				got = append(got, fmt.Sprintf("last state %+v, want %d %s", last, c.want.lastCode, c.want.lastReason))
			}
			if len(got) > 0 {
				t.Errorf("pod %s (%s, restartPolicy %s, %q): %s", name, className(class), c.policy, c.script, strings.Join(got, "; "))
			}
		}
	}
}

// testShimlessOOM: a container over its memory limit (32 MiB; dd allocates a
// 64 MiB buffer and fills it) is OOM-killed, in both classes: reason
// OOMKilled, exit code 137. With cgroup v1 the shim tells containerd of the
// OOM (it watches each container's memory.oom_control), so this shows that
// the shared shim watches every one of its containers.
func testShimlessOOM(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	for _, class := range classes {
		c := shell("app", gate+"exec dd if=/dev/zero of=/dev/null bs=64M count=1")
		c.Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")}
		pod := podWith(className(class)+"-oom", "", c)
		pod.Spec.RestartPolicy = v1.RestartPolicyNever
		createPod(t, ns, inClass(pod, class))
	}
	for _, class := range classes {
		pod := waitForPod(t, ns, className(class)+"-oom", podTimeout, "running", running)
		assertShim(t, pod, class)
		release(t, pod)
	}
	for _, class := range classes {
		// The phase follows the container's state in a later update.
		pod := waitForPod(t, ns, className(class)+"-oom", podTimeout, "terminated, phase Failed or Succeeded", func(p *v1.Pod) bool {
			s := containerStatus(p, "app")
			return s != nil && s.State.Terminated != nil && (p.Status.Phase == v1.PodFailed || p.Status.Phase == v1.PodSucceeded)
		})
		term := containerStatus(pod, "app").State.Terminated
		if term.Reason != "OOMKilled" || term.ExitCode != 137 || pod.Status.Phase != v1.PodFailed {
			t.Errorf("%s: terminated %d %q (phase %s), want 137 OOMKilled (Failed)", pod.Name, term.ExitCode, term.Reason, pod.Status.Phase)
		}
	}
}

// kubectlIO runs kubectl with stdin, returning stdout and stderr apart and
// the exit code.
func kubectlIO(stdin string, args ...string) (stdout, stderr string, code int, err error) {
	cmd := exec.Command(filepath.Join(cluster.bin, "kubectl"), append([]string{"--kubeconfig", cluster.kubeconfig}, args...)...)
	var out, errOut strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err = cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), exit.ExitCode(), nil
	}
	return out.String(), errOut.String(), 0, err
}

// shimlessPod creates a pod of RuntimeClass shimless with one container
// running script, waits until it runs, checks it runs under the shared shim
// and returns it.
func shimlessPod(t *testing.T, ns, name string, c v1.Container) *v1.Pod {
	t.Helper()
	createPod(t, ns, inClass(podWith(name, "", c), shimlessClass))
	pod := waitForPod(t, ns, name, podTimeout, "running", running)
	assertShim(t, pod, shimlessClass)
	return pod
}

// testShimlessExec: kubectl exec into a shimless pod: its stdout and stderr
// come back apart, its exit code is kubectl's, and its stdin reaches it.
func testShimlessExec(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	shimlessPod(t, ns, "exec", shell("app", "sleep 3600"))
	stdout, stderr, code, err := kubectlIO("", "exec", "-n", ns, "exec", "-c", "app", "--", "sh", "-c", "echo out-$((6*7)); echo err-out >&2; exit 7")
	if err != nil || code != 7 || stdout != "out-42\n" || !strings.Contains(stderr, "err-out") {
		t.Errorf("kubectl exec ... exit 7: exit code %d (%v), stdout %q, stderr %q; want 7, \"out-42\\n\", err-out", code, err, stdout, stderr)
	}
	stdout, _, code, err = kubectlIO("hello\n", "exec", "-i", "-n", ns, "exec", "-c", "app", "--", "sh", "-c", "read line; echo got-$line")
	if err != nil || code != 0 || stdout != "got-hello\n" {
		t.Errorf("kubectl exec -i with stdin: exit code %d (%v), stdout %q; want 0, \"got-hello\\n\"", code, err, stdout)
	}
}

// lines starts cmd and sends each line of its stdout to the returned
// channel; the command is killed when the test ends.
func lines(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ch := make(chan string, 1000)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(out)
		for s.Scan() {
			ch <- s.Text()
		}
	}()
	return ch
}

func kubectlCmd(args ...string) *exec.Cmd {
	return exec.Command(filepath.Join(cluster.bin, "kubectl"), append([]string{"--kubeconfig", cluster.kubeconfig}, args...)...)
}

// testShimlessLogsFollow: kubectl logs -f on a shimless pod that writes a
// numbered line every half second shows every line in order, and goes on
// with the lines written after it started.
func testShimlessLogsFollow(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	shimlessPod(t, ns, "logs", shell("app", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.5; done"))
	before, _, _, err := kubectlIO("", "logs", "-n", ns, "logs")
	if err != nil {
		t.Fatal(err)
	}
	written := strings.Count(before, "\n")
	ch := lines(t, kubectlCmd("logs", "-f", "-n", ns, "logs"))
	timeout := time.After(30 * time.Second)
	for next := 0; next <= written+6; next++ {
		select {
		case line, ok := <-ch:
			if !ok {
				t.Fatalf("kubectl logs -f ended after line-%d", next-1)
			}
			if line != fmt.Sprintf("line-%d", next) {
				t.Fatalf("kubectl logs -f: got %q, want line-%d", line, next)
			}
		case <-timeout:
			t.Fatalf("kubectl logs -f: no line-%d within 30 s (%d lines were written when it started)", next, written)
		}
	}
}

// testShimlessAttach: kubectl attach -i to a shimless container with stdin
// open: what is written to kubectl's stdin reaches the container's, and the
// container's answer comes back on kubectl's stdout.
func testShimlessAttach(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", "while read line; do echo \"got $line\"; done; echo stdin-closed; sleep 3600")
	c.Stdin = true
	shimlessPod(t, ns, "attach", c)
	cmd := kubectlCmd("attach", "-i", "-n", ns, "attach", "-c", "app")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	ch := lines(t, cmd)
	for _, word := range []string{"hello", "shimless"} {
		if _, err := io.WriteString(stdin, word+"\n"); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(20 * time.Second)
	read:
		for {
			select {
			case line, ok := <-ch:
				if !ok {
					t.Fatalf("kubectl attach ended before the container answered %q", word)
				}
				if line == "got "+word {
					break read
				}
			case <-timeout:
				t.Fatalf("kubectl attach: no \"got %s\" within 20 s", word)
			}
		}
	}
	if out, _ := kubectl("logs", "-n", ns, "attach"); !strings.Contains(out, "got hello\ngot shimless\n") {
		t.Errorf("the container's log does not show what it read through attach: %q", out)
	}
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)

// testShimlessPortForward: kubectl port-forward to busybox's httpd in a
// shimless pod serves its page on the host.
func testShimlessPortForward(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	shimlessPod(t, ns, "web", shell("app", "mkdir -p /www && echo served-from-shimless > /www/index.html && exec httpd -f -p 8080 -h /www"))
	ch := lines(t, kubectlCmd("port-forward", "-n", ns, "pod/web", ":8080"))
	var port string
	select {
	case line := <-ch:
		m := forwarding.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("kubectl port-forward said %q", line)
		}
		port = m[1]
	case <-time.After(30 * time.Second):
		t.Fatal("kubectl port-forward did not start forwarding within 30 s")
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatalf("GET through the port-forward: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "served-from-shimless\n" {
		t.Errorf("GET through the port-forward: %s %q, want 200 \"served-from-shimless\\n\"", resp.Status, body)
	}
}

// deletion deletes the pod and follows it, through the API's watch, until
// it is gone: it returns how long after the deletion the container was
// first seen terminated, its terminated state, and how long the pod took to
// go.
func deletion(ns, name string, timeout time.Duration) (exited time.Duration, term *v1.ContainerStateTerminated, gone time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pods := cluster.client.CoreV1().Pods(ns)
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, nil, 0, err
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: pod.ResourceVersion})
	if err != nil {
		return 0, nil, 0, err
	}
	defer w.Stop()
	if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return 0, nil, 0, err
	}
	deleted := time.Now()
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Modified, watch.Deleted:
			p := ev.Object.(*v1.Pod)
			if s := containerStatus(p, "app"); s != nil && s.State.Terminated != nil && term == nil {
				exited, term = time.Since(deleted), s.State.Terminated
			}
			if ev.Type == watch.Deleted {
				return exited, term, time.Since(deleted), nil
			}
		case watch.Error:
			return 0, nil, 0, fmt.Errorf("watching the deletion: %v", apierrors.FromObject(ev.Object))
		}
	}
	return 0, nil, 0, fmt.Errorf("not gone within %v of its deletion", timeout)
}

// testShimlessGracefulDeletion: a deleted pod's container gets SIGTERM and,
// when it handles it (exit 42), ends within its grace period (30 s) at once;
// one that ignores it (a shell as PID 1 without a trap) is killed (137)
// when its grace period (5 s) ends. In both classes.
func testShimlessGracefulDeletion(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	scripts := map[string]struct {
		script string
		grace  int64
	}{
		"handles-term": {"trap 'exit 42' TERM; while true; do sleep 1; done", 30},
		"ignores-term": {"while true; do sleep 1; done", 5},
	}
	for _, class := range classes {
		for name, s := range scripts {
			pod := podWith(className(class)+"-"+name, "", shell("app", s.script))
			pod.Spec.TerminationGracePeriodSeconds = ptr.To(s.grace)
			createPod(t, ns, inClass(pod, class))
			forceDelete(t, ns, pod.Name)
		}
	}
	for _, class := range classes {
		for name := range scripts {
			pod := waitForPod(t, ns, className(class)+"-"+name, podTimeout, "running", running)
			assertShim(t, pod, class)
		}
	}
	results := make(chan string, 4)
	for _, class := range classes {
		for name := range scripts {
			go func() {
				pod := className(class) + "-" + name
				exited, term, gone, err := deletion(ns, pod, 60*time.Second)
				if err != nil {
					results <- fmt.Sprintf("%s: %v", pod, err)
					return
				}
				if term == nil {
					results <- fmt.Sprintf("%s: gone %v after its deletion, never seen terminated", pod, gone)
					return
				}
				switch {
				case name == "handles-term" && (term.ExitCode != 42 || exited > 10*time.Second):
					results <- fmt.Sprintf("%s: exited %d after %v of its grace period of 30 s; want 42 (its SIGTERM trap) within 10 s", pod, term.ExitCode, exited)
				case name == "ignores-term" && (term.ExitCode != 137 || exited < 4500*time.Millisecond || exited > 25*time.Second):
					results <- fmt.Sprintf("%s: exited %d after %v; want 137 (SIGKILL) when its grace period of 5 s ends", pod, term.ExitCode, exited)
				default:
					results <- fmt.Sprintf("ok %s: exited %d %v after its deletion, gone after %v", pod, term.ExitCode, exited.Round(time.Millisecond), gone.Round(time.Millisecond))
				}
			}()
		}
	}
	for range 2 * len(scripts) {
		if r := <-results; strings.HasPrefix(r, "ok ") {
			t.Log(r[3:])
		} else {
			t.Error(r)
		}
	}
}

// nofile prints the open-file limits of a process: "soft 1024, hard 20000".
func nofile(t *testing.T, pid int) string {
	t.Helper()
	soft, hard := openFileLimits(t, pid)
	return "soft " + soft + ", hard " + hard
}

// initOf is the first process of a container: the one in its cgroup whose
// parent is the shim.
func initOf(t *testing.T, pids []int) int {
	t.Helper()
	for _, pid := range pids {
		if p := parent(pid); p == shimAncestor(pid) && p != 0 {
			return pid
		}
	}
	t.Fatalf("no process of %v is a child of a shim", pids)
	return 0
}

// testShimlessNofile: each container (and sandbox) started under the
// shimless shim has the RLIMIT_NOFILE, soft and hard, that it has under
// the default runc shim. The shim raises its own limit to hold every pod's
// files (docs/shimless.md); the containers must not inherit that.
func testShimlessNofile(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	limits := map[string]map[string]string{} // class -> sandbox/app -> limit
	for _, class := range classes {
		createPod(t, ns, inClass(podWith(className(class)+"-limits", "", shell("app", "sleep 3600")), class))
	}
	for _, class := range classes {
		pod := waitForPod(t, ns, className(class)+"-limits", podTimeout, "running", running)
		assertShim(t, pod, class)
		app := strings.TrimPrefix(containerStatus(pod, "app").ContainerID, "containerd://")
		limits[class] = map[string]string{}
		for id, pids := range podProcesses(string(pod.UID)) {
			what := "sandbox"
			if id == app {
				what = "app"
			}
			limits[class][what] = nofile(t, initOf(t, pids))
		}
		if len(limits[class]) != 2 {
			t.Fatalf("%s: want a sandbox and an app container, found %v", pod.Name, limits[class])
		}
	}
	t.Logf("RLIMIT_NOFILE: runc %v, shimless %v", limits[""], limits[shimlessClass])
	for _, what := range []string{"sandbox", "app"} {
		if got, want := limits[shimlessClass][what], limits[""][what]; got != want {
			t.Errorf("the %s container's RLIMIT_NOFILE is %s under the shimless shim, %s under runc's", what, got, want)
		}
	}
}

// settled waits until the node runs no pod but those of ns: the namespaces
// of earlier cases go away in the background, and their pods with them
// (the API's pods first, then the node's). The serial cases that count the
// shared shim's processes and files, or the shim sockets, start from there.
func settled(t *testing.T, ns string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cluster.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		known := map[string]bool{}
		for _, p := range pods.Items {
			if p.Namespace != ns {
				last = fmt.Sprintf("pod %s/%s still exists", p.Namespace, p.Name)
				return false, nil
			}
			known["pod"+string(p.UID)] = true
		}
		for _, qos := range []string{"", "besteffort", "burstable"} {
			dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, qos, "pod*"))
			for _, d := range dirs {
				if !known[filepath.Base(d)] {
					last = "the node still runs deleted pod " + filepath.Base(d)
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the node did not settle within 3 minutes: %s", last)
	}
}

// process is a pid and its start time: the same process, not a reused pid.
type process struct {
	pid   int
	start string
}

func (p process) alive() bool { return p.start != "" && startTime(p.pid) == p.start }

func processOf(pid int) process { return process{pid, startTime(pid)} }

// containerInits maps each container of the pods (sandboxes included) to
// its first process.
func containerInits(t *testing.T, pods []*v1.Pod) map[string]process {
	t.Helper()
	out := map[string]process{}
	for _, pod := range pods {
		for id, pids := range podProcesses(string(pod.UID)) {
			out[pod.Name+"/"+id[:12]] = processOf(initOf(t, pids))
		}
	}
	return out
}

// testShimlessContainerdRestart: containerd is stopped (SIGTERM) and started
// again under shimless pods with file probes, and a runc pod: the shared
// shim and every container process survive it (same pid and start time),
// every state of the pods is watched through it and after (Running, Ready,
// no restart, same container), exec reaches an old pod through the new
// containerd, and a new shimless pod runs, under the same shim.
func testShimlessContainerdRestart(t *testing.T) {
	ns := namespace(t)
	settled(t, ns)
	var pods []*v1.Pod
	for i, class := range []string{shimlessClass, shimlessClass, ""} {
		c := shell("app", heartbeat("probe"))
		c.ReadinessProbe = fileProbe("probe", 5, 1, 1)
		c.LivenessProbe = fileProbe("probe", 5, 1, 3)
		createPod(t, ns, inClass(podWith(fmt.Sprintf("%s-%d", className(class), i), "", c), class))
	}
	for _, name := range []string{"shimless-0", "shimless-1", "runc-2"} {
		pods = append(pods, waitForPod(t, ns, name, podTimeout, "Ready", podReady))
	}
	shim := processOf(assertShim(t, pods[0], shimlessClass))
	if s := assertShim(t, pods[1], shimlessClass); s != shim.pid {
		t.Fatalf("the two shimless pods run under shims %d and %d", shim.pid, s)
	}
	runcShim := processOf(assertShim(t, pods[2], ""))
	inits := containerInits(t, pods)
	ids := map[string]string{}
	for _, p := range pods {
		ids[p.Name] = containerStatus(p, "app").ContainerID
	}

	check := func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if p.Status.Phase != v1.PodRunning || !podReady(p) || s == nil || s.RestartCount != 0 || s.State.Running == nil || s.ContainerID != ids[p.Name] {
			return fmt.Errorf("%s: phase %s, ready %v, container %+v", p.Name, p.Status.Phase, podReady(p), s)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watched := make(chan error, 1)
	go func() { watched <- watchPods(ctx, ns, "", check) }()
	localUp(t, nil, "restart", "containerd")
	// The kubelet's PLEG relists every second: give it and the probes time
	// to go through the new containerd.
	time.Sleep(10 * time.Second)
	cancel()
	if err := <-watched; err != nil {
		t.Fatalf("during the containerd restart: %v", err)
	}
	if !shim.alive() {
		t.Errorf("the shared shim %d did not survive the containerd restart (shimless shims now: %v)", shim.pid, shimlessDaemons(t))
	}
	if !runcShim.alive() {
		t.Errorf("the runc pod's shim %d did not survive the containerd restart", runcShim.pid)
	}
	for name, p := range inits {
		if !p.alive() {
			t.Errorf("container %s: its process %d did not survive the containerd restart", name, p.pid)
		}
	}
	for i, p := range pods {
		p, err := cluster.client.CoreV1().Pods(ns).Get(context.Background(), p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := check(p); err != nil {
			t.Errorf("after the containerd restart: %v", err)
		}
		pods[i] = p
	}
	// containerd must reach the old containers through the shim again.
	if stdout, _, code, err := kubectlIO("", "exec", "-n", ns, "shimless-0", "--", "echo", "still-here"); err != nil || code != 0 || stdout != "still-here\n" {
		t.Errorf("kubectl exec into a shimless pod after the containerd restart: exit %d (%v), %q", code, err, stdout)
	}
	fresh := shimlessPod(t, ns, "after-restart", shell("app", "sleep 3600"))
	if s := shimOfPod(t, fresh); s != shim.pid {
		t.Errorf("a shimless pod created after the containerd restart runs under shim %d, not the shared shim %d", s, shim.pid)
	}
	t.Logf("shared shim %d, runc shim %d and %d container processes survived the containerd restart", shim.pid, runcShim.pid, len(inits))
}

// containerdPid is the running stack's containerd (hack/local-up-node.sh
// keeps its pid). Its state dir, /run/containerd in the stack's mount
// namespace, is /proc/<pid>/root/run/containerd from here.
func containerdPid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cluster.root, "_output", "local", "pids", "containerd"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// leftovers lists the paths, down to depth 3 under dir, whose name is one
// of ids (containerd's and runc's per-container directories: the task
// bundles, runc's state, the CRI's containers and sandboxes with their IO
// pipes).
func leftovers(dir string, ids map[string]bool) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if ids[d.Name()] {
			out = append(out, path)
		}
		if d.IsDir() && strings.Count(strings.TrimPrefix(path, dir), "/") >= 3 {
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// fdTargets lists what a process's file descriptors point to.
func fdTargets(pid int) []string {
	var out []string
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		out = append(out, fd.Name()+" -> "+target)
	}
	sort.Strings(out)
	return out
}

// testShimlessWaves: 100 shimless pods, created and deleted in 4 waves of
// 25, leave nothing behind. A keeper pod holds the shared shim through the
// waves; once every wave is gone the shim has its open files and child
// processes of before the waves again, the node no cgroup of the 100 pods,
// and containerd's state dir and root no directory named after one of their
// containers or sandboxes, and the shim socket directory its entries of
// before. Once the keeper goes too, the shimless shims are those of before
// the case (none, on a settled node: the shim exits with its last
// container).
func testShimlessWaves(t *testing.T) {
	const waves, perWave = 4, 25
	ns := namespace(t)
	settled(t, ns)
	var initial []process
	for _, pid := range shimlessDaemons(t) {
		initial = append(initial, processOf(pid))
		t.Logf("with no pod on the node, shimless shim %d runs, %d open files: %q", pid, openFiles(pid), fdTargets(pid))
	}
	containerd := containerdPid(t)
	state := fmt.Sprintf("/proc/%d/root/run/containerd", containerd)
	root := filepath.Join(cluster.root, "_output", "local", "data", "containerd")
	sockets := func() int { entries, _ := os.ReadDir(filepath.Join(state, "s")); return len(entries) }

	keeper := shimlessPod(t, ns, "keeper", shell("app", "trap 'exit 0' TERM; sleep 3600 & wait"))
	shim := processOf(shimOfPod(t, keeper))
	// The shim holds a pidfd while it waits for a runc it started: take
	// the open files of before once it waits for none.
	var fdsBefore []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		fdsBefore = fdTargets(shim.pid)
		return !slices.ContainsFunc(fdsBefore, func(fd string) bool { return strings.HasSuffix(fd, "[pidfd]") }), nil
	})
	if err != nil {
		t.Fatalf("the shim keeps a pidfd open with the keeper pod alone: %q", fdsBefore)
	}
	kidsBefore, socketsBefore := len(descendants(shim.pid)), sockets()

	ids := map[string]bool{}
	var uids []string
	begin := time.Now()
	for w := 0; w < waves; w++ {
		var names []string
		for i := 0; i < perWave; i++ {
			name := fmt.Sprintf("wave%d-%d", w, i)
			createPod(t, ns, inClass(podWith(name, "", shell("app", "trap 'exit 0' TERM; sleep 3600 & wait")), shimlessClass))
			names = append(names, name)
		}
		for _, name := range names {
			pod := waitForPod(t, ns, name, 4*podTimeout, "running", running)
			if s := shimOfPod(t, pod); s != shim.pid {
				t.Fatalf("pod %s runs under shim %d, not the shared shim %d", name, s, shim.pid)
			}
			uids = append(uids, string(pod.UID))
			for id := range podProcesses(string(pod.UID)) {
				ids[id] = true
			}
		}
		for _, name := range names {
			if err := cluster.client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range names {
			err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 2*podTimeout, true, func(ctx context.Context) (bool, error) {
				_, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
			if err != nil {
				t.Fatalf("pod %s not gone within %v of its deletion", name, 2*podTimeout)
			}
		}
		t.Logf("wave %d: %d pods created, Running, deleted and gone (%v so far)", w, perWave, time.Since(begin).Round(time.Second))
	}
	if len(ids) != 2*waves*perWave {
		t.Errorf("%d containers and sandboxes seen for %d pods, want %d", len(ids), waves*perWave, 2*waves*perWave)
	}

	// The CRI keeps a stopped container's and sandbox's directories until
	// the kubelet removes them, which its garbage collection of deleted
	// pods' containers does once a minute, as with runc: wait for it.
	var problems []string
	err = wait.PollUntilContextTimeout(context.Background(), time.Second, 150*time.Second, true, func(ctx context.Context) (bool, error) {
		problems = nil
		if !shim.alive() {
			problems = append(problems, fmt.Sprintf("the shared shim %d exited although the keeper pod runs", shim.pid))
		}
		for _, uid := range uids {
			if dir := podCgroup(uid); dir != "" {
				problems = append(problems, fmt.Sprintf("cgroup %s (processes %v)", dir, podProcesses(uid)))
			}
		}
		if kids := len(descendants(shim.pid)); kids != kidsBefore {
			problems = append(problems, fmt.Sprintf("the shim has %d descendant processes, %d before the waves", kids, kidsBefore))
		}
		if fds := fdTargets(shim.pid); len(fds) != len(fdsBefore) {
			problems = append(problems, fmt.Sprintf("the shim has %d open files, %d before the waves: now %q, before %q", len(fds), len(fdsBefore), fds, fdsBefore))
		}
		if n := sockets(); n != socketsBefore {
			problems = append(problems, fmt.Sprintf("%d entries in %s/s, %d before the waves", n, state, socketsBefore))
		}
		for _, dir := range []string{state, root} {
			if left := leftovers(dir, ids); len(left) > 0 {
				problems = append(problems, fmt.Sprintf("%d leftovers in %s: %q", len(left), dir, left))
			}
		}
		// containerd mounts each container's rootfs in the stack's
		// mount namespace (its own).
		mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", containerd))
		if err != nil {
			problems = append(problems, err.Error())
		}
		for id := range ids {
			if strings.Contains(string(mounts), id) {
				problems = append(problems, "a mount of "+id+" in containerd's mount namespace")
			}
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		t.Fatalf("%d pods in %d waves, 150 s after the last one went: %s", waves*perWave, waves, strings.Join(problems, "; "))
	}

	if err := cluster.client.CoreV1().Pods(ns).Delete(context.Background(), "keeper", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var now []process
	err = wait.PollUntilContextTimeout(context.Background(), time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		now = nil
		for _, pid := range shimlessDaemons(t) {
			now = append(now, processOf(pid))
		}
		return slices.Equal(now, initial), nil
	})
	if err != nil {
		t.Errorf("a minute after the last shimless pod went: shimless shims %v, %v before the case", now, initial)
	}
	t.Logf("%d pods in %d waves in %v; the shim held %d open files with the keeper alone, before and after", waves*perWave, waves, time.Since(begin).Round(time.Second), len(fdsBefore))
}
