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

// The file-probe analogs of upstream's probe e2e cases for the other
// handlers: test/e2e/common/node/container_probe.go ("Probing container",
// "Probing restartable init container"), the probe cases of
// test/e2e_node/container_lifecycle_test.go, and
// test/e2e_node/probe_stress_test.go. Each says which upstream case it
// mirrors. Upstream watches for minutes at periods of 10 s; these probe
// every second and watch windows of tens of probes, which is at least as
// many probe runs as upstream's in a fraction of the time CI has.
//
// Upstream cases without an analog, because they test another handler's
// transport rather than the probe machinery: timeouts (timeoutSeconds; a file
// probe is one statx that the container cannot slow down), HTTP redirects and
// HTTP/2, gRPC and TLS, TCP ports; and the image-update cases of
// container_lifecycle_test.go (a changed container definition, whatever its
// probes). Every other case runs here, on the real single node.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// heartbeatFor is a script refreshing /probe-dir/<file> every second for
// the given number of seconds, then idling (so that the file goes stale).
func heartbeatFor(file string, seconds int) string {
	return fmt.Sprintf("i=0; while [ $i -lt %d ]; do touch %s/%s; sleep 1; i=$((i+1)); done; sleep 3600", seconds, probeDir, file)
}

// readyTransition is the last transition time of the pod's Ready condition.
func readyTransition(pod *v1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// testReadinessInitialDelay mirrors "with readiness probe should not be
// ready before initial delay and never restart". The file is fresh from the
// container's first second, so only initialDelaySeconds (10 s) keeps the
// pods from being Ready. "periodic" probes every second; "watched" probes
// every 60 s, so that only the watch (the heartbeat's events, one a second
// during the whole delay) can make it Ready soon after the delay, and must
// not before. Every state of both pods is watched.
func testReadinessInitialDelay(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	const delay = 10 * time.Second
	periods := map[string]int32{"periodic": 1, "watched": 60}
	for name, period := range periods {
		c := shell("app", heartbeat("probe"))
		c.ReadinessProbe = fileProbe("probe", 30, period, 1)
		c.ReadinessProbe.InitialDelaySeconds = int32(delay / time.Second)
		createPod(t, ns, podWith(name, "", c))
	}
	ctx, cancel := context.WithTimeout(context.Background(), podTimeout)
	defer cancel()
	readyAfter := map[string]time.Duration{}
	err := watchPods(ctx, ns, "", func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if s == nil || s.State.Running == nil {
			if podReady(p) {
				return fmt.Errorf("%s is Ready without a running container", p.Name)
			}
			return nil
		}
		if s.RestartCount != 0 {
			return fmt.Errorf("%s was restarted: %+v", p.Name, s)
		}
		// The API's start time is rounded down to the second, so
		// since is at least the real time since the start.
		since := time.Since(s.State.Running.StartedAt.Time)
		if podReady(p) || s.Ready {
			if since < delay {
				return fmt.Errorf("%s is Ready %v after its container started, before its initialDelaySeconds (%v)", p.Name, since, delay)
			}
			if _, seen := readyAfter[p.Name]; !seen {
				readyAfter[p.Name] = since
			}
		} else if _, seen := readyAfter[p.Name]; seen {
			return fmt.Errorf("%s was Ready and is not any more", p.Name)
		}
		if len(readyAfter) == len(periods) {
			return errDone
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(readyAfter) != len(periods) {
		t.Fatalf("not Ready within %v: only %v", podTimeout, readyAfter)
	}
	for name, period := range periods {
		pod, err := cluster.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := containerStatus(pod, "app")
		if !podReady(pod) || s.RestartCount != 0 {
			t.Errorf("%s: ready %v, restarts %d", name, podReady(pod), s.RestartCount)
		}
		// Upstream's own check: the Ready condition's transition time.
		if d := readyTransition(pod).Sub(s.State.Running.StartedAt.Time); d < delay {
			t.Errorf("%s: Ready condition set %v after the container started, before the initial delay %v", name, d, delay)
		}
		// The probe runs at the first period after the delay (or, with
		// the 60 s period, at the first heartbeat after it).
		if readyAfter[name] > delay+5*time.Second {
			t.Errorf("%s (period %ds): Ready only %v after the container started, with an initial delay of %v and a heartbeat every second", name, period, readyAfter[name], delay)
		}
		t.Logf("%s (period %ds): Ready %v after the container started (initial delay %v)", name, period, readyAfter[name].Round(time.Millisecond), delay)
	}
}

// testLivenessHealthy mirrors "should *not* be restarted with a exec "cat
// /tmp/health" liveness probe" (and its httpGet, tcpSocket and grpc
// siblings). Upstream watches 4 minutes at its default period of 10 s with
// failureThreshold 1, about 24 probe runs; here 30 s at period 1 s with
// failureThreshold 1 and a validity of 3 s are 30 runs, any of which would
// restart the container if it failed.
func testLivenessHealthy(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", heartbeat("probe"))
	c.LivenessProbe = fileProbe("probe", 3, 1, 1)
	// As upstream's case, an initial delay: with failureThreshold 1, a first
	// probe before the shell's first touch (a loaded node takes a while to
	// get there) would rightly restart the container.
	c.LivenessProbe.InitialDelaySeconds = 3
	createPod(t, ns, podWith("healthy", "", c))
	pod := waitForPod(t, ns, "healthy", podTimeout, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	id := containerStatus(pod, "app").ContainerID
	waitProbed(t, ns, "healthy", "app", "Liveness")
	before := probeCount(t, ns, "healthy", "app", "Liveness", `result="successful"`)
	start := time.Now()
	const window = 30 * time.Second
	watchPod(t, ns, "healthy", window, "healthy liveness probe", func(p *v1.Pod) error {
		if s := containerStatus(p, "app"); s.RestartCount != 0 || s.ContainerID != id || s.State.Running == nil {
			return fmt.Errorf("the container was restarted or stopped: %+v", s)
		}
		return nil
	})
	if n := probeCount(t, ns, "healthy", "app", "Liveness", `result="successful"`) - before; n < 25 {
		t.Errorf("only %v successful liveness probes in %v at period 1 s: the probe did not run", n, window)
	}
	if n := probeCount(t, ns, "healthy", "app", "Liveness", `result="failed"`); n != 0 {
		t.Errorf("%v failed liveness probes", n)
	}
	if events := unhealthyEvents(t, ns, "", start); len(events) != 0 {
		t.Errorf("Unhealthy events: %q", events)
	}
}

// testLivenessRestartCount mirrors "should have monotonically increasing
// restart count": each instance writes its file for 3 s and stops, its
// liveness probe kills it, and every state of the pod is watched until the
// fourth instance: the restart count never goes down and reaches 3. Each
// instance also has a readiness probe on the same file with a period of 60 s,
// which only its own heartbeat (through the watch, or the probe the kubelet
// triggers for a new container) can make succeed within its few seconds of
// life: every instance must be seen Ready, which checks that the watch and
// the worker's cached state follow the container from instance to instance.
func testLivenessRestartCount(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", heartbeatFor("probe", 3))
	c.LivenessProbe = fileProbe("probe", 2, 1, 1)
	c.ReadinessProbe = fileProbe("probe", 30, 60, 1)
	createPod(t, ns, podWith("restarts", "", c))

	var last int32
	ready := map[int32]bool{}
	// The restart back-off is 10 s, 20 s, 40 s: the fourth instance starts
	// about 40 s after the first.
	watchUntil(t, ns, "restarts", 3*podTimeout, "three restarts, each instance Ready", func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if s == nil {
			return nil
		}
		if s.RestartCount < last {
			return fmt.Errorf("the restart count went down from %d to %d", last, s.RestartCount)
		}
		last = s.RestartCount
		if s.Ready {
			ready[s.RestartCount] = true
		}
		if s.RestartCount >= 3 && ready[0] && ready[1] && ready[2] && ready[3] {
			return errDone
		}
		if s.RestartCount >= 4 {
			return fmt.Errorf("restart count %d, instances seen Ready: %v", s.RestartCount, ready)
		}
		return nil
	})
	waitForEvent(t, ns, "restarts", "Killing", "failed liveness probe, will be restarted", 10*time.Second)
}

// testStartupProbeFails mirrors "should be restarted startup probe fails":
// the file never appears; the container is never Started nor Ready and is
// restarted.
func testStartupProbeFails(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", "sleep 3600")
	c.StartupProbe = fileProbe("started", 3600, 1, 3)
	createPod(t, ns, podWith("startup-fails", "", c))
	watchUntil(t, ns, "startup-fails", 2*podTimeout, "restarted by its startup probe", func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if s == nil {
			return nil
		}
		if started(s) || s.Ready || podReady(p) {
			return fmt.Errorf("Started or Ready without its startup file: %+v", s)
		}
		if s.RestartCount >= 1 {
			return errDone
		}
		return nil
	})
	waitForEvent(t, ns, "startup-fails", "Unhealthy", "Startup probe failed: file /probe-volume/started does not exist", 10*time.Second)
	waitForEvent(t, ns, "startup-fails", "Killing", "failed startup probe, will be restarted", 10*time.Second)
}

// testStartupThenReady mirrors "should be ready immediately after
// startupProbe succeeds": the readiness file is written once, at the start,
// and the readiness probe's period is 60 s; the startup file appears 6 s
// later. Once Started, the pod must be Ready within 10 s (upstream: 25 s
// with a period of 30 s), never before.
func testStartupThenReady(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", fmt.Sprintf("touch %[1]s/ready; sleep 6; touch %[1]s/started; sleep 3600", probeDir))
	c.ReadinessProbe = fileProbe("ready", 3600, 60, 1)
	c.StartupProbe = fileProbe("started", 3600, 1, 60)
	createPod(t, ns, podWith("startup-ready", "", c))
	var startedAt, readyAt time.Time
	watchUntil(t, ns, "startup-ready", podTimeout, "Started then Ready", func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if s == nil {
			return nil
		}
		if started(s) && startedAt.IsZero() {
			startedAt = time.Now()
		}
		if s.Ready || podReady(p) {
			if !started(s) {
				return fmt.Errorf("Ready before Started: %+v", s)
			}
			readyAt = time.Now()
			return errDone
		}
		return nil
	})
	if d := readyAt.Sub(startedAt); d > 10*time.Second {
		t.Errorf("Ready %v after Started; the readiness probe was not run when the startup probe succeeded", d)
	} else {
		t.Logf("Ready %v after Started (readiness period 60 s)", d.Round(time.Millisecond))
	}
}

// testStartupThenLiveness mirrors "should *not* be restarted by liveness
// probe because startup probe delays it" and "should be restarted by
// liveness probe after startup probe enables it": the liveness file never
// exists (failureThreshold 1), the startup file appears after 15 s. Until
// then the container must not be restarted; once Started, the liveness probe
// must restart it.
func testStartupThenLiveness(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", fmt.Sprintf("sleep 15; touch %s/started; sleep 3600", probeDir))
	c.StartupProbe = fileProbe("started", 3600, 1, 60)
	c.LivenessProbe = fileProbe("alive", 2, 1, 1)
	createPod(t, ns, podWith("startup-liveness", "", c))
	sawStarted := false
	watchUntil(t, ns, "startup-liveness", 2*podTimeout, "not restarted before Started, restarted after", func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if s == nil {
			return nil
		}
		if s.RestartCount == 0 && started(s) {
			sawStarted = true
		}
		if s.RestartCount >= 1 {
			if !sawStarted {
				return fmt.Errorf("restarted before it was seen Started: %+v", s)
			}
			return errDone
		}
		return nil
	})
	pod := waitForPod(t, ns, "startup-liveness", time.Second, "restarted", func(p *v1.Pod) bool {
		s := containerStatus(p, "app")
		return s.LastTerminationState.Terminated != nil
	})
	term := containerStatus(pod, "app").LastTerminationState.Terminated
	if life := term.FinishedAt.Sub(term.StartedAt.Time); life < 15*time.Second {
		t.Errorf("the first instance lived %v, less than the 15 s before its startup file: the liveness probe ran before the startup probe succeeded", life)
	}
	waitForEvent(t, ns, "startup-liveness", "Killing", "failed liveness probe, will be restarted", 10*time.Second)
}

