//go:build linux

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

package prober

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/testutil"
	apitest "k8s.io/cri-api/pkg/apis/testing"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/features"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	kubepod "k8s.io/kubernetes/pkg/kubelet/pod"
	"k8s.io/kubernetes/pkg/kubelet/prober/results"
	"k8s.io/kubernetes/pkg/kubelet/status"
	statustest "k8s.io/kubernetes/pkg/kubelet/status/testing"
	kubeletutil "k8s.io/kubernetes/pkg/kubelet/util"
	"k8s.io/kubernetes/pkg/probe"
	"k8s.io/kubernetes/test/utils/ktesting"
)

const (
	testFileProbePath = "/probe-volume/probe"
	testValidity      = 10 // seconds
)

// criRunner runs commands in containers the way the kubelet's runtime
// manager does (kuberuntime's RunInContainer is one CRI ExecSync call), on
// upstream's fake CRI runtime service, which records every call it gets.
type criRunner struct {
	runtime *apitest.FakeRuntimeService
}

func (r criRunner) RunInContainer(ctx context.Context, id kubecontainer.ContainerID, cmd []string, timeout time.Duration) ([]byte, error) {
	stdout, stderr, err := r.runtime.ExecSync(ctx, id.ID, cmd, timeout)
	return append(stdout, stderr...), err
}

// fileProbeFixture is a probe manager whose pods directory is a temporary
// directory holding the test pod's emptyDir volume "probe-volume", a fixed
// clock, a fake CRI runtime as its command runner and a recorder keeping
// every event.
type fileProbeFixture struct {
	m        *manager
	runtime  *apitest.FakeRuntimeService
	recorder *record.FakeRecorder
	// volume is the emptyDir volume's directory on the "node".
	volume string
	now    time.Time
	// started is when the test container started.
	started time.Time
}

func newFileProbeFixture(t testing.TB) *fileProbeFixture {
	t.Helper()
	podsDir := t.TempDir()
	f := &fileProbeFixture{
		runtime:  apitest.NewFakeRuntimeService(),
		recorder: record.NewFakeRecorder(1000),
		volume:   filepath.Join(podsDir, testPodUID, "volumes", "kubernetes.io~empty-dir", "probe-volume"),
		// The test container starts now (a container that started
		// before the probe manager would be taken for one that survived
		// a kubelet restart, and the worker's initial delay counts on the
		// real clock), and the fixture's clock is an hour later.
		started: time.Now().Truncate(time.Second),
	}
	f.now = f.started.Add(time.Hour)
	if err := os.MkdirAll(f.volume, 0o750); err != nil {
		t.Fatal(err)
	}
	// Events refer to the pod, which needs its kind.
	if err := v1.AddToScheme(legacyscheme.Scheme); err != nil {
		t.Fatal(err)
	}
	podManager := kubepod.NewBasicPodManager()
	podManager.AddPod(getTestPod())
	f.m = NewManager(
		status.NewManager(&fake.Clientset{}, podManager, &statustest.FakePodDeletionSafetyProvider{}, kubeletutil.NewPodStartupLatencyTracker()),
		results.NewManager(),
		results.NewManager(),
		results.NewManager(),
		criRunner{f.runtime},
		f.recorder,
		podsDir,
	).(*manager)
	f.m.prober.file.now = func() time.Time { return f.now }
	t.Cleanup(func() {
		if d := f.m.prober.file.pods.Load(); d != nil {
			_ = d.Close()
		}
	})
	return f
}

// writeProbeFile creates the probe file, last modified age before the
// fixture's clock.
func (f *fileProbeFixture) writeProbeFile(t testing.TB, age time.Duration) {
	t.Helper()
	writeFile(t, filepath.Join(f.volume, "probe"), f.now.Add(-age))
}

// writeFile creates an empty file last modified at mtime.
func writeFile(t testing.TB, path string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// newFileProbeWorker returns a worker for a file probe of the given type on
// the test pod, whose container is running (and started, unless this is the
// startup probe).
func (f *fileProbeFixture) newFileProbeWorker(t testing.TB, probeType probeType, handler v1.ProbeHandler) *worker {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	pod := getTestPod()
	spec := &v1.Probe{
		ProbeHandler:     handler,
		TimeoutSeconds:   1,
		PeriodSeconds:    1,
		SuccessThreshold: 1,
		FailureThreshold: 1,
	}
	switch probeType {
	case readiness:
		pod.Spec.Containers[0].ReadinessProbe = spec
	case liveness:
		pod.Spec.Containers[0].LivenessProbe = spec
	case startup:
		pod.Spec.Containers[0].StartupProbe = spec
	}
	w := newWorker(f.m, probeType, pod, pod.Spec.Containers[0])
	podStatus := getTestRunningStatusWithStarted(probeType != startup)
	// The container started well before the files the tests write.
	podStatus.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(f.started)
	f.m.statusManager.SetPodStatus(logger, w.pod, podStatus)
	return w
}

// restartContainer makes the worker's container a new instance, with ID id,
// that started at started.
func (f *fileProbeFixture) restartContainer(t testing.TB, w *worker, id string, started time.Time) {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	podStatus, _ := f.m.statusManager.GetPodStatus(w.pod.UID)
	podStatus = *podStatus.DeepCopy()
	c := &podStatus.ContainerStatuses[0]
	newID := kubecontainer.ContainerID{Type: testContainerID.Type, ID: id}
	c.ContainerID = newID.String()
	c.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}
	c.RestartCount++
	f.m.statusManager.SetPodStatus(logger, w.pod, podStatus)
}

