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

package file

import (
	"os"
	"testing"
	"time"

	"k8s.io/kubernetes/pkg/probe"
)

// BenchmarkProbe is one file probe of a fresh file directly in the volume
// (resolution, stat and result: one statx) with the target made once, as a
// probe worker does. BenchmarkProbeNested is the same for a file in a
// directory of the volume (openat2, fstat, close). BenchmarkLstat is the
// physical floor: a bare os.Lstat of the file by its full path. Compare them
// in one run (docs/benchmarks.md):
//
//	go test ./pkg/probe/file -run '^$' -bench . -benchmem -count 10
func BenchmarkProbe(b *testing.B) {
	benchmarkProbe(b, "probe")
}

func BenchmarkProbeNested(b *testing.B) {
	benchmarkProbe(b, "dir/probe")
}

func benchmarkProbe(b *testing.B, rel string) {
	l := newLayout(b)
	l.file(b, l.in(rel), 0)
	pods, err := OpenPodsDir(l.pods)
	must(b, err)
	defer pods.Close()
	target, err := NewTarget(testUID, "/probe-volume/"+rel)
	must(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if r, out, err := Probe(pods, target, Check{Validity: time.Minute, Now: now}); r != probe.Success {
			b.Fatalf("probe: %v %q %v", r, out, err)
		}
	}
}

func BenchmarkLstat(b *testing.B) {
	l := newLayout(b)
	l.file(b, l.in("probe"), 0)
	path := l.in("probe")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := os.Lstat(path); err != nil {
			b.Fatal(err)
		}
	}
}
