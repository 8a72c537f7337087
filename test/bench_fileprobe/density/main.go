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

// Command density measures what readiness probes cost a node at density, on
// the local node stack of hack/local-up-node.sh (make bench runs it):
//
//   - the density series: for each probe variant (none, file, polled, exec,
//     httpGet) and period, N pods per step (50, 100, 300, ...), each with one
//     readiness probe; after a settling time, a steady-state window measures
//     the CPU (cores) and memory of the kubelet, containerd, the shims (with
//     the runc and probe processes they reaped) and the pods, the machine's
//     busy cores, the probe failure rate (the kubelet's prober_probe_total)
//     and the share of pods Ready. A variant stops at the first step where a
//     probe failed or a pod was not Ready: the step before is the highest N
//     with zero failures.
//   - readiness latency: pods whose heartbeat starts after a random delay;
//     from the first write of the probe file (the mtime of a mark file the
//     container writes just before) to the moment the pod is seen Ready, per
//     variant, p50/p99. By default the heartbeats start only once every pod
//     of the run is up (a node at rest); -latency-at-rest=false starts them
//     while the pods are still being created (a node busy starting pods).
//     With -kubelet-log, each latency splits where the kubelet took the Ready
//     result (kubeletlog.go): the probe's part and the status update's.
//   - the noisy run (-noisy, noisy.go): N file-probed pods waiting for their
//     first heartbeat, without and then with one pod rewriting a file of its
//     watched volume root as fast as it can; the kubelet's CPU over a window
//     while they wait (target: below 5 % of one core with the noisy pod), then
//     their readiness latency once their heartbeats start.
//
// It runs on the host: the apiserver through its forwarded port, the kubelet's
// pods directory and /proc are visible there.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type options struct {
	kubeconfig, podsDir, pidsDir, kubeletLog, kubepods, node, out string
	image                                                         string
	series                                                        []seriesSpec
	steps                                                         []int
	window, settle, deleteTimeout                                 time.Duration
	latencyPods                                                   int
	latencyVariants                                               []variant
	latencyPeriod                                                 int32
	latencyAtRest                                                 bool
	noisy                                                         bool
	noisyPods                                                     int
	noisyWindow                                                   time.Duration
	killShim                                                      bool
	info                                                          string
}

// seriesSpec is one variant at one period (none has no period), in pods of
// one RuntimeClass (empty: the node's default runtime handler), with its own
// steps when it has some (else -steps').
type seriesSpec struct {
	variant      variant
	period       int32
	runtimeClass string
	steps        []int
}

func (s seriesSpec) String() string {
	name := string(none)
	if s.variant != none {
		name = fmt.Sprintf("%s/%ds", s.variant, s.period)
	}
	if s.runtimeClass != "" {
		name += "@" + s.runtimeClass
	}
	return name
}

// parseSeries parses "none file/1 file/1@shimless exec/1:10,25,50 file/10
// ...": variant, periodSeconds, after an at sign the pods' RuntimeClass, and
// after a colon the series' own steps.
func parseSeries(s string) ([]seriesSpec, error) {
	var out []seriesSpec
	for _, f := range strings.Fields(s) {
		f, steps, hasSteps := strings.Cut(f, ":")
		f, class, hasClass := strings.Cut(f, "@")
		if hasClass && !validRuntimeClass(class) {
			return nil, fmt.Errorf("series %q: want a RuntimeClass name after the at sign, e.g. file/1@shimless", f+"@"+class)
		}
		name, period, _ := strings.Cut(f, "/")
		v := variant(name)
		if !variants[v] {
			return nil, fmt.Errorf("series %q: unknown variant %q", f, name)
		}
		spec := seriesSpec{variant: v, runtimeClass: class}
		if v != none {
			p, err := strconv.Atoi(strings.TrimSuffix(period, "s"))
			if err != nil || p < 1 {
				return nil, fmt.Errorf("series %q: want variant/periodSeconds, e.g. file/1", f)
			}
			spec.period = int32(p)
		}
		if hasSteps {
			var err error
			if spec.steps, err = parseInts(steps); err != nil || len(spec.steps) == 0 {
				return nil, fmt.Errorf("series %q: want steps after the colon, e.g. exec/1:10,25,50", f)
			}
		}
		out = append(out, spec)
	}
	return out, nil
}

// validRuntimeClass: a RuntimeClass name is a DNS subdomain (lower-case
// letters, digits, '-' and '.').
func validRuntimeClass(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: not a positive number", f)
		}
		out = append(out, n)
	}
	if !slices.IsSorted(out) {
		return nil, fmt.Errorf("%q: steps must ascend", s)
	}
	return out, nil
}

