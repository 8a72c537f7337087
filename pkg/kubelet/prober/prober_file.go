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
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/runtime"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/metrics"
	"k8s.io/component-helpers/nodedeclaredfeatures/features/filecontainerprobe"
	"k8s.io/klog/v2"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	"k8s.io/kubernetes/pkg/features"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	"k8s.io/kubernetes/pkg/kubelet/prober/filewatch"
	"k8s.io/kubernetes/pkg/kubelet/prober/results"
	"k8s.io/kubernetes/pkg/kubelet/prober/sharedticker"
	"k8s.io/kubernetes/pkg/probe"
	fileprobe "k8s.io/kubernetes/pkg/probe/file"
)

// FileProbes counts file probes (ProbeHandler.File) by probe type and result.
// prober_probe_total counts them too, but has no label for the handler; this
// one tells file probes apart without adding per-pod series.
var FileProbes = metrics.NewCounterVec(
	&metrics.CounterOpts{
		Subsystem:      "prober",
		Name:           "file_probe_total",
		Help:           "Cumulative number of file probes (ProbeHandler.File) run by the kubelet, by probe type and result.",
		StabilityLevel: metrics.ALPHA,
	},
	[]string{"probe_type", "result"},
)

// FileProbeWatchFallbacks counts file probes that stay periodic because their
// file's directory could not be watched (inotify limits, or another error), or
// was over its event budget (a container flooding its volume with events).
var FileProbeWatchFallbacks = metrics.NewCounter(
	&metrics.CounterOpts{
		Subsystem:      "prober",
		Name:           "file_probe_watch_fallbacks_total",
		Help:           "Cumulative number of times a file probe could not watch its file for changes, or its watch was suspended (its directory over its event budget): the probe stays periodic until the watch is taken again.",
		StabilityLevel: metrics.ALPHA,
	},
)

// FileProbeDisabledReason is the reason of the event recorded when a pod with
// a file probe runs on a kubelet whose FileContainerProbe gate is off.
const FileProbeDisabledReason = "FileProbeDisabled"

// errFileProbeDisabled is the probe error for liveness and startup file
// probes on a kubelet whose FileContainerProbe gate is off: an error makes
// the probe worker discard the result, so the container is neither restarted
// nor reported started because of a probe that was never run.
var errFileProbeDisabled = errors.New("file probe not run: feature gate FileContainerProbe is disabled on this kubelet")

// fileProber runs the file probes of all probe workers. Its zero value is
// ready to use once podsDir is set; every method is safe for concurrent use.
type fileProber struct {
	// podsDir is the kubelet's pods directory (<root dir>/pods), beneath
	// which every file probe path is resolved.
	podsDir string
	// now is the clock; nil means time.Now.
	now func() time.Time

	// pods is the open handle on podsDir, opened on first use: the
	// directory may not exist yet when the prober is created.
	pods   atomic.Pointer[fileprobe.PodsDir]
	openMu sync.Mutex

	// targets maps the *v1.FileAction of each running probe worker to its
	// resolved target, so that a probe resolves nothing and allocates
	// nothing. Workers add their entry when they start (track) and remove
	// it when they stop (untrack), so entries never outlive their pods.
	targets sync.Map
	// trackMu serializes track and untrack (the reference counts).
	trackMu sync.Mutex

	// watcher wakes up the probes that have not succeeded yet when their
	// file changes (one inotify instance for the kubelet, made on first use).
	watcherOnce sync.Once
	watcher     *filewatch.Watcher
	// fallbackLogged is set once a watch fallback was logged.
	fallbackLogged atomic.Bool
	// errorLogged is when a probe error was last logged at the default
	// verbosity, in Unix nanoseconds.
	errorLogged atomic.Int64

	// ticks ticks the workers of file probes, all from one timer.
	ticks sharedticker.Scheduler
}

// newTicker returns the ticker a probe worker waits on for its next period.
// File probe workers share one timer (package sharedticker): their check
// costs microseconds, and a timer of their own each would cost the kubelet
// more than the checks, a wake-up of an idle thread per probe; the shared
// one wakes them in batches, each tick at most sharedticker.Quantum late.
// Other probes keep a time.Ticker each, as upstream.
func (f *fileProber) newTicker(spec *v1.Probe, period time.Duration) *sharedticker.Ticker {
	if spec != nil && spec.File != nil {
		return f.ticks.NewTicker(period)
	}
	return sharedticker.NewStdTicker(period)
}

