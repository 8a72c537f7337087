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

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

const (
	podTimeout = 90 * time.Second
	// fileProbeFeature is the node feature a kubelet with the gate on declares.
	fileProbeFeature = "FileContainerProbe"
)

// TestFileProbes runs the suite in order: first the scenarios that share the
// node (in parallel), then, one at a time, the ones that watch node-wide
// counters or restart components.
func TestFileProbes(t *testing.T) {
	t.Run("scenarios", func(t *testing.T) {
		t.Run("ready while the file is refreshed, not ready after the writer stops", testWriterStops)
		t.Run("never ready when the writer never starts", testWriterNeverStarts)
		t.Run("failing liveness probe restarts the container", testLivenessRestart)
		t.Run("deployment pods carry the probes and become ready", testDeployment)
		t.Run("job pods carry the probes", testJob)
		t.Run("startup probe gates the liveness probe", testStartupGatesLiveness)
		t.Run("a restarted container is judged on its own heartbeat", testRestartOwnHeartbeat)
		t.Run("a restarted container gets validity from its start (liveness)", testRestartLivenessGrace)
		t.Run("restartable init container with a file probe", testSidecar)
		t.Run("writer and probe in different containers", testWriterInOtherContainer)
		t.Run("memory-backed emptyDir", testMemoryMedium)
		t.Run("readiness initialDelaySeconds", testReadinessInitialDelay)
		t.Run("healthy liveness probe never restarts", testLivenessHealthy)
		t.Run("restart count rises monotonically", testLivenessRestartCount)
		t.Run("failing startup probe restarts the container", testStartupProbeFails)
		t.Run("ready promptly once the startup probe succeeds", testStartupThenReady)
		t.Run("liveness held by the startup probe, then restarts", testStartupThenLiveness)
		t.Run("probe-level terminationGracePeriodSeconds", testProbeTerminationGracePeriod)
		t.Run("terminating pod: not ready, no liveness restart", testTerminating)
		t.Run("readiness probed during preStop, liveness not", testReadinessDuringPreStop)
		t.Run("sidecar with a failing readiness probe", testSidecarReadinessFails)
		t.Run("sidecar with a failing startup probe", testSidecarStartupFails)
		t.Run("sidecar with a failing liveness probe", testSidecarLivenessFails)
		t.Run("the first heartbeat wakes the probe up", testInstantReadiness)
		t.Run("hostile pods", testHostile)
		t.Run("kubectl explain", testExplain)
		// The same scenarios and what a runtime must do, with pods of
		// RuntimeClass shimless (one shim for all of them), in parallel
		// with the others: shimless_runtime_test.go.
		t.Run("shimless", func(t *testing.T) {
			t.Parallel()
			t.Run("ready while the file is refreshed, not ready after the writer stops", inShimless(testWriterStops))
			t.Run("failing liveness probe restarts the container", inShimless(testLivenessRestart))
			t.Run("startup probe gates the liveness probe", inShimless(testStartupGatesLiveness))
			t.Run("failing startup probe restarts the container", inShimless(testStartupProbeFails))
			t.Run("restartable init container with a file probe", inShimless(testSidecar))
			t.Run("exit codes and restart policies, as with runc", testShimlessExitCodes)
			t.Run("OOM kill, as with runc", testShimlessOOM)
			t.Run("kubectl exec", testShimlessExec)
			t.Run("kubectl logs -f", testShimlessLogsFollow)
			t.Run("kubectl attach", testShimlessAttach)
			t.Run("kubectl port-forward", testShimlessPortForward)
			t.Run("graceful deletion, as with runc", testShimlessGracefulDeletion)
			t.Run("RLIMIT_NOFILE as with runc", testShimlessNofile)
		})
	})
	t.Run("file probes make no runtime calls", testNoRuntimeCalls)
	t.Run("kubelet restart", testKubeletRestart)
	t.Run("gate off on the kubelet", testKubeletGateOff)
	t.Run("gate off on the apiserver", testAPIServerGateOff)
	// Each of these counts the processes or files of the shared shim, on a
	// node where no other shimless pod runs (they wait for it).
	t.Run("shimless: containerd restart", testShimlessContainerdRestart)
	t.Run("shimless: 100 pods in waves leave nothing behind", testShimlessWaves)
	t.Run("many file-probed pods at once", testManyPods)
	t.Run("RuntimeClass shimless: one shim for all its pods", testShimless)
}