// row is one step of a series: N pods in a steady state.
type row struct {
	Series        string    `json:"series"`
	Variant       variant   `json:"variant"`
	PeriodSeconds int32     `json:"periodSeconds,omitempty"`
	RuntimeClass  string    `json:"runtimeClass,omitempty"`
	Pods          int       `json:"pods"`
	Started       int       `json:"startedAtWindow"`
	WindowSeconds float64   `json:"windowSeconds"`
	CPU           cpuCores  `json:"cpuCores"`
	Memory        memoryMiB `json:"memoryMiB"`
	Probes        float64   `json:"probes"`
	FailedProbes  float64   `json:"failedProbes"`
	FailureRate   float64   `json:"failureRate"`
	ReadyShare    float64   `json:"readyShare"`
	// Clean: every pod started, every probe succeeded, every pod Ready
	// throughout the window.
	Clean bool `json:"clean"`
}

type latency struct {
	Variant       variant `json:"variant"`
	PeriodSeconds int32   `json:"periodSeconds"`
	Pods          int     `json:"pods"`
	// From each pod's first heartbeat to Ready (measured, p50Ms, ... at
	// the top level of the JSON).
	percentiles
	SamplesMs []float64 `json:"samplesMs"`
	// PerPod is each pod's first heartbeat, kubelet and Ready times.
	PerPod []podTimes `json:"perPod"`
	// AtRest: the heartbeats started once every pod was up, not while the
	// pods were being created.
	AtRest bool `json:"atRest"`
	// NodeCores is the machine's busy cores from the first heartbeat's
	// possible start to the last pod Ready.
	NodeCores float64 `json:"nodeCores"`
	// InKubelet is the part of the latency until the kubelet took the
	// Ready result (watch or period, probe, sync loop), ToAPI the rest (status
	// manager, apiserver, watch); from the kubelet's log, so only with
	// -kubelet-log (kubeletlog.go).
	InKubelet *percentiles `json:"inKubelet,omitempty"`
	ToAPI     *percentiles `json:"kubeletToAPI,omitempty"`
}

// percentiles summarize latency samples.
type percentiles struct {
	Measured int     `json:"measured"`
	P50Ms    float64 `json:"p50Ms"`
	P99Ms    float64 `json:"p99Ms"`
	MaxMs    float64 `json:"maxMs"`
}

func (p percentiles) String() string {
	return fmt.Sprintf("p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d pods)", p.P50Ms, p.P99Ms, p.MaxMs, p.Measured)
}

// summarize sorts samples (in place) and summarizes them.
func summarize(samples []float64) percentiles {
	slices.Sort(samples)
	p := percentiles{Measured: len(samples)}
	if len(samples) > 0 {
		p.P50Ms, p.P99Ms, p.MaxMs = percentile(samples, 50), percentile(samples, 99), samples[len(samples)-1]
	}
	return p
}

// podTimes is when a pod's first heartbeat was written, when the kubelet's
// sync loop took its Ready result (zero if unknown) and when the pod was
// first seen Ready.
type podTimes struct {
	Pod     string    `json:"pod"`
	Mark    time.Time `json:"firstHeartbeat"`
	Kubelet time.Time `json:"kubeletReady,omitzero"`
	Ready   time.Time `json:"ready"`
}

type report struct {
	Date      string    `json:"date"`
	Info      string    `json:"info"`
	Window    string    `json:"window"`
	Rows      []row     `json:"density"`
	MaxClean  []maxN    `json:"maxPodsWithZeroFailures"`
	Latencies []latency `json:"readinessLatency"`
	// Noisy are the runs of -noisy: without, then with the noisy pod.
	Noisy []noisyRun `json:"noisy,omitempty"`
	// Kills are the runs of -kill-shim: a kill -9 of the shared shim at the
	// last step of each series of a RuntimeClass (shimkill.go).
	Kills []shimKill `json:"shimKills,omitempty"`
	// Notes are what happened during the run that the tables do not show.
	Notes []string `json:"notes,omitempty"`
}

// maxN is the headline of one series: the highest N whose window was clean,
// and the first that was not (0 when every step was clean).
type maxN struct {
	Series    string `json:"series"`
	MaxClean  int    `json:"maxClean"`
	FirstFail int    `json:"firstFailing,omitempty"`
}

