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
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestKubeletReadyTimes(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04:05.000000", s, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// A status line at -v=3 is longer than bufio's default token.
	long := `I1122 22:03:42.185824    2307 status_manager.go:1286] "Status for pod updated successfully" pod="density-latency/file-0003" status=` + strings.Repeat("x", 100_000)
	for _, tc := range []struct {
		name string
		log  string
		want map[string][]time.Time
	}{{
		name: "ready results of the namespace, in log order",
		log: `I1122 22:03:41.991860    2307 kubelet.go:2878] "SyncLoop (probe)" probe="readiness" status="ready" pod="density-latency/file-0003"
I1122 22:03:50.000001    2307 kubelet.go:2878] "SyncLoop (probe)" probe="readiness" status="ready" pod="density-latency/file-0003"
I1122 22:03:42.237396    2307 kubelet.go:2878] "SyncLoop (probe)" probe="readiness" status="ready" pod="density-latency/polled-0004"
`,
		want: map[string][]time.Time{
			"file-0003":   {at("2026-11-22 22:03:41.991860"), at("2026-11-22 22:03:50.000001")},
			"polled-0004": {at("2026-11-22 22:03:42.237396")},
		},
	}, {
		name: "not ready, other probes, other namespaces, other lines, a long line",
		log: `I1122 22:01:26.266432    2307 kubelet.go:2878] "SyncLoop (probe)" probe="readiness" status="not ready" pod="density-latency/file-0001"
I1122 22:01:26.266432    2307 kubelet.go:2878] "SyncLoop (probe)" probe="startup" status="started" pod="density-latency/file-0001"
I1122 22:01:26.266432    2307 kubelet.go:2878] "SyncLoop (probe)" probe="readiness" status="ready" pod="density-file-10s/file-0001"
I1122 22:03:41.991576    2307 prober.go:120] "Probe succeeded" probeType="Readiness" pod="density-latency/file-0003" podUID="07f5" containerName="app"
E1122 22:01:26.266432    2307 kubelet.go:2878] "SyncLoop (probe)" probe="readiness" status="ready" pod="density-latency/file-0009"
` + long + "\n",
		want: map[string][]time.Time{},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kubeletReadyTimes(strings.NewReader(tc.log), "density-latency", 2026, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("kubeletReadyTimes() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKubeletReadyAfter(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 22, 0, 0, 0, time.UTC)
	times := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second)}
	for _, tc := range []struct {
		mark time.Time
		want time.Time
	}{
		{t0.Add(-time.Millisecond), t0},
		{t0, t0},
		{t0.Add(time.Millisecond), t0.Add(time.Second)},
		{t0.Add(3 * time.Second), time.Time{}},
	} {
		if got := kubeletReadyAfter(times, tc.mark); !got.Equal(tc.want) {
			t.Errorf("kubeletReadyAfter(%v) = %v, want %v", tc.mark, got, tc.want)
		}
	}
}

func TestReadKubeletLog(t *testing.T) {
	if got, err := readKubeletLog("", "density-latency", 2026); got != nil || err != nil {
		t.Errorf("readKubeletLog() without a log = %v, %v; want nothing", got, err)
	}
	if _, err := readKubeletLog(filepath.Join(t.TempDir(), "missing.log"), "density-latency", 2026); err == nil {
		t.Error("readKubeletLog() of a missing log: no error")
	}
	path := filepath.Join(t.TempDir(), "kubelet.log")
	line := `I1122 22:03:41.991860    2307 kubelet.go:2878] "SyncLoop (probe)" probe="readiness" status="ready" pod="density-latency/file-0003"` + "\n"
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readKubeletLog(path, "density-latency", 2026)
	if want := time.Date(2026, 11, 22, 22, 3, 41, 991860000, time.Local); err != nil || len(got["file-0003"]) != 1 || !got["file-0003"][0].Equal(want) {
		t.Errorf("readKubeletLog() = %v, %v; want file-0003 at %v", got, err, want)
	}
}

// Each pod's latency splits at the kubelet's time; pods without one count
// in the whole latency only.
func TestLatencyOf(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 22, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	perPod := []podTimes{
		{Pod: "file-0002", Mark: ms(0), Kubelet: ms(5), Ready: ms(30)},
		{Pod: "file-0001", Mark: ms(0), Kubelet: ms(40), Ready: ms(200)},
		{Pod: "file-0003", Mark: ms(0), Ready: ms(100)},
	}
	o := options{latencyPeriod: 10, latencyPods: 3, latencyAtRest: true, kubeletLog: "kubelet.log"}
	l := latencyOf(file, perPod, o, 0.5)
	if l.Measured != 3 || l.P50Ms != 100 || l.MaxMs != 200 || !reflect.DeepEqual(l.SamplesMs, []float64{30, 100, 200}) {
		t.Errorf("latency = %d pods, p50 %v, max %v, samples %v; want 3, 100, 200, [30 100 200]", l.Measured, l.P50Ms, l.MaxMs, l.SamplesMs)
	}
	if want := (percentiles{Measured: 2, P50Ms: 5, P99Ms: 40, MaxMs: 40}); l.InKubelet == nil || *l.InKubelet != want {
		t.Errorf("in the kubelet = %v, want %v", l.InKubelet, want)
	}
	if want := (percentiles{Measured: 2, P50Ms: 25, P99Ms: 160, MaxMs: 160}); l.ToAPI == nil || *l.ToAPI != want {
		t.Errorf("kubelet to API = %v, want %v", l.ToAPI, want)
	}
	if l.PerPod[0].Pod != "file-0001" {
		t.Errorf("per-pod times not sorted by pod: %v", l.PerPod)
	}
	o.kubeletLog = ""
	if l := latencyOf(file, perPod, o, 0.5); l.InKubelet != nil || l.ToAPI != nil {
		t.Errorf("without the kubelet's log: split %v / %v, want none", l.InKubelet, l.ToAPI)
	}
}