// testProbeTerminationGracePeriod mirrors "should override
// timeoutGracePeriodSeconds when LivenessProbe field is set" and "... when
// StartupProbe field is set": the pod's terminationGracePeriodSeconds is 600,
// the probe's 5; the container ignores SIGTERM (a shell as PID 1 without a
// trap), so it is killed when the grace period ends: after about 5 s, not
// 600.
func testProbeTerminationGracePeriod(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	liveness := shell("app", heartbeatFor("probe", 3))
	liveness.LivenessProbe = fileProbe("probe", 2, 1, 1)
	liveness.LivenessProbe.TerminationGracePeriodSeconds = ptr.To[int64](5)
	startup := shell("app", "while true; do sleep 1; done")
	startup.StartupProbe = fileProbe("started", 3600, 1, 2)
	startup.StartupProbe.TerminationGracePeriodSeconds = ptr.To[int64](5)
	for name, c := range map[string]v1.Container{"liveness": liveness, "startup": startup} {
		pod := podWith(name, "", c)
		pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](600)
		createPod(t, ns, pod)
		forceDelete(t, ns, name)
	}
	for _, name := range []string{"liveness", "startup"} {
		pod := waitForPod(t, ns, name, 2*podTimeout, "restarted", func(p *v1.Pod) bool {
			s := containerStatus(p, "app")
			return s != nil && s.RestartCount >= 1 && s.LastTerminationState.Terminated != nil
		})
		term := containerStatus(pod, "app").LastTerminationState.Terminated
		life := term.FinishedAt.Sub(term.StartedAt.Time)
		// SIGKILL: it ignored SIGTERM and lived to the end of the grace
		// period, which was the probe's (5 s) and not the pod's (600 s).
		if term.ExitCode != 137 || life < 5*time.Second || life > 40*time.Second {
			t.Errorf("%s: the first instance exited with %d after %v; want 137 (SIGKILL at the end of the probe's grace period of 5 s) within 40 s", name, term.ExitCode, life)
		} else {
			t.Logf("%s: the first instance was killed after %v (probe grace period 5 s, pod's 600 s)", name, life)
		}
	}
	waitForEvent(t, ns, "liveness", "Killing", "failed liveness probe, will be restarted", 10*time.Second)
	waitForEvent(t, ns, "startup", "Killing", "failed startup probe, will be restarted", 10*time.Second)
}