func main() {
	var o options
	var series, steps, latencyVariants string
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "admin kubeconfig of the local stack")
	flag.StringVar(&o.podsDir, "pods-dir", "", "the kubelet's pods directory (<root-dir>/pods)")
	flag.StringVar(&o.pidsDir, "pids-dir", "", "hack/local-up-node.sh's pid files (empty: find the kubelet and containerd by name)")
	flag.StringVar(&o.kubeletLog, "kubelet-log", "", "the kubelet's log (-v=1 or more): splits each readiness latency at the kubelet (empty: no split)")
	flag.StringVar(&o.kubepods, "kubepods-cgroup", "fileprobe-local/kubepods", "the pods' cgroup, inside a hierarchy (kubepods.slice with the systemd driver)")
	flag.StringVar(&o.node, "node", "fileprobe-node", "the node: every pod is bound to it")
	flag.StringVar(&o.image, "image", image, "a busybox image (sh, httpd, mkfifo, cat)")
	flag.StringVar(&o.out, "out", "", "JSON report to write")
	flag.StringVar(&series, "series", "none file/1 polled/1 exec/1 httpGet/1", "series to run: variant/periodSeconds[:steps] ...")
	flag.StringVar(&steps, "steps", "50,100,300,1000", "pod counts of each series, ascending")
	flag.DurationVar(&o.window, "window", time.Minute, "steady-state window per step")
	flag.DurationVar(&o.settle, "settle", 15*time.Second, "wait after the pods are up, before the window")
	flag.DurationVar(&o.deleteTimeout, "delete-timeout", 30*time.Minute, "how long a series' pods may take to go")
	flag.IntVar(&o.latencyPods, "latency-pods", 100, "pods per variant of the readiness latency run (0: skip)")
	flag.StringVar(&latencyVariants, "latency-variants", "file polled", "variants of the readiness latency run")
	latencyPeriod := flag.Int("latency-period", 10, "periodSeconds of the readiness latency run")
	flag.BoolVar(&o.latencyAtRest, "latency-at-rest", true, "start the latency run's heartbeats once all its pods run (false: while they are created)")
	flag.BoolVar(&o.noisy, "noisy", false, "run the noisy measure: -noisy-pods file-probed pods waiting for their first heartbeat, without and then with a pod rewriting a file of its volume root in a loop")
	flag.IntVar(&o.noisyPods, "noisy-pods", 100, "file-probed pods waiting for their first heartbeat in each noisy run")
	flag.DurationVar(&o.noisyWindow, "noisy-window", time.Minute, "window of the noisy runs, while the pods wait")
	flag.BoolVar(&o.killShim, "kill-shim", false, "at the last step of each series with a RuntimeClass (file/1@shimless), kill -9 the one "+sharedShim+" serving its pods and measure the blast radius: orphans, time until all pods are Ready again, restarts")
	flag.StringVar(&o.info, "info", "", "machine and versions, recorded in the report")
	markdown := flag.String("markdown", "", "print the tables of this JSON report as Markdown, run nothing")
	flag.Parse()
	if *markdown != "" {
		if err := printMarkdown(os.Stdout, *markdown); err != nil {
			fail(err)
		}
		return
	}
	var err error
	if o.series, err = parseSeries(series); err != nil {
		fail(err)
	}
	if o.steps, err = parseInts(steps); err != nil {
		fail(err)
	}
	for _, f := range strings.Fields(latencyVariants) {
		if v := variant(f); !variants[v] || v == none {
			fail(fmt.Errorf("latency variant %q: want one of file, polled, exec, httpGet", f))
		} else {
			o.latencyVariants = append(o.latencyVariants, v)
		}
	}
	o.latencyPeriod = int32(*latencyPeriod)
	if o.noisy && (o.noisyPods < 1 || o.noisyWindow <= 0) {
		fail(fmt.Errorf("-noisy needs -noisy-pods of at least 1 and a positive -noisy-window"))
	}
	if o.kubeconfig == "" || o.podsDir == "" || o.out == "" {
		fail(fmt.Errorf("-kubeconfig, -pods-dir and -out are required (make bench sets them)"))
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "density: %v\n", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "density [%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) error {
	config, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return err
	}
	config.QPS, config.Burst = 50, 100
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	n := &node{procDir: "/proc", pidsDir: o.pidsDir, kubepods: kubepodsCgroup(o.kubepods), shimPrefix: "containerd-shim"}
	rep := report{Date: time.Now().UTC().Format(time.RFC3339), Info: o.info, Window: o.window.String()}
	save := func() error {
		raw, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(o.out, append(raw, '\n'), 0o644)
	}
	// The shims of pods that are not ours (none on the local stack).
	rest, err := n.take()
	if err != nil {
		return err
	}
	shims := len(rest.shims)
	for _, spec := range o.series {
		logf("%s: waiting for the node to be at rest", spec)
		if err := atRest(ctx, n, &rep, &shims, "series "+spec.String()); err != nil {
			return err
		}
		rows, kill, err := runSeries(ctx, o, client, n, spec)
		rep.Rows = append(rep.Rows, rows...)
		if kill != nil {
			rep.Kills = append(rep.Kills, *kill)
		}
		rep.MaxClean = append(rep.MaxClean, headline(spec, rows))
		if err := save(); err != nil {
			return err
		}
		if err != nil {
			return fmt.Errorf("series %s: %w", spec, err)
		}
	}
	if o.latencyPods > 0 {
		if err := atRest(ctx, n, &rep, &shims, "the latency run"); err != nil {
			return err
		}
		lats, err := runLatency(ctx, o, client, n)
		rep.Latencies = lats
		if err := save(); err != nil {
			return err
		}
		if err != nil {
			return fmt.Errorf("readiness latency: %w", err)
		}
	}
	if o.noisy {
		for _, withNoisy := range []bool{false, true} {
			what := noisyRun{Noisy: withNoisy}.name()
			if err := atRest(ctx, n, &rep, &shims, "the noisy run "+what); err != nil {
				return err
			}
			r, err := runNoisy(ctx, o, client, n, withNoisy)
			if err == nil {
				rep.Noisy = append(rep.Noisy, r)
			}
			if err := save(); err != nil {
				return err
			}
			if err != nil {
				return fmt.Errorf("noisy run %s: %w", what, err)
			}
		}
	}
	printReport(rep)
	return nil
}

