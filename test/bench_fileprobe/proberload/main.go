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

// Command proberload measures what the kubelet's probe machinery costs per
// file probe at density, in-process (make bench runs it; no cluster needed):
// the kubelet's real prober manager (pkg/kubelet/prober), with its real
// status manager and results managers, the prober metrics registered, and
// N pods, each with file probes of a mix (R: readiness; RL: readiness and
// liveness; RLS: readiness, liveness and startup) and a period. Their probe
// files are real files in a pods directory laid out as the kubelet's, hot in
// the page cache, always fresh: every probe succeeds. A goroutine does what
// the kubelet's sync loop does with probe results (readiness and startup
// into the status manager), so the results managers' channels never block.
//
// Pods are added spread over one period, as a node's pods arrive at
// different times (added at once, their workers would tick in lockstep).
// Once every pod is Ready and one more period has passed, it measures:
//
//   - the process's CPU (getrusage: user+system) over -reps windows, per
//     probe run and per pod, and as cores;
//   - probes run per second (prober_file_probe_total) against probes due
//     (the pods' periodic probes / period);
//   - how late probes ran against their worker's grid (lateness, stats.go),
//     from the times the workers hand their results to the results
//     managers (a wrapper records them), p50/p99/max;
//   - the live heap (after a GC), the goroutine stacks and the goroutines
//     the pods added, per pod;
//
// and, at the same N, the tight-loop cost of the check itself: the file
// probe (pkg/probe/file: one statx) of the same N files in turn, as the
// prober runs it, with nothing around it. The ratio of the two is what the
// machinery costs on top of the check. After each case the pods are removed
// and the workers must all exit.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/features"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	kubepod "k8s.io/kubernetes/pkg/kubelet/pod"
	"k8s.io/kubernetes/pkg/kubelet/prober"
	"k8s.io/kubernetes/pkg/kubelet/prober/results"
	"k8s.io/kubernetes/pkg/kubelet/status"
	statustest "k8s.io/kubernetes/pkg/kubelet/status/testing"
	kubeletutil "k8s.io/kubernetes/pkg/kubelet/util"
	"k8s.io/kubernetes/pkg/probe"
	fileprobe "k8s.io/kubernetes/pkg/probe/file"
)

const (
	probePath     = "/probe-volume/probe"
	containerName = "app"
	// containerIDType is the type of the containers' IDs, bench://<pod index>.
	containerIDType = "bench"
	validity        = 86400 // seconds: the files stay fresh
)

type options struct {
	series     []seriesSpec
	window     time.Duration // per rep, for a period of 1 s; a period P: window*P, at most window*4
	reps       int
	podsDir    string
	tightLoops int
	info       string
	out        string
	cpuProfile string
}

// caseResult is one case's figures.
type caseResult struct {
	Mix         string  `json:"mix"`
	Period      int32   `json:"periodSeconds"`
	Pods        int     `json:"pods"`
	Workers     int     `json:"workers"`
	WindowS     float64 `json:"windowSeconds"`
	Reps        int     `json:"reps"`
	ProbesRunPS float64 `json:"probesRunPerSecond"`
	ProbesDuePS float64 `json:"probesDuePerSecond"`
	// medians over the reps
	Cores         float64 `json:"cores"`
	CPUPerProbeUS float64 `json:"cpuPerProbeMicroseconds"`
	CPUPerPodUS   float64 `json:"cpuPerPodMicrosecondsPerSecond"`
	// lateness over all the reps
	LateP50MS      float64 `json:"latenessP50Milliseconds"`
	LateP99MS      float64 `json:"latenessP99Milliseconds"`
	LateMaxMS      float64 `json:"latenessMaxMilliseconds"`
	LateSamples    int     `json:"latenessSamples"`
	HeapPerPodKiB  float64 `json:"heapPerPodKiB"`
	StackPerPodKiB float64 `json:"stackPerPodKiB"`
	GoroutinesPod  float64 `json:"goroutinesPerPod"`
	// the check alone, same N
	TightCPUPerCheckUS float64 `json:"tightLoopCPUPerCheckMicroseconds"`
	Ratio              float64 `json:"ratioToTightLoop"`
	LeftGoroutines     int     `json:"goroutinesLeftAfterRemoval"`
}