// testTerminating mirrors "should mark readiness on pods to false while pod
// is in progress of terminating when a pod has a readiness probe" and "...
// and disable liveness probes while pod is in progress of terminating". The
// pod's grace period is 600 s; on SIGTERM the container stops refreshing
// both its files and removes its readiness file, as upstream's removes its
// own: the kubelet does not turn a terminating pod NotReady by itself (with
// a fresh readiness file, it stays Ready through its grace period, whatever
// the handler), so what this checks is that the readiness probe keeps
// running and its failure is reported while the pod terminates. Deleted, the
// pod must turn NotReady within 15 s and stay so, and must not be restarted
// although its liveness file goes stale (failureThreshold 1): the liveness
// probe stops with the deletion. Every state is watched for 25 s.
func testTerminating(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", fmt.Sprintf("trap 'touch /tmp/term; rm -f %[1]s/ready' TERM; while true; do [ -e /tmp/term ] || touch %[1]s/ready %[1]s/alive; sleep 1; done", probeDir))
	c.ReadinessProbe = fileProbe("ready", 3, 1, 1)
	c.LivenessProbe = fileProbe("alive", 2, 1, 1)
	pod := podWith("terminating", "", c)
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](600)
	createPod(t, ns, pod)
	forceDelete(t, ns, "terminating")
	pod = waitForPod(t, ns, "terminating", podTimeout, "Ready", podReady)
	id := containerStatus(pod, "app").ContainerID

	if err := cluster.client.CoreV1().Pods(ns).Delete(context.Background(), "terminating", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	var notReady time.Duration
	// The liveness worker stops at the deletion (and its series of
	// prober_probe_total goes away with it): count its runs from 3 s on.
	livenessRuns, counted := 0.0, false
	watchPod(t, ns, "terminating", 25*time.Second, "terminating", func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if s.RestartCount != 0 || s.ContainerID != id || s.State.Running == nil {
			return fmt.Errorf("the terminating container was restarted or stopped: %+v", s)
		}
		if !podReady(p) && !s.Ready {
			if notReady == 0 {
				notReady = time.Since(deleted)
			}
		} else if notReady != 0 {
			return fmt.Errorf("Ready again while terminating")
		} else if time.Since(deleted) > 15*time.Second {
			return fmt.Errorf("still Ready %v after the deletion", time.Since(deleted))
		}
		if !counted && time.Since(deleted) > 3*time.Second {
			livenessRuns, counted = probeCount(t, ns, "terminating", "app", "Liveness"), true
		}
		return nil
	})
	if notReady == 0 {
		t.Fatalf("never NotReady within 25 s of the deletion")
	}
	t.Logf("NotReady %v after the deletion", notReady.Round(time.Millisecond))
	waitForEvent(t, ns, "terminating", "Unhealthy", "Readiness probe failed: file /probe-volume/ready does not exist", 10*time.Second)
	if !counted {
		t.Fatalf("no update of the pod after 3 s to count liveness runs at")
	}
	// (The series may also go away between the two reads: fewer is fine.)
	if n := probeCount(t, ns, "terminating", "app", "Liveness"); n > livenessRuns {
		t.Errorf("the liveness probe kept running while the pod terminated: %v runs 3 s after the deletion, %v at 25 s", livenessRuns, n)
	}
	for _, msg := range unhealthyEvents(t, ns, "terminating", deleted) {
		if strings.Contains(msg, "Liveness probe failed") {
			t.Errorf("liveness failure while terminating: %q", msg)
		}
	}
	if out, _ := kubectl("get", "events", "-n", ns, "--field-selector", "reason=Killing"); strings.Contains(out, "failed liveness probe") {
		t.Errorf("the liveness probe killed the terminating container:\n%s", out)
	}
}

