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

//go:build linux

package prober

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	kubepod "k8s.io/kubernetes/pkg/kubelet/pod"
	"k8s.io/kubernetes/pkg/kubelet/prober/results"
	"k8s.io/kubernetes/pkg/kubelet/status"
	statustest "k8s.io/kubernetes/pkg/kubelet/status/testing"
	kubeletutil "k8s.io/kubernetes/pkg/kubelet/util"
	"k8s.io/kubernetes/test/utils/ktesting"
	"k8s.io/utils/ptr"
)

// churnPodKind is what a pod of the churn test does with its file probes.
type churnPodKind int

const (
	// churnFresh: readiness and liveness probes on a fresh file, every second.
	churnFresh churnPodKind = iota
	// churnStartup: a startup probe on a file that appears later (watched
	// until then), and a readiness probe, every minute: only the watch can
	// make the startup probe succeed within the test.
	churnStartup
	// churnWatched: a readiness probe on a file that appears later, every
	// minute (watched until then); the pod is removed while some are still
	// watched.
	churnWatched
	// churnSidecar: a restartable init container with a readiness probe and
	// a container with a liveness probe, both on fresh files in a
	// subdirectory of the volume (never watched); the sidecar restarts once.
	churnSidecar
	churnKinds
)

// churnLeftovers is what a prober manager holds for file probes.
type churnLeftovers struct {
	goroutines int
	fds        int
	// inotifyWatches counts the kernel's inotify watches of the process
	// (/proc/self/fdinfo), watchedDirs the file watcher's directories.
	inotifyWatches int
	watchedDirs    int
	workers        int
	fileTargets    int
	// tickers counts the file probe workers' tickers on the shared timer.
	tickers int
	// results counts the results managers' entries of the churned
	// containers, metricSeries the prober metrics' series of the churned
	// pods.
	results      int
	metricSeries int
}

func (l churnLeftovers) String() string {
	return fmt.Sprintf("goroutines=%d fds=%d inotifyWatches=%d watchedDirs=%d workers=%d fileTargets=%d tickers=%d results=%d metricSeries=%d",
		l.goroutines, l.fds, l.inotifyWatches, l.watchedDirs, l.workers, l.fileTargets, l.tickers, l.results, l.metricSeries)
}

// churnFixture is a prober manager with its status manager and results
// managers, whose updates a goroutine applies as the kubelet's sync loop
// does.
type churnFixture struct {
	m          *manager
	podManager kubepod.Manager
	podsDir    string
	registry metrics.KubeRegistry
	// containerIDs are every container ID the churned pods had.
	mu           sync.Mutex
	containerIDs []kubecontainer.ContainerID
}

func newChurnFixture(t *testing.T, logger klog.Logger) *churnFixture {
	podsDir := t.TempDir()
	podManager := kubepod.NewBasicPodManager()
	f := &churnFixture{podsDir: podsDir, podManager: podManager, registry: metrics.NewKubeRegistry()}
	// Registered, the metrics keep series per worker, which workers must
	// delete when they stop.
	f.registry.MustRegister(ProberResults, ProberDuration)
	f.m = NewManager(
		status.NewManager(&fake.Clientset{}, podManager, &statustest.FakePodDeletionSafetyProvider{}, kubeletutil.NewPodStartupLatencyTracker()),
		results.NewManager(),
		results.NewManager(),
		results.NewManager(),
		nil, // runner: file probes never call it
		record.NewFakeRecorder(10000),
		podsDir,
	).(*manager)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case u := <-f.m.readinessManager.Updates():
				f.m.statusManager.SetContainerReadiness(logger, u.PodUID, u.ContainerID, u.Result == results.Success)
			case u := <-f.m.startupManager.Updates():
				f.m.statusManager.SetContainerStartup(logger, u.PodUID, u.ContainerID, u.Result == results.Success)
			case <-f.m.livenessManager.Updates():
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		<-stopped
		if w := f.m.prober.file.watcher; w != nil {
			_ = w.Close()
		}
		if d := f.m.prober.file.pods.Load(); d != nil {
			_ = d.Close()
		}
	})
	return f
}

