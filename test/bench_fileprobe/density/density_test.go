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
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func TestParseMachineTicks(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, err := parseMachineTicks([]byte("cpu  100 2 30 5000 40 1 3 4 50 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n"))
	if want := int64(100 + 2 + 30 + 1 + 3 + 4); err != nil || busy != want {
		t.Errorf("parseMachineTicks() = %d, %v; want %d", busy, err, want)
	}
	if _, err := parseMachineTicks([]byte("intr 1 2 3\n")); err == nil {
		t.Error("parseMachineTicks() of a file without the cpu line: no error")
	}
}

func TestCPUBetween(t *testing.T) {
	at := time.Unix(1000, 0)
	a := sample{at: at, kubelet: 100, containerd: 50, shims: map[int]int64{10: 5, 11: 7}, podsCPU: time.Second, busy: 1000}
	b := sample{at: at.Add(10 * time.Second), kubelet: 300, containerd: 60, shims: map[int]int64{10: 25, 11: 7, 12: 30},
		podsCPU: 6 * time.Second, busy: 2000}
	got := cpuBetween(a, b)
	// kubelet 200 ticks = 2 s in 10 s; shims: 20 + 0 + 30 (new) ticks.
	want := cpuCores{Kubelet: 0.2, Containerd: 0.01, Shims: 0.05, Pods: 0.5, Node: 1}
	if got != want {
		t.Errorf("cpuBetween() = %+v, want %+v", got, want)
	}
}

func TestStatKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte("Name:\tkubelet\nVmRSS:\t  204900 kB\nThreads:\t30\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := statKey(path, "VmRSS:"); err != nil || v != 204900 {
		t.Errorf("statKey(VmRSS:) = %d, %v; want 204900", v, err)
	}
	if _, err := statKey(path, "Pss:"); err == nil {
		t.Error("statKey(Pss:) of a file without it: no error")
	}
}

func TestProbeCounts(t *testing.T) {
	metrics := `# HELP prober_probe_total [ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result.
# TYPE prober_probe_total counter
prober_probe_total{container="app",namespace="density-file-1s",pod="pod-0000",pod_uid="u0",probe_type="Readiness",result="successful"} 120
prober_probe_total{container="app",namespace="density-file-1s",pod="pod-0001",pod_uid="u1",probe_type="Readiness",result="successful"} 118
prober_probe_total{container="app",namespace="density-file-1s",pod="pod-0001",pod_uid="u1",probe_type="Readiness",result="failed"} 2
prober_probe_total{container="app",namespace="other",pod="pod-0000",pod_uid="u2",probe_type="Readiness",result="failed"} 9
prober_probe_total{container="app",namespace="density-file-1s",pod="pod-0002",pod_uid="u3",probe_type="Readiness",result="unknown"} 1
prober_file_probe_total{probe_type="Readiness",result="successful"} 500
`
	got := probeCounts(metrics, "density-file-1s")
	want := map[string]float64{"successful": 238, "failed": 2, "unknown": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("probeCounts() = %v, want %v", got, want)
	}
}

