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

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// A variant is how the pods of a series are probed. Every variant runs the
// same container, so that the probes are the only difference.
type variant string

const (
	none    variant = "none"    // no probe: the baseline
	file    variant = "file"    // a file probe of /probe-volume/probe, watched by the kubelet
	polled  variant = "polled"  // a file probe one directory deeper, which the kubelet does not watch: periodic only
	execV   variant = "exec"    // an exec probe: cat the heartbeat file
	httpGet variant = "httpGet" // an httpGet probe: busybox httpd serves the heartbeat file
)

var variants = map[variant]bool{none: true, file: true, polled: true, execV: true, httpGet: true}

const (
	image    = "localhost/busybox:fileprobe" // hack/local-up-node.sh's
	httpPort = 8080
	// validity of file probes: ten heartbeats.
	validity = 10
)

// probeFile is the heartbeat file of a variant, inside the container.
func probeFile(v variant) string {
	if v == polled {
		return "/probe-volume/polled/probe"
	}
	return "/probe-volume/probe"
}

// heartbeat serves the volume over HTTP, waits for the file $GATE when set
// (the latency run writes it from the host once every pod runs), then
// $DELAY seconds, marks the time of the first write (the mtime of
// /probe-volume/marks/mark), then rewrites $PROBE_FILE every second. It
// forks nothing after its start: `: >` updates the mtime, `read -t` on a
// FIFO sleeps. (A `touch; sleep 1` loop
// forks two processes a second per pod, which alone saturates two cores at
// 200 pods.) The mark is in a directory of its own: written next to the probe
// file, in the directory the kubelet watches, it would wake the probe up a
// moment before the probe file exists, and the probe file's own event would
// then wait out the watch's 200 ms rate limit.
const heartbeat = `httpd -p 8080 -h /probe-volume && mkfifo /tmp/tick && exec 3<>/tmp/tick
mkdir -p "${PROBE_FILE%/*}" ` + markDir + `
while [ -n "$GATE" ] && [ ! -e "$GATE" ]; do read -t 1 x <&3; done
read -t "$DELAY" x <&3
: > ` + markDir + `/mark
while :; do : > "$PROBE_FILE"; read -t 1 x <&3; done`

// markDir holds the mark file and the gate file, in the pod's volume.
const markDir = "/probe-volume/marks"

// gateFile is the file a gated heartbeat waits for, inside the container.
const gateFile = markDir + "/go"

// benchPod is one pod of a variant, bound to the node: its heartbeat starts
// delay after the container, or after the gate file appears when gated.
func benchPod(o options, name string, v variant, period int32, delay time.Duration, gated bool) *v1.Pod {
	gate := ""
	if gated {
		gate = gateFile
	}
	grace := int64(1)
	c := v1.Container{
		Name:            "app",
		Image:           o.image,
		ImagePullPolicy: v1.PullIfNotPresent,
		Command:         []string{"/bin/sh", "-c", heartbeat},
		Env: []v1.EnvVar{
			{Name: "PROBE_FILE", Value: probeFile(v)},
			{Name: "DELAY", Value: strconv.FormatFloat(delay.Seconds(), 'f', 3, 64)},
			{Name: "GATE", Value: gate},
		},
		VolumeMounts: []v1.VolumeMount{{Name: "probe-volume", MountPath: "/probe-volume"}},
	}
	handler := v1.ProbeHandler{}
	switch v {
	case file, polled:
		handler.File = &v1.FileAction{Path: probeFile(v), Validity: validity}
	case execV:
		handler.Exec = &v1.ExecAction{Command: []string{"cat", probeFile(v)}}
	case httpGet:
		handler.HTTPGet = &v1.HTTPGetAction{
			Path: strings.TrimPrefix(probeFile(v), "/probe-volume"),
			Port: intstr.FromInt32(httpPort),
		}
	}
	if v != none {
		c.ReadinessProbe = &v1.Probe{ProbeHandler: handler, PeriodSeconds: period}
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "density", "variant": string(v)}},
		Spec: v1.PodSpec{
			NodeName:                      o.node,
			TerminationGracePeriodSeconds: &grace,
			Containers:                    []v1.Container{c},
			Volumes: []v1.Volume{{
				Name:         "probe-volume",
				VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}},
			}},
		},
	}
}