// atRest waits for the node to come to rest before the next part of the run.
// An overloaded runtime may leak shims that never go (seen with httpGet
// probes every second at 300 pods on two cores): then the run goes on after
// restTimeout, and the report says so, with what was left; the shims left
// are then the ones the next parts wait for.
func atRest(ctx context.Context, n *node, rep *report, shims *int, before string) error {
	err := n.quiesce(ctx, *shims, restTimeout)
	if err == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	s, serr := n.take()
	if serr != nil {
		return serr
	}
	note := fmt.Sprintf("The node was not at rest before %s after %s: %d shims left (%d expected); the run went on.",
		before, restTimeout, len(s.shims), *shims)
	logf("%s", note)
	rep.Notes = append(rep.Notes, note)
	*shims = max(*shims, len(s.shims))
	return nil
}

// restTimeout is how long atRest waits.
const restTimeout = 8 * time.Minute

// runSeries ramps one series through the steps and removes its pods. With
// -kill-shim and a RuntimeClass, it kills the shared shim at the last step
// measured, before removing the pods.
func runSeries(ctx context.Context, o options, client kubernetes.Interface, n *node, spec seriesSpec) (rows []row, kill *shimKill, err error) {
	ns := seriesNamespace(spec)
	set, err := newPodSet(ctx, client, ns)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		logf("%s: deleting its pods", spec)
		start := time.Now()
		if derr := set.delete(context.WithoutCancel(ctx), deleteTimeout(ctx, o)); derr != nil && err == nil {
			err = fmt.Errorf("delete namespace %s: %w", ns, derr)
		}
		logf("%s: pods gone in %s", spec, time.Since(start).Round(time.Second))
	}()
	steps := o.steps
	if spec.steps != nil {
		steps = spec.steps
	}
	have := 0
	for _, want := range steps {
		var pods []*v1.Pod
		for i := have; i < want; i++ {
			pod := benchPod(o, fmt.Sprintf("pod-%04d", i), spec.variant, spec.period, 0, false)
			if spec.runtimeClass != "" {
				pod.Spec.RuntimeClassName = &spec.runtimeClass
			}
			pods = append(pods, pod)
		}
		logf("%s: %d pods (+%d)", spec, want, len(pods))
		start := time.Now()
		if err := set.create(ctx, pods); err != nil {
			return rows, nil, err
		}
		have = want
		// About a second per pod start on two cores; a probe variant must
		// also be Ready, unless it cannot keep up (that is a result).
		timeout := 2*time.Minute + time.Duration(len(pods))*2*time.Second
		up := set.waitFor(ctx, timeout, func(total, started, ready int) bool {
			return started == want && (spec.variant == none || ready == want)
		})
		if ctx.Err() != nil {
			return rows, nil, ctx.Err()
		}
		_, started, ready := set.counts()
		logf("%s: %d started, %d ready after %s%s", spec, started, ready, time.Since(start).Round(time.Second),
			map[bool]string{false: " (timed out)", true: ""}[up])
		r, err := measure(ctx, o, client, n, set, spec, want)
		if err != nil {
			return rows, nil, err
		}
		rows = append(rows, r)
		logf("%s: %d pods: kubelet %.3f, containerd %.3f, shims %.3f, pods %.3f, node %.3f cores; shims %.0f MiB PSS, %.0f MiB RSS (%s); %.0f probes, %.0f failed; ready %.1f%%",
			spec, want, r.CPU.Kubelet, r.CPU.Containerd, r.CPU.Shims, r.CPU.Pods, r.CPU.Node, r.Memory.Shims, r.Memory.ShimsRSS,
			shimCounts(r.Memory.ShimProcesses), r.Probes, r.FailedProbes, 100*r.ReadyShare)
		if !r.Clean {
			logf("%s: not clean at %d pods: the series stops here", spec, want)
			break
		}
	}
	if o.killShim && spec.runtimeClass != "" && len(rows) > 0 {
		k, err := killSharedShim(ctx, o, n, set, spec, have)
		if err != nil {
			return rows, nil, fmt.Errorf("kill -9 of the shared shim: %w", err)
		}
		kill = &k
	}
	return rows, kill, nil
}