// testWriterStops: the first scenario of the original design, both ways. The
// container refreshes its file for 12 seconds and stops.
func testWriterStops(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", fmt.Sprintf("i=0; while [ $i -lt 12 ]; do touch %s/probe; sleep 1; i=$((i+1)); done; sleep 3600", probeDir))
	c.ReadinessProbe = fileProbe("probe", 3, 1, 2)
	createPod(t, ns, podWith("writer", "", c))

	waitForPod(t, ns, "writer", podTimeout, "Ready", podReady)
	waitForPod(t, ns, "writer", podTimeout, "NotReady after the writer stopped", func(p *v1.Pod) bool { return !podReady(p) })
	msg := waitForEvent(t, ns, "writer", "Unhealthy", "Readiness probe failed: file /probe-volume/probe last modified", 30*time.Second)
	if !strings.HasSuffix(msg, "ago (validity 3s)") {
		t.Errorf("the failure event does not say how old the file is against the validity: %q", msg)
	}

	out, err := kubectl("describe", "pod", "-n", ns, "writer")
	if err != nil {
		t.Fatalf("kubectl describe: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\n\s+Readiness:\s+file /probe-volume/probe validity=3s delay=0s timeout=1s period=1s successThreshold=1 failureThreshold=2\n`),
		regexp.MustCompile(`Readiness probe failed: file /probe-volume/probe last modified \d+s ago \(validity 3s\)`),
	} {
		if !want.MatchString(out) {
			t.Errorf("kubectl describe pod does not show %s:\n%s", want, out)
		}
	}
}

// testWriterNeverStarts mirrors "with readiness probe that fails should
// never be ready and never restart": over a window of 20 probes, every state
// of the pods is watched: never Ready, never restarted, and the probes did
// run (and fail) all along. "idle" never writes its file; "stale" keeps
// touching its file with a date of 2000, so that a prober that checked only
// that the file exists would make it Ready.
func testWriterNeverStarts(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	scripts := map[string]string{
		"idle":  "sleep 3600",
		// Created under another name and renamed: touch -d on a missing file
		// creates it fresh and back-dates it only afterwards, and a probe
		// woken by the creation could rightly see it fresh in between.
		"stale": fmt.Sprintf("touch -d '2000-01-01 00:00:00' %[1]s/.probe && mv %[1]s/.probe %[1]s/probe && "+
			"while true; do touch -d '2000-01-01 00:00:00' %[1]s/probe; sleep 1; done", probeDir),
	}
	for name, script := range scripts {
		c := shell("app", script)
		c.ReadinessProbe = fileProbe("probe", 3, 1, 1)
		createPod(t, ns, podWith(name, "", c))
	}
	for name := range scripts {
		waitForPod(t, ns, name, podTimeout, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	}
	failedBefore := map[string]float64{}
	for name := range scripts {
		failedBefore[name] = probeCount(t, ns, name, "app", "Readiness", `result="failed"`)
	}
	const window = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	err := watchPods(ctx, ns, "", func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if podReady(p) || s == nil || s.Ready || s.RestartCount != 0 || s.State.Running == nil {
			return fmt.Errorf("%s: pod ready %v, container %+v", p.Name, podReady(p), s)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("within %v of failing readiness probes: %v", window, err)
	}
	for name := range scripts {
		// 20 probes at period 1; allow for a slow start.
		if n := probeCount(t, ns, name, "app", "Readiness", `result="failed"`) - failedBefore[name]; n < 15 {
			t.Errorf("%s: only %v failed readiness probes in %v at period 1 s", name, n, window)
		}
		pod := waitForPod(t, ns, name, time.Second, "still running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
		if s := containerStatus(pod, "app"); podReady(pod) || s.RestartCount != 0 {
			t.Errorf("%s after the window: ready %v, restarts %d", name, podReady(pod), s.RestartCount)
		}
	}
	waitForEvent(t, ns, "idle", "Unhealthy", "Readiness probe failed: file /probe-volume/probe does not exist", 10*time.Second)
	waitForEvent(t, ns, "stale", "Unhealthy", "Readiness probe failed: file /probe-volume/probe last modified", 10*time.Second)
}

func testLivenessRestart(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", fmt.Sprintf("i=0; while [ $i -lt 5 ]; do touch %s/probe; sleep 1; i=$((i+1)); done; sleep 3600", probeDir))
	c.LivenessProbe = fileProbe("probe", 2, 1, 2)
	c.LivenessProbe.TerminationGracePeriodSeconds = ptr.To[int64](1)
	createPod(t, ns, podWith("liveness", "", c))

	waitForPod(t, ns, "liveness", 2*podTimeout, "restarted", func(p *v1.Pod) bool {
		s := containerStatus(p, "app")
		return s != nil && s.RestartCount >= 1
	})
	waitForEvent(t, ns, "liveness", "Unhealthy", "Liveness probe failed: file /probe-volume/probe last modified", 10*time.Second)
	waitForEvent(t, ns, "liveness", "Killing", "failed liveness probe, will be restarted", 10*time.Second)
}

func testDeployment(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	c := shell("app", heartbeat("probe"))
	c.ReadinessProbe = fileProbe("probe", 5, 1, 1)
	c.LivenessProbe = fileProbe("probe", 30, 5, 3)
	template := podWith("", "", c)
	labels := map[string]string{"app": "file-probed"}
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "file-probed"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: template.Spec},
		},
	}
	if _, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, deployment, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	var last *appsv1.Deployment
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		d, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "file-probed", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = d
		return d.Status.ReadyReplicas == 2, nil
	})
	if err != nil {
		t.Fatalf("deployment not ready: %v; status %+v", err, last.Status)
	}
	pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=file-probed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("%d pods, want 2", len(pods.Items))
	}
	for _, p := range pods.Items {
		c := p.Spec.Containers[0]
		if c.ReadinessProbe == nil || c.ReadinessProbe.File == nil || c.ReadinessProbe.File.Path != "/probe-volume/probe" ||
			c.LivenessProbe == nil || c.LivenessProbe.File == nil || c.LivenessProbe.File.Validity != 30 {
			t.Errorf("pod %s lost its file probes on the way through the controllers: %+v %+v", p.Name, c.ReadinessProbe, c.LivenessProbe)
		}
	}
}