func fileHandler(path string) v1.ProbeHandler {
	return v1.ProbeHandler{File: &v1.FileAction{Path: path, Validity: testValidity}}
}

// events drains the events recorded so far.
func (f *fileProbeFixture) events() []string {
	var events []string
	for {
		select {
		case e := <-f.recorder.Events:
			events = append(events, e)
		default:
			return events
		}
	}
}

func setFileProbeGate(t testing.TB, enabled bool) {
	featuregatetesting.SetFeatureGatesDuringTest(t, utilfeature.DefaultFeatureGate, featuregatetesting.FeatureOverrides{
		features.FileContainerProbe: enabled,
	})
}

var allProbeTypes = [...]probeType{readiness, liveness, startup}

func TestFileProbeResults(t *testing.T) {
	setFileProbeGate(t, true)
	tests := []struct {
		name string
		// setup prepares the volume.
		setup func(t *testing.T, f *fileProbeFixture)
		// path is the probe's path, /probe-volume/probe if empty.
		path     string
		expected results.Result
		// errored is set when the probe could not be run (the node's
		// fault): its result is discarded, and the worker's initial
		// value stays (no restart, not ready, not started).
		errored       bool
		expectedEvent string
	}{{
		name:     "fresh file",
		setup:    func(t *testing.T, f *fileProbeFixture) { f.writeProbeFile(t, 3*time.Second) },
		expected: results.Success,
	}, {
		name:     "modified exactly validity ago",
		setup:    func(t *testing.T, f *fileProbeFixture) { f.writeProbeFile(t, testValidity*time.Second) },
		expected: results.Success,
	}, {
		name:          "stale file",
		setup:         func(t *testing.T, f *fileProbeFixture) { f.writeProbeFile(t, 47*time.Second) },
		expected:      results.Failure,
		expectedEvent: "probe failed: file /probe-volume/probe last modified 47s ago (validity 10s)",
	}, {
		name:     "modified within the tolerance ahead of the clock",
		setup:    func(t *testing.T, f *fileProbeFixture) { f.writeProbeFile(t, -3*time.Second) },
		expected: results.Success,
	}, {
		name:          "modified far in the future",
		setup:         func(t *testing.T, f *fileProbeFixture) { f.writeProbeFile(t, -time.Hour) },
		expected:      results.Failure,
		expectedEvent: "probe failed: file /probe-volume/probe last modified 1h0m0s in the future (more than 5s ahead of the node's clock)",
	}, {
		name:          "missing file",
		setup:         func(t *testing.T, f *fileProbeFixture) {},
		expected:      results.Failure,
		expectedEvent: "probe failed: file /probe-volume/probe does not exist",
	}, {
		name: "volume not set up",
		setup: func(t *testing.T, f *fileProbeFixture) {
			if err := os.Remove(f.volume); err != nil {
				t.Fatal(err)
			}
		},
		errored:       true,
		expectedEvent: `probe errored and resulted in unknown state: file probe /probe-volume/probe not run: resolve failed: emptyDir volume "probe-volume" is not set up on the node`,
	}, {
		name: "directory",
		setup: func(t *testing.T, f *fileProbeFixture) {
			if err := os.Mkdir(filepath.Join(f.volume, "probe"), 0o750); err != nil {
				t.Fatal(err)
			}
		},
		expected:      results.Failure,
		expectedEvent: "probe failed: file /probe-volume/probe is a directory, not a regular file",
	}, {
		name: "symbolic link to a fresh host file",
		setup: func(t *testing.T, f *fileProbeFixture) {
			host := filepath.Join(t.TempDir(), "host-file")
			writeFile(t, host, f.now)
			if err := os.Symlink(host, filepath.Join(f.volume, "probe")); err != nil {
				t.Fatal(err)
			}
		},
		expected:      results.Failure,
		expectedEvent: "probe failed: file /probe-volume/probe is a symbolic link (file probes never follow symbolic links), not a regular file",
	}, {
		name: "symbolic link to a host directory holding a fresh file",
		setup: func(t *testing.T, f *fileProbeFixture) {
			host := t.TempDir()
			writeFile(t, filepath.Join(host, "probe"), f.now)
			if err := os.Symlink(host, filepath.Join(f.volume, "dir")); err != nil {
				t.Fatal(err)
			}
		},
		path:          "/probe-volume/dir/probe",
		expected:      results.Failure,
		expectedEvent: "probe failed: file /probe-volume/dir/probe: the path goes through a symbolic link, which file probes never follow",
	}, {
		name: "FIFO",
		setup: func(t *testing.T, f *fileProbeFixture) {
			if err := syscall.Mkfifo(filepath.Join(f.volume, "probe"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		expected:      results.Failure,
		expectedEvent: "probe failed: file /probe-volume/probe is a named pipe (FIFO), not a regular file",
	}}
	for _, probeType := range allProbeTypes {
		for _, test := range tests {
			t.Run(probeType.String()+"/"+test.name, func(t *testing.T) {
				_, ctx := ktesting.NewTestContext(t)
				f := newFileProbeFixture(t)
				test.setup(t, f)
				path := test.path
				if path == "" {
					path = testFileProbePath
				}
				w := f.newFileProbeWorker(t, probeType, fileHandler(path))
				if !w.doProbe(ctx) {
					t.Fatal("the worker stopped")
				}
				expected := test.expected
				if test.errored {
					expected = w.initialValue
					if w.onHold {
						t.Error("an errored probe put the worker on hold, as after a restart-worthy result")
					}
				}
				expectResult(t, w, expected, test.name)
				events := f.events()
				if test.expectedEvent == "" {
					if len(events) != 0 {
						t.Errorf("expected no event, got %q", events)
					}
				} else {
					want := "Warning Unhealthy " + probeType.String() + " " + test.expectedEvent
					if len(events) != 1 || events[0] != want {
						t.Errorf("expected the event %q, got %q", want, events)
					}
				}
			})
		}
	}
}

// TestFileProbeThresholds checks that the usual probe machinery applies to
// file probes: successThreshold, failureThreshold, and a liveness failure
// putting the worker on hold until the container is restarted.
func TestFileProbeThresholds(t *testing.T) {
	setFileProbeGate(t, true)
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)

	w := f.newFileProbeWorker(t, readiness, fileHandler(testFileProbePath))
	w.spec.SuccessThreshold = 2
	w.spec.FailureThreshold = 3
	f.writeProbeFile(t, 0)
	w.doProbe(ctx)
	expectResult(t, w, results.Failure, "one success, below successThreshold")
	w.doProbe(ctx)
	expectResult(t, w, results.Success, "successThreshold reached")

	f.now = f.now.Add(time.Minute) // the writer stopped
	for i := 1; i < 3; i++ {
		w.doProbe(ctx)
		expectResult(t, w, results.Success, "below failureThreshold")
	}
	w.doProbe(ctx)
	expectResult(t, w, results.Failure, "failureThreshold reached")

	l := f.newFileProbeWorker(t, liveness, fileHandler(testFileProbePath))
	l.doProbe(ctx)
	expectResult(t, l, results.Failure, "stale liveness probe")
	if !l.onHold {
		t.Error("a failed liveness probe must hold the worker until the container is restarted")
	}
	f.writeProbeFile(t, 0)
	l.doProbe(ctx)
	expectResult(t, l, results.Failure, "on hold: not probed again before the restart")
}

// TestFileProbeMakesNoRuntimeCalls proves that file probes never call the
// container runtime, while an exec probe on the same manager does.
func TestFileProbeMakesNoRuntimeCalls(t *testing.T) {
	setFileProbeGate(t, true)
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	f.writeProbeFile(t, 0)

	for _, probeType := range allProbeTypes {
		w := f.newFileProbeWorker(t, probeType, fileHandler(testFileProbePath))
		for i := 0; i < 10; i++ {
			w.doProbe(ctx)
			// a succeeded startup probe holds the worker: let it probe again
			w.onHold = false
		}
		expectResult(t, w, results.Success, "fresh probe file")
	}
	for _, probeType := range allProbeTypes {
		w := f.newFileProbeWorker(t, probeType, fileHandler("/probe-volume/missing"))
		w.doProbe(ctx)
		expectResult(t, w, results.Failure, "missing probe file")
	}
	if calls := f.runtime.GetCalls(); len(calls) != 0 {
		t.Fatalf("file probes called the container runtime: %q", calls)
	}

	// The control: an exec probe goes through the runtime.
	w := f.newFileProbeWorker(t, readiness, v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}})
	w.doProbe(ctx)
	if err := f.runtime.AssertCalls([]string{"ExecSync"}); err != nil {
		t.Errorf("the exec probe: %v", err)
	}
}