// testReadinessDuringPreStop mirrors "should execute readiness probe while
// in preStop, but not liveness" (container_lifecycle_test.go): during a
// 20 s preStop sleep, the container's readiness probe keeps running (its
// count rises, at period 1 s), its liveness probe does not.
func testReadinessDuringPreStop(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	c := shell("app", fmt.Sprintf("trap 'exit 0' TERM; while true; do touch %s/probe; sleep 1; done", probeDir))
	c.ReadinessProbe = fileProbe("probe", 3, 1, 1)
	c.LivenessProbe = fileProbe("probe", 3, 1, 1)
	c.LivenessProbe.InitialDelaySeconds = 3 // see testLivenessHealthy
	c.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 20}}}
	pod := podWith("prestop", "", c)
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](60)
	createPod(t, ns, pod)
	forceDelete(t, ns, "prestop")
	waitForPod(t, ns, "prestop", podTimeout, "Ready", podReady)
	waitProbed(t, ns, "prestop", "app", "Liveness")
	if err := cluster.client.CoreV1().Pods(ns).Delete(context.Background(), "prestop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	readiness, liveness := probeCount(t, ns, "prestop", "app", "Readiness"), probeCount(t, ns, "prestop", "app", "Liveness")
	time.Sleep(10 * time.Second)
	pod = waitForPod(t, ns, "prestop", time.Second, "running", func(p *v1.Pod) bool { return true })
	if s := containerStatus(pod, "app"); s.State.Running == nil || s.RestartCount != 0 {
		t.Fatalf("the container is not running any more during its preStop hook: %+v", s)
	}
	if n := probeCount(t, ns, "prestop", "app", "Readiness") - readiness; n < 6 {
		t.Errorf("%v readiness probes in 10 s of the preStop hook at period 1 s: readiness is not probed during preStop", n)
	}
	// Its series goes away when its worker stops: fewer is fine.
	if n := probeCount(t, ns, "prestop", "app", "Liveness") - liveness; n > 0 {
		t.Errorf("%v liveness probes during the preStop hook", n)
	}
}

