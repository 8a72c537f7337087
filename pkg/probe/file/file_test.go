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
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"k8s.io/kubernetes/pkg/probe"
)

const testUID = "6f1a0c9e-7c1b-4b5e-9d7e-000000000001"

// now is the fixed "current time" of the tests; files get mtimes relative to it.
var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// layout is a pods directory with one pod whose emptyDir volume
// "probe-volume" the tests fill, and a file outside every volume.
type layout struct {
	pods    string // the kubelet's pods dir
	volume  string // <pods>/<uid>/volumes/kubernetes.io~empty-dir/probe-volume
	outside string // a fresh regular file outside the volume
}

func newLayout(t testing.TB) *layout {
	t.Helper()
	root := t.TempDir()
	l := &layout{
		pods:    filepath.Join(root, "pods"),
		outside: filepath.Join(root, "outside"),
	}
	l.volume = filepath.Join(l.pods, testUID, "volumes", emptyDirPluginDir, "probe-volume")
	must(t, os.MkdirAll(l.volume, 0o755))
	l.file(t, l.outside, 0)
	return l
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// file creates a regular file at path modified age before now.
func (l *layout) file(t testing.TB, path string, age time.Duration) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte("x"), 0o644))
	must(t, os.Chtimes(path, now.Add(-age), now.Add(-age)))
}

func (l *layout) in(rel string) string { return filepath.Join(l.volume, rel) }

func probeOnce(t testing.TB, l *layout, path string, validity time.Duration) (probe.Result, string) {
	t.Helper()
	pods, err := OpenPodsDir(l.pods)
	must(t, err)
	defer pods.Close()
	target, err := NewTarget(testUID, path)
	must(t, err)
	result, out, err := Probe(pods, target, Check{Validity: validity, Now: now})
	if err != nil {
		if result != probe.Unknown {
			t.Errorf("Probe(%s) = %v with error %v: an error must come with Unknown", path, result, err)
		}
		return result, "error: " + err.Error()
	}
	return result, out
}