// TestFileProbeGateDisabled covers a pod with a file probe on a kubelet whose
// gate is off: the probe is not run, the probe file is fresh so running it
// would succeed, and yet nothing is reported ready or started, nothing is
// restarted, and one event per probe says why.
func TestFileProbeGateDisabled(t *testing.T) {
	setFileProbeGate(t, false)
	for _, test := range []struct {
		probeType probeType
		// expected is the probe's result after many periods: the worker's
		// initial value for liveness (Success: no restart) and startup
		// (Unknown: not started, not restarted).
		expected results.Result
		message  string
	}{
		{readiness, results.Failure, "the container is never reported ready"},
		{liveness, results.Success, "the container is not restarted because of it"},
		{startup, results.Unknown, "the container is never reported started (and not restarted because of it)"},
	} {
		t.Run(test.probeType.String(), func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFileProbeFixture(t)
			f.writeProbeFile(t, 0)
			w := f.newFileProbeWorker(t, test.probeType, fileHandler(testFileProbePath))
			for i := 0; i < 5; i++ {
				if !w.doProbe(ctx) {
					t.Fatal("the worker stopped")
				}
				expectResult(t, w, test.expected, "gate off")
				if w.onHold {
					t.Fatal("the worker is on hold, as after a restart-worthy result")
				}
			}
			want := "Warning FileProbeDisabled " + test.probeType.String() +
				" probe uses the file handler, but feature gate FileContainerProbe is disabled on this kubelet: the probe is not run, " + test.message
			if events := f.events(); len(events) != 1 || events[0] != want {
				t.Errorf("expected one event %q, got %q", want, events)
			}
			if calls := f.runtime.GetCalls(); len(calls) != 0 {
				t.Errorf("runtime calls: %q", calls)
			}
		})
	}
}

