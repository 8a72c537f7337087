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

import (
	"context"
	"fmt"
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

// sidecarPod is a pod with the sidecar as a restartable init container and
// app as its container.
func sidecarPod(name string, sidecar, app v1.Container) *v1.Pod {
	sidecar.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	pod := podWith(name, "", app)
	pod.Spec.InitContainers = []v1.Container{sidecar}
	return pod
}