func TestProbe(t *testing.T) {
	const validity = 30 * time.Second
	cases := []struct {
		name       string
		setup      func(t *testing.T, l *layout)
		path       string
		wantResult probe.Result
		wantOutput string
	}{
		{
			name:       "fresh file",
			setup:      func(t *testing.T, l *layout) { l.file(t, l.in("probe"), 10*time.Second) },
			path:       "/probe-volume/probe",
			wantResult: probe.Success,
		},
		{
			name:       "modified exactly validity ago",
			setup:      func(t *testing.T, l *layout) { l.file(t, l.in("probe"), validity) },
			path:       "/probe-volume/probe",
			wantResult: probe.Success,
		},
		{
			name:       "nested file",
			setup:      func(t *testing.T, l *layout) { l.file(t, l.in("a/b/heartbeat"), 0) },
			path:       "/probe-volume/a/b/heartbeat",
			wantResult: probe.Success,
		},
		{
			name:       "stale file",
			setup:      func(t *testing.T, l *layout) { l.file(t, l.in("probe"), 47*time.Second) },
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe last modified 47s ago (validity 30s)",
		},
		{
			name:       "slightly in the future (clock step) counts as fresh",
			setup:      func(t *testing.T, l *layout) { l.file(t, l.in("probe"), -FutureTolerance) },
			path:       "/probe-volume/probe",
			wantResult: probe.Success,
		},
		{
			name:       "far in the future never passes",
			setup:      func(t *testing.T, l *layout) { l.file(t, l.in("probe"), -time.Hour) },
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe last modified 1h0m0s in the future (more than 5s ahead of the node's clock)",
		},
		{
			name:       "missing file",
			setup:      func(t *testing.T, l *layout) {},
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe does not exist",
		},
		{
			// The kubelet sets volumes up before it starts containers, and
			// a container cannot remove its volume's root: the node's error.
			name:       "missing volume directory (pod not set up, or torn down)",
			setup:      func(t *testing.T, l *layout) { must(t, os.RemoveAll(l.volume)) },
			path:       "/probe-volume/probe",
			wantResult: probe.Unknown,
			wantOutput: `error: file probe /probe-volume/probe not run: resolve failed: emptyDir volume "probe-volume" is not set up on the node`,
		},
		{
			name:       "other volume",
			setup:      func(t *testing.T, l *layout) {},
			path:       "/other/probe",
			wantResult: probe.Unknown,
			wantOutput: `error: file probe /other/probe not run: resolve failed: emptyDir volume "other" is not set up on the node`,
		},
		{
			name:       "missing pod directory",
			setup:      func(t *testing.T, l *layout) { must(t, os.RemoveAll(filepath.Join(l.pods, testUID))) },
			path:       "/probe-volume/dir/probe",
			wantResult: probe.Unknown,
			wantOutput: `emptyDir volume "probe-volume" is not set up on the node`,
		},
		{
			name:       "directory",
			setup:      func(t *testing.T, l *layout) { must(t, os.Mkdir(l.in("probe"), 0o755)) },
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe is a directory, not a regular file",
		},
		{
			name:       "symlink to /etc/shadow",
			setup:      func(t *testing.T, l *layout) { must(t, os.Symlink("/etc/shadow", l.in("probe"))) },
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe is a symbolic link (file probes never follow symbolic links), not a regular file",
		},
		{
			name:       "symlink to /proc/1/root",
			setup:      func(t *testing.T, l *layout) { must(t, os.Symlink("/proc/1/root", l.in("root"))) },
			path:       "/probe-volume/root/etc/hostname",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/root/etc/hostname: the path goes through a symbolic link, which file probes never follow",
		},
		{
			name: "symlink to a fresh file outside the volume",
			setup: func(t *testing.T, l *layout) {
				must(t, os.Symlink(l.outside, l.in("probe")))
			},
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "is a symbolic link (file probes never follow symbolic links), not a regular file",
		},
		{
			name: "'..' through a symlinked directory",
			setup: func(t *testing.T, l *layout) {
				must(t, os.Symlink("..", l.in("up")))
			},
			path:       "/probe-volume/up/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "the path goes through a symbolic link",
		},
		{
			name: "relative symlink climbing out of the volume",
			setup: func(t *testing.T, l *layout) {
				must(t, os.Symlink("../../../../../outside", l.in("probe")))
			},
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "is a symbolic link",
		},
		{
			name:       "symlink loop",
			setup:      func(t *testing.T, l *layout) { must(t, os.Symlink("loop", l.in("loop"))) },
			path:       "/probe-volume/loop/probe",
			wantResult: probe.Failure,
			wantOutput: "the path goes through a symbolic link",
		},
		{
			name:       "absolute symlink to a directory",
			setup:      func(t *testing.T, l *layout) { must(t, os.Symlink("/etc", l.in("etc"))) },
			path:       "/probe-volume/etc/passwd",
			wantResult: probe.Failure,
			wantOutput: "the path goes through a symbolic link",
		},
		{
			name: "symlink that stays inside the volume is refused too",
			setup: func(t *testing.T, l *layout) {
				l.file(t, l.in("real"), 0)
				must(t, os.Symlink("real", l.in("probe")))
			},
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "is a symbolic link",
		},
		{
			name: "hard link is the same inode and is allowed",
			setup: func(t *testing.T, l *layout) {
				l.file(t, l.in("real"), 0)
				must(t, os.Link(l.in("real"), l.in("probe")))
			},
			path:       "/probe-volume/probe",
			wantResult: probe.Success,
		},
		{
			name:       "FIFO is not opened (and does not block)",
			setup:      func(t *testing.T, l *layout) { must(t, unix.Mkfifo(l.in("probe"), 0o644)) },
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe is a named pipe (FIFO), not a regular file",
		},
		{
			name: "socket",
			setup: func(t *testing.T, l *layout) {
				must(t, unix.Mknod(l.in("probe"), unix.S_IFSOCK|0o644, 0))
			},
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe is a socket, not a regular file",
		},
		{
			name: "character device is not opened",
			setup: func(t *testing.T, l *layout) {
				// Same device numbers as /dev/null; needs CAP_MKNOD (tests run as root).
				must(t, unix.Mknod(l.in("probe"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
			},
			path:       "/probe-volume/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe is a character device, not a regular file",
		},
		{
			name:       "a component is a regular file",
			setup:      func(t *testing.T, l *layout) { l.file(t, l.in("a"), 0) },
			path:       "/probe-volume/a/probe",
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/a/probe: a component of the path is not a directory",
		},
		{
			name:       "very long path",
			setup:      func(t *testing.T, l *layout) {},
			path:       "/probe-volume/" + strings.Repeat("a/", 2100) + "probe",
			wantResult: probe.Failure,
			wantOutput: ": path too long",
		},
		{
			name:       "very long name",
			setup:      func(t *testing.T, l *layout) {},
			path:       "/probe-volume/" + strings.Repeat("a", 300),
			wantResult: probe.Failure,
			wantOutput: ": path too long",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayout(t)
			tc.setup(t, l)
			done := make(chan struct{})
			var result probe.Result
			var out string
			go func() {
				defer close(done)
				result, out = probeOnce(t, l, tc.path, validity)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("probe blocked")
			}
			if result != tc.wantResult {
				t.Errorf("result = %v (%q), want %v", result, out, tc.wantResult)
			}
			if tc.wantOutput == "" && out != "" || !strings.Contains(out, tc.wantOutput) {
				t.Errorf("output = %q, want %q", out, tc.wantOutput)
			}
		})
	}
}

// TestProbePermissionDenied probes as an unprivileged user (in a child
// process: root would bypass the permission check).
func TestProbePermissionDenied(t *testing.T) {
	if os.Getenv("FILEPROBE_TEST_CHILD") == "1" {
		pods, err := OpenPodsDir(os.Getenv("FILEPROBE_TEST_PODS"))
		must(t, err)
		target, err := NewTarget(testUID, "/probe-volume/private/probe")
		must(t, err)
		result, out, err := Probe(pods, target, Check{Validity: time.Minute, Now: time.Now()})
		fmt.Printf("%v|%s|%v\n", result, out, err)
		return
	}
	l := newLayout(t)
	l.file(t, l.in("private/probe"), 0)
	must(t, os.Chmod(l.in("private"), 0o700))
	// Let "nobody" reach the volume and run a copy of this test binary, but
	// not read the volume's private directory.
	for dir := l.volume; dir != filepath.Clean(os.TempDir()); dir = filepath.Dir(dir) {
		must(t, os.Chmod(dir, 0o755))
	}
	self, err := os.ReadFile(os.Args[0])
	must(t, err)
	bin := filepath.Join(filepath.Dir(l.pods), "file.test")
	must(t, os.WriteFile(bin, self, 0o755))
	cmd := exec.Command(bin, "-test.run=^TestProbePermissionDenied$")
	cmd.Env = append(os.Environ(), "FILEPROBE_TEST_CHILD=1", "FILEPROBE_TEST_PODS="+l.pods)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if want := "failure|file /probe-volume/private/probe: permission denied|<nil>"; !strings.Contains(string(out), want) {
		t.Errorf("child printed %q, want %q", out, want)
	}
}

func TestWatchPath(t *testing.T) {
	for _, test := range []struct {
		path, dir, name string
		ok              bool
	}{
		{"/probe-volume/probe", testUID + "/volumes/kubernetes.io~empty-dir/probe-volume", "probe", true},
		{"/probe-volume/dir/probe", "", "", false},
	} {
		target, err := NewTarget(testUID, test.path)
		must(t, err)
		if dir, name, ok := target.WatchPath(); dir != test.dir || name != test.name || ok != test.ok {
			t.Errorf("%s: WatchPath() = %q, %q, %v; want %q, %q, %v", test.path, dir, name, ok, test.dir, test.name, test.ok)
		}
	}
}

func TestNewTarget(t *testing.T) {
	for _, tc := range []struct {
		uid, path string
		wantErr   bool
		wantRel   string
	}{
		{testUID, "/probe-volume/probe", false, testUID + "/volumes/kubernetes.io~empty-dir/probe-volume/probe"},
		{testUID, "/v/a/b", false, testUID + "/volumes/kubernetes.io~empty-dir/v/a/b"},
		{testUID, "/probe-volume", true, ""},
		{testUID, "probe-volume/probe", true, ""},
		{testUID, "/probe-volume/../x", true, ""},
		{testUID, "/probe-volume/./x", true, ""},
		{testUID, "/probe-volume//x", true, ""},
		{testUID, "/probe-volume/x/", true, ""},
		{testUID, "/..", true, ""},
		{testUID, "/probe-volume/x\x00y", true, ""},
		{"", "/probe-volume/probe", true, ""},
		{"..", "/probe-volume/probe", true, ""},
		{"a/b", "/probe-volume/probe", true, ""},
	} {
		target, err := NewTarget(tc.uid, tc.path)
		if (err != nil) != tc.wantErr {
			t.Errorf("NewTarget(%q, %q) error = %v, want error %v", tc.uid, tc.path, err, tc.wantErr)
			continue
		}
		if err == nil {
			if got := string(target.rel[:len(target.rel)-1]); got != tc.wantRel {
				t.Errorf("NewTarget(%q, %q) resolves to %q, want %q", tc.uid, tc.path, got, tc.wantRel)
			}
			if target.String() != tc.path {
				t.Errorf("String() = %q", target.String())
			}
		}
	}
}

// TestProbeAllocations checks that a successful probe allocates nothing.
func TestProbeAllocations(t *testing.T) {
	for _, rel := range []string{"probe", "dir/probe"} {
		l := newLayout(t)
		l.file(t, l.in(rel), 0)
		pods, err := OpenPodsDir(l.pods)
		must(t, err)
		target, err := NewTarget(testUID, "/probe-volume/"+rel)
		must(t, err)
		allocs := testing.AllocsPerRun(100, func() {
			if r, out, err := Probe(pods, target, Check{Validity: time.Minute, Now: now, Started: now.Add(-time.Hour)}); r != probe.Success {
				t.Fatalf("probe: %v %q %v", r, out, err)
			}
		})
		if allocs != 0 {
			t.Errorf("a successful probe of /probe-volume/%s allocates %v times, want 0", rel, allocs)
		}
		must(t, pods.Close())
	}
}

// TestProbeContainerInstance checks that a file is judged against the
// container instance being probed: a modification before it started is not
// its heartbeat.
func TestProbeContainerInstance(t *testing.T) {
	const validity = 30 * time.Second
	for _, tc := range []struct {
		name string
		// age of the file and time since the container started
		age, started   time.Duration
		graceFromStart bool
		wantResult     probe.Result
		wantOutput     string
	}{
		{
			name: "readiness: written after the start", age: 2 * time.Second, started: 3 * time.Second,
			wantResult: probe.Success,
		},
		{
			name: "readiness: written by the previous instance", age: 14 * time.Second, started: 3 * time.Second,
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe last modified 14s ago, before the container started 3s ago",
		},
		{
			name: "readiness: written after the start, but stale", age: 40 * time.Second, started: time.Minute,
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe last modified 40s ago (validity 30s)",
		},
		{
			// Start times have second resolution: the start is
			// truncated, so a modification in the same second counts.
			name: "readiness: within the second of the start", age: 3*time.Second + 400*time.Millisecond, started: 3*time.Second + 100*time.Millisecond,
			wantResult: probe.Success,
		},
		{
			name: "readiness: just before the second of the start", age: 4*time.Second + 100*time.Millisecond, started: 3*time.Second + 100*time.Millisecond,
			wantResult: probe.Failure,
			wantOutput: "before the container started 4s ago",
		},
		{
			name: "liveness: old file, new instance gets validity from its start", age: 14 * time.Second, started: 3 * time.Second, graceFromStart: true,
			wantResult: probe.Success,
		},
		{
			name: "liveness: old file, instance started exactly validity ago", age: time.Hour, started: validity, graceFromStart: true,
			wantResult: probe.Success,
		},
		{
			name: "liveness: old file, instance never wrote within validity of its start", age: time.Minute, started: 31 * time.Second, graceFromStart: true,
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe last modified 1m0s ago, before the container started 31s ago (validity 30s)",
		},
		{
			name: "liveness: written after the start, stale", age: 40 * time.Second, started: time.Minute, graceFromStart: true,
			wantResult: probe.Failure,
			wantOutput: "file /probe-volume/probe last modified 40s ago (validity 30s)",
		},
		{
			name: "liveness: written after the start, fresh", age: time.Second, started: time.Minute, graceFromStart: true,
			wantResult: probe.Success,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayout(t)
			l.file(t, l.in("probe"), tc.age)
			pods, err := OpenPodsDir(l.pods)
			must(t, err)
			defer pods.Close()
			target, err := NewTarget(testUID, "/probe-volume/probe")
			must(t, err)
			// now is on a whole second; a start a fraction of a second
			// into a second is what the runtime reports.
			result, out, err := Probe(pods, target, Check{Validity: validity, Now: now, Started: now.Add(-tc.started), GraceFromStart: tc.graceFromStart})
			if err != nil {
				t.Fatal(err)
			}
			if result != tc.wantResult || tc.wantOutput == "" && out != "" || !strings.Contains(out, tc.wantOutput) {
				t.Errorf("Probe = %v %q, want %v %q", result, out, tc.wantResult, tc.wantOutput)
			}
		})
	}
}

// TestProbeNodeErrors checks that an error that is the node's (here: the
// kubelet out of file descriptors) is Unknown with the errno, never a
// Failure that would restart the container.
func TestProbeNodeErrors(t *testing.T) {
	l := newLayout(t)
	l.file(t, l.in("dir/probe"), 0)
	pods, err := OpenPodsDir(l.pods)
	must(t, err)
	defer pods.Close()
	target, err := NewTarget(testUID, "/probe-volume/dir/probe")
	must(t, err)

	var limit unix.Rlimit
	must(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &limit))
	defer func() { must(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &limit)) }()
	// Use up every descriptor below a low soft limit.
	low := limit
	low.Cur = 256
	must(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &low))
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := unix.Dup(pods.fd)
		if err != nil {
			if err != unix.EMFILE {
				t.Fatal(err)
			}
			break
		}
		fds = append(fds, fd)
	}
	result, out, err := Probe(pods, target, Check{Validity: time.Minute, Now: time.Now()})
	var perr *Error
	if result != probe.Unknown || !errors.As(err, &perr) || !errors.Is(err, unix.EMFILE) || perr.ErrnoName() != "EMFILE" {
		t.Fatalf("Probe out of descriptors = %v %q %v, want Unknown with EMFILE", result, out, err)
	}
	if !strings.Contains(err.Error(), "out of file descriptors") {
		t.Errorf("error %q does not say why", err)
	}
}