// TestFileProbeWorkerCache checks that a worker resolves its probe path once,
// that a probe allocates nothing, and that the cache goes with the worker.
func TestFileProbeWorkerCache(t *testing.T) {
	setFileProbeGate(t, true)
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	f.writeProbeFile(t, 0)

	w := f.newFileProbeWorker(t, readiness, fileHandler(testFileProbePath))
	e := f.m.prober.file.tracked(w.spec.File, w.pod.UID)
	if e == nil || e.err != nil || e.target.String() != testFileProbePath {
		t.Fatalf("the worker did not cache its target: %+v", e)
	}
	if other := f.m.prober.file.tracked(w.spec.File, types.UID("another-pod")); other != nil {
		t.Error("a cached target was returned for another pod")
	}
	podStatus, _ := f.m.statusManager.GetPodStatus(w.pod.UID)
	if result, output, err := f.m.prober.file.run(readiness, w.spec, w.pod, &podStatus, &w.container, testContainerID); result != probe.Success || err != nil {
		t.Fatalf("probe: %v %q %v", result, output, err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		_, _, _ = f.m.prober.file.run(readiness, w.spec, w.pod, &podStatus, &w.container, testContainerID)
	}); allocs != 0 {
		t.Errorf("a cached file probe allocates %v times, want 0", allocs)
	}

	// A probe with no worker (and no cache) still runs.
	spec := &v1.Probe{ProbeHandler: fileHandler(testFileProbePath)}
	if result, _, err := f.m.prober.file.run(readiness, spec, w.pod, &podStatus, &w.container, testContainerID); result != probe.Success || err != nil {
		t.Errorf("uncached probe: %v %v", result, err)
	}

	// The worker's goroutine releases the cache when it stops.
	f.startWorker(t, ctx, w)()
	if e := f.m.prober.file.tracked(w.spec.File, w.pod.UID); e != nil {
		t.Error("the stopped worker's target is still cached")
	}
	f.m.prober.file.targets.Range(func(k, v any) bool {
		t.Errorf("left in the cache: %v", k)
		return true
	})
}

// TestFileProbeRefusedPath checks that a path the kubelet refuses (the
// apiserver validates paths; a newer one could accept more) is never a
// Success, and never blamed on the container either: the probe errors, its
// result is discarded (not ready, no restart), and the event says why.
func TestFileProbeRefusedPath(t *testing.T) {
	setFileProbeGate(t, true)
	for _, probeType := range allProbeTypes {
		t.Run(probeType.String(), func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFileProbeFixture(t)
			f.writeProbeFile(t, 0)
			w := f.newFileProbeWorker(t, probeType, fileHandler("/probe-volume/../probe-volume/probe"))
			w.doProbe(ctx)
			expectResult(t, w, w.initialValue, "refused path")
			if w.onHold {
				t.Error("the worker is on hold, as after a restart-worthy result")
			}
			events := f.events()
			if len(events) != 1 || !strings.Contains(events[0], "probe errored") ||
				!strings.Contains(events[0], `the kubelet refuses its path: file probe path "/probe-volume/../probe-volume/probe" has an empty, '.' or '..' segment`) {
				t.Errorf("expected an event with the reason, got %q", events)
			}
		})
	}
}

// TestFileProbeMetrics checks that file probes are told apart from other
// probes in prober_file_probe_total.
func TestFileProbeMetrics(t *testing.T) {
	setFileProbeGate(t, true)
	registry := metrics.NewKubeRegistry()
	registry.MustRegister(FileProbes)
	FileProbes.Reset()
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	f.writeProbeFile(t, 0)

	ok := f.newFileProbeWorker(t, readiness, fileHandler(testFileProbePath))
	missing := f.newFileProbeWorker(t, liveness, fileHandler("/probe-volume/missing"))
	// The prober tries an errored probe maxProbeRetries times: it is
	// counted once.
	errored := f.newFileProbeWorker(t, readiness, fileHandler("/no-such-volume/probe"))
	exec := f.newFileProbeWorker(t, readiness, v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}})
	for i := 0; i < 3; i++ {
		ok.doProbe(ctx)
		missing.doProbe(ctx)
		missing.onHold = false
		errored.doProbe(ctx)
		exec.doProbe(ctx)
	}
	expectResult(t, exec, results.Success, "the exec probe")
	for _, want := range []struct {
		probeType, result string
		count             float64
	}{
		{"Readiness", probeResultSuccessful, 3},
		{"Liveness", probeResultFailed, 3},
		{"Readiness", probeResultUnknown, 3},
		{"Readiness", probeResultFailed, 0},
		{"Liveness", probeResultSuccessful, 0},
	} {
		got, err := testutil.GetCounterMetricValue(FileProbes.WithLabelValues(want.probeType, want.result))
		if err != nil {
			t.Fatal(err)
		}
		if got != want.count {
			t.Errorf("prober_file_probe_total{probe_type=%q,result=%q} = %v, want %v", want.probeType, want.result, got, want.count)
		}
	}
}

// startWorker registers the worker with its manager and runs it; the
// returned function stops it and waits for it. The manager has just started,
// as after a kubelet restart, when workers of other probes wait for a random
// part of their period before they first probe; file probe workers do not.
func (f *fileProbeFixture) startWorker(t *testing.T, ctx context.Context, w *worker) (stop func()) {
	t.Helper()
	f.m.workerLock.Lock()
	f.m.workers[probeKey{w.pod.UID, w.container.Name, w.probeType}] = w
	f.m.workerLock.Unlock()
	done := make(chan struct{})
	go func() {
		w.run(ctx)
		close(done)
	}()
	return func() {
		w.stop()
		select {
		case <-done:
		case <-time.After(wait.ForeverTestTimeout):
			t.Fatal("the worker did not stop")
		}
	}
}

