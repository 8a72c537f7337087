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
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/pkg/kubelet/prober/filewatch"
	"k8s.io/kubernetes/pkg/kubelet/prober/results"
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
// file's directory could not be watched (inotify limits, or another error).
var FileProbeWatchFallbacks = metrics.NewCounter(
	&metrics.CounterOpts{
		Subsystem:      "prober",
		Name:           "file_probe_watch_fallbacks_total",
		Help:           "Cumulative number of file probes that could not watch their file for changes and stay periodic.",
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

	// watchMu guards watch and watchFailed.
	watchMu sync.Mutex
	// watch wakes the worker up when the file changes, while its probe has
	// not succeeded.
	watch *filewatch.Subscription
	// watchFailed is set when the file could not be watched: the probe
	// stays periodic.
	watchFailed bool
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
// the node, through the pod's emptyDir volume, and never calls the container
// runtime.
func (f *fileProber) probe(ctx context.Context, probeType probeType, p *v1.Probe, pod *v1.Pod, container *v1.Container) (probe.Result, string, error) {
	result, output, err := f.run(ctx, probeType, p, pod, container)
	resultLabel := probeResultUnknown
	switch {
	case err != nil:
	case result == probe.Success:
		resultLabel = probeResultSuccessful
	case result == probe.Failure:
		resultLabel = probeResultFailed
	}
	FileProbes.WithLabelValues(probeType.String(), resultLabel).Inc()
	return result, output, err
}

func (f *fileProber) run(ctx context.Context, probeType probeType, p *v1.Probe, pod *v1.Pod, container *v1.Container) (probe.Result, string, error) {
	validity := time.Duration(p.File.Validity) * time.Second
	if logger := klog.FromContext(ctx).V(4); logger.Enabled() {
		logger.Info("File-Probe", "probeType", probeType, "pod", klog.KObj(pod), "podUID", pod.UID, "containerName", container.Name, "path", p.File.Path, "validity", validity)
	}
	target, err := f.target(p.File, pod.UID)
	if err != nil {
		// A path the kubelet refuses is never a Success; the apiserver
		// validates paths, so only a newer apiserver's can get here.
		return probe.Failure, err.Error(), nil
	}
	pods, err := f.podsHandle()
	if err != nil {
		return probe.Unknown, "", err
	}
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	return fileprobe.Probe(pods, target, validity, now())
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
// readiness or startup file probe has not succeeded, it watches the probe
// file, and a change of the file (a heartbeat) makes the worker probe at
// once instead of at its next period; once the probe succeeded, the watch is
// released, and failures are detected periodically as with every probe.
// Liveness probes are never watched. A file below a directory of the volume
// is not watched (the directory is the container's), nor is one whose
// directory cannot be watched: those probes stay periodic.
func (f *fileProber) watchUntilSuccess(ctx context.Context, w *worker) {
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
		succeeded = found && result == results.Success
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
	if e.watch != nil || e.watchFailed {
		return
	}
	trigger := w.manualTriggerCh
	sub, err := f.fileWatcher(logger).Watch(filepath.Join(f.podsDir, dir), name, func() {
		select {
		case trigger <- struct{}{}:
		default: // a probe is due already
		}
	})
	switch {
	case err == nil:
		e.watch = sub
		logger.V(4).Info("Watching the file of a file probe until it succeeds", "probeType", w.probeType, "pod", klog.KObj(w.pod), "containerName", w.container.Name, "path", w.spec.File.Path)
	case errors.Is(err, filewatch.ErrNotSetUp):
		// The volume is not set up yet: try again after the next probe.
	default:
		e.watchFailed = true
		FileProbeWatchFallbacks.Inc()
		if f.fallbackLogged.CompareAndSwap(false, true) {
			logger.Info("Cannot watch the file of a file probe: it stays periodic (logged once; prober_file_probe_watch_fallbacks_total counts them)",
				"probeType", w.probeType, "pod", klog.KObj(w.pod), "containerName", w.container.Name, "path", w.spec.File.Path, "err", err)
		} else {
			logger.V(4).Info("Cannot watch the file of a file probe: it stays periodic", "pod", klog.KObj(w.pod), "containerName", w.container.Name, "err", err)
		}
	}
}

// fileWatcher returns the kubelet's file watcher.
func (f *fileProber) fileWatcher(logger klog.Logger) *filewatch.Watcher {
	f.watcherOnce.Do(func() {
		f.watcher = filewatch.New(logger.WithName("filewatch"))
	})
	return f.watcher
}