func TestCheckSupport(t *testing.T) {
	if err := CheckSupport(); err != nil {
		t.Errorf("CheckSupport() = %v on a kernel that runs these tests", err)
	}
}

// TestErrorsAreTheContainersOrTheNodes checks which resolution errors are
// the container's (Failure: it controls everything inside its volume) and
// which are the node's (Unknown: never a reason to restart a container).
func TestErrorsAreTheContainersOrTheNodes(t *testing.T) {
	l := newLayout(t)
	pods, err := OpenPodsDir(l.pods)
	must(t, err)
	defer pods.Close()
	target, err := NewTarget(testUID, "/probe-volume/probe")
	must(t, err)
	missingVolume, err := NewTarget(testUID, "/no-such-volume/probe")
	must(t, err)
	for _, tc := range []struct {
		target     *Target
		errno      unix.Errno
		containers bool
	}{
		{target, unix.ENOENT, true},
		{missingVolume, unix.ENOENT, false},
		{target, unix.ELOOP, true},
		{target, unix.ENOTDIR, true},
		{target, unix.EXDEV, true},
		{target, unix.EACCES, true},
		{target, unix.ENAMETOOLONG, true},
		{target, unix.EPERM, false},
		{target, unix.EMFILE, false},
		{target, unix.ENFILE, false},
		{target, unix.ENOMEM, false},
		{target, unix.ENOSYS, false},
		{target, unix.EINTR, false},
		{target, unix.EAGAIN, false},
		{target, unix.EIO, false},
		{target, unix.EINVAL, false},
	} {
		msg, containers := tc.target.describeOpenError(pods, tc.errno)
		if containers != tc.containers || containers && msg == "" {
			t.Errorf("%s, %s: the container's = %v (%q), want %v", tc.target, unix.ErrnoName(tc.errno), containers, msg, tc.containers)
		}
		if !containers && tc.target.explainNodeError(tc.errno) == "" {
			t.Errorf("%s, %s: no explanation", tc.target, unix.ErrnoName(tc.errno))
		}
	}
}