// fileTarget is what a probe worker caches about its file probe.
type fileTarget struct {
	podUID types.UID
	target *fileprobe.Target
	// err is why the probe path was refused; the probe fails with it.
	err error
	// refs counts the workers using the entry, under trackMu.
	refs int
	// disabledReported is set once the gate-off event was recorded.
	disabledReported atomic.Bool

	// lastMu guards lastContainerID and lastSucceeded.
	lastMu sync.Mutex
	// lastContainerID is the ID of the container instance last probed, and
	// lastSucceeded whether that probe succeeded: the watch is released at
	// the first success of an instance, not at the success threshold, so
	// that the threshold counts periods as without the watch.
	lastContainerID string
	lastSucceeded   bool

	// watchMu guards watch, watchRetry and watchBackoff.
	watchMu sync.Mutex
	// watch wakes the worker up when the file changes, while its probe has
	// not succeeded.
	watch *filewatch.Subscription
	// watchRetry is when a watch that could not be set up is tried again,
	// and watchBackoff the wait before the try after that: until then the
	// probe stays periodic.
	watchRetry   time.Time
	watchBackoff time.Duration
}

// Back-off of the retries of a file watch that could not be set up
// (inotify limits such as fs.inotify.max_user_watches, or EMFILE).
const (
	watchRetryInitial = 10 * time.Second
	watchRetryMax     = 5 * time.Minute
)

// recordResult remembers whether the probe of a container instance succeeded.
func (e *fileTarget) recordResult(containerID string, succeeded bool) {
	e.lastMu.Lock()
	e.lastContainerID, e.lastSucceeded = containerID, succeeded
	e.lastMu.Unlock()
}

// succeeded tells whether the last probe of the container instance succeeded.
func (e *fileTarget) succeeded(containerID string) bool {
	e.lastMu.Lock()
	defer e.lastMu.Unlock()
	return e.lastSucceeded && e.lastContainerID == containerID
}

// cancelWatch releases the entry's watch, if any.
func (e *fileTarget) cancelWatch() {
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	if e.watch != nil {
		e.watch.Cancel()
		e.watch = nil
	}
}

// track is called when a probe worker starts. For a file probe, it resolves
// the probe path for the pod once, for the lifetime of the worker.
func (f *fileProber) track(spec *v1.Probe, podUID types.UID) {
	if spec == nil || spec.File == nil {
		return
	}
	f.trackMu.Lock()
	defer f.trackMu.Unlock()
	if v, ok := f.targets.Load(spec.File); ok {
		if e := v.(*fileTarget); e.podUID == podUID {
			e.refs++
			return
		}
	}
	e := &fileTarget{podUID: podUID, refs: 1}
	e.target, e.err = fileprobe.NewTarget(string(podUID), spec.File.Path)
	f.targets.Store(spec.File, e)
}

// untrack is called when a probe worker stops; it releases what track cached.
func (f *fileProber) untrack(spec *v1.Probe) {
	if spec == nil || spec.File == nil {
		return
	}
	f.trackMu.Lock()
	defer f.trackMu.Unlock()
	if v, ok := f.targets.Load(spec.File); ok {
		e := v.(*fileTarget)
		if e.refs--; e.refs <= 0 {
			f.targets.Delete(spec.File)
			e.cancelWatch()
		}
	}
}

// tracked returns the entry of a running worker's file probe, or nil.
func (f *fileProber) tracked(action *v1.FileAction, podUID types.UID) *fileTarget {
	if v, ok := f.targets.Load(action); ok {
		if e := v.(*fileTarget); e.podUID == podUID {
			return e
		}
	}
	return nil
}

// target returns the resolved target of a file probe, from the worker's
// cache when it has one.
func (f *fileProber) target(action *v1.FileAction, podUID types.UID) (*fileprobe.Target, error) {
	if e := f.tracked(action, podUID); e != nil {
		return e.target, e.err
	}
	return fileprobe.NewTarget(string(podUID), action.Path)
}

// podsHandle returns the open handle on the pods directory, opening it on
// first use.
func (f *fileProber) podsHandle() (*fileprobe.PodsDir, error) {
	if d := f.pods.Load(); d != nil {
		return d, nil
	}
	f.openMu.Lock()
	defer f.openMu.Unlock()
	if d := f.pods.Load(); d != nil {
		return d, nil
	}
	if f.podsDir == "" {
		return nil, errors.New("file probe not run: the kubelet's pods directory is not configured")
	}
	d, err := fileprobe.OpenPodsDir(f.podsDir)
	if err != nil {
		return nil, err
	}
	f.pods.Store(d)
	return d, nil
}