func TestParseSeries(t *testing.T) {
	got, err := parseSeries("none file/1 exec/10s httpGet/1 polled/10 exec/1:10,25 file/1@shimless none@shimless exec/1@kata.v2:10")
	want := []seriesSpec{{variant: none}, {variant: file, period: 1}, {variant: execV, period: 10}, {variant: httpGet, period: 1},
		{variant: polled, period: 10}, {variant: execV, period: 1, steps: []int{10, 25}},
		{variant: file, period: 1, runtimeClass: "shimless"}, {variant: none, runtimeClass: "shimless"},
		{variant: execV, period: 1, runtimeClass: "kata.v2", steps: []int{10}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseSeries() = %v, %v; want %v", got, err, want)
	}
	var names []string
	for _, spec := range got {
		names = append(names, spec.String()+" "+seriesNamespace(spec))
	}
	if want := []string{"none density-none", "file/1s density-file-1s", "exec/10s density-exec-10s", "httpGet/1s density-httpget-1s",
		"polled/10s density-polled-10s", "exec/1s density-exec-1s", "file/1s@shimless density-file-1s-shimless",
		"none@shimless density-none-shimless", "exec/1s@kata.v2 density-exec-1s-kata-v2"}; !reflect.DeepEqual(names, want) {
		t.Errorf("series names and namespaces %q, want %q", names, want)
	}
	for _, bad := range []string{"grpc/1", "file", "file/0", "exec/x", "exec/1:", "exec/1:25,10", "exec/1:x",
		"file/1@", "file/1@Shimless", "file/1@shim_less", "file@shimless", "file/1:10@shimless"} {
		if _, err := parseSeries(bad); err == nil {
			t.Errorf("parseSeries(%q): no error", bad)
		}
	}
}

func TestParseInts(t *testing.T) {
	if got, err := parseInts("50,100 300"); err != nil || !reflect.DeepEqual(got, []int{50, 100, 300}) {
		t.Errorf("parseInts() = %v, %v", got, err)
	}
	for _, bad := range []string{"100,50", "0", "x"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q): no error", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var samples []float64
	for i := 1; i <= 200; i++ {
		samples = append(samples, float64(i))
	}
	for _, tc := range []struct{ p, want float64 }{{50, 100}, {99, 198}, {100, 200}, {0, 1}} {
		if got := percentile(samples, tc.p); got != tc.want {
			t.Errorf("percentile(1..200, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile([]float64{7}, 99); got != 7 {
		t.Errorf("percentile of one sample = %v, want 7", got)
	}
}

func TestHeadline(t *testing.T) {
	spec := seriesSpec{variant: execV, period: 1}
	rows := []row{{Pods: 50, Clean: true}, {Pods: 100, Clean: true}, {Pods: 300, Clean: false}}
	if got, want := headline(spec, rows), (maxN{Series: "exec/1s", MaxClean: 100, FirstFail: 300}); got != want {
		t.Errorf("headline() = %+v, want %+v", got, want)
	}
	if got, want := headline(spec, rows[:2]), (maxN{Series: "exec/1s", MaxClean: 100}); got != want {
		t.Errorf("headline() of clean steps = %+v, want %+v", got, want)
	}
}

func TestBenchPod(t *testing.T) {
	tests := []struct {
		variant variant
		check   func(*v1.Probe) bool
	}{
		{none, func(p *v1.Probe) bool { return p == nil }},
		{file, func(p *v1.Probe) bool { return p.File.Path == "/probe-volume/probe" && p.File.Validity == validity }},
		{polled, func(p *v1.Probe) bool { return p.File.Path == "/probe-volume/polled/probe" }},
		{execV, func(p *v1.Probe) bool {
			return reflect.DeepEqual(p.Exec.Command, []string{"cat", "/probe-volume/probe"})
		}},
		{httpGet, func(p *v1.Probe) bool { return p.HTTPGet.Path == "/probe" && p.HTTPGet.Port.IntValue() == httpPort }},
	}
	for _, tc := range tests {
		t.Run(string(tc.variant), func(t *testing.T) {
			pod := benchPod(options{node: "n", image: image}, "p", tc.variant, 10, 2500*time.Millisecond, true)
			c := pod.Spec.Containers[0]
			if !tc.check(c.ReadinessProbe) {
				t.Errorf("readiness probe %v", c.ReadinessProbe)
			}
			if tc.variant != none && c.ReadinessProbe.PeriodSeconds != 10 {
				t.Errorf("periodSeconds %d, want 10", c.ReadinessProbe.PeriodSeconds)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if env["DELAY"] != "2.500" || env["PROBE_FILE"] != probeFile(tc.variant) || env["GATE"] != gateFile {
				t.Errorf("env %v", env)
			}
			if pod.Spec.NodeName != "n" || c.Image != image {
				t.Errorf("node %q, image %q", pod.Spec.NodeName, c.Image)
			}
			if pod.Labels["variant"] != string(tc.variant) {
				t.Errorf("labels %v", pod.Labels)
			}
			if _, err := strconv.ParseFloat(env["DELAY"], 64); err != nil {
				t.Errorf("DELAY %q is not a number for read -t: %v", env["DELAY"], err)
			}
		})
	}
}

func TestNodePID(t *testing.T) {
	proc, pids := t.TempDir(), t.TempDir()
	for pid, comm := range map[string]string{"12": "kubelet\n", "13": "containerd\n", "14": "containerd-shim\n", "15": "containerd-shim\n"} {
		if err := os.Mkdir(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "comm"), []byte(comm), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(pids, "kubelet"), []byte("4242 /work/_output/bin/kubelet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	byFile := &node{procDir: proc, pidsDir: pids}
	if pid, err := byFile.pid("kubelet"); err != nil || pid != 4242 {
		t.Errorf("pid(kubelet) from the pid file = %d, %v; want 4242", pid, err)
	}
	if _, err := byFile.pid("containerd"); err == nil {
		t.Error("pid(containerd) without its pid file: no error")
	}
	byName := &node{procDir: proc}
	if pid, err := byName.pid("kubelet"); err != nil || pid != 12 {
		t.Errorf("pid(kubelet) by name = %d, %v; want 12", pid, err)
	}
	// containerd's name is a prefix of the shims': exact names only.
	if pid, err := byName.pid("containerd"); err != nil || pid != 13 {
		t.Errorf("pid(containerd) by name = %d, %v; want 13", pid, err)
	}
	if _, err := byName.pid("containerd-shim"); err == nil {
		t.Error("pid(containerd-shim) of two processes: no error")
	}
}

func TestPrintMarkdown(t *testing.T) {
	rep := report{
		Date: "2026-11-22T17:00:00Z", Info: "2 cores", Window: "45s",
		Rows: []row{
			{Series: "file/1s", Pods: 300, WindowSeconds: 45, Probes: 13500, CPU: cpuCores{Kubelet: 0.25, Containerd: 0.1, Shims: 0.25, Node: 0.8}, ReadyShare: 1, Clean: true,
				Memory: memoryMiB{Shims: 1400, ShimsRSS: 5000, ShimProcesses: map[string]int{"containerd-shim-runc-v2": 300}}},
			{Series: "file/1s@shimless", RuntimeClass: "shimless", Pods: 300, WindowSeconds: 45, Probes: 13500, ReadyShare: 1, Clean: true,
				Memory: memoryMiB{Shims: 60, ShimsRSS: 61, ShimProcesses: map[string]int{"containerd-shim-shimless-v2": 1, "containerd-shim-runc-v2": 2}}},
			{Series: "exec/1s", Pods: 50, WindowSeconds: 45, Probes: 450, FailedProbes: 45, FailureRate: 0.1, ReadyShare: 0.8},
		},
		MaxClean: []maxN{{Series: "file/1s", MaxClean: 300}, {Series: "exec/1s", FirstFail: 50}},
		Latencies: []latency{
			{Variant: file, PeriodSeconds: 10, Pods: 100, percentiles: percentiles{Measured: 100, P50Ms: 20, P99Ms: 150, MaxMs: 180}, AtRest: true, NodeCores: 0.5,
				InKubelet: &percentiles{Measured: 99, P50Ms: 3, P99Ms: 40, MaxMs: 41}, ToAPI: &percentiles{Measured: 99, P50Ms: 17, P99Ms: 110, MaxMs: 139}},
			{Variant: polled, PeriodSeconds: 10, Pods: 100, percentiles: percentiles{Measured: 99, P50Ms: 5000, P99Ms: 9900, MaxMs: 9990}, NodeCores: 1.9},
		},
		Kills: []shimKill{{Series: "file/1s@shimless", Pods: 300, ShimPID: 77, PSSMiB: 60, RSSMiB: 61, OpenFiles: 4200, Processes: 900,
			Alive: []aliveAt{{5, 500}, {10, 3}, {41.4, 1}}, Orphans: []string{"4242 123456 httpd -p 8080 -h /probe-volume"},
			AllReadySeconds: 11.2, ReadyAgain: 300, FewestReady: 12, FewestReadyAtSeconds: 6.1, Restarts: map[int]int{1: 299, 2: 1},
			SharedShimsAfter: 1, EndSeconds: 41.4}},
		Notes: []string{"The node was not at rest before series file/10s."},
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "density.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := printMarkdown(&out, path); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| file/1s | 300 | 0.250 | 0.100 | 0.250 | 0.600 | 0.000 | 0.800 | 0 | 0 | 1400 | 5000 | 300 containerd-shim-runc-v2 | 300.0 | 0.00% | 100.0% | yes |",
		"| file/1s@shimless | 300 | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 | 0 | 0 | 60 | 61 | 2 containerd-shim-runc-v2, 1 containerd-shim-shimless-v2 | 300.0 | 0.00% | 100.0% | yes |",
		"| exec/1s | 50 |",
		"| 10.0 | 10.00% | 80.0% | **no** |",
		"| file/1s | 300 | none measured |",
		"| exec/1s | below the first step | 50 |",
		"| file | 10 | once all pods run | 0.500 | 100 of 100 | 20 ms | 150 ms | 180 ms | p50 3 ms, p99 40 ms, max 41 ms (99 pods) | p50 17 ms, p99 110 ms, max 139 ms (99 pods) |",
		"| polled | 10 | while the pods are created | 1.900 | 99 of 100 | 5000 ms | 9900 ms | 9990 ms | not measured | not measured |",
		"| file/1s@shimless | 300 | 60 / 61 | 4200 | 900 | 5 s: 500, 10 s: 3, 41 s: 1 | 11 s | 12 (at 6 s) | 1: 299 pods, 2: 1 pods | 1 |",
		"1 alive 41 s after the kill, by command (each with its pid and start time in the JSON):\n\n- 1 × `httpd -p 8080 -h /probe-volume`\n",
		"\n- The node was not at rest before series file/10s.\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, out.String())
		}
	}
	// A latency run alone has no series tables.
	raw, err = json.Marshal(report{Latencies: rep.Latencies})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := printMarkdown(&out, path); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "| series |") || !strings.Contains(out.String(), "| file | 10 | once all pods run |") {
		t.Errorf("markdown of a latency run alone:\n%s", out.String())
	}
	if err := printMarkdown(&out, filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("printMarkdown of a missing report: no error")
	}
}

// The mark file must not be in the directory the kubelet watches for the
// file variant (the volume's root): its write would trigger the probe before
// the probe file exists.
func TestMarkOutsideWatchedDirectory(t *testing.T) {
	if filepath.Dir(markDir) != "/probe-volume" || markDir == filepath.Dir(probeFile(file)) {
		t.Errorf("markDir %q: want a directory of its own inside the volume, not %q", markDir, filepath.Dir(probeFile(file)))
	}
	if !strings.Contains(heartbeat, ": > "+markDir+"/mark") || !strings.Contains(heartbeat, "mkdir -p \"${PROBE_FILE%/*}\" "+markDir) {
		t.Errorf("heartbeat does not create %s before its delay and write its mark there:\n%s", markDir, heartbeat)
	}
}

// Series pods start their heartbeat at once; gated ones wait for the gate
// file, which is in the mark's directory (not watched) and which the host
// finds through the pod's volume.
func TestGate(t *testing.T) {
	env := func(pod *v1.Pod) map[string]string {
		out := map[string]string{}
		for _, e := range pod.Spec.Containers[0].Env {
			out[e.Name] = e.Value
		}
		return out
	}
	o := options{node: "n", image: image}
	if g := env(benchPod(o, "p", file, 1, 0, false))["GATE"]; g != "" {
		t.Errorf("ungated pod: GATE=%q, want empty", g)
	}
	if filepath.Dir(gateFile) != markDir {
		t.Errorf("gate file %q: want it in %s", gateFile, markDir)
	}
	if !strings.Contains(heartbeat, `while [ -n "$GATE" ] && [ ! -e "$GATE" ]`) {
		t.Errorf("heartbeat does not wait for $GATE:\n%s", heartbeat)
	}
	pod := benchPod(o, "p", file, 1, 0, true)
	pod.UID = "uid-1"
	want := "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/probe-volume/marks/go"
	if got := volumeFile("/var/lib/kubelet/pods", pod, gateFile); got != want {
		t.Errorf("volumeFile(gate) = %q, want %q", got, want)
	}
}