func churnFileProbe(path string, period int32) *v1.Probe {
	return &v1.Probe{
		ProbeHandler:     v1.ProbeHandler{File: &v1.FileAction{Path: path, Validity: 3600}},
		PeriodSeconds:    period,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
		FailureThreshold: 3,
	}
}

func churnPodKindOf(i int) churnPodKind { return churnPodKind(i % int(churnKinds)) }

func (f *churnFixture) volume(uid types.UID) string {
	return filepath.Join(f.podsDir, string(uid), "volumes", "kubernetes.io~empty-dir", "probe-volume")
}

// addPod makes pod i, its volume and its running status, and adds it to the
// prober.
func (f *churnFixture) addPod(t *testing.T, ctx context.Context, i int) *v1.Pod {
	t.Helper()
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("churn-%d", i), Namespace: "churn", UID: types.UID(fmt.Sprintf("churn-%04d", i))},
		Spec: v1.PodSpec{
			RestartPolicy: v1.RestartPolicyAlways,
			Volumes:       []v1.Volume{{Name: "probe-volume", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}},
		},
	}
	app := v1.Container{Name: "app"}
	started := true
	volume := f.volume(pod.UID)
	if err := os.MkdirAll(filepath.Join(volume, "dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	// The containers started before their files were written.
	startedAt := metav1.NewTime(time.Now().Truncate(time.Second))
	fresh := time.Now().Add(time.Second)
	switch churnPodKindOf(i) {
	case churnFresh:
		app.ReadinessProbe = churnFileProbe("/probe-volume/probe", 1)
		app.LivenessProbe = churnFileProbe("/probe-volume/probe", 1)
		writeFile(t, filepath.Join(volume, "probe"), fresh)
	case churnStartup:
		app.StartupProbe = churnFileProbe("/probe-volume/probe", 60)
		app.ReadinessProbe = churnFileProbe("/probe-volume/probe", 60)
		started = false
	case churnWatched:
		app.ReadinessProbe = churnFileProbe("/probe-volume/probe", 60)
	case churnSidecar:
		pod.Spec.InitContainers = []v1.Container{{
			Name:           "sidecar",
			RestartPolicy:  ptr.To(v1.ContainerRestartPolicyAlways),
			ReadinessProbe: churnFileProbe("/probe-volume/dir/probe", 1),
		}}
		app.LivenessProbe = churnFileProbe("/probe-volume/dir/probe", 1)
		writeFile(t, filepath.Join(volume, "dir", "probe"), fresh)
	}
	pod.Spec.Containers = []v1.Container{app}
	podStatus := v1.PodStatus{
		Phase:             v1.PodRunning,
		ContainerStatuses: []v1.ContainerStatus{f.runningStatus("app", fmt.Sprintf("churn-%d-app", i), startedAt, started)},
	}
	if len(pod.Spec.InitContainers) > 0 {
		podStatus.InitContainerStatuses = []v1.ContainerStatus{f.runningStatus("sidecar", fmt.Sprintf("churn-%d-sidecar-0", i), startedAt, true)}
	}
	f.podManager.AddPod(pod)
	f.m.statusManager.SetPodStatus(klog.FromContext(ctx), pod, podStatus)
	f.m.AddPod(ctx, pod)
	return pod
}

// runningStatus is the status of a running container, whose ID it records.
func (f *churnFixture) runningStatus(name, id string, startedAt metav1.Time, started bool) v1.ContainerStatus {
	cid := kubecontainer.ContainerID{Type: "test", ID: id}
	f.mu.Lock()
	f.containerIDs = append(f.containerIDs, cid)
	f.mu.Unlock()
	return v1.ContainerStatus{
		Name:        name,
		ContainerID: cid.String(),
		Started:     ptr.To(started),
		State:       v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: startedAt}},
	}
}

// restartSidecar makes the sidecar of pod i a new container instance.
func (f *churnFixture) restartSidecar(t *testing.T, ctx context.Context, pod *v1.Pod, i int) {
	t.Helper()
	podStatus, ok := f.m.statusManager.GetPodStatus(pod.UID)
	if !ok {
		t.Fatalf("no status for pod %s", pod.Name)
	}
	podStatus = *podStatus.DeepCopy()
	podStatus.InitContainerStatuses[0] = f.runningStatus("sidecar", fmt.Sprintf("churn-%d-sidecar-1", i), metav1.NewTime(time.Now().Truncate(time.Second)), true)
	f.m.statusManager.SetPodStatus(klog.FromContext(ctx), pod, podStatus)
}