// seriesNamespace is the namespace of a series' pods, e.g.
// density-file-1s-shimless.
func seriesNamespace(spec seriesSpec) string {
	ns := "density-" + strings.ToLower(string(spec.variant))
	if spec.variant != none {
		ns += fmt.Sprintf("-%ds", spec.period)
	}
	if spec.runtimeClass != "" {
		ns += "-" + strings.ReplaceAll(spec.runtimeClass, ".", "-")
	}
	return ns
}

// total sums counts.
func total(m map[string]int) int {
	t := 0
	for _, v := range m {
		t += v
	}
	return t
}

// shimCounts prints shims by binary, e.g. "1 containerd-shim-shimless-v2".
func shimCounts(m map[string]int) string {
	if len(m) == 0 {
		return "no shim"
	}
	var out []string
	for _, bin := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%d %s", m[bin], bin))
	}
	return strings.Join(out, ", ")
}

// deleteTimeout is how long to wait for a namespace's pods to go: not at
// all once interrupted (make bench then takes the whole stack down).
func deleteTimeout(ctx context.Context, o options) time.Duration {
	if ctx.Err() != nil {
		return 0
	}
	return o.deleteTimeout
}

// measure waits for the settling time, then watches one steady-state window.
func measure(ctx context.Context, o options, client kubernetes.Interface, n *node, set *podSet, spec seriesSpec, want int) (row, error) {
	r := row{Series: spec.String(), Variant: spec.variant, PeriodSeconds: spec.period, RuntimeClass: spec.runtimeClass, Pods: want}
	if err := sleepCtx(ctx, o.settle); err != nil {
		return r, err
	}
	_, r.Started, _ = set.counts()
	before, err := probeMetrics(ctx, client, o.node, set.namespace)
	if err != nil {
		return r, err
	}
	a, err := n.take()
	if err != nil {
		return r, err
	}
	var readySum float64
	samples := 0
	for end := time.Now().Add(o.window); time.Now().Before(end); {
		_, _, ready := set.counts()
		readySum += float64(ready) / float64(want)
		samples++
		if err := sleepCtx(ctx, min(2*time.Second, time.Until(end))); err != nil {
			return r, err
		}
	}
	b, err := n.take()
	if err != nil {
		return r, err
	}
	after, err := probeMetrics(ctx, client, o.node, set.namespace)
	if err != nil {
		return r, err
	}
	if r.Memory, err = n.memory(); err != nil {
		return r, err
	}
	r.WindowSeconds = b.at.Sub(a.at).Seconds()
	r.CPU = cpuBetween(a, b)
	for result, v := range after {
		d := v - before[result]
		r.Probes += d
		if result != "successful" {
			r.FailedProbes += d
		}
	}
	if r.Probes > 0 {
		r.FailureRate = r.FailedProbes / r.Probes
	}
	if spec.variant == none {
		_, _, ready := set.counts() // no probe: Ready once started
		readySum, samples = float64(ready)/float64(want), 1
	}
	r.ReadyShare = readySum / float64(samples)
	r.Clean = r.Started == want && r.FailedProbes == 0 && r.ReadyShare == 1
	return r, nil
}

