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
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestCounterValue(t *testing.T) {
	const name = "prober_file_probe_watch_fallbacks_total"
	for _, test := range []struct {
		name    string
		metrics string
		want    float64
		ok      bool
	}{{
		name: "the kubelet's text",
		metrics: `# HELP prober_file_probe_watch_fallbacks_total [ALPHA] Cumulative number of file probes that could not watch their file for changes and stay periodic.
# TYPE prober_file_probe_watch_fallbacks_total counter
prober_file_probe_watch_fallbacks_total 3
prober_probe_total{container="app",namespace="n",pod="p",pod_uid="u",probe_type="Readiness",result="failed"} 9
`,
		want: 3, ok: true,
	}, {
		name:    "empty labels, a timestamp, an exponent",
		metrics: "prober_file_probe_watch_fallbacks_total{} 1e+03 1700000000000\n",
		want:    1000, ok: true,
	}, {
		name:    "another metric whose name starts with it",
		metrics: "prober_file_probe_watch_fallbacks_total_by_reason 7\nprober_file_probe_watch_fallbacks_total 2\n",
		want:    2, ok: true,
	}, {
		name:    "not served",
		metrics: "prober_probe_total{result=\"failed\"} 9\n# HELP prober_file_probe_watch_fallbacks_total x\n",
	}, {
		name:    "not a number",
		metrics: "prober_file_probe_watch_fallbacks_total x\n",
	}} {
		t.Run(test.name, func(t *testing.T) {
			got, ok := counterValue(test.metrics, name)
			if got != test.want || ok != test.ok {
				t.Errorf("counterValue() = %v, %v; want %v, %v", got, ok, test.want, test.ok)
			}
		})
	}
}

// The noisy pod writes a file of the directory the kubelet watches for its
// own probe (the volume root), never its probe file, and forks nothing.
func TestNoisyPod(t *testing.T) {
	pod := noisyPod(options{node: "n", image: image, latencyPeriod: 10})
	c := pod.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.File == nil || c.ReadinessProbe.File.Path != probeFile(file) || c.ReadinessProbe.PeriodSeconds != 10 {
		t.Fatalf("readiness probe %+v, want a file probe of %s every 10 s", c.ReadinessProbe, probeFile(file))
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != "probe-volume" {
		t.Fatalf("volume mounts %+v", c.VolumeMounts)
	}
	mount := c.VolumeMounts[0].MountPath
	if path.Dir(noiseFile) != path.Dir(probeFile(file)) {
		t.Errorf("the noise file %s is not in the watched directory %s", noiseFile, path.Dir(probeFile(file)))
	}
	written := mount + "/" + path.Base(noiseFile)
	if c.Command[len(c.Command)-1] != noiseLoop || !strings.Contains(noiseLoop, "echo x > "+written+";") {
		t.Errorf("the container runs %q, want a loop writing %s", c.Command, written)
	}
	if strings.Contains(noiseLoop, path.Base(probeFile(file))+";") || strings.ContainsAny(noiseLoop, "|`$") {
		t.Errorf("the noise loop writes the probe file, or forks: %q", noiseLoop)
	}
	if pod.Spec.NodeName != "n" || c.Image != image || pod.Labels["variant"] == string(file) {
		t.Errorf("node %q, image %q, labels %v", pod.Spec.NodeName, c.Image, pod.Labels)
	}
	pod.UID = "uid-1"
	want := "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/probe-volume/noise"
	if got := volumeFile("/var/lib/kubelet/pods", pod, noiseFile); got != want {
		t.Errorf("volumeFile(noise) = %q, want %q", got, want)
	}
}

func TestNoisyVerdict(t *testing.T) {
	quiet := noisyRun{CPU: cpuCores{Kubelet: 0.010}, Latency: latency{percentiles: percentiles{P99Ms: 90}}}
	noisy := noisyRun{Noisy: true, NoiseWritten: true, CPU: cpuCores{Kubelet: 0.030}, Latency: latency{percentiles: percentiles{P99Ms: 140}}}
	loud := noisy
	loud.CPU.Kubelet = 0.3
	silent := noisy
	silent.NoiseWritten = false
	for _, test := range []struct {
		name string
		runs []noisyRun
		want []string
	}{
		{"no noisy run", []noisyRun{quiet}, nil},
		{"met", []noisyRun{quiet, noisy}, []string{"used 0.030 cores, +0.020 against the run without it (target, the noisy pod's cost: below 0.050, met); readiness p99 140 ms against 90 ms."}},
		{"not met", []noisyRun{quiet, loud}, []string{"used 0.300 cores, +0.290 against the run without it (target, the noisy pod's cost: below 0.050, NOT met)"}},
		{"noisy alone", []noisyRun{noisy}, []string{"used 0.030 cores (target: below 0.050, met)."}},
		{"no noise", []noisyRun{quiet, silent}, []string{"met", "did not change during the window"}},
	} {
		t.Run(test.name, func(t *testing.T) {
			got := noisyVerdict(test.runs)
			if test.want == nil && got != "" {
				t.Errorf("noisyVerdict() = %q, want nothing", got)
			}
			for _, want := range test.want {
				if !strings.Contains(got, want) {
					t.Errorf("noisyVerdict() = %q, lacks %q", got, want)
				}
			}
		})
	}
}

func TestPrintMarkdownNoisy(t *testing.T) {
	two := 2.0
	rep := report{
		Date: "2026-11-30T10:00:00Z", Info: "2 cores", Window: "1m0s",
		Noisy: []noisyRun{{
			Pods: 100, PeriodSeconds: 10, WindowSeconds: 60, CPU: cpuCores{Kubelet: 0.012, Containerd: 0.02, Pods: 0.001, Node: 0.2},
			Latency: latency{Variant: file, percentiles: percentiles{Measured: 100, P50Ms: 20, P99Ms: 95, MaxMs: 99},
				InKubelet: &percentiles{Measured: 100, P50Ms: 3, P99Ms: 30, MaxMs: 31}},
		}, {
			Noisy: true, Pods: 100, PeriodSeconds: 10, WindowSeconds: 60, NoiseWritten: true, WatchFallbacks: &two,
			CPU:     cpuCores{Kubelet: 0.021, Containerd: 0.03, Pods: 0.98, Node: 1.3},
			Latency: latency{Variant: file, percentiles: percentiles{Measured: 99, P50Ms: 25, P99Ms: 150, MaxMs: 160}},
		}},
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "density.json")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := printMarkdown(&out, p); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| run | pods waiting | window | kubelet |",
		"| without the noisy pod | 100 | 60 s | 0.012 | 0.020 | 0.001 | 0.200 | not served | 100 of 100 | 20 ms | 95 ms | 99 ms | p50 3 ms, p99 30 ms, max 31 ms (100 pods) |",
		"| with the noisy pod | 100 | 60 s | 0.021 | 0.030 | 0.980 | 1.300 | 2 | 99 of 100 | 25 ms | 150 ms | 160 ms | not measured |",
		"\nWith the noisy pod the kubelet used 0.021 cores, +0.009 against the run without it (target, the noisy pod's cost: below 0.050, met); readiness p99 150 ms against 95 ms.\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "| series |") || strings.Contains(out.String(), "| variant |") {
		t.Errorf("a noisy run alone has other tables:\n%s", out.String())
	}
}