// result returns the result of the container of pod i in a results manager.
func (f *churnFixture) result(m results.Manager, podStatus v1.PodStatus, name string) (results.Result, bool) {
	for _, statuses := range [][]v1.ContainerStatus{podStatus.ContainerStatuses, podStatus.InitContainerStatuses} {
		for _, c := range statuses {
			if c.Name == name {
				return m.Get(kubecontainer.ParseContainerID(klog.Background(), c.ContainerID))
			}
		}
	}
	return results.Unknown, false
}

// watching tells whether the prober watches the file of a probe.
func (f *churnFixture) watching(spec *v1.Probe, uid types.UID) bool {
	e := f.m.prober.file.tracked(spec.File, uid)
	if e == nil {
		return false
	}
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	return e.watch != nil
}

// leftovers counts what the prober holds, and what the churned pods left in
// the results managers and metrics.
func (f *churnFixture) leftovers(t *testing.T) churnLeftovers {
	t.Helper()
	l := churnLeftovers{goroutines: runtime.NumGoroutine()}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	l.fds = len(fds)
	for _, fd := range fds {
		file, err := os.Open(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			continue // the descriptor ReadDir used is closed
		}
		scanner := bufio.NewScanner(file)
		for scanner.Scan() {
			if strings.HasPrefix(scanner.Text(), "inotify wd:") {
				l.inotifyWatches++
			}
		}
		_ = file.Close()
	}
	if w := f.m.prober.file.watcher; w != nil {
		l.watchedDirs = w.Watched()
	}
	f.m.workerLock.RLock()
	l.workers = len(f.m.workers)
	f.m.workerLock.RUnlock()
	f.m.prober.file.targets.Range(func(any, any) bool { l.fileTargets++; return true })
	l.tickers = f.m.prober.file.ticks.Len()
	f.mu.Lock()
	for _, id := range f.containerIDs {
		for _, m := range []results.Manager{f.m.readinessManager, f.m.livenessManager, f.m.startupManager} {
			if _, ok := m.Get(id); ok {
				l.results++
			}
		}
	}
	f.mu.Unlock()
	families, err := f.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		for _, metric := range family.GetMetric() {
			for _, label := range metric.GetLabel() {
				if label.GetName() == "pod" && strings.HasPrefix(label.GetValue(), "churn-") {
					l.metricSeries++
				}
			}
		}
	}
	return l
}