func probeMetrics(ctx context.Context, client kubernetes.Interface, node, namespace string) (map[string]float64, error) {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "metrics/probes").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("the kubelet's /metrics/probes: %w", err)
	}
	return probeCounts(string(raw), namespace), nil
}

func headline(spec seriesSpec, rows []row) maxN {
	h := maxN{Series: spec.String()}
	for _, r := range rows {
		if !r.Clean {
			h.FirstFail = r.Pods
			break
		}
		h.MaxClean = r.Pods
	}
	return h
}

// runLatency measures readiness latency: latencyPods pods per variant,
// interleaved, each with its first heartbeat at a random phase against the
// probe period, from that heartbeat to the pod seen Ready. At rest, the pods
// are created with gated heartbeats; once all of them run and the node
// settled, the gate file is written into each pod's volume and each
// heartbeat starts a random 0-period seconds later. Otherwise each heartbeat
// starts a random 5-15 s after its container, while the other pods are
// still being created.
func runLatency(ctx context.Context, o options, client kubernetes.Interface, n *node) (out []latency, err error) {
	set, err := newPodSet(ctx, client, "density-latency")
	if err != nil {
		return nil, err
	}
	defer func() {
		logf("latency: deleting its pods")
		if derr := set.delete(context.WithoutCancel(ctx), deleteTimeout(ctx, o)); derr != nil && err == nil {
			err = fmt.Errorf("delete namespace density-latency: %w", derr)
		}
	}()
	var pods []*v1.Pod
	for i := range o.latencyPods {
		for _, v := range o.latencyVariants {
			delay := 5*time.Second + rand.N(10*time.Second)
			if o.latencyAtRest {
				delay = rand.N(time.Duration(o.latencyPeriod) * time.Second)
			}
			pods = append(pods, benchPod(o, fmt.Sprintf("%s-%04d", strings.ToLower(string(v)), i), v, o.latencyPeriod, delay, o.latencyAtRest))
		}
	}
	logf("latency: %d pods (%d per variant: %v), periodSeconds %d, at rest: %v", len(pods), o.latencyPods, o.latencyVariants, o.latencyPeriod, o.latencyAtRest)
	// The node's CPU is measured from when the first heartbeat may start.
	var before sample
	if !o.latencyAtRest {
		if before, err = n.take(); err != nil {
			return nil, err
		}
	}
	if err := set.create(ctx, pods); err != nil {
		return nil, err
	}
	timeout := 2*time.Minute + time.Duration(len(pods))*2*time.Second
	if o.latencyAtRest {
		if !set.waitFor(ctx, timeout, func(total, started, ready int) bool { return started == len(pods) }) {
			return nil, fmt.Errorf("not all %d pods started within %s", len(pods), timeout)
		}
		logf("latency: all pods run; settling for %s, then opening their gates", o.settle)
		if err := sleepCtx(ctx, o.settle); err != nil {
			return nil, err
		}
		if before, err = n.take(); err != nil {
			return nil, err
		}
		if err := openGates(o, set.pods()); err != nil {
			return nil, err
		}
		timeout = 2*time.Minute + time.Duration(o.latencyPeriod)*time.Second
	}
	set.waitFor(ctx, timeout, func(total, started, ready int) bool { return ready == len(pods) })
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	after, err := n.take()
	if err != nil {
		return nil, err
	}
	nodeCores := cpuBetween(before, after).Node
	perPod, err := collectPodTimes(o, set)
	if err != nil {
		return nil, err
	}
	for _, v := range o.latencyVariants {
		out = append(out, latencyOf(v, perPod[v], o, nodeCores))
	}
	return out, nil
}

// openGates writes the gate file into the volume of each gated pod: their
// heartbeats start.
func openGates(o options, pods []*v1.Pod) error {
	for _, pod := range pods {
		if err := os.WriteFile(volumeFile(o.podsDir, pod, gateFile), nil, 0o644); err != nil {
			return fmt.Errorf("open the gate of pod %s: %w", pod.Name, err)
		}
	}
	return nil
}