// waitUntil polls cond for up to 5 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestFileProbeWatchWakesUp: with a period of a minute, a readiness or
// startup file probe succeeds as soon as its file appears, then releases its
// watch; liveness probes and files below a directory of the volume are
// never watched.
func TestFileProbeWatchWakesUp(t *testing.T) {
	setFileProbeGate(t, true)
	for _, probeType := range []probeType{readiness, startup} {
		t.Run(probeType.String(), func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFileProbeFixture(t)
			f.m.prober.file.now = nil // the real clock: inotify reports real changes
			w := f.newFileProbeWorker(t, probeType, fileHandler(testFileProbePath))
			w.spec.PeriodSeconds = 60
			w.spec.FailureThreshold = 100 // a failed startup probe holds the worker until a restart
			watcher := f.m.prober.file.fileWatcher(klog.FromContext(ctx))
			stop := f.startWorker(t, ctx, w)
			defer stop()

			waitUntil(t, "the file is watched after the first probe", func() bool { return watcher.Watched() == 1 })
			if r, _ := resultsManager(f.m, probeType).Get(testContainerID); r == results.Success {
				t.Fatalf("the probe succeeded without its file")
			}
			start := time.Now()
			if err := os.WriteFile(filepath.Join(f.volume, "probe"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the probe succeeds well before its next period", func() bool {
				r, ok := resultsManager(f.m, probeType).Get(testContainerID)
				return ok && r == results.Success
			})
			t.Logf("%s probe succeeded %v after the file appeared (period 60s)", probeType, time.Since(start))
			waitUntil(t, "the watch is released", func() bool { return watcher.Watched() == 0 })
		})
	}

	t.Run("not watched", func(t *testing.T) {
		_, ctx := ktesting.NewTestContext(t)
		f := newFileProbeFixture(t)
		f.m.prober.file.now = nil
		if err := os.Mkdir(filepath.Join(f.volume, "dir"), 0o750); err != nil {
			t.Fatal(err)
		}
		live := f.newFileProbeWorker(t, liveness, fileHandler(testFileProbePath))
		nested := f.newFileProbeWorker(t, readiness, fileHandler("/probe-volume/dir/probe"))
		for _, w := range []*worker{live, nested} {
			w.doProbe(ctx)
			expectResult(t, w, results.Failure, "missing file")
			f.m.prober.file.watchUntilSuccess(ctx, w)
		}
		if got := f.m.prober.file.fileWatcher(klog.FromContext(ctx)).Watched(); got != 0 {
			t.Errorf("%d directories watched, want none", got)
		}
	})
}

// TestFileProbeWatchPodChurn: pods come and go through the probe manager;
// their watches and cached targets go with them.
func TestFileProbeWatchPodChurn(t *testing.T) {
	setFileProbeGate(t, true)
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	watcher := f.m.prober.file.fileWatcher(klog.FromContext(ctx))
	podsDir := f.m.prober.file.podsDir
	for round := 0; round < 3; round++ {
		var pods []*v1.Pod
		for i := 0; i < 10; i++ {
			pod := getTestPod()
			pod.UID = types.UID(fmt.Sprintf("churn-%d-%d", round, i))
			pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: fileHandler(testFileProbePath), PeriodSeconds: 1}
			pod.Spec.Containers[0].StartupProbe = &v1.Probe{ProbeHandler: fileHandler(testFileProbePath), PeriodSeconds: 1}
			if err := os.MkdirAll(filepath.Join(podsDir, string(pod.UID), "volumes", "kubernetes.io~empty-dir", "probe-volume"), 0o750); err != nil {
				t.Fatal(err)
			}
			f.m.AddPod(ctx, pod)
			pods = append(pods, pod)
		}
		// Both probes of a pod share its volume directory's watch.
		waitUntil(t, "every pod's volume is watched", func() bool { return watcher.Watched() == 10 })
		for _, pod := range pods {
			f.m.RemovePod(pod)
		}
		waitUntil(t, "the workers are gone", func() bool { return f.m.workerCount() == 0 })
		if got := watcher.Watched(); got != 0 {
			t.Fatalf("round %d: %d directories still watched", round, got)
		}
		f.m.prober.file.targets.Range(func(k, v any) bool {
			t.Errorf("round %d: left in the cache: %v", round, k)
			return true
		})
	}
}