type report struct {
	Date     string       `json:"date"`
	Info     string       `json:"info"`
	Go       string       `json:"go"`
	MaxProcs int          `json:"gomaxprocs"`
	Command  string       `json:"command"`
	Cases    []caseResult `json:"cases"`
}

func main() {
	klog.InitFlags(nil)
	// The kubelet's usual verbosity (hack/bench.sh's FP_KUBELET_V default).
	_ = flag.Set("v", "2")
	var (
		series string
		o      options
	)
	flag.StringVar(&series, "series", "R/1:100,300,1000,3000 RL/1:1000 RLS/1:1000,3000 R/10:300,1000,3000 RLS/10:1000",
		"cases, MIX/PERIOD:N,N,... (mixes: R readiness, RL readiness+liveness, RLS readiness+liveness+startup)")
	flag.DurationVar(&o.window, "window", 4*time.Second, "measurement window per rep for periodSeconds 1; a period P>1 gets window*P, at most 4 windows")
	flag.IntVar(&o.reps, "reps", 3, "windows per case; medians are reported")
	flag.StringVar(&o.podsDir, "pods-dir", "", "the pods directory to lay the probe files out in (default: a temporary directory)")
	flag.IntVar(&o.tightLoops, "tight-loops", 3, "runs of the tight loop per N; the median is reported")
	flag.StringVar(&o.info, "info", "", "a description of the machine, copied to the results")
	flag.StringVar(&o.out, "out", "", "write the results as JSON here")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measurement windows here (with one case in -series)")
	markdown := flag.String("markdown", "", "print the Markdown table of this JSON result file and exit")
	flag.Parse()
	if *markdown != "" {
		if err := printMarkdown(os.Stdout, *markdown); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var err error
	if o.series, err = parseSeries(series); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "proberload:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if err := utilfeature.DefaultMutableFeatureGate.Set(string(features.FileContainerProbe) + "=true"); err != nil {
		return err
	}
	// As the kubelet serves them on /metrics/probes: unregistered, they
	// would count nothing and cost nothing.
	registry := metrics.NewKubeRegistry()
	registry.MustRegister(prober.ProberResults, prober.ProberDuration, prober.FileProbes, prober.FileProbeWatchFallbacks)

	if o.podsDir == "" {
		dir, err := os.MkdirTemp("", "proberload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.podsDir = dir
	}
	maxPods := 0
	for _, s := range o.series {
		for _, n := range s.pods {
			maxPods = max(maxPods, n)
		}
	}
	if err := layOut(o.podsDir, maxPods); err != nil {
		return err
	}
	rep := report{
		Date:     time.Now().UTC().Format(time.RFC3339),
		Info:     o.info,
		Go:       runtime.Version(),
		MaxProcs: runtime.GOMAXPROCS(0),
		Command:  strings.Join(os.Args, " "),
	}
	var profile io.Writer
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		profile = f
	}
	tight := map[int]float64{}
	fmt.Printf("%-8s %6s %6s %9s %9s %7s %9s %9s %8s %8s %8s %8s %7s %6s %9s %6s\n",
		"case", "pods", "work", "run/s", "due/s", "cores", "us/probe", "us/pod/s", "late50", "late99", "lateMax",
		"heapKiB", "stkKiB", "gor", "tight-us", "ratio")
	for _, s := range o.series {
		for _, n := range s.pods {
			if _, ok := tight[n]; !ok {
				t, err := tightLoop(o.podsDir, n, o.tightLoops)
				if err != nil {
					return err
				}
				tight[n] = t
			}
			r, err := runCase(o, s, n, profile)
			if err != nil {
				return fmt.Errorf("%s at %d pods: %w", s, n, err)
			}
			r.TightCPUPerCheckUS = tight[n]
			if tight[n] > 0 {
				r.Ratio = r.CPUPerProbeUS / tight[n]
			}
			rep.Cases = append(rep.Cases, r)
			fmt.Printf("%-8s %6d %6d %9.1f %9.1f %7.4f %9.2f %9.2f %8.2f %8.2f %8.2f %8.2f %7.2f %6.2f %9.2f %6.1f\n",
				s, n, r.Workers, r.ProbesRunPS, r.ProbesDuePS, r.Cores, r.CPUPerProbeUS, r.CPUPerPodUS,
				r.LateP50MS, r.LateP99MS, r.LateMaxMS, r.HeapPerPodKiB, r.StackPerPodKiB, r.GoroutinesPod,
				r.TightCPUPerCheckUS, r.Ratio)
			if r.LeftGoroutines > 0 {
				return fmt.Errorf("%s at %d pods: %d goroutines left after every pod was removed", s, n, r.LeftGoroutines)
			}
		}
	}
	if o.out != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// podUID is the UID of the i-th pod.
func podUID(i int) types.UID {
	return types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
}

func volumeDir(podsDir string, i int) string {
	return filepath.Join(podsDir, string(podUID(i)), "volumes", "kubernetes.io~empty-dir", "probe-volume")
}

// layOut makes the emptyDir volume and probe file of n pods, as the kubelet
// lays them out.
func layOut(podsDir string, n int) error {
	for i := range n {
		dir := volumeDir(podsDir, i)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// touch makes the probe files of n pods fresh.
func touch(podsDir string, n int) error {
	now := time.Now()
	for i := range n {
		if err := os.Chtimes(filepath.Join(volumeDir(podsDir, i), "probe"), now, now); err != nil {
			return err
		}
	}
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tightLoop returns the CPU per check, in microseconds, of the file probe of
// n pods' files in turn, as the prober runs it (a fresh Check with the time
// now, one statx), with nothing around it: the median of runs.
func tightLoop(podsDir string, n, runs int) (float64, error) {
	pods, err := fileprobe.OpenPodsDir(podsDir)
	if err != nil {
		return 0, err
	}
	defer pods.Close()
	if err := touch(podsDir, n); err != nil {
		return 0, err
	}
	started := time.Now().Add(-time.Hour)
	targets := make([]*fileprobe.Target, n)
	for i := range targets {
		if targets[i], err = fileprobe.NewTarget(string(podUID(i)), probePath); err != nil {
			return 0, err
		}
	}
	iterations := max(100000, 30*n)
	var perCheck []float64
	for range runs {
		start := cpuTime()
		for i := range iterations {
			result, _, err := fileprobe.Probe(pods, targets[i%n], fileprobe.Check{
				Validity: validity * time.Second,
				Now:      time.Now(),
				Started:  started,
			})
			if err != nil || result != probe.Success {
				return 0, fmt.Errorf("tight loop: the probe of pod %d: %v, %v", i%n, result, err)
			}
		}
		perCheck = append(perCheck, float64(cpuTime()-start)/float64(iterations)/1e3)
	}
	return median(perCheck), nil
}

// timeRecorder wraps a results manager and records when each worker hands
// it a result, by pod index (the container ID): a worker does it after
// every probe once its threshold is met, so these are the times its probes
// ran. One worker per pod and results manager: slots are never shared.
type timeRecorder struct {
	results.Manager
	base      time.Time
	recording atomic.Bool
	slots     []timeSlot
}

type timeSlot struct {
	mu    sync.Mutex
	times []time.Duration
}

func (r *timeRecorder) Set(id kubecontainer.ContainerID, result results.Result, pod *v1.Pod) {
	if r.recording.Load() {
		if i, err := strconv.Atoi(id.ID); err == nil && i >= 0 && i < len(r.slots) {
			s := &r.slots[i]
			s.mu.Lock()
			s.times = append(s.times, time.Since(r.base))
			s.mu.Unlock()
		}
	}
	r.Manager.Set(id, result, pod)
}

func (r *timeRecorder) start(capacity int) {
	for i := range r.slots {
		r.slots[i].mu.Lock()
		r.slots[i].times = make([]time.Duration, 0, capacity)
		r.slots[i].mu.Unlock()
	}
	r.recording.Store(true)
}

// lateness stops recording and returns the lateness of every probe.
func (r *timeRecorder) lateness(period time.Duration) []time.Duration {
	r.recording.Store(false)
	var all []time.Duration
	for i := range r.slots {
		r.slots[i].mu.Lock()
		all = append(all, lateness(r.slots[i].times, period)...)
		r.slots[i].mu.Unlock()
	}
	return all
}

func fileProbe(period int32) *v1.Probe {
	return &v1.Probe{
		ProbeHandler:     v1.ProbeHandler{File: &v1.FileAction{Path: probePath, Validity: validity}},
		PeriodSeconds:    period,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
		FailureThreshold: 3,
	}
}

func benchPod(i int, m mix, period int32) *v1.Pod {
	c := v1.Container{Name: containerName, Image: "bench"}
	if m.readiness() {
		c.ReadinessProbe = fileProbe(period)
	}
	if m.liveness() {
		c.LivenessProbe = fileProbe(period)
	}
	if m.startup() {
		c.StartupProbe = fileProbe(period)
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d", i), Namespace: "proberload", UID: podUID(i)},
		Spec: v1.PodSpec{
			Containers:    []v1.Container{c},
			RestartPolicy: v1.RestartPolicyAlways,
			Volumes:       []v1.Volume{{Name: "probe-volume", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}},
		},
	}
}

func fileProbesRun() float64 {
	total := 0.0
	for _, t := range []string{"Readiness", "Liveness", "Startup"} {
		for _, r := range []string{"successful", "failed", "unknown"} {
			v, err := testutil.GetCounterMetricValue(prober.FileProbes.WithLabelValues(t, r))
			if err != nil {
				panic(err)
			}
			total += v
		}
	}
	return total
}

func memStats() runtime.MemStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// waitFor polls cond every 10 ms until it holds or timeout passed.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func runCase(o options, s seriesSpec, n int, profile io.Writer) (caseResult, error) {
	logger := klog.Background()
	ctx := klog.NewContext(context.Background(), logger)
	period := time.Duration(s.period) * time.Second
	window := o.window * time.Duration(min(s.period, 4))
	r := caseResult{Mix: string(s.mix), Period: s.period, Pods: n, WindowS: window.Seconds(), Reps: o.reps}

	// The kubelet's pod manager and status manager (never started: nothing
	// talks to an apiserver), the results managers, the prober manager.
	podManager := kubepod.NewBasicPodManager()
	statusManager := status.NewManager(&fake.Clientset{}, podManager, &statustest.FakePodDeletionSafetyProvider{}, kubeletutil.NewPodStartupLatencyTracker())
	base := time.Now()
	readiness := &timeRecorder{Manager: results.NewManager(), base: base, slots: make([]timeSlot, n)}
	liveness := &timeRecorder{Manager: results.NewManager(), base: base, slots: make([]timeSlot, n)}
	startup := results.NewManager()
	probeManager := prober.NewManager(statusManager, liveness, readiness, startup, nil, record.NewFakeRecorder(100), o.podsDir)

	// The containers started now, before their files were last touched.
	startedAt := metav1.NewTime(time.Now().Truncate(time.Second))
	if err := touch(o.podsDir, n); err != nil {
		return r, err
	}
	pods := make([]*v1.Pod, n)
	for i := range pods {
		pods[i] = benchPod(i, s.mix, s.period)
		podManager.AddPod(pods[i])
		started := !s.mix.startup()
		statusManager.SetPodStatus(logger, pods[i], v1.PodStatus{
			Phase: v1.PodRunning,
			// As the kubelet generates them (the status manager
			// updates Ready and ContainersReady from the probes).
			Conditions: []v1.PodCondition{
				{Type: v1.PodScheduled, Status: v1.ConditionTrue},
				{Type: v1.PodInitialized, Status: v1.ConditionTrue},
				{Type: v1.ContainersReady, Status: v1.ConditionFalse},
				{Type: v1.PodReady, Status: v1.ConditionFalse},
			},
			ContainerStatuses: []v1.ContainerStatus{{
				Name:        containerName,
				ContainerID: containerIDType + "://" + strconv.Itoa(i),
				Image:       "bench",
				Started:     &started,
				State:       v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: startedAt}},
			}},
		})
	}

	// What the kubelet's sync loop does with probe results.
	var ready, started, livenessFailures atomic.Int64
	done := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case u := <-readiness.Updates():
				statusManager.SetContainerReadiness(logger, u.PodUID, u.ContainerID, u.Result == results.Success)
				if u.Result == results.Success {
					ready.Add(1)
				}
			case u := <-startup.Updates():
				statusManager.SetContainerStartup(logger, u.PodUID, u.ContainerID, u.Result == results.Success)
				if u.Result == results.Success {
					started.Add(1)
				}
			case u := <-liveness.Updates():
				if u.Result == results.Failure {
					livenessFailures.Add(1)
				}
			case <-done:
				return
			}
		}
	}()
	defer func() {
		close(done)
		<-drained
	}()

	before := memStats()
	goroutinesBefore := runtime.NumGoroutine()
	// Pods arrive spread over one period.
	addStart := time.Now()
	for i, pod := range pods {
		if d := time.Until(addStart.Add(period * time.Duration(i) / time.Duration(n))); d > 0 {
			time.Sleep(d)
		}
		probeManager.AddPod(ctx, pod)
	}
	r.Workers = n * len(s.mix)
	if !waitFor(30*time.Second+2*period, func() bool { return ready.Load() >= int64(n) }) {
		return r, fmt.Errorf("only %d of %d pods Ready (%d started)", ready.Load(), n, started.Load())
	}
	time.Sleep(period)
	after := memStats()
	r.HeapPerPodKiB = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n) / 1024
	r.StackPerPodKiB = (float64(after.StackInuse) - float64(before.StackInuse)) / float64(n) / 1024
	r.GoroutinesPod = float64(runtime.NumGoroutine()-goroutinesBefore) / float64(n)

	// The windows.
	capacity := int(window*time.Duration(o.reps)/period) + 4
	readiness.start(capacity)
	liveness.start(capacity)
	var cores, perProbe, perPod []float64
	var run float64
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return r, err
		}
	}
	for range o.reps {
		probes0, cpu0, t0 := fileProbesRun(), cpuTime(), time.Now()
		time.Sleep(window)
		cpu1, t1, probes1 := cpuTime(), time.Now(), fileProbesRun()
		cpu, wall, probes := (cpu1 - cpu0).Seconds(), t1.Sub(t0).Seconds(), probes1-probes0
		if probes == 0 {
			return r, errors.New("no probe ran in a window")
		}
		run += probes / wall
		cores = append(cores, cpu/wall)
		perProbe = append(perProbe, cpu/probes*1e6)
		perPod = append(perPod, cpu/wall/float64(n)*1e6)
	}
	if profile != nil {
		pprof.StopCPUProfile()
	}
	late := append(readiness.lateness(period), liveness.lateness(period)...)
	r.LateSamples = len(late)
	r.LateP50MS = percentile(late, 50).Seconds() * 1e3
	r.LateP99MS = percentile(late, 99).Seconds() * 1e3
	r.LateMaxMS = percentile(late, 100).Seconds() * 1e3
	r.ProbesRunPS = run / float64(o.reps)
	r.ProbesDuePS = float64(n*s.mix.periodic()) / period.Seconds()
	r.Cores, r.CPUPerProbeUS, r.CPUPerPodUS = median(cores), median(perProbe), median(perPod)
	if f := livenessFailures.Load(); f > 0 {
		return r, fmt.Errorf("%d liveness failures", f)
	}

	// Remove every pod: every worker must exit.
	for _, pod := range pods {
		probeManager.RemovePod(pod)
	}
	waitFor(30*time.Second, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+1 })
	// The prober's file watcher (one goroutine for the kubelet) may have
	// started with the pods: at most one more.
	r.LeftGoroutines = max(0, runtime.NumGoroutine()-goroutinesBefore-1)
	return r, nil
}

// printMarkdown prints the table of docs/benchmarks.md from a JSON result.
func printMarkdown(w io.Writer, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(w, "Date: %s. Machine: %s, %s, GOMAXPROCS %d.\n\n", rep.Date, rep.Info, rep.Go, rep.MaxProcs)
	fmt.Fprintln(w, "| mix/period | pods | probes/s run (due) | kubelet cores | CPU per probe | CPU per pod | lateness p50 / p99 / max | heap per pod | stack per pod | goroutines per pod | check alone (tight loop) | per probe / check |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range rep.Cases {
		fmt.Fprintf(w, "| %s/%d | %d | %.0f (%.0f) | %.4f | %.1f us | %.2f us/s | %.2f / %.2f / %.2f ms | %.1f KiB | %.1f KiB | %.2f | %.2f us | %.1fx |\n",
			c.Mix, c.Period, c.Pods, c.ProbesRunPS, c.ProbesDuePS, c.Cores, c.CPUPerProbeUS, c.CPUPerPodUS,
			c.LateP50MS, c.LateP99MS, c.LateMaxMS, c.HeapPerPodKiB, c.StackPerPodKiB, c.GoroutinesPod,
			c.TightCPUPerCheckUS, c.Ratio)
	}
	return nil
}