// probe runs a file probe: it checks the modification time of the file on
// the node, through the pod's emptyDir volume, against the container instance
// being probed (containerID, started as status says), and never calls the
// container runtime. An error (Unknown) is the node's, never the
// container's: the probe worker discards the result.
func (f *fileProber) probe(ctx context.Context, probeType probeType, p *v1.Probe, pod *v1.Pod, status *v1.PodStatus, container *v1.Container, containerID kubecontainer.ContainerID) (probe.Result, string, error) {
	logger := klog.FromContext(ctx)
	validity := time.Duration(p.File.Validity) * time.Second
	if loggerV := logger.V(4); loggerV.Enabled() {
		loggerV.Info("File-Probe", "probeType", probeType, "pod", klog.KObj(pod), "podUID", pod.UID, "containerName", container.Name, "path", p.File.Path, "validity", validity)
	}
	result, output, err := f.run(probeType, p, pod, status, container, containerID)
	if err != nil {
		f.logError(logger, probeType, p, pod, container, err)
	} else if e := f.tracked(p.File, pod.UID); e != nil {
		e.recordResult(containerID.ID, result == probe.Success)
	}
	return result, output, err
}

func (f *fileProber) run(probeType probeType, p *v1.Probe, pod *v1.Pod, status *v1.PodStatus, container *v1.Container, containerID kubecontainer.ContainerID) (probe.Result, string, error) {
	target, err := f.target(p.File, pod.UID)
	if err != nil {
		// The apiserver validates paths: only a newer apiserver's path
		// can get here, which is no fault of the container.
		return probe.Unknown, "", fmt.Errorf("file probe %s not run: the kubelet refuses its path: %w", p.File.Path, err)
	}
	started, ok := runningSince(status, container.Name, containerID)
	if !ok {
		return probe.Unknown, "", fmt.Errorf("file probe %s not run: the start time of container %s (%s) is not known", p.File.Path, container.Name, containerID)
	}
	pods, err := f.podsHandle()
	if err != nil {
		return probe.Unknown, "", err
	}
	return fileprobe.Probe(pods, target, f.check(probeType, p, started))
}

// check is what a probe of probeType judges its file by, for a container
// instance that started at started.
func (f *fileProber) check(probeType probeType, p *v1.Probe, started time.Time) fileprobe.Check {
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	return fileprobe.Check{
		Validity: time.Duration(p.File.Validity) * time.Second,
		Now:      now(),
		Started:  started,
		// A liveness probe gives a new instance validity from its start to
		// write its first heartbeat; readiness and startup probes wait for
		// its first heartbeat.
		GraceFromStart: probeType == liveness,
	}
}

// runningSince returns when the running container instance containerID of
// the named container (or restartable init container) started, as status
// says.
func runningSince(status *v1.PodStatus, name string, containerID kubecontainer.ContainerID) (time.Time, bool) {
	for _, statuses := range [][]v1.ContainerStatus{status.ContainerStatuses, status.InitContainerStatuses} {
		for i := range statuses {
			c := &statuses[i]
			if c.Name != name || !sameContainer(c.ContainerID, containerID) {
				continue
			}
			if c.State.Running == nil || c.State.Running.StartedAt.IsZero() {
				return time.Time{}, false
			}
			return c.State.Running.StartedAt.Time, true
		}
	}
	return time.Time{}, false
}

// sameContainer tells whether a status's container ID (type://id) is id,
// without allocating.
func sameContainer(statusID string, id kubecontainer.ContainerID) bool {
	return id.ID != "" && len(statusID) == len(id.Type)+3+len(id.ID) &&
		strings.HasPrefix(statusID, id.Type) && statusID[len(id.Type):len(id.Type)+3] == "://" && strings.HasSuffix(statusID, id.ID)
}

// errorLogInterval is the least time between two file probe errors logged at
// the default verbosity, kubelet-wide: a node out of descriptors must not
// flood the log with a line per probe (the others are logged at -v=4).
const errorLogInterval = 10 * time.Second

// logError logs a file probe that could not be run, with the errno.
func (f *fileProber) logError(logger klog.Logger, probeType probeType, p *v1.Probe, pod *v1.Pod, container *v1.Container, err error) {
	now := time.Now().UnixNano()
	last := f.errorLogged.Load()
	verbose := logger.V(4)
	if now-last >= int64(errorLogInterval) && f.errorLogged.CompareAndSwap(last, now) {
		verbose = logger.V(0)
	}
	if !verbose.Enabled() {
		return
	}
	errno := ""
	var perr *fileprobe.Error
	if errors.As(err, &perr) {
		errno = perr.ErrnoName()
	}
	verbose.Info("File probe not run, its result is discarded: the error is the node's, not the container's (at most one such line every 10s at the default verbosity, all at -v=4)",
		"probeType", probeType, "pod", klog.KObj(pod), "podUID", pod.UID, "containerName", container.Name, "path", p.File.Path, "errno", errno, "err", err)
}