// waitFor polls cond until it holds, for up to wait.ForeverTestTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, wait.ForeverTestTimeout, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestFileProbeChurnLeavesNothingBehind adds 1000 file-probed pods to the
// prober in waves and removes them in waves (RemovePod, with or without
// StopLivenessAndStartup first, and CleanupPods), while their probes run,
// are watched until their files appear, are woken up by the watch, and a
// sidecar restarts. Once every pod is gone, the prober holds what it held
// before: no goroutine, file descriptor, inotify watch, worker, cached
// target, ticker on the shared timer, result or metric series of theirs.
func TestFileProbeChurnLeavesNothingBehind(t *testing.T) {
	setFileProbeGate(t, true)
	logger, ctx := ktesting.NewTestContext(t)
	f := newChurnFixture(t, logger)

	const (
		waves       = 4
		podsPerWave = 250
	)
	// One pod first, so that what the kubelet keeps for its lifetime (the
	// inotify instance and its goroutine, the pods directory's descriptor)
	// exists before the count.
	warmUp := f.addPod(t, ctx, waves*podsPerWave+int(churnWatched))
	waitFor(t, "the warm-up pod's file is watched", func() bool { return f.leftovers(t).watchedDirs == 1 })
	f.m.RemovePod(warmUp)
	waitFor(t, "the warm-up pod's workers exit", func() bool { return f.leftovers(t).workers == 0 })
	before := f.leftovers(t)
	if before.watchedDirs != 0 || before.inotifyWatches != 0 {
		t.Fatalf("before the churn: %v, want no watch", before)
	}

	type wave struct {
		pods    []*v1.Pod
		indices []int
	}
	var live []wave
	removeWave := func(n int, w wave) {
		switch n % 3 {
		case 0:
			for _, pod := range w.pods {
				f.m.RemovePod(pod)
			}
		case 1:
			for _, pod := range w.pods {
				f.m.StopLivenessAndStartup(pod)
				f.m.RemovePod(pod)
			}
		default:
			desired := map[types.UID]sets.Empty{}
			for _, other := range live {
				for _, pod := range other.pods {
					desired[pod.UID] = sets.Empty{}
				}
			}
			for _, pod := range w.pods {
				delete(desired, pod.UID)
			}
			f.m.CleanupPods(desired)
		}
	}
	removed := 0
	for n := range waves {
		var w wave
		for i := n * podsPerWave; i < (n+1)*podsPerWave; i++ {
			w.pods = append(w.pods, f.addPod(t, ctx, i))
			w.indices = append(w.indices, i)
		}
		live = append(live, w)
		// Fresh pods turn Ready at their first probe; the files of the
		// others are watched until they appear.
		waitFor(t, fmt.Sprintf("wave %d: fresh pods Ready, the others' files watched", n), func() bool {
			for k, pod := range w.pods {
				switch churnPodKindOf(w.indices[k]) {
				case churnFresh:
					podStatus, _ := f.m.statusManager.GetPodStatus(pod.UID)
					if r, ok := f.result(f.m.readinessManager, podStatus, "app"); !ok || r != results.Success {
						return false
					}
				case churnStartup:
					if !f.watching(pod.Spec.Containers[0].StartupProbe, pod.UID) {
						return false
					}
				case churnWatched:
					if !f.watching(pod.Spec.Containers[0].ReadinessProbe, pod.UID) {
						return false
					}
				}
			}
			return true
		})
		// Their heartbeats wake the startup probes and half the
		// readiness probes up; a sidecar restarts.
		for k, pod := range w.pods {
			i := w.indices[k]
			switch kind := churnPodKindOf(i); {
			case kind == churnStartup || (kind == churnWatched && i%2 == 0):
				writeFile(t, filepath.Join(f.volume(pod.UID), "probe"), time.Now())
			case kind == churnSidecar:
				f.restartSidecar(t, ctx, pod, i)
			}
		}
		waitFor(t, fmt.Sprintf("wave %d: the probes woken up succeed", n), func() bool {
			for k, pod := range w.pods {
				i := w.indices[k]
				podStatus, _ := f.m.statusManager.GetPodStatus(pod.UID)
				switch kind := churnPodKindOf(i); {
				case kind == churnStartup:
					if r, ok := f.result(f.m.startupManager, podStatus, "app"); !ok || r != results.Success {
						return false
					}
				case kind == churnWatched && i%2 == 0:
					if r, ok := f.result(f.m.readinessManager, podStatus, "app"); !ok || r != results.Success {
						return false
					}
				}
			}
			return true
		})
		// The wave before the last one goes, while the others probe.
		if len(live) > 2 {
			old := live[0]
			live = live[1:]
			removeWave(removed, old)
			removed++
		}
	}
	for len(live) > 0 {
		old := live[0]
		live = live[1:]
		removeWave(removed, old)
		removed++
	}

	var after churnLeftovers
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, wait.ForeverTestTimeout, true, func(context.Context) (bool, error) {
		after = f.leftovers(t)
		return after.goroutines <= before.goroutines && after.fds <= before.fds &&
			after.inotifyWatches == 0 && after.watchedDirs == 0 && after.workers == 0 &&
			after.fileTargets == 0 && after.tickers == 0 && after.results == 0 && after.metricSeries == 0, nil
	}); err != nil {
		t.Fatalf("after %d pods churned in waves:\n  before: %v\n  after:  %v", waves*podsPerWave, before, after)
	}
	t.Logf("after %d pods churned in waves: before %v, after %v", waves*podsPerWave, before, after)
}