// sidecarPod is a pod with the sidecar as a restartable init container and
// app as its container.
func sidecarPod(name string, sidecar, app v1.Container) *v1.Pod {
	sidecar.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	pod := podWith(name, "", app)
	pod.Spec.InitContainers = []v1.Container{sidecar}
	return pod
}

// testSidecarReadinessFails mirrors "Probing restartable init container":
// "with readiness probe that fails should never be ready and never restart":
// the sidecar never writes its file; over 20 probes it is never Ready, never
// restarted, and (readiness does not gate) the app runs.
func testSidecarReadinessFails(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	sidecar := shell("sidecar", "sleep 3600")
	sidecar.ReadinessProbe = fileProbe("sidecar", 3, 1, 1)
	createPod(t, ns, sidecarPod("sidecar-unready", sidecar, shell("app", "sleep 3600")))
	waitForPod(t, ns, "sidecar-unready", podTimeout, "app running", func(p *v1.Pod) bool {
		s := containerStatus(p, "app")
		return s != nil && s.State.Running != nil
	})
	before := probeCount(t, ns, "sidecar-unready", "sidecar", "Readiness", `result="failed"`)
	watchPod(t, ns, "sidecar-unready", 20*time.Second, "failing sidecar readiness", func(p *v1.Pod) error {
		s, app := containerStatus(p, "sidecar"), containerStatus(p, "app")
		if podReady(p) || s.Ready || s.RestartCount != 0 || s.State.Running == nil || app.RestartCount != 0 || app.State.Running == nil {
			return fmt.Errorf("pod ready %v, sidecar %+v, app %+v", podReady(p), s, app)
		}
		return nil
	})
	if n := probeCount(t, ns, "sidecar-unready", "sidecar", "Readiness", `result="failed"`) - before; n < 15 {
		t.Errorf("only %v failed readiness probes of the sidecar in 20 s at period 1 s", n)
	}
}

