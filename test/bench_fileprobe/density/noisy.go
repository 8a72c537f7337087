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

package main

// The noisy-neighbour run (-noisy): what a container writing into its
// watched volume root as fast as it can costs the kubelet, and whether the
// other pods' instant readiness survives it. Two runs, each on a node at
// rest: -noisy-pods file-probed pods whose heartbeats are gated (each probe
// fails and its volume root is watched, as for any pod waiting for its first
// heartbeat); with the noisy pod, one more pod whose container runs
//
//	while :; do echo x > /hb/noise; done
//
// in its volume root (mounted at /hb), its own probe file never written, so
// that its directory stays watched. Over a window while the pods wait, the
// CPU of the kubelet (the target: below 5 % of one core with the noisy pod),
// containerd, the pods and the node; then the gates open and each waiting
// pod's readiness latency is measured from its first heartbeat, as in the
// latency run. The increase of the kubelet's
// prober_file_probe_watch_fallbacks_total over each run says whether the
// kubelet gave up watching the noisy directory.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// noisyTarget is the most CPU, in cores, the kubelet may use with the noisy
// pod (its file probes of the waiting pods included).
const noisyTarget = 0.05

// noiseLoop is the noisy container: echo is a shell builtin, so each
// iteration is an open (truncating), a write and a close of the file, with
// no fork.
const noiseLoop = `while :; do echo x > /hb/noise; done`

// noiseFile is the file the noisy pod writes, as a path of its volume for
// volumeFile.
const noiseFile = "/probe-volume/noise"

// noisyRun is one run of the noisy measure, with or without the noisy pod.
type noisyRun struct {
	// Noisy: with the noisy pod.
	Noisy bool `json:"noisy"`
	// Pods are the file-probed pods waiting for their first heartbeat.
	Pods          int   `json:"pods"`
	PeriodSeconds int32 `json:"periodSeconds"`
	// The window while the pods wait (and the noisy pod writes).
	WindowSeconds float64  `json:"windowSeconds"`
	CPU           cpuCores `json:"cpuCores"`
	// NoiseWritten: the noisy pod's file changed during the window.
	NoiseWritten bool `json:"noiseWritten,omitempty"`
	// WatchFallbacks is the increase of the kubelet's
	// prober_file_probe_watch_fallbacks_total over the run; nil when the
	// kubelet does not serve it.
	WatchFallbacks *float64 `json:"watchFallbacks,omitempty"`
	// Latency is the waiting pods', from their first heartbeat to Ready,
	// once their gates opened after the window.
	Latency latency `json:"readinessLatency"`
}

func (r noisyRun) name() string {
	if r.Noisy {
		return "with the noisy pod"
	}
	return "without the noisy pod"
}

// noisyPod is the pod that writes its volume root in a loop: a file probe of
// /probe-volume/probe (never written, so never Ready: its volume root stays
// watched), the volume mounted at /hb.
func noisyPod(o options) *v1.Pod {
	grace := int64(1)
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "noisy", Labels: map[string]string{"app": "density", "variant": "noisy"}},
		Spec: v1.PodSpec{
			NodeName:                      o.node,
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{
				Name:            "app",
				Image:           o.image,
				ImagePullPolicy: v1.PullIfNotPresent,
				Command:         []string{"/bin/sh", "-c", noiseLoop},
				VolumeMounts:    []v1.VolumeMount{{Name: "probe-volume", MountPath: "/hb"}},
				ReadinessProbe: &v1.Probe{
					ProbeHandler:  v1.ProbeHandler{File: &v1.FileAction{Path: probeFile(file), Validity: validity}},
					PeriodSeconds: o.latencyPeriod,
				},
			}},
			Volumes: []v1.Volume{{
				Name:         "probe-volume",
				VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}},
			}},
		},
	}
}