// TestFileProbeWatchFallback: a file whose directory cannot be watched (here,
// a path component is not a directory; exhausted inotify limits are tested
// in package filewatch) stays periodic: the probe runs and fails as usual,
// the fallback is counted, and the watch is tried again only after a
// back-off that grows.
func TestFileProbeWatchFallback(t *testing.T) {
	setFileProbeGate(t, true)
	registry := metrics.NewKubeRegistry()
	registry.MustRegister(FileProbeWatchFallbacks)
	FileProbeWatchFallbacks.Reset()
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	// <pod dir>/volumes is a file: inotify_add_watch fails with ENOTDIR.
	volumes := filepath.Dir(filepath.Dir(f.volume))
	if err := os.RemoveAll(volumes); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(volumes, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w := f.newFileProbeWorker(t, readiness, fileHandler(testFileProbePath))
	e := f.m.prober.file.tracked(w.spec.File, w.pod.UID)
	var backoffs []time.Duration
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			w.doProbe(ctx)
			f.m.prober.file.watchUntilSuccess(ctx, w)
		}
		if got, err := testutil.GetCounterMetricValue(FileProbeWatchFallbacks); err != nil || got != float64(i+1) {
			t.Fatalf("attempt %d: prober_file_probe_watch_fallbacks_total = %v (%v), want %d: one per attempt, none during the back-off", i, got, err, i+1)
		}
		if e.watch != nil || !e.watchRetry.After(time.Now()) {
			t.Fatalf("attempt %d: the probe is not periodic until a retry: %+v", i, e)
		}
		backoffs = append(backoffs, time.Until(e.watchRetry).Round(time.Second))
		e.watchRetry = time.Time{} // the back-off is over
	}
	if want := []time.Duration{watchRetryInitial, 2 * watchRetryInitial, 4 * watchRetryInitial}; fmt.Sprint(backoffs) != fmt.Sprint(want) {
		t.Errorf("back-offs %v, want %v", backoffs, want)
	}
	expectResult(t, w, results.Failure, "unwatchable")

	// Once the directory can be watched, the retry takes the watch.
	if err := os.Remove(volumes); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.volume, 0o750); err != nil {
		t.Fatal(err)
	}
	f.m.prober.file.watchUntilSuccess(ctx, w)
	if e.watch == nil || e.watchBackoff != 0 {
		t.Errorf("the retried watch was not taken: %+v", e)
	}
	e.cancelWatch()
}

// BenchmarkProberFileProbe is one file probe as the kubelet's prober runs it
// (the handler dispatch, the worker's cached target, one statx, the
// result and prober_file_probe_total), against the physical floor: a bare
// os.Lstat of the same file by its full path. Compare them in one run
// (docs/benchmarks.md):
//
//	go test ./pkg/kubelet/prober -run '^$' -bench FileProbe -benchmem -count 10
func BenchmarkProberFileProbe(b *testing.B) {
	setFileProbeGate(b, true)
	registry := metrics.NewKubeRegistry()
	registry.MustRegister(FileProbes)
	_, ctx := ktesting.NewTestContext(b)
	f := newFileProbeFixture(b)
	f.writeProbeFile(b, 0)
	w := f.newFileProbeWorker(b, readiness, fileHandler(testFileProbePath))
	status, _ := f.m.statusManager.GetPodStatus(w.pod.UID)

	b.Run("prober", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, out, err := f.m.prober.runProbe(ctx, readiness, w.spec, w.pod, status, w.container, w.containerID); r != probe.Success {
				b.Fatalf("probe: %v %q %v", r, out, err)
			}
		}
	})
	b.Run("lstat", func(b *testing.B) {
		path := filepath.Join(f.volume, "probe")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := os.Lstat(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestFileProbeContainerRestart: a restarted container is judged on its own
// heartbeat, not on the file its previous instance (or an init container, or
// another container before it started) left in the volume, which outlives
// it. Readiness and startup wait for its first heartbeat; liveness gives it
// validity from its start.
func TestFileProbeContainerRestart(t *testing.T) {
	setFileProbeGate(t, true)
	for _, test := range []struct {
		probeType probeType
		// expected after the restart, before the new instance writes
		expected results.Result
		event    string
	}{
		{readiness, results.Failure, "Warning Unhealthy Readiness probe failed: file /probe-volume/probe last modified 4s ago, before the container started 3s ago"},
		{startup, results.Failure, "Warning Unhealthy Startup probe failed: file /probe-volume/probe last modified 4s ago, before the container started 3s ago"},
		{liveness, results.Success, ""},
	} {
		t.Run(test.probeType.String(), func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFileProbeFixture(t)
			// Container starts are on the real clock (the worker checks
			// the initial delay against it): the first instance started
			// 5s ago, the fixture's clock is 2s behind, so that the
			// second instance's start (below) is not in the future.
			now := time.Now()
			f.started = now.Add(-5 * time.Second)
			f.now = now.Add(-2 * time.Second).Truncate(time.Second)
			w := f.newFileProbeWorker(t, test.probeType, fileHandler(testFileProbePath))
			w.spec.FailureThreshold = 1
			// The first instance writes its heartbeat, then crashes.
			f.writeProbeFile(t, 0)
			w.doProbe(ctx)
			expectResult(t, w, results.Success, "first instance, fresh file")
			f.events()

			// 4s later, its successor starts (3s before now, a fraction
			// of a second into its second) and has not written yet: the
			// file is well within validity (10s).
			f.now = f.now.Add(4 * time.Second)
			f.restartContainer(t, w, "second", f.now.Add(-3*time.Second+300*time.Millisecond))
			w.doProbe(ctx)
			second := kubecontainer.ContainerID{Type: testContainerID.Type, ID: "second"}
			if r, _ := w.resultsManager.Get(second); r != test.expected {
				t.Fatalf("restarted container before its first heartbeat: %v, want %v", r, test.expected)
			}
			events := f.events()
			if test.event == "" && len(events) != 0 || test.event != "" && (len(events) != 1 || events[0] != test.event) {
				t.Errorf("events %q, want %q", events, test.event)
			}

			if test.probeType == liveness {
				// It gets validity (10s) from its start: at 8s it
				// still lives; at 11s without a heartbeat it fails.
				f.now = f.now.Add(5 * time.Second)
				w.doProbe(ctx)
				if r, _ := w.resultsManager.Get(second); r != results.Success {
					t.Fatalf("8s after its start: %v, want Success", r)
				}
				f.now = f.now.Add(3 * time.Second)
				w.doProbe(ctx)
				if r, _ := w.resultsManager.Get(second); r != results.Failure {
					t.Fatalf("11s after its start, never written: %v, want Failure", r)
				}
				if events := f.events(); len(events) != 1 || !strings.Contains(events[0], "last modified 12s ago, before the container started 11s ago (validity 10s)") {
					t.Errorf("events %q", events)
				}
				return
			}
			// Its first heartbeat (or another container's, after it
			// started) counts.
			w.onHold = false // a failed startup probe holds the worker until the next restart
			f.writeProbeFile(t, 0)
			w.doProbe(ctx)
			if r, _ := w.resultsManager.Get(second); r != results.Success {
				t.Fatalf("after its first heartbeat: %v, want Success", r)
			}
		})
	}
}

// TestFileProbeRestartableInitContainer: a sidecar is judged against its own
// start, from the pod's init container statuses.
func TestFileProbeRestartableInitContainer(t *testing.T) {
	setFileProbeGate(t, true)
	_, ctx := ktesting.NewTestContext(t)
	logger, _ := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	f.now = f.started // the sidecar starts on the real clock (2s ago, below)
	pod := getTestPod()
	always := v1.ContainerRestartPolicyAlways
	sidecar := v1.Container{Name: "sidecar", RestartPolicy: &always,
		ReadinessProbe: &v1.Probe{ProbeHandler: fileHandler(testFileProbePath), PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}}
	pod.Spec.InitContainers = []v1.Container{sidecar}
	w := newWorker(f.m, readiness, pod, sidecar)
	sidecarID := kubecontainer.ContainerID{Type: "test", ID: "sidecar-id"}
	podStatus := getTestRunningStatus()
	// The main container started long ago; the sidecar 2s ago.
	podStatus.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(f.now.Add(-time.Hour))
	started := true
	podStatus.InitContainerStatuses = []v1.ContainerStatus{{Name: "sidecar", ContainerID: sidecarID.String(), Started: &started,
		State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(f.now.Add(-2 * time.Second))}}}}
	f.m.statusManager.SetPodStatus(logger, pod, podStatus)

	f.writeProbeFile(t, 5*time.Second) // before the sidecar started
	w.doProbe(ctx)
	if r, _ := f.m.readinessManager.Get(sidecarID); r != results.Failure {
		t.Fatalf("sidecar on a file older than its start: %v, want Failure", r)
	}
	f.writeProbeFile(t, time.Second)
	w.doProbe(ctx)
	if r, _ := f.m.readinessManager.Get(sidecarID); r != results.Success {
		t.Fatalf("sidecar after its heartbeat: %v, want Success", r)
	}
}

