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
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"k8s.io/kubernetes/pkg/probe"
)

// FuzzProbeStaysInVolume asserts that no probe path ever resolves outside the
// volume. Every regular file inside the volume is stale, and fresh files lie
// around it (beside the volume, in another pod, above the pods dir), reachable
// through every kind of hostile symbolic link the container could plant. So a
// Success can only mean that resolution left the volume.
//
// make test runs the seed corpus; run the fuzzer itself with
//
//	go test ./pkg/probe/file -run '^$' -fuzz FuzzProbeStaysInVolume -fuzztime 10m
func FuzzProbeStaysInVolume(f *testing.F) {
	l := newLayout(f)
	stale := time.Hour
	l.file(f, l.in("probe"), stale)
	l.file(f, l.in("d/probe"), stale)
	l.file(f, l.in("d/e/probe"), stale)
	// Fresh bait outside the volume: in the pod's directory, in another pod's
	// volume and above the pods dir. (Not in another emptyDir volume of this
	// pod: a path naming that volume may read it.)
	podDir := filepath.Join(l.pods, testUID)
	l.file(f, filepath.Join(podDir, "volumes", "probe"), 0)
	l.file(f, filepath.Join(podDir, "bait", "probe"), 0)
	l.file(f, filepath.Join(l.pods, "other-pod", "volumes", emptyDirPluginDir, "v", "probe"), 0)
	l.file(f, filepath.Join(filepath.Dir(l.pods), "probe"), 0)
	for name, target := range map[string]string{
		"abs":      l.outside,
		"absdir":   podDir,
		"up":       "..",
		"upup":     "../..",
		"up5":      "../../../../..",
		"rel":      "../../../../../outside",
		"root":     "/",
		"proc":     "/proc/self/root",
		"proc1":    "/proc/1/root",
		"loop":     "loop",
		"d/up":     "../..",
		"d/e/back": "../../up",
		"d/abs":    l.outside,
		"selfdir":  ".",
		"bait":     "../../../bait",
		"other":    "../../../../other-pod/volumes/" + emptyDirPluginDir + "/v",
	} {
		if err := os.Symlink(target, l.in(name)); err != nil {
			f.Fatal(err)
		}
	}
	if err := unix.Mkfifo(l.in("fifo"), 0o644); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"/probe-volume/probe", "/probe-volume/d/e/probe", "/probe-volume/abs", "/probe-volume/absdir/probe",
		"/probe-volume/up/probe", "/probe-volume/upup/probe-volume/probe", "/probe-volume/up5/outside",
		"/probe-volume/rel", "/probe-volume/root/etc/hostname", "/probe-volume/proc/etc/hostname",
		"/probe-volume/proc1/etc/hostname", "/probe-volume/loop/probe", "/probe-volume/d/up/probe",
		"/probe-volume/d/e/back/probe", "/probe-volume/d/abs", "/probe-volume/selfdir/probe",
		"/probe-volume/bait/probe", "/probe-volume/other/probe", "/probe-volume/fifo", "/volumes/probe",
		"/probe-volume/../probe", "/../probe", "/probe-volume/d/../../bait/probe",
	} {
		f.Add(seed)
	}
	pods, err := OpenPodsDir(l.pods)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { pods.Close() })

	f.Fuzz(func(t *testing.T, path string) {
		target, err := NewTarget(testUID, path)
		if err != nil {
			return // not a probe path the kubelet would run
		}
		result, out, err := Probe(pods, target, Check{Validity: time.Minute, Now: now})
		if err != nil {
			// The only error that is the node's here: a volume that does
			// not exist (the first segment names no volume of the pod).
			var perr *Error
			if !errors.As(err, &perr) || perr.Errno != unix.ENOENT || result != probe.Unknown || strings.HasPrefix(path, "/probe-volume/") {
				t.Fatalf("Probe(%q) = %v, %v; want Unknown only for a volume that does not exist", path, result, err)
			}
			return
		}
		if result == probe.Success {
			t.Fatalf("Probe(%q) succeeded: it read a fresh file, and every file inside the volume is stale", path)
		}
		if result != probe.Failure || out == "" {
			t.Fatalf("Probe(%q) = %v %q, want a Failure with a message", path, result, out)
		}
	})
}