// testSidecarStartupFails mirrors "should be restarted startup probe fails"
// for a restartable init container, and the gating of "should call the
// container's preStop hook and not launch next container if the restartable
// init container's startup probe fails": the sidecar's startup file never
// appears; it is restarted, and the app never starts.
func testSidecarStartupFails(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	sidecar := shell("sidecar", "sleep 3600")
	sidecar.StartupProbe = fileProbe("sidecar", 3600, 1, 3)
	createPod(t, ns, sidecarPod("sidecar-startup", sidecar, shell("app", "sleep 3600")))
	watchUntil(t, ns, "sidecar-startup", 2*podTimeout, "sidecar restarted, app never started", func(p *v1.Pod) error {
		s, app := containerStatus(p, "sidecar"), containerStatus(p, "app")
		if app != nil && (app.State.Running != nil || app.State.Terminated != nil || started(app)) {
			return fmt.Errorf("the app started although the sidecar never did: %+v", app)
		}
		if s != nil && (started(s) || s.Ready) {
			return fmt.Errorf("the sidecar is Started or Ready without its file: %+v", s)
		}
		if s != nil && s.RestartCount >= 1 {
			return errDone
		}
		return nil
	})
	waitForEvent(t, ns, "sidecar-startup", "Killing", "Init container sidecar failed startup probe", 10*time.Second)
}