// testJob: a Job's pod carries its file probe through the job controller,
// becomes Ready while it works, and completes.
func testJob(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	c := shell("work", fmt.Sprintf("i=0; while [ $i -lt 8 ]; do touch %s/probe; sleep 1; i=$((i+1)); done", probeDir))
	c.ReadinessProbe = fileProbe("probe", 5, 1, 1)
	template := podWith("", "", c)
	template.Spec.RestartPolicy = v1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "file-probed"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template:     v1.PodTemplateSpec{Spec: template.Spec},
		},
	}
	if _, err := cluster.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create job: %v", err)
	}
	var ready, complete bool
	var last *batchv1.Job
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		j, err := cluster.client.BatchV1().Jobs(ns).Get(ctx, "file-probed", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = j
		ready = ready || ptr.Deref(j.Status.Ready, 0) == 1
		complete = j.Status.Succeeded == 1
		return complete, nil
	})
	if err != nil {
		t.Fatalf("job not complete: %v; status %+v", err, last.Status)
	}
	if !ready {
		t.Errorf("the job's pod was never seen Ready while it worked")
	}
	pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=file-probed"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("job pods: %v, %v", len(pods.Items), err)
	}
	if p := pods.Items[0].Spec.Containers[0].ReadinessProbe; p == nil || p.File == nil || p.File.Path != "/probe-volume/probe" {
		t.Errorf("the job's pod lost its file probe on the way through the job controller: %+v", p)
	}
}

// testStartupGatesLiveness: the liveness probe's file appears only after the
// startup probe's; with failureThreshold 1, a liveness probe run before the
// startup probe succeeded would restart the container.
func testStartupGatesLiveness(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", fmt.Sprintf("sleep 4; touch %s/started; %s", probeDir, heartbeat("alive")))
	c.StartupProbe = fileProbe("started", 3600, 1, 60)
	c.LivenessProbe = fileProbe("alive", 3, 1, 1)
	createPod(t, ns, podWith("startup", "", c))

	pod := waitForPod(t, ns, "startup", podTimeout, "Ready", podReady)
	s := containerStatus(pod, "app")
	if s.Started == nil || !*s.Started {
		t.Errorf("Ready but not started: %+v", s)
	}
	// Give a wrongly ungated liveness probe time to fire.
	time.Sleep(3 * time.Second)
	pod = waitForPod(t, ns, "startup", podTimeout, "Ready", podReady)
	if s := containerStatus(pod, "app"); s.RestartCount != 0 {
		t.Errorf("the container was restarted %d times: the liveness probe ran before the startup probe succeeded", s.RestartCount)
	}
	waitForEvent(t, ns, "startup", "Unhealthy", "Startup probe failed: file /probe-volume/started does not exist", 10*time.Second)
}