// count counts a probe in prober_file_probe_total, once however often the
// prober retried it; it does nothing for other handlers.
func (f *fileProber) count(probeType probeType, p *v1.Probe, result probe.Result, err error) {
	if p == nil || p.File == nil {
		return
	}
	resultLabel := probeResultUnknown
	switch {
	case err != nil:
	case result == probe.Success:
		resultLabel = probeResultSuccessful
	case result == probe.Failure:
		resultLabel = probeResultFailed
	}
	FileProbes.WithLabelValues(probeType.String(), resultLabel).Inc()
}

// fileProbeDisabled handles a file probe on a kubelet whose FileContainerProbe
// gate is off (version skew: the scheduler keeps such pods away from this
// node, but a pod bound to it directly can still arrive). The probe is not
// run. A readiness probe fails, so the container is never reported ready; a
// liveness or startup probe errors, so its result is discarded and the
// container is neither restarted nor reported started because of it. A
// warning event and a log line say so once per probe worker, not every
// period.
func (pb *prober) fileProbeDisabled(ctx context.Context, probeType probeType, p *v1.Probe, pod *v1.Pod, container *v1.Container) (results.Result, error) {
	e := pb.file.tracked(p.File, pod.UID)
	if e == nil || e.disabledReported.CompareAndSwap(false, true) {
		klog.FromContext(ctx).Info("File probe not run: feature gate FileContainerProbe is disabled on this kubelet",
			"probeType", probeType, "pod", klog.KObj(pod), "podUID", pod.UID, "containerName", container.Name, "path", p.File.Path)
		pb.recordContainerEvent(ctx, pod, container, v1.EventTypeWarning, FileProbeDisabledReason,
			"%s probe uses the file handler, but feature gate FileContainerProbe is disabled on this kubelet: the probe is not run, %s",
			probeType, fileProbeDisabledConsequence(probeType))
	}
	FileProbes.WithLabelValues(probeType.String(), probeResultUnknown).Inc()
	if probeType == readiness {
		return results.Failure, nil
	}
	return results.Unknown, errFileProbeDisabled
}

func fileProbeDisabledConsequence(probeType probeType) string {
	switch probeType {
	case readiness:
		return "the container is never reported ready"
	case startup:
		return "the container is never reported started (and not restarted because of it)"
	default:
		return "the container is not restarted because of it"
	}
}

// watchUntilSuccess is called by a probe worker after each probe. While a
// readiness or startup file probe has not succeeded for the current container
// instance, it watches the probe file, and a change of the file that makes
// the probe succeed (a heartbeat) makes the worker probe at once instead of
// at its next period. Only the time of that check moves earlier: a change
// after which the file would still fail wakes nothing up (so it counts
// nothing towards failureThreshold), and the watch is released at the first
// success, so that successThreshold counts periods as without the watch and
// failures are detected periodically as with every probe. The worker itself
// still honours initialDelaySeconds, on-hold and the thresholds.
//
// Liveness probes are never watched. A file below a directory of the volume
// is not watched (the directory is the container's). A file whose directory
// cannot be watched stays periodic, and the watch is tried again after a
// back-off. It runs under the same panic recovery as the probe it follows.
func (f *fileProber) watchUntilSuccess(ctx context.Context, w *worker) {
	defer func() { recover() }() // HandleCrash logs it; a panic must not take the kubelet down
	defer runtime.HandleCrashWithContext(ctx)

	if w.spec.File == nil || w.probeType == liveness || !utilfeature.DefaultFeatureGate.Enabled(features.FileContainerProbe) {
		return
	}
	e := f.tracked(w.spec.File, w.pod.UID)
	if e == nil || e.err != nil {
		return
	}
	dir, name, ok := e.target.WatchPath()
	if !ok {
		return
	}
	succeeded := false
	if !w.containerID.IsEmpty() {
		result, found := w.resultsManager.Get(w.containerID)
		succeeded = (found && result == results.Success) || e.succeeded(w.containerID.ID)
	}
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	logger := klog.FromContext(ctx)
	// On hold, the worker waits for a new container: nothing to wake up.
	if succeeded || w.onHold {
		if e.watch != nil {
			e.watch.Cancel()
			e.watch = nil
			logger.V(4).Info("File probe succeeded, no longer watching its file", "probeType", w.probeType, "pod", klog.KObj(w.pod), "containerName", w.container.Name, "path", w.spec.File.Path)
		}
		return
	}
	if e.watch != nil {
		return
	}
	now := time.Now()
	if now.Before(e.watchRetry) {
		return
	}
	sub, err := f.fileWatcher(logger).Watch(filepath.Join(f.podsDir, dir), name, func() { f.wake(w, e) })
	switch {
	case err == nil:
		e.watch = sub
		e.watchRetry, e.watchBackoff = time.Time{}, 0
		logger.V(4).Info("Watching the file of a file probe until it succeeds", "probeType", w.probeType, "pod", klog.KObj(w.pod), "containerName", w.container.Name, "path", w.spec.File.Path)
	case errors.Is(err, filewatch.ErrNotSetUp):
		// The volume is not set up yet: try again after the next probe.
	default:
		if e.watchBackoff == 0 {
			e.watchBackoff = watchRetryInitial
		}
		e.watchRetry = now.Add(e.watchBackoff)
		e.watchBackoff = min(2*e.watchBackoff, watchRetryMax)
		FileProbeWatchFallbacks.Inc()
		if f.fallbackLogged.CompareAndSwap(false, true) {
			logger.Info("Cannot watch the file of a file probe: it stays periodic, and the watch is tried again later (logged once; prober_file_probe_watch_fallbacks_total counts them)",
				"probeType", w.probeType, "pod", klog.KObj(w.pod), "containerName", w.container.Name, "path", w.spec.File.Path, "retryAfter", e.watchRetry.Sub(now), "err", err)
		} else {
			logger.V(4).Info("Cannot watch the file of a file probe: it stays periodic", "pod", klog.KObj(w.pod), "containerName", w.container.Name, "retryAfter", e.watchRetry.Sub(now), "err", err)
		}
	}
}