// testSidecarLivenessFails mirrors "should call the container's preStop
// hook and start the next container if the restartable init container's
// liveness probe fails" (without the hook): the sidecar writes its file for
// 3 s; its liveness probe restarts it, and the app keeps running.
func testSidecarLivenessFails(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	sidecar := shell("sidecar", heartbeatFor("sidecar", 3))
	sidecar.LivenessProbe = fileProbe("sidecar", 2, 1, 1)
	createPod(t, ns, sidecarPod("sidecar-liveness", sidecar, shell("app", "sleep 3600")))
	var appID string
	watchUntil(t, ns, "sidecar-liveness", 2*podTimeout, "sidecar restarted, app untouched", func(p *v1.Pod) error {
		s, app := containerStatus(p, "sidecar"), containerStatus(p, "app")
		if app != nil && app.ContainerID != "" {
			if appID == "" {
				appID = app.ContainerID
			}
			if app.ContainerID != appID || app.RestartCount != 0 {
				return fmt.Errorf("the app was restarted: %+v", app)
			}
		}
		if s != nil && s.RestartCount >= 1 {
			if appID == "" {
				return fmt.Errorf("the sidecar was restarted before the app started")
			}
			return errDone
		}
		return nil
	})
	waitForEvent(t, ns, "sidecar-liveness", "Killing", "Init container sidecar failed liveness probe", 10*time.Second)
}

// testManyPods is an analog of probe_stress_test.go ("should not cause
// unexpected container restarts under load": one pod of 50 containers,
// liveness every second, failureThreshold 3, watched 2 minutes for restarts),
// sized for two cores that also run the control plane, and stricter where it
// can be: many pods rather than one, and not one failed run allowed. 30
// pods, each with a startup, a readiness and a liveness file probe every
// second (validity 5 s) on a heartbeat every second. Once all are Ready, over
// 30 s (about 1800 probe runs), no probe may fail, no pod turn NotReady and
// no container restart.
func testManyPods(t *testing.T) {
	ns := namespace(t)
	const n = 30
	for i := 0; i < n; i++ {
		c := shell("app", heartbeat("probe"))
		c.StartupProbe = fileProbe("probe", 5, 1, 30)
		c.ReadinessProbe = fileProbe("probe", 5, 1, 1)
		c.LivenessProbe = fileProbe("probe", 5, 1, 1)
		createPod(t, ns, podWith(fmt.Sprintf("load-%d", i), "", c))
	}
	begin := time.Now()
	for i := 0; i < n; i++ {
		waitForPod(t, ns, fmt.Sprintf("load-%d", i), 4*podTimeout, "Ready", podReady)
	}
	t.Logf("%d pods Ready %v after their creation", n, time.Since(begin).Round(time.Second))

	count := func(result string) float64 {
		return kubeletMetric(t, "metrics/probes", "prober_probe_total", `namespace="`+ns+`"`, `result="`+result+`"`)
	}
	failed, ok := count("failed"), count("successful")
	start := time.Now()
	const window = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	err := watchPods(ctx, ns, "", func(p *v1.Pod) error {
		s := containerStatus(p, "app")
		if !podReady(p) || s == nil || s.RestartCount != 0 {
			return fmt.Errorf("%s: ready %v, %+v", p.Name, podReady(p), s)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v into %v with %d pods: %v", time.Since(start).Round(time.Millisecond), window, n, err)
	}
	if d := count("failed") - failed; d != 0 {
		t.Errorf("%v probes failed in %v", d, window)
	}
	// Readiness and liveness, every second, in each pod.
	if d := count("successful") - ok; d < 0.8*2*n*window.Seconds() {
		t.Errorf("only %v successful probes in %v with %d pods (%v expected)", d, window, n, 2*n*window.Seconds())
	} else {
		t.Logf("%v successful probes, none failed, in %v with %d pods", d, window, n)
	}
	if events := unhealthyEvents(t, ns, "", start); len(events) != 0 {
		t.Errorf("Unhealthy events: %q", events)
	}
}