// collectPodTimes is, by variant, each Ready pod's first heartbeat (its
// mark), the time the kubelet took its Ready result (from the kubelet's
// log, if any) and the time the pod was first seen Ready.
func collectPodTimes(o options, set *podSet) (map[variant][]podTimes, error) {
	readyAt := set.firstReady()
	kubeletReady, err := readKubeletLog(o.kubeletLog, set.namespace, time.Now().Year())
	if err != nil {
		return nil, fmt.Errorf("the kubelet's log: %w", err)
	}
	perPod := map[variant][]podTimes{}
	for _, pod := range set.pods() {
		v := variant(pod.Labels["variant"])
		ready, ok := readyAt[pod.Name]
		if !ok {
			continue
		}
		st, err := os.Stat(volumeFile(o.podsDir, pod, markDir+"/mark"))
		if err != nil {
			return nil, fmt.Errorf("pod %s is Ready but its first heartbeat is unknown: %w", pod.Name, err)
		}
		mark := st.ModTime()
		perPod[v] = append(perPod[v], podTimes{Pod: pod.Name, Mark: mark, Kubelet: kubeletReadyAfter(kubeletReady[pod.Name], mark), Ready: ready})
	}
	return perPod, nil
}

// latencyOf summarizes the per-pod times of a variant.
func latencyOf(v variant, perPod []podTimes, o options, nodeCores float64) latency {
	slices.SortFunc(perPod, func(a, b podTimes) int { return strings.Compare(a.Pod, b.Pod) })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	var total, inKubelet, toAPI []float64
	for _, p := range perPod {
		total = append(total, ms(p.Ready.Sub(p.Mark)))
		if !p.Kubelet.IsZero() {
			inKubelet = append(inKubelet, ms(p.Kubelet.Sub(p.Mark)))
			toAPI = append(toAPI, ms(p.Ready.Sub(p.Kubelet)))
		}
	}
	l := latency{Variant: v, PeriodSeconds: o.latencyPeriod, Pods: o.latencyPods, percentiles: summarize(total), SamplesMs: total,
		PerPod: perPod, AtRest: o.latencyAtRest, NodeCores: nodeCores}
	if o.kubeletLog != "" {
		k, a := summarize(inKubelet), summarize(toAPI)
		l.InKubelet, l.ToAPI = &k, &a
	}
	return l
}

// percentile of sorted samples, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func printReport(rep report) {
	fmt.Printf("%-20s %5s %7s %7s %7s %7s %7s %7s %7s %7s %7s %6s %7s %8s %7s %6s\n", "series", "pods", "kubelet", "ctrd", "shims",
		"pods", "node", "kl-MiB", "ct-MiB", "sh-PSS", "sh-RSS", "#shims", "probe/s", "failed", "ready", "clean")
	for _, r := range rep.Rows {
		fmt.Printf("%-20s %5d %7.3f %7.3f %7.3f %7.3f %7.3f %7.0f %7.0f %7.0f %7.0f %6d %7.1f %8.4f %6.1f%% %6v\n", r.Series, r.Pods,
			r.CPU.Kubelet, r.CPU.Containerd, r.CPU.Shims, r.CPU.Pods, r.CPU.Node,
			r.Memory.Kubelet, r.Memory.Containerd, r.Memory.Shims, r.Memory.ShimsRSS, total(r.Memory.ShimProcesses),
			r.Probes/r.WindowSeconds, r.FailureRate, 100*r.ReadyShare, r.Clean)
	}
	fmt.Println("(CPU in cores, i.e. CPU seconds per second; shims' CPU with the children they reaped; sh-PSS, sh-RSS summed over the shims; failed = failed probes / probes)")
	fmt.Println()
	for _, h := range rep.MaxClean {
		first := "-"
		if h.FirstFail > 0 {
			first = strconv.Itoa(h.FirstFail)
		}
		fmt.Printf("%-12s highest N with zero probe failures: %d (first failing step: %s)\n", h.Series, h.MaxClean, first)
	}
	for _, l := range rep.Latencies {
		fmt.Printf("readiness latency %-8s periodSeconds %d, at rest %v: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d of %d pods; node %.3f cores)\n",
			l.Variant, l.PeriodSeconds, l.AtRest, l.P50Ms, l.P99Ms, l.MaxMs, l.Measured, l.Pods, l.NodeCores)
		if l.InKubelet != nil {
			fmt.Printf("  until the kubelet took it: %s; from the kubelet to the API: %s\n", l.InKubelet, l.ToAPI)
		}
	}
	for _, r := range rep.Noisy {
		fallbacks := fallbacksString(r)
		fmt.Printf("noisy run %s: %d pods waiting; over %.0f s: kubelet %.3f, containerd %.3f, pods %.3f, node %.3f cores; watch fallbacks %s\n",
			r.name(), r.Pods, r.WindowSeconds, r.CPU.Kubelet, r.CPU.Containerd, r.CPU.Pods, r.CPU.Node, fallbacks)
		fmt.Printf("  readiness latency after their heartbeats: %s\n", r.Latency.percentiles)
		if r.Latency.InKubelet != nil {
			fmt.Printf("  until the kubelet took it: %s; from the kubelet to the API: %s\n", r.Latency.InKubelet, r.Latency.ToAPI)
		}
	}
	if v := noisyVerdict(rep.Noisy); v != "" {
		fmt.Println(v)
	}
	for _, k := range rep.Kills {
		fmt.Println(k.summary())
	}
	for _, note := range rep.Notes {
		fmt.Println("note:", note)
	}
}