// fileProbeCount reads prober_file_probe_total.
func fileProbeCount(t *testing.T, probeType probeType, result string) float64 {
	t.Helper()
	got, err := testutil.GetCounterMetricValue(FileProbes.WithLabelValues(probeType.String(), result))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// touchEvery writes and touches the probe file on the real clock every
// interval, as a container's heartbeat, until the test ends.
func (f *fileProbeFixture) touchEvery(t *testing.T, interval time.Duration) {
	done, stopped := make(chan struct{}), make(chan struct{})
	// Stop before the test's temporary directory is removed.
	t.Cleanup(func() { close(done); <-stopped })
	path := filepath.Join(f.volume, "probe")
	go func() {
		defer close(stopped)
		for {
			now := time.Now()
			_ = os.WriteFile(path, nil, 0o600)
			_ = os.Chtimes(path, now, now)
			select {
			case <-done:
				return
			case <-time.After(interval):
			}
		}
	}()
}

// setStarted sets when the worker's container started.
func (f *fileProbeFixture) setStarted(t testing.TB, w *worker, started time.Time) {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	podStatus, _ := f.m.statusManager.GetPodStatus(w.pod.UID)
	podStatus = *podStatus.DeepCopy()
	podStatus.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(started)
	f.m.statusManager.SetPodStatus(logger, w.pod, podStatus)
}

// TestFileProbeWatchStaleChangesCountNothing: a watch-woken probe changes only when
// the next check runs. Changes that leave the file stale (chmod, here) wake
// nothing up, so they cannot spend a startup probe's failureThreshold.
func TestFileProbeWatchStaleChangesCountNothing(t *testing.T) {
	setFileProbeGate(t, true)
	registry := metrics.NewKubeRegistry()
	registry.MustRegister(FileProbes)
	FileProbes.Reset()
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	f.m.prober.file.now = nil // the real clock: inotify reports real changes
	path := filepath.Join(f.volume, "probe")
	writeFile(t, path, time.Now().Add(-time.Hour))
	w := f.newFileProbeWorker(t, startup, fileHandler(testFileProbePath))
	w.spec.PeriodSeconds = 60
	w.spec.FailureThreshold = 3
	watcher := f.m.prober.file.fileWatcher(klog.FromContext(ctx))
	stop := f.startWorker(t, ctx, w)
	defer stop()
	waitUntil(t, "the file is watched after the first probe", func() bool { return watcher.Watched() == 1 })
	waitUntil(t, "the first probe fails", func() bool { return fileProbeCount(t, startup, probeResultFailed) == 1 })

	// Each chmod is an inotify event on the probe file, 250 ms apart (more
	// than filewatch.MinTriggerInterval): the file stays stale.
	for i := 0; i < 8; i++ {
		mode := os.FileMode(0o600)
		if i%2 == 0 {
			mode = 0o644
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got := fileProbeCount(t, startup, probeResultFailed); got != 1 {
		t.Fatalf("%v startup probes failed after 8 changes of a stale file, want 1 (the periodic one): a woken probe that fails must count nothing", got)
	}
	if r, _ := f.m.startupManager.Get(testContainerID); r == results.Failure {
		t.Fatal("the startup probe failed (the container would be restarted)")
	}
	// A heartbeat wakes it up, and it succeeds.
	if err := os.Chtimes(path, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the heartbeat wakes the probe up", func() bool {
		r, ok := f.m.startupManager.Get(testContainerID)
		return ok && r == results.Success
	})
}

// TestFileProbeWatchSuccessThreshold: the watch wakes the first success up;
// successThreshold still counts periods, as without the watch, however often
// the file is touched.
func TestFileProbeWatchSuccessThreshold(t *testing.T) {
	setFileProbeGate(t, true)
	registry := metrics.NewKubeRegistry()
	registry.MustRegister(FileProbes)
	FileProbes.Reset()
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	f.m.prober.file.now = nil
	w := f.newFileProbeWorker(t, readiness, fileHandler(testFileProbePath))
	const period = 2 * time.Second
	w.spec.PeriodSeconds = int32(period / time.Second)
	w.spec.SuccessThreshold = 3
	watcher := f.m.prober.file.fileWatcher(klog.FromContext(ctx))
	stop := f.startWorker(t, ctx, w)
	defer stop()
	waitUntil(t, "the file is watched after the first probe", func() bool { return watcher.Watched() == 1 })

	// A container touching its file every 100 ms.
	f.touchEvery(t, 100*time.Millisecond)
	waitUntil(t, "the first heartbeat wakes the probe up", func() bool { return fileProbeCount(t, readiness, probeResultSuccessful) >= 1 })
	first := time.Now()
	waitUntil(t, "the watch is released at the first success", func() bool { return watcher.Watched() == 0 })
	if r, _ := f.m.readinessManager.Get(testContainerID); r == results.Success {
		t.Fatal("ready after one success, with successThreshold 3")
	}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 6*period, true, func(context.Context) (bool, error) {
		r, _ := f.m.readinessManager.Get(testContainerID)
		return r == results.Success, nil
	}); err != nil {
		t.Fatalf("never ready: %v", err)
	}
	// Two more periodic successes: at least two periods after the first
	// (the first is seen up to 10 ms late here; allow a period's slack
	// below 2 periods for the ticker).
	if elapsed := time.Since(first); elapsed < 3*period/2 {
		t.Errorf("ready %v after the first success: successThreshold 3 must take two more periods (%v)", elapsed, 2*period)
	}
	if got := fileProbeCount(t, readiness, probeResultSuccessful); got != 3 {
		t.Errorf("%v successful probes when ready, want 3 (touches every 100 ms must not run probes once the watch is released)", got)
	}
}

// TestFileProbeWatchInitialDelay: a heartbeat during initialDelaySeconds
// wakes nothing up; the probe succeeds after the delay.
func TestFileProbeWatchInitialDelay(t *testing.T) {
	setFileProbeGate(t, true)
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	f.m.prober.file.now = nil
	w := f.newFileProbeWorker(t, readiness, fileHandler(testFileProbePath))
	w.spec.PeriodSeconds = 60
	w.spec.InitialDelaySeconds = 2
	started := time.Now().Truncate(time.Second) // as in pod statuses
	f.setStarted(t, w, started)
	// The watch is taken after the first pass of the worker, in the delay.
	watcher := f.m.prober.file.fileWatcher(klog.FromContext(ctx))
	stop := f.startWorker(t, ctx, w)
	defer stop()
	waitUntil(t, "the file is watched", func() bool { return watcher.Watched() == 1 })

	f.touchEvery(t, 100*time.Millisecond)
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		r, _ := f.m.readinessManager.Get(testContainerID)
		return r == results.Success, nil
	}); err != nil {
		t.Fatalf("never ready after the delay: %v", err)
	}
	if ready := time.Since(started); ready < 2*time.Second {
		t.Errorf("ready %v after the container started, within initialDelaySeconds 2", ready)
	}
}