// wake is called by the file watcher when the file of a watched probe
// changed. It wakes the worker up only when the probe would now succeed for
// the running container instance, past its initial delay: a change that
// leaves the file stale (a chmod, another container's write, the previous
// instance's file) triggers nothing. It must not block.
func (f *fileProber) wake(w *worker, e *fileTarget) {
	status, ok := w.probeManager.statusManager.GetPodStatus(w.pod.UID)
	if !ok {
		return
	}
	c, ok := podutil.GetContainerStatus(status.ContainerStatuses, w.container.Name)
	if !ok || len(c.ContainerID) == 0 {
		if c, ok = podutil.GetContainerStatus(status.InitContainerStatuses, w.container.Name); !ok {
			return
		}
	}
	if c.State.Running == nil || c.State.Running.StartedAt.IsZero() {
		return
	}
	started := c.State.Running.StartedAt.Time
	if int32(time.Since(started).Seconds()) < w.spec.InitialDelaySeconds {
		return // the worker would not probe yet
	}
	pods, err := f.podsHandle()
	if err != nil {
		return
	}
	if result, _, err := fileprobe.Probe(pods, e.target, f.check(w.probeType, w.spec, started)); err != nil || result != probe.Success {
		return
	}
	select {
	case w.manualTriggerCh <- struct{}{}:
	default: // a probe is due already
	}
}

// fileWatcher returns the kubelet's file watcher.
func (f *fileProber) fileWatcher(logger klog.Logger) *filewatch.Watcher {
	f.watcherOnce.Do(func() {
		f.watcher = filewatch.NewWithOptions(logger.WithName("filewatch"), filewatch.Options{
			// A directory over its event budget is no longer watched
			// for a while: its probes are periodic, like those whose
			// watch could not be set up.
			OnFallback: func(_ string, subscriptions int, _ error) {
				FileProbeWatchFallbacks.Add(float64(subscriptions))
			},
		})
	})
	return f.watcher
}

func init() {
	// The kubelet declares the node feature FileContainerProbe only if it
	// can run file probes on this kernel.
	filecontainerprobe.SetSupportCheck(fileProbeSupport)
}

var (
	supportOnce sync.Once
	supportErr  error
)

// fileProbeSupport checks once that this kubelet can run file probes on its
// kernel (openat2 present and permitted), and logs why not.
func fileProbeSupport() error {
	supportOnce.Do(func() {
		supportErr = fileprobe.CheckSupport()
		if supportErr != nil {
			klog.Background().Info("This kubelet cannot run file probes on this node: it does not declare the node feature FileContainerProbe, so the scheduler keeps pods with file probes away and the kubelet's admission rejects them", "err", supportErr)
		}
	})
	return supportErr
}