// runNoisy runs the noisy measure once, with or without the noisy pod.
func runNoisy(ctx context.Context, o options, client kubernetes.Interface, n *node, withNoisy bool) (r noisyRun, err error) {
	r = noisyRun{Noisy: withNoisy, Pods: o.noisyPods, PeriodSeconds: o.latencyPeriod}
	ns := "density-quiet"
	if withNoisy {
		ns = "density-noisy"
	}
	set, err := newPodSet(ctx, client, ns)
	if err != nil {
		return r, err
	}
	defer func() {
		logf("%s: deleting its pods", r.name())
		if derr := set.delete(context.WithoutCancel(ctx), deleteTimeout(ctx, o)); derr != nil && err == nil {
			err = fmt.Errorf("delete namespace %s: %w", ns, derr)
		}
	}()
	var pods []*v1.Pod
	for i := range o.noisyPods {
		delay := rand.N(time.Duration(o.latencyPeriod) * time.Second)
		pods = append(pods, benchPod(o, fmt.Sprintf("file-%04d", i), file, o.latencyPeriod, delay, true))
	}
	total := len(pods)
	if withNoisy {
		if err := set.create(ctx, []*v1.Pod{noisyPod(o)}); err != nil {
			return r, err
		}
		total++
	}
	logf("%s: %d file-probed pods waiting for their first heartbeat, periodSeconds %d", r.name(), len(pods), o.latencyPeriod)
	if err := set.create(ctx, pods); err != nil {
		return r, err
	}
	timeout := 2*time.Minute + time.Duration(total)*2*time.Second
	if !set.waitFor(ctx, timeout, func(_, started, _ int) bool { return started == total }) {
		return r, fmt.Errorf("not all %d pods started within %s", total, timeout)
	}
	logf("%s: all pods run; settling for %s, then measuring for %s", r.name(), o.settle, o.noisyWindow)
	if err := sleepCtx(ctx, o.settle); err != nil {
		return r, err
	}
	fallbacksBefore, haveFallbacks, err := watchFallbacks(ctx, client, o.node)
	if err != nil {
		return r, err
	}
	var noisy *v1.Pod
	var noiseBefore time.Time
	if withNoisy {
		for _, pod := range set.pods() {
			if pod.Name == "noisy" {
				noisy = pod
			}
		}
		if noisy == nil {
			return r, fmt.Errorf("the noisy pod is not in namespace %s", ns)
		}
		if noiseBefore, err = mtime(volumeFile(o.podsDir, noisy, noiseFile)); err != nil {
			return r, fmt.Errorf("the noisy pod does not write: %w", err)
		}
	}
	a, err := n.take()
	if err != nil {
		return r, err
	}
	if err := sleepCtx(ctx, o.noisyWindow); err != nil {
		return r, err
	}
	b, err := n.take()
	if err != nil {
		return r, err
	}
	r.WindowSeconds, r.CPU = b.at.Sub(a.at).Seconds(), cpuBetween(a, b)
	if noisy != nil {
		noiseAfter, err := mtime(volumeFile(o.podsDir, noisy, noiseFile))
		if err != nil {
			return r, err
		}
		r.NoiseWritten = noiseAfter.After(noiseBefore)
	}
	logf("%s: kubelet %.3f, containerd %.3f, pods %.3f, node %.3f cores; opening the gates",
		r.name(), r.CPU.Kubelet, r.CPU.Containerd, r.CPU.Pods, r.CPU.Node)

	// The pods as created, with their UIDs (their volumes' paths), but the
	// noisy one, which has no gate.
	var waiting []*v1.Pod
	for _, pod := range set.pods() {
		if pod.Name != "noisy" {
			waiting = append(waiting, pod)
		}
	}
	if err := openGates(o, waiting); err != nil {
		return r, err
	}
	timeout = 2*time.Minute + time.Duration(o.latencyPeriod)*time.Second
	set.waitFor(ctx, timeout, func(_, _, ready int) bool { return ready >= len(pods) })
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	after, err := n.take()
	if err != nil {
		return r, err
	}
	perPod, err := collectPodTimes(o, set)
	if err != nil {
		return r, err
	}
	lo := o
	lo.latencyPods, lo.latencyAtRest = o.noisyPods, true
	r.Latency = latencyOf(file, perPod[file], lo, cpuBetween(b, after).Node)
	if haveFallbacks {
		fallbacksAfter, _, err := watchFallbacks(ctx, client, o.node)
		if err != nil {
			return r, err
		}
		d := fallbacksAfter - fallbacksBefore
		r.WatchFallbacks = &d
	}
	return r, nil
}

func mtime(path string) (time.Time, error) {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return st.ModTime(), nil
}

// watchFallbacks reads the kubelet's prober_file_probe_watch_fallbacks_total;
// ok is false when the kubelet does not serve it.
func watchFallbacks(ctx context.Context, client kubernetes.Interface, node string) (v float64, ok bool, err error) {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "metrics/probes").DoRaw(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("the kubelet's /metrics/probes: %w", err)
	}
	v, ok = counterValue(string(raw), "prober_file_probe_watch_fallbacks_total")
	return v, ok, nil
}

// counterValue is the value of a metric without labels in the Prometheus
// text format.
func counterValue(metrics, name string) (float64, bool) {
	for _, line := range strings.Split(metrics, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "{}")
		if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue // another metric whose name starts with name
		}
		fields := strings.Fields(rest)
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// noisyVerdict compares the runs: what the kubelet used with the noisy pod,
// against the run without it, and what the noisy pod cost it (the increase,
// or all of it without a run to compare with) against the target.
func noisyVerdict(runs []noisyRun) string {
	var quiet, noisy *noisyRun
	for i := range runs {
		if runs[i].Noisy {
			noisy = &runs[i]
		} else {
			quiet = &runs[i]
		}
	}
	if noisy == nil {
		return ""
	}
	// With a run without the noisy pod, the target applies to what the
	// noisy pod costs the kubelet (the increase): the kubelet's own work
	// for the other pods is there either way.
	cost, what := noisy.CPU.Kubelet, ""
	if quiet != nil {
		cost, what = noisy.CPU.Kubelet-quiet.CPU.Kubelet, ", the noisy pod's cost"
	}
	met := "met"
	if cost >= noisyTarget {
		met = "NOT met"
	}
	s := fmt.Sprintf("With the noisy pod the kubelet used %.3f cores", noisy.CPU.Kubelet)
	if quiet != nil {
		s += fmt.Sprintf(", %+.3f against the run without it", cost)
	}
	s += fmt.Sprintf(" (target%s: below %.3f, %s)", what, noisyTarget, met)
	if quiet != nil {
		s += fmt.Sprintf("; readiness p99 %.0f ms against %.0f ms", noisy.Latency.P99Ms, quiet.Latency.P99Ms)
	}
	s += "."
	if !noisy.NoiseWritten {
		s += " The noisy pod's file did not change during the window: the run measured no noise."
	}
	return s
}

// fallbacksString is a run's watch fallbacks for the tables.
func fallbacksString(r noisyRun) string {
	if r.WatchFallbacks == nil {
		return "not served"
	}
	return strconv.FormatFloat(*r.WatchFallbacks, 'f', -1, 64)
}