// TestFileProbeWatchNoisyDirectory: a container flooding its volume root with
// events (here, writes to another file) gets its directory's watch
// suspended, which counts as a fallback to periodic probing.
func TestFileProbeWatchNoisyDirectory(t *testing.T) {
	setFileProbeGate(t, true)
	registry := metrics.NewKubeRegistry()
	registry.MustRegister(FileProbeWatchFallbacks)
	FileProbeWatchFallbacks.Reset()
	_, ctx := ktesting.NewTestContext(t)
	f := newFileProbeFixture(t)
	f.m.prober.file.now = nil
	w := f.newFileProbeWorker(t, readiness, fileHandler(testFileProbePath))
	w.spec.PeriodSeconds = 60
	watcher := f.m.prober.file.fileWatcher(klog.FromContext(ctx))
	stop := f.startWorker(t, ctx, w)
	defer stop()
	waitUntil(t, "the file is watched", func() bool { return watcher.Watched() == 1 })

	noise := filepath.Join(f.volume, "noise")
	waitUntil(t, "the noisy directory's watch is suspended", func() bool {
		for i := 0; i < 50; i++ {
			if err := os.WriteFile(noise, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return watcher.Suspended() == 1
	})
	waitUntil(t, "the suspension is counted", func() bool {
		got, err := testutil.GetCounterMetricValue(FileProbeWatchFallbacks)
		return err == nil && got == 1
	})
}
