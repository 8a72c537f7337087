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

// Package benchfileprobe measures what one probe costs, per handler, on the
// real node stack of hack/local-up-node.sh, with the kubelet's own probe
// code: a file probe (pkg/probe/file) against a bare os.Lstat of the same
// file, an exec probe as the kubelet runs it (a CRI ExecSync of `true` through
// the kubelet's CRI client into a running container), and an httpGet probe
// (pkg/probe/http) against a pod-local HTTP server. hack/bench.sh (make bench)
// sets the cluster up, starts the target pod, and runs these benchmarks inside
// the stack's namespaces; they fail when run any other way.
//
// Besides ns/op (the probe's latency), each benchmark reports CPU time per
// probe: kubelet-cpu-ns/op is this process's (the prober's side),
// runtime-cpu-ns/op is containerd's and its shims' (with the runc processes
// they reaped), pod-cpu-ns/op is the target pod's cgroup's.
package benchfileprobe

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/kubernetes/pkg/probe"
	fileprobe "k8s.io/kubernetes/pkg/probe/file"
	httpprobe "k8s.io/kubernetes/pkg/probe/http"
	"k8s.io/kubernetes/test/bench_fileprobe/procstat"
)

// target is the pod hack/bench.sh started: a busybox container that touches
// /probe-volume/probe every second and serves HTTP.
type target struct {
	podsDir, podUID, containerID, podIP string
	httpPort                            int
	criEndpoint                         string
}

var pod target

func TestMain(m *testing.M) {
	var missing []string
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	pod = target{
		podsDir:     get("BENCH_PODS_DIR"),
		podUID:      get("BENCH_POD_UID"),
		containerID: get("BENCH_CONTAINER_ID"),
		podIP:       get("BENCH_POD_IP"),
		criEndpoint: get("BENCH_CRI_ENDPOINT"),
	}
	port, err := strconv.Atoi(get("BENCH_HTTP_PORT"))
	if len(missing) > 0 || err != nil {
		fmt.Fprintf(os.Stderr, "benchfileprobe: run through make bench (hack/bench.sh), which sets %s\n", strings.Join(missing, ", "))
		os.Exit(1)
	}
	pod.httpPort = port
	os.Exit(m.Run())
}

// cpu is a snapshot of the CPU time spent so far by each side of a probe.
type cpu struct{ kubelet, runtime, pod time.Duration }

func snapshot(b *testing.B) cpu {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return cpu{
		kubelet: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		runtime: runtimeCPU(b),
		pod:     podCPU(b),
	}
}

// report adds the CPU time per probe of each side since start.
func report(b *testing.B, start cpu) {
	end := snapshot(b)
	n := float64(b.N)
	b.ReportMetric(float64(end.kubelet-start.kubelet)/n, "kubelet-cpu-ns/op")
	b.ReportMetric(float64(end.runtime-start.runtime)/n, "runtime-cpu-ns/op")
	b.ReportMetric(float64(end.pod-start.pod)/n, "pod-cpu-ns/op")
}

// runtimeCPU sums the CPU time of containerd and its shims, including the
// children they reaped (runc), from /proc.
func runtimeCPU(b *testing.B) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		comm, t, err := procstat.Parse(stat)
		if err != nil || comm != "containerd" && !strings.HasPrefix(comm, "containerd-shim") {
			continue
		}
		ticks += t
	}
	return time.Duration(ticks) * time.Second / procstat.ClockTicks
}

// podCPU reads the target pod's cgroup CPU time (cgroup v1 cpuacct).
func podCPU(b *testing.B) time.Duration {
	matches, _ := filepath.Glob("/sys/fs/cgroup/cpuacct/*/kubepods*/*/pod" + pod.podUID + "/cpuacct.usage")
	if len(matches) == 0 {
		matches, _ = filepath.Glob("/sys/fs/cgroup/cpuacct/*/kubepods*/pod" + pod.podUID + "/cpuacct.usage")
	}
	if len(matches) != 1 {
		b.Fatalf("the pod's cpuacct cgroup: found %q", matches)
	}
	raw, err := os.ReadFile(matches[0])
	if err != nil {
		b.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(ns)
}

// BenchmarkFileProbe is the kubelet's file probe of the pod's probe file: the
// target made once, as a probe worker does, then one check per probe.
func BenchmarkFileProbe(b *testing.B) {
	pods, err := fileprobe.OpenPodsDir(pod.podsDir)
	if err != nil {
		b.Fatal(err)
	}
	defer pods.Close()
	t, err := fileprobe.NewTarget(pod.podUID, "/probe-volume/probe")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	start := snapshot(b)
	for b.Loop() {
		if r, out, err := fileprobe.Probe(pods, t, fileprobe.Check{Validity: 30 * time.Second, Now: time.Now()}); r != probe.Success {
			b.Fatalf("file probe: %v %q %v", r, out, err)
		}
	}
	report(b, start)
}

// BenchmarkLstat is the physical floor: a bare os.Lstat of the same file.
func BenchmarkLstat(b *testing.B) {
	path := filepath.Join(pod.podsDir, pod.podUID, "volumes", "kubernetes.io~empty-dir", "probe-volume", "probe")
	b.ReportAllocs()
	start := snapshot(b)
	for b.Loop() {
		if _, err := os.Lstat(path); err != nil {
			b.Fatal(err)
		}
	}
	report(b, start)
}

// BenchmarkExecProbe is what an exec probe costs: the kubelet's CRI client
// (k8s.io/cri-client, as kuberuntime's RunInContainer uses it) runs `true` in
// the container with ExecSync.
func BenchmarkExecProbe(b *testing.B) {
	ctx := context.Background()
	rs, err := remote.NewRemoteRuntimeServiceBuilder().
		WithEndpoint("unix://" + pod.criEndpoint).
		WithConnectionTimeout(10 * time.Second).
		Build(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	start := snapshot(b)
	for b.Loop() {
		if _, _, err := rs.ExecSync(ctx, pod.containerID, []string{"true"}, 10*time.Second); err != nil {
			b.Fatalf("ExecSync: %v", err)
		}
	}
	report(b, start)
}

// BenchmarkHTTPGetProbe is the kubelet's httpGet probe against the pod's
// HTTP server (busybox httpd).
func BenchmarkHTTPGetProbe(b *testing.B) {
	prober := httpprobe.New(false)
	container := &v1.Container{}
	action := &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(int32(pod.httpPort))}
	b.ReportAllocs()
	start := snapshot(b)
	for b.Loop() {
		req, err := httpprobe.NewRequestForHTTPGetAction(action, container, pod.podIP, "probe")
		if err != nil {
			b.Fatal(err)
		}
		if r, out, err := prober.Probe(req, 10*time.Second); r != probe.Success {
			b.Fatalf("httpGet probe: %v %q %v", r, out, err)
		}
	}
	report(b, start)
}