// printMarkdown prints a report's tables for docs/benchmarks.md, so that
// no figure there is typed by hand.
func printMarkdown(w io.Writer, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(w, "Date: %s. Machine: %s. Window: %s per step.\n", rep.Date, rep.Info, rep.Window)
	if len(rep.Rows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| series | pods | kubelet | containerd | shims | kubelet+containerd+shims | pods' cgroup | node (all CPUs) | kubelet MiB | containerd MiB | shims MiB (PSS) | shims MiB (RSS) | shim processes | probes/s | failed probes | Ready | clean |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range rep.Rows {
			fmt.Fprintf(w, "| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f | %.0f | %.0f | %.0f | %s | %.1f | %.2f%% | %.1f%% | %s |\n",
				r.Series, r.Pods, r.CPU.Kubelet, r.CPU.Containerd, r.CPU.Shims, r.CPU.Kubelet+r.CPU.Containerd+r.CPU.Shims,
				r.CPU.Pods, r.CPU.Node, r.Memory.Kubelet, r.Memory.Containerd, r.Memory.Shims, r.Memory.ShimsRSS, shimCounts(r.Memory.ShimProcesses),
				r.Probes/r.WindowSeconds, 100*r.FailureRate, 100*r.ReadyShare, map[bool]string{true: "yes", false: "**no**"}[r.Clean])
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| series | highest N with zero probe failures | first N with failures |")
		fmt.Fprintln(w, "|---|---|---|")
		for _, h := range rep.MaxClean {
			clean, first := strconv.Itoa(h.MaxClean), "none measured"
			if h.MaxClean == 0 {
				clean = "below the first step"
			}
			if h.FirstFail > 0 {
				first = strconv.Itoa(h.FirstFail)
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", h.Series, clean, first)
		}
	}
	if len(rep.Latencies) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| variant | periodSeconds | heartbeats start | node (all CPUs) | pods measured | p50 | p99 | max | until the kubelet took it | from the kubelet to the API |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
		for _, l := range rep.Latencies {
			start := "while the pods are created"
			if l.AtRest {
				start = "once all pods run"
			}
			inKubelet, toAPI := "not measured", "not measured"
			if l.InKubelet != nil {
				inKubelet, toAPI = l.InKubelet.String(), l.ToAPI.String()
			}
			fmt.Fprintf(w, "| %s | %d | %s | %.3f | %d of %d | %.0f ms | %.0f ms | %.0f ms | %s | %s |\n", l.Variant, l.PeriodSeconds, start, l.NodeCores,
				l.Measured, l.Pods, l.P50Ms, l.P99Ms, l.MaxMs, inKubelet, toAPI)
		}
	}
	if len(rep.Noisy) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| run | pods waiting | window | kubelet | containerd | pods' cgroup | node (all CPUs) | watch fallbacks | pods measured | p50 | p99 | max | until the kubelet took it |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range rep.Noisy {
			inKubelet := "not measured"
			if r.Latency.InKubelet != nil {
				inKubelet = r.Latency.InKubelet.String()
			}
			fmt.Fprintf(w, "| %s | %d | %.0f s | %.3f | %.3f | %.3f | %.3f | %s | %d of %d | %.0f ms | %.0f ms | %.0f ms | %s |\n",
				r.name(), r.Pods, r.WindowSeconds, r.CPU.Kubelet, r.CPU.Containerd, r.CPU.Pods, r.CPU.Node, fallbacksString(r),
				r.Latency.Measured, r.Pods, r.Latency.P50Ms, r.Latency.P99Ms, r.Latency.MaxMs, inKubelet)
		}
		if v := noisyVerdict(rep.Noisy); v != "" {
			fmt.Fprintln(w)
			fmt.Fprintln(w, v)
		}
	}
	if len(rep.Kills) > 0 {
		fmt.Fprintln(w)
		printKillsMarkdown(w, rep.Kills)
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w)
		for _, note := range rep.Notes {
			fmt.Fprintf(w, "- %s\n", note)
		}
	}
	return nil
}