// firstInstance is a script whose first instance (no marker in the volume
// yet) refreshes its probe file for 6 seconds and exits 1, and whose later
// instances run then.
func firstInstance(then string) string {
	return fmt.Sprintf("if [ ! -e %[1]s/marker ]; then touch %[1]s/marker; i=0; while [ $i -lt 6 ]; do touch %[1]s/probe; sleep 1; i=$((i+1)); done; exit 1; fi; %[2]s", probeDir, then)
}

// testRestartOwnHeartbeat: the emptyDir outlives the container, so after a
// crash the file its first instance wrote is still fresh (validity 60s, the
// restart back-off is 10s). The restarted instance, which writes nothing for
// its first 8 seconds, must be neither Ready nor Started on it.
func testRestartOwnHeartbeat(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", firstInstance("sleep 8; "+heartbeat("probe")))
	c.ReadinessProbe = fileProbe("probe", 60, 1, 1)
	c.StartupProbe = fileProbe("probe", 3600, 1, 60)
	createPod(t, ns, podWith("restart", "", c))

	waitForPod(t, ns, "restart", podTimeout, "Ready (first instance)", podReady)
	pod := waitForPod(t, ns, "restart", 2*podTimeout, "restarted and running", func(p *v1.Pod) bool {
		s := containerStatus(p, "app")
		return s != nil && s.RestartCount >= 1 && s.State.Running != nil
	})
	started := containerStatus(pod, "app").State.Running.StartedAt.Time
	// Until the new instance writes (8s after its start), it is neither
	// Ready nor Started: watch it closely for 5s of that.
	for time.Since(started) < 5*time.Second {
		p, err := cluster.client.CoreV1().Pods(ns).Get(context.Background(), "restart", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := containerStatus(p, "app")
		if s.RestartCount != 1 {
			t.Fatalf("restarted again: %+v", s)
		}
		if podReady(p) || s.Ready || (s.Started != nil && *s.Started) {
			t.Fatalf("%v after its restart, the new instance is ready %v / started %v on its predecessor's heartbeat", time.Since(started), s.Ready, s.Started != nil && *s.Started)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitForEvent(t, ns, "restart", "Unhealthy", "ago, before the container started", 10*time.Second)
	pod = waitForPod(t, ns, "restart", podTimeout, "Ready on its own heartbeat", podReady)
	if s := containerStatus(pod, "app"); s.RestartCount != 1 || s.Started == nil || !*s.Started {
		t.Errorf("after its first heartbeat: %+v", s)
	}
}

// testRestartLivenessGrace: a restarted instance gets validity (8s) from its
// start to write its first heartbeat, although its predecessor's file is
// older than that: it writes at 3s and is not killed.
func testRestartLivenessGrace(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", firstInstance("sleep 3; "+heartbeat("probe")))
	c.LivenessProbe = fileProbe("probe", 8, 1, 1)
	c.LivenessProbe.TerminationGracePeriodSeconds = ptr.To[int64](1)
	createPod(t, ns, podWith("grace", "", c))

	pod := waitForPod(t, ns, "grace", 2*podTimeout, "restarted and running", func(p *v1.Pod) bool {
		s := containerStatus(p, "app")
		return s != nil && s.RestartCount >= 1 && s.State.Running != nil
	})
	started := containerStatus(pod, "app").State.Running.StartedAt.Time
	// Its predecessor's file is >10s old (the back-off): a probe judging
	// the file alone kills it within a second or two. Watch for 12s.
	for time.Since(started) < 12*time.Second {
		p, err := cluster.client.CoreV1().Pods(ns).Get(context.Background(), "grace", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s := containerStatus(p, "app"); s.RestartCount != 1 || s.State.Running == nil {
			t.Fatalf("%v after its restart, the new instance was killed: %+v", time.Since(started), s)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// testSidecar: a restartable init container's startup probe gates the
// pod's container (upstream "should launch restartable init containers
// serially considering the startup probe"), and its readiness probe the
// pod's readiness, both ways: the sidecar writes from 6 s to 21 s after its
// start; the app must start no sooner than 6 s after it, the pod must be
// Ready, then NotReady when the sidecar's file goes stale.
func testSidecar(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	sidecar := shell("sidecar", "sleep 6; "+heartbeatFor("sidecar", 15))
	sidecar.ReadinessProbe = fileProbe("sidecar", 3, 1, 1)
	sidecar.StartupProbe = fileProbe("sidecar", 3, 1, 30)
	createPod(t, ns, sidecarPod("sidecar", sidecar, shell("app", "sleep 3600")))

	pod := waitForPod(t, ns, "sidecar", podTimeout, "Ready", podReady)
	s, app := containerStatus(pod, "sidecar"), containerStatus(pod, "app")
	if !s.Ready || !started(s) {
		t.Errorf("sidecar status: %+v", s)
	}
	if gap := app.State.Running.StartedAt.Sub(s.State.Running.StartedAt.Time); gap < 6*time.Second {
		t.Errorf("the app started %v after the sidecar, before the sidecar's startup probe could succeed (6 s)", gap)
	}
	waitForPod(t, ns, "sidecar", podTimeout, "NotReady after the sidecar stopped writing", func(p *v1.Pod) bool { return !podReady(p) })
	waitForEvent(t, ns, "sidecar", "Unhealthy", "Readiness probe failed: file /probe-volume/sidecar last modified", 30*time.Second)
	pod = waitForPod(t, ns, "sidecar", time.Second, "running", func(p *v1.Pod) bool { return true })
	if s := containerStatus(pod, "sidecar"); s.Ready || s.RestartCount != 0 {
		t.Errorf("sidecar after its file went stale: %+v", s)
	}
}

// testWriterInOtherContainer: the container probed never writes; the other
// container of the pod writes the file for 15 s and stops. The pod is Ready
// on the writer's heartbeat, then NotReady once it stops.
func testWriterInOtherContainer(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	app := shell("app", "sleep 3600")
	app.ReadinessProbe = fileProbe("heartbeat", 3, 1, 1)
	createPod(t, ns, podWith("two-containers", "", shell("writer", heartbeatFor("heartbeat", 15)), app))

	pod := waitForPod(t, ns, "two-containers", podTimeout, "Ready", podReady)
	if s := containerStatus(pod, "app"); !s.Ready {
		t.Errorf("app status: %+v", s)
	}
	waitForPod(t, ns, "two-containers", podTimeout, "NotReady after the writer stopped", func(p *v1.Pod) bool { return !podReady(p) })
	waitForEvent(t, ns, "two-containers", "Unhealthy", "Readiness probe failed: file /probe-volume/heartbeat last modified", 30*time.Second)
}

// testMemoryMedium: the same on a tmpfs emptyDir: Ready while the file is
// refreshed (15 s), NotReady once it is not.
func testMemoryMedium(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", heartbeatFor("probe", 15))
	c.ReadinessProbe = fileProbe("probe", 3, 1, 1)
	createPod(t, ns, podWith("tmpfs", v1.StorageMediumMemory, c))
	waitForPod(t, ns, "tmpfs", podTimeout, "Ready", podReady)
	waitForPod(t, ns, "tmpfs", podTimeout, "NotReady after the writer stopped", func(p *v1.Pod) bool { return !podReady(p) })
	waitForEvent(t, ns, "tmpfs", "Unhealthy", "Readiness probe failed: file /probe-volume/probe last modified", 30*time.Second)
}

// testInstantReadiness: the writer starts 8 s after the container, the
// readiness probe's period is 60 s, so a periodic probe would make the pod
// Ready about a minute after it started; watching the file makes it Ready
// on the first heartbeat.
func testInstantReadiness(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", "sleep 8; "+heartbeat("probe"))
	c.ReadinessProbe = fileProbe("probe", 30, 60, 1)
	createPod(t, ns, podWith("instant", "", c))

	pod := waitForPod(t, ns, "instant", podTimeout, "Ready", podReady)
	started := containerStatus(pod, "app").State.Running.StartedAt.Time
	var ready time.Time
	for _, cond := range pod.Status.Conditions {
		if cond.Type == v1.PodReady {
			ready = cond.LastTransitionTime.Time
		}
	}
	// The API's timestamps have a resolution of a second.
	if delay := ready.Sub(started); delay < 7*time.Second || delay > 30*time.Second {
		t.Errorf("Ready %v after the container started; the first heartbeat was 8 s after it and the next period 60 s", delay)
	} else {
		t.Logf("Ready %v after the container started (first heartbeat after 8 s, period 60 s)", delay)
	}
}

// testHostile: containers that, once Ready, replace their probe file with
// something else. The validity is an hour, so only what the file is can make
// the probe fail. The symbolic link points to a host file that this test
// keeps fresh: a kubelet following it would report Success.
func testHostile(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	bait := filepath.Join(t.TempDir(), "fresh-host-file")
	if err := os.WriteFile(bait, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
				now := time.Now()
				_ = os.Chtimes(bait, now, now)
			}
		}
	}()

	cases := map[string]struct{ replace, message string }{
		"symlink": {
			replace: "ln -s " + bait + " " + probeDir + "/probe",
			message: "file /probe-volume/probe is a symbolic link (file probes never follow symbolic links), not a regular file",
		},
		"fifo": {
			replace: "mkfifo " + probeDir + "/probe",
			message: "file /probe-volume/probe is a named pipe (FIFO), not a regular file",
		},
		"directory": {
			replace: "mkdir " + probeDir + "/probe",
			message: "file /probe-volume/probe is a directory, not a regular file",
		},
	}
	t.Run("swaps", func(t *testing.T) {
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				container := shell("app", fmt.Sprintf("touch %[1]s/probe; while [ ! -f %[1]s/go ]; do sleep 1; done; rm %[1]s/probe; %[2]s; sleep 3600", probeDir, c.replace))
				container.ReadinessProbe = fileProbe("probe", 3600, 1, 1)
				// A second container tells the first to swap, once the
				// pod had time to become Ready.
				trigger := shell("trigger", fmt.Sprintf("sleep 15; touch %s/go; sleep 3600", probeDir))
				createPod(t, ns, podWith(name, "", container, trigger))
				waitForPod(t, ns, name, podTimeout, "Ready before the swap", podReady)
				waitForPod(t, ns, name, podTimeout, "NotReady after the swap", func(p *v1.Pod) bool { return !podReady(p) })
				waitForEvent(t, ns, name, "Unhealthy", "Readiness probe failed: "+c.message, 30*time.Second)
			})
		}
	})
	healthz, err := cluster.client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", cluster.node, "proxy", "healthz").DoRaw(context.Background())
	if err != nil || string(healthz) != "ok" {
		t.Errorf("kubelet healthz after the hostile pods: %q %v", healthz, err)
	}
}

func testExplain(t *testing.T) {
	t.Parallel()
	out, err := kubectl("explain", "pod.spec.containers.readinessProbe.file")
	if err != nil {
		t.Fatalf("kubectl explain: %v\n%s", err, out)
	}
	for _, want := range []string{"FIELD: file <FileAction>", "path\t<string> -required-", "validity\t<integer> -required-"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain does not show %q:\n%s", want, out)
		}
	}
}

// testNoRuntimeCalls watches the kubelet's count of CRI ExecSync calls while
// only file probes run (every second, in three pods), then runs an exec
// probe as the control.
func testNoRuntimeCalls(t *testing.T) {
	ns := namespace(t)
	heartbeatPods(t, ns, "file", 3)

	execSync := func() float64 {
		return kubeletMetric(t, "metrics", "kubelet_runtime_operations_total", `operation_type="exec_sync"`)
	}
	fileProbes := func() float64 {
		return kubeletMetric(t, "metrics/probes", "prober_file_probe_total", `result="successful"`)
	}
	execBefore, fileBefore := execSync(), fileProbes()
	time.Sleep(10 * time.Second)
	execAfter, fileAfter := execSync(), fileProbes()
	if execAfter != execBefore {
		t.Errorf("kubelet_runtime_operations_total{operation_type=\"exec_sync\"} moved from %v to %v while only file probes ran", execBefore, execAfter)
	}
	// 3 pods x 2 probes x 10 s at period 1: about 60 probes.
	if fileAfter-fileBefore < 30 {
		t.Errorf("prober_file_probe_total{result=\"successful\"} moved by only %v in 10 s: the file probes did not run", fileAfter-fileBefore)
	}
	t.Logf("10 s of file probes: %v successful file probes, %v exec_sync calls", fileAfter-fileBefore, execAfter-execBefore)

	control := shell("app", "touch /tmp/ready; sleep 3600")
	control.ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/ready"}}}, PeriodSeconds: 1}
	createPod(t, ns, podWith("exec-control", "", control))
	waitForPod(t, ns, "exec-control", podTimeout, "Ready", podReady)
	if after := execSync(); after <= execAfter {
		t.Errorf("the exec probe did not move kubelet_runtime_operations_total{operation_type=\"exec_sync\"} (%v): the counter is not watched", after)
	}
}

// testKubeletRestart mirrors the "Not Change Container Status" cases of
// container_lifecycle_test.go: pods with readiness, liveness and startup file
// probes, one with a sidecar that has all three (and the same in RuntimeClass
// shimless, whose shared shim and processes must survive too), are watched
// during and after a kubelet restart: every state must stay Running, Ready,
// Started and without a restart. That the probes ran after the restart (and the old
// status did not merely survive) shows in the new kubelet's
// prober_file_probe_total, which rises, and in this namespace's
// prober_probe_total, which counts no failure.
func testKubeletRestart(t *testing.T) {
	ns := namespace(t)
	heartbeatPods(t, ns, "survivor", 2)
	sidecar := shell("sidecar", heartbeat("sidecar"))
	app := shell("app", heartbeat("probe"))
	for file, c := range map[string]*v1.Container{"sidecar": &sidecar, "probe": &app} {
		c.StartupProbe = fileProbe(file, 5, 1, 30)
		c.ReadinessProbe = fileProbe(file, 5, 1, 1)
		c.LivenessProbe = fileProbe(file, 5, 1, 3)
	}
	createPod(t, ns, sidecarPod("all-probes", sidecar, app))
	// The same pod in RuntimeClass shimless: its shared shim and its
	// processes must not notice the kubelet's restart either.
	createPod(t, ns, inClass(sidecarPod("all-probes-shimless", sidecar, app), shimlessClass))
	waitForPod(t, ns, "all-probes", podTimeout, "Ready", podReady)
	shimlessAll := waitForPod(t, ns, "all-probes-shimless", podTimeout, "Ready", podReady)
	// A restarted kubelet keeps the status of the containers that started
	// more than 10 s before it (kubeletRestartGracePeriod); younger ones
	// are probed again from scratch (not Started, then Started), for every
	// handler. As upstream's test does, restart only once every container
	// is older than that.
	pods, err := cluster.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var youngest time.Time
	for _, p := range pods.Items {
		for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			if s.State.Running != nil && s.State.Running.StartedAt.After(youngest) {
				youngest = s.State.Running.StartedAt.Time
			}
		}
	}
	time.Sleep(time.Until(youngest.Add(12 * time.Second)))
	shim := processOf(assertShim(t, shimlessAll, shimlessClass))
	inits := containerInits(t, []*v1.Pod{shimlessAll})

	check := func(p *v1.Pod) error {
		if p.Status.Phase != v1.PodRunning || !podReady(p) {
			return fmt.Errorf("%s: phase %s, ready %v", p.Name, p.Status.Phase, podReady(p))
		}
		for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			if !s.Ready || !started(&s) || s.RestartCount != 0 || s.State.Running == nil {
				return fmt.Errorf("%s: container %+v", p.Name, s)
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watched := make(chan error, 1)
	go func() { watched <- watchPods(ctx, ns, "", check) }()

	failed := func() float64 {
		return kubeletMetric(t, "metrics/probes", "prober_probe_total", `namespace="`+ns+`"`, `result="failed"`)
	}
	before := kubeletMetric(t, "metrics/probes", "prober_file_probe_total")
	localUp(t, nil, "restart", "kubelet")
	after, failedAfter := kubeletMetric(t, "metrics/probes", "prober_file_probe_total"), failed()
	time.Sleep(10 * time.Second)
	later := kubeletMetric(t, "metrics/probes", "prober_file_probe_total")
	cancel()
	if err := <-watched; err != nil {
		t.Fatalf("during the kubelet restart: %v", err)
	}
	pods, err = cluster.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		if err := check(&pods.Items[i]); err != nil {
			t.Errorf("after the kubelet restart: %v", err)
		}
	}
	t.Logf("prober_file_probe_total: %v before the restart, %v when it returned, %v 10 s later", before, after, later)
	if !shim.alive() {
		t.Errorf("the shared shim %d did not survive the kubelet restart", shim.pid)
	}
	for name, p := range inits {
		if !p.alive() {
			t.Errorf("shimless container %s: its process %d did not survive the kubelet restart", name, p.pid)
		}
	}
	// Each second, readiness and liveness in two containers of all-probes
	// and in each survivor: 8 probes.
	if later-after < 40 {
		t.Errorf("prober_file_probe_total rose by %v in the 10 s after the kubelet restart: the new kubelet did not run the probes", later-after)
	}
	if n := failed() - failedAfter; n != 0 {
		t.Errorf("%v probes failed after the kubelet restart", n)
	}
}

// testKubeletGateOff restarts the kubelet with the gate off: the node stops
// declaring the feature, the scheduler keeps file-probed pods away and says
// why, and the kubelet rejects a pod bound to it directly. With the gate on
// again, the pending pod is scheduled and becomes Ready.
func testKubeletGateOff(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	localUp(t, []string{"FILEPROBE_GATE=false"}, "restart", "kubelet")
	restored := false
	t.Cleanup(func() {
		if !restored {
			localUp(t, nil, "restart", "kubelet")
		}
	})
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := cluster.client.CoreV1().Nodes().Get(ctx, cluster.node, metav1.GetOptions{})
		return err == nil && nodeReady(node) && !slices.Contains(node.Status.DeclaredFeatures, fileProbeFeature), nil
	})
	if err != nil {
		t.Fatalf("the node still declares %s with the kubelet's gate off: %v", fileProbeFeature, err)
	}

	c := shell("app", heartbeat("probe"))
	c.ReadinessProbe = fileProbe("probe", 5, 1, 1)
	createPod(t, ns, podWith("pending", "", c))
	waitForEvent(t, ns, "pending", "FailedScheduling", "node(s) didn't match Pod's required features", podTimeout)
	if pod, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "pending", metav1.GetOptions{}); err != nil || pod.Spec.NodeName != "" {
		t.Fatalf("the file-probed pod was bound to the node without the feature: %v %v", pod.Spec.NodeName, err)
	}

	bound := podWith("bound", "", c)
	bound.Spec.NodeName = cluster.node
	createPod(t, ns, bound)
	pod := waitForPod(t, ns, "bound", podTimeout, "rejected by the kubelet", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if pod.Status.Reason != "PodFeatureUnsupported" {
		t.Errorf("the kubelet rejected the bound pod with reason %q, want PodFeatureUnsupported (%s)", pod.Status.Reason, pod.Status.Message)
	}

	localUp(t, nil, "restart", "kubelet")
	restored = true
	waitForPod(t, ns, "pending", 2*podTimeout, "scheduled and Ready once the kubelet declares the feature", podReady)
}

// testAPIServerGateOff restarts the apiserver with the gate off: a new pod
// with a file probe is rejected, naming the gate.
func testAPIServerGateOff(t *testing.T) {
	ns := namespace(t)
	localUp(t, []string{"APISERVER_FILEPROBE_GATE=false"}, "restart", "kube-apiserver")
	t.Cleanup(func() { localUp(t, nil, "restart", "kube-apiserver") })

	c := shell("app", heartbeat("probe"))
	c.ReadinessProbe = fileProbe("probe", 5, 1, 1)
	_, err := cluster.client.CoreV1().Pods(ns).Create(context.Background(), podWith("rejected", "", c), metav1.CreateOptions{})
	if err == nil {
		t.Fatal("the apiserver accepted a file probe with its gate off")
	}
	for _, want := range []string{"spec.containers[0].readinessProbe.file", "FileContainerProbe"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the rejection does not name %q: %v", want, err)
		}
	}
}