// podSet is the pods of one namespace as an informer sees them, with the
// time each one was first seen Ready.
type podSet struct {
	client    kubernetes.Interface
	namespace string
	lister    cache.Indexer
	stop      chan struct{}

	mu      sync.Mutex
	readyAt map[string]time.Time
}

func newPodSet(ctx context.Context, client kubernetes.Interface, namespace string) (*podSet, error) {
	_, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	s := &podSet{client: client, namespace: namespace, stop: make(chan struct{}), readyAt: map[string]time.Time{}}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	informer := factory.Core().V1().Pods().Informer()
	seen := func(obj interface{}) {
		if pod, ok := obj.(*v1.Pod); ok && podReady(pod) {
			now := time.Now()
			s.mu.Lock()
			if _, ok := s.readyAt[pod.Name]; !ok {
				s.readyAt[pod.Name] = now
			}
			s.mu.Unlock()
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj interface{}) { seen(obj) },
	}); err != nil {
		return nil, err
	}
	s.lister = informer.GetIndexer()
	factory.Start(s.stop)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return nil, fmt.Errorf("pod informer of %s did not sync", namespace)
	}
	return s, nil
}

// create makes pods, a few at a time.
func (s *podSet) create(ctx context.Context, pods []*v1.Pod) error {
	work := make(chan *v1.Pod)
	errs := make(chan error, len(pods))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pod := range work {
				if _, err := s.client.CoreV1().Pods(s.namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("create pod %s/%s: %w", s.namespace, pod.Name, err)
				}
			}
		}()
	}
	for _, pod := range pods {
		work <- pod
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // the first error, if any
}

// counts are how many of the namespace's pods have all containers started
// and how many are Ready.
func (s *podSet) counts() (total, started, ready int) {
	for _, obj := range s.lister.List() {
		pod := obj.(*v1.Pod)
		total++
		if podStarted(pod) {
			started++
		}
		if podReady(pod) {
			ready++
		}
	}
	return total, started, ready
}

// waitFor waits until cond holds of the counts, or timeout.
func (s *podSet) waitFor(ctx context.Context, timeout time.Duration, cond func(total, started, ready int) bool) bool {
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, timeout, true, func(context.Context) (bool, error) {
		return cond(s.counts()), nil
	})
	return err == nil
}

// firstReady is when each pod was first seen Ready.
func (s *podSet) firstReady() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.readyAt))
	for k, v := range s.readyAt {
		out[k] = v
	}
	return out
}

// pods lists the namespace's pods.
func (s *podSet) pods() []*v1.Pod {
	var out []*v1.Pod
	for _, obj := range s.lister.List() {
		out = append(out, obj.(*v1.Pod))
	}
	return out
}

// delete removes the namespace and waits until its pods are gone.
func (s *podSet) delete(ctx context.Context, timeout time.Duration) error {
	defer close(s.stop)
	err := s.client.CoreV1().Namespaces().Delete(ctx, s.namespace, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 3*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := s.client.CoreV1().Namespaces().Get(ctx, s.namespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// volumeFile is where a file of the pod's probe-volume (a path inside the
// container, under /probe-volume) is on the node.
func volumeFile(podsDir string, pod *v1.Pod, path string) string {
	return filepath.Join(podsDir, string(pod.UID), "volumes", "kubernetes.io~empty-dir", "probe-volume",
		strings.TrimPrefix(path, "/probe-volume/"))
}

func podReady(pod *v1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func podStarted(pod *v1.Pod) bool {
	if len(pod.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range pod.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

// probeCounts sums the kubelet's prober_probe_total samples of one namespace
// by result (successful, failed, unknown), from its /metrics/probes text.
func probeCounts(metrics, namespace string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "prober_probe_total{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		labels := parseLabels(line[len("prober_probe_total{"):end])
		if labels["namespace"] != namespace {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		out[labels["result"]] += v
	}
	return out
}

// parseLabels parses `a="x",b="y"` (label values here never hold quotes).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}
