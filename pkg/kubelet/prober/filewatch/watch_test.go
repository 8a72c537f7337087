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

package filewatch

// The watcher on the kernel's inotify, in temporary directories.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"
)

// counter counts the triggers of one subscription.
type counter struct{ n atomic.Int64 }

func (c *counter) trigger() { c.n.Add(1) }

// waitFor waits until the counter reaches want, and fails the test otherwise.
func (c *counter) waitFor(t *testing.T, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d triggers, want %d", what, c.n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quiet checks that no trigger comes for a while.
func (c *counter) quiet(t *testing.T, want int64, what string) {
	t.Helper()
	time.Sleep(MinTriggerInterval + 100*time.Millisecond)
	if got := c.n.Load(); got != want {
		t.Fatalf("%s: %d triggers, want %d", what, got, want)
	}
}

// newWatcher returns a watcher on the real clock; closing it at the end of
// the test must stop its reader.
func newWatcher(t *testing.T) *Watcher {
	logger, _ := ktesting.NewTestContext(t)
	return closeAtEnd(t, New(logger))
}

func closeAtEnd(t *testing.T, w *Watcher) *Watcher {
	t.Cleanup(func() {
		w.mu.Lock()
		done := w.readerDone
		w.mu.Unlock()
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if done == nil {
			return
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("the reader did not stop after Close")
		}
	})
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// settle waits out the rate limit, so that the next event triggers.
func settle() { time.Sleep(MinTriggerInterval + 20*time.Millisecond) }

func touch(t *testing.T, path string) {
	t.Helper()
	now := time.Now()
	must(t, os.Chtimes(path, now, now))
}

// inotifyWatches lists the directories (as device:inode) the watcher's
// inotify instance watches, as the kernel reports them in
// /proc/self/fdinfo.
func inotifyWatches(t *testing.T, w *Watcher) []string {
	t.Helper()
	w.mu.Lock()
	ino, _ := w.ino.(*inotify)
	w.mu.Unlock()
	if ino == nil {
		return nil
	}
	var out []string
	must(t, ino.control(func(fd int) error {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "inotify wd:") {
				var wd int
				var ino, dev string
				if _, err := fmt.Sscanf(line, "inotify wd:%d ino:%s sdev:%s", &wd, &ino, &dev); err == nil {
					out = append(out, dev+":"+ino)
				}
			}
		}
		return err
	}))
	return out
}

// inodeOf is a directory as inotifyWatches names it.
func inodeOf(t *testing.T, dir string) string {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Stat(dir, &st))
	// fdinfo prints the inode in hex and the superblock's dev_t as the
	// kernel's internal (major << 20 | minor) in hex.
	return fmt.Sprintf("%x:%x", unix.Major(st.Dev)<<20|unix.Minor(st.Dev), st.Ino)
}

func TestWatchTriggers(t *testing.T) {
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	for _, test := range []struct {
		name string
		// setup prepares the directory before the watch starts.
		setup func(t *testing.T)
		// act is what the container does; it must trigger the probe.
		act func(t *testing.T)
	}{{
		name:  "create",
		setup: func(t *testing.T) { _ = os.Remove(probe) },
		act:   func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
	}, {
		name:  "touch (utimensat)",
		setup: func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
		act:   func(t *testing.T) { touch(t, probe) },
	}, {
		name:  "write and close",
		setup: func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
		act: func(t *testing.T) {
			f, err := os.OpenFile(probe, os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = f.WriteString("beat\n")
			must(t, err)
			must(t, f.Close())
		},
	}, {
		name:  "rename into place",
		setup: func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
		act: func(t *testing.T) {
			tmp := filepath.Join(dir, ".probe.tmp")
			must(t, os.WriteFile(tmp, nil, 0o600))
			must(t, os.Rename(tmp, probe))
		},
	}, {
		name:  "hard link into place",
		setup: func(t *testing.T) { _ = os.Remove(probe) },
		act: func(t *testing.T) {
			tmp := filepath.Join(dir, ".probe.link")
			must(t, os.WriteFile(tmp, nil, 0o600))
			must(t, os.Link(tmp, probe))
			must(t, os.Remove(tmp))
		},
	}, {
		name:  "delete and recreate",
		setup: func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
		act: func(t *testing.T) {
			must(t, os.Remove(probe))
			must(t, os.WriteFile(probe, nil, 0o600))
		},
	}, {
		// Harmless: it only runs the probe, which never follows a symbolic
		// link and fails on one.
		name:  "symbolic link swapped in",
		setup: func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
		act: func(t *testing.T) {
			must(t, os.Remove(probe))
			must(t, os.Symlink("/etc/passwd", probe))
		},
	}} {
		t.Run(test.name, func(t *testing.T) {
			_ = os.Remove(probe)
			test.setup(t)
			w := newWatcher(t)
			var c, other counter
			s, err := w.Watch(dir, "probe", c.trigger)
			must(t, err)
			defer s.Cancel()
			o, err := w.Watch(dir, "other", other.trigger)
			must(t, err)
			defer o.Cancel()
			test.act(t)
			c.waitFor(t, 1, test.name)
			if other.n.Load() != 0 {
				t.Errorf("a subscriber to another file of the directory was triggered")
			}
		})
	}
}

// TestWatchOpenWriter: a writer that keeps its file open is not seen at
// each write (IN_MODIFY is not watched: its probe runs at its period), only
// when it closes the file.
func TestWatchOpenWriter(t *testing.T) {
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	must(t, os.WriteFile(probe, nil, 0o600))
	w := newWatcher(t)
	var c counter
	s, err := w.Watch(dir, "probe", c.trigger)
	must(t, err)
	defer s.Cancel()
	f, err := os.OpenFile(probe, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	defer f.Close()
	for range 3 {
		_, err := f.WriteString("beat\n")
		must(t, err)
	}
	// Not a measure of speed: an event would come in microseconds, none
	// must come at all.
	time.Sleep(300 * time.Millisecond)
	if got := c.n.Load(); got != 0 {
		t.Fatalf("writes to a file kept open triggered %d times, want 0", got)
	}
	must(t, f.Close())
	c.waitFor(t, 1, "close after writing")
}

func TestWatchIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	w := newWatcher(t)
	var c counter
	s, err := w.Watch(dir, "probe", c.trigger)
	must(t, err)
	defer s.Cancel()
	must(t, os.WriteFile(filepath.Join(dir, "probe.tmp"), nil, 0o600))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "probe"), nil, 0o600))
	c.quiet(t, 0, "other files")
	must(t, os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600))
	c.waitFor(t, 1, "create")
	settle()
	// Neither removing the probe file nor reading it can make it fresh.
	_, err = os.ReadFile(filepath.Join(dir, "probe"))
	must(t, err)
	must(t, os.Remove(filepath.Join(dir, "probe")))
	c.quiet(t, 1, "read and remove")
}

// TestWatchNoSymlinks: the watched directory is never reached through a
// symbolic link as its last component (IN_DONT_FOLLOW|IN_ONLYDIR), nor is a
// file watched as a directory.
func TestWatchNoSymlinks(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "target")
	must(t, os.Mkdir(target, 0o700))
	link := filepath.Join(root, "link")
	must(t, os.Symlink(target, link))
	file := filepath.Join(root, "file")
	must(t, os.WriteFile(file, nil, 0o600))
	dangling := filepath.Join(root, "dangling")
	must(t, os.Symlink(filepath.Join(root, "missing"), dangling))
	w := newWatcher(t)
	for _, dir := range []string{link, file, dangling} {
		_, err := w.Watch(dir, "probe", func() {})
		if !errors.Is(err, syscall.ENOTDIR) || errors.Is(err, ErrNotSetUp) {
			t.Errorf("Watch(%s) = %v, want ENOTDIR", dir, err)
		}
	}
	if got := w.Watched(); got != 0 {
		t.Errorf("%d directories watched, want 0", got)
	}
	if got := inotifyWatches(t, w); len(got) != 0 {
		t.Errorf("inotify watches %v, want none (the symbolic link's target is not watched)", got)
	}
	// The directory itself is fine.
	s, err := w.Watch(target, "probe", func() {})
	must(t, err)
	s.Cancel()
}

// TestWatchRateLimit: a container touching its file often triggers its
// probe at most once per MinTriggerInterval. (It touches it within the
// directory's event budget: faster, the directory is suspended, see
// TestWatchNoisyDirectory.)
func TestWatchRateLimit(t *testing.T) {
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	must(t, os.WriteFile(probe, nil, 0o600))
	w := newWatcher(t)
	var c counter
	s, err := w.Watch(dir, "probe", c.trigger)
	must(t, err)
	defer s.Cancel()
	start := time.Now()
	touches := 0
	for time.Since(start) < time.Second {
		touch(t, probe)
		touches++
		time.Sleep(20 * time.Millisecond) // at most 50 events a second
	}
	elapsed := time.Since(start) + 100*time.Millisecond // events still in flight
	time.Sleep(100 * time.Millisecond)
	limit := int64(elapsed/MinTriggerInterval) + 1
	if got := c.n.Load(); got < 2 || got > limit {
		t.Errorf("%d touches in %v gave %d triggers, want between 2 and %d", touches, elapsed, got, limit)
	}
	if w.Suspended() != 0 {
		t.Errorf("a directory within its budget was suspended")
	}
	t.Logf("%d touches, %d triggers", touches, c.n.Load())
}

// TestWatchSharedAndReleased: one inotify watch per directory, shared by its
// subscribers, removed with the last one; cancelled subscribers are not
// triggered.
func TestWatchSharedAndReleased(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	w := newWatcher(t)
	var a, b, c counter
	sa, err := w.Watch(dir1, "probe", a.trigger)
	must(t, err)
	sb, err := w.Watch(dir1, "probe", b.trigger)
	must(t, err)
	sc, err := w.Watch(dir2, "probe", c.trigger)
	must(t, err)
	if got := w.Watched(); got != 2 {
		t.Fatalf("%d directories watched, want 2", got)
	}
	got, want := inotifyWatches(t, w), []string{inodeOf(t, dir1), inodeOf(t, dir2)}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("inotify watches %v, want %v", got, want)
	}
	must(t, os.WriteFile(filepath.Join(dir1, "probe"), nil, 0o600))
	a.waitFor(t, 1, "first subscriber")
	b.waitFor(t, 1, "second subscriber")

	sa.Cancel()
	sa.Cancel() // harmless
	settle()
	touch(t, filepath.Join(dir1, "probe"))
	b.waitFor(t, 2, "remaining subscriber")
	if a.n.Load() != 1 {
		t.Errorf("a cancelled subscriber was triggered")
	}
	sb.Cancel()
	sc.Cancel()
	if got := w.Watched(); got != 0 {
		t.Errorf("%d directories still watched", got)
	}
	if got := inotifyWatches(t, w); len(got) != 0 {
		t.Errorf("inotify watches left: %q", got)
	}
}

// TestWatchGoneDirectory: a directory removed while watched (the pod was
// torn down) is released cleanly; one made again at its path, even before
// the watcher read that the old one went, is watched again, and nothing
// stays watched on the old one.
func TestWatchGoneDirectory(t *testing.T) {
	for _, test := range []struct {
		name string
		// gone removes the directory; moved is where it went, if anywhere.
		gone func(t *testing.T, dir string) (moved string)
	}{{
		name: "deleted",
		gone: func(t *testing.T, dir string) string { must(t, os.RemoveAll(dir)); return "" },
	}, {
		name: "moved away",
		gone: func(t *testing.T, dir string) string {
			moved := dir + ".old"
			must(t, os.Rename(dir, moved))
			return moved
		},
	}} {
		t.Run(test.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "volume")
			w := newWatcher(t)
			var c counter
			if _, err := w.Watch(dir, "probe", c.trigger); !errors.Is(err, ErrNotSetUp) {
				t.Fatalf("watching a missing directory: %v, want ErrNotSetUp", err)
			}
			must(t, os.Mkdir(dir, 0o700))
			s, err := w.Watch(dir, "probe", c.trigger)
			must(t, err)
			moved := test.gone(t, dir)
			if _, err := w.Watch(dir, "probe", c.trigger); !errors.Is(err, ErrNotSetUp) {
				t.Fatalf("watching a directory gone: %v, want ErrNotSetUp", err)
			}
			if got := w.Watched(); got != 1 {
				t.Errorf("%d directories with subscribers, want 1", got)
			}
			must(t, os.Mkdir(dir, 0o700))
			var c2 counter
			s2, err := w.Watch(dir, "probe", c2.trigger)
			must(t, err)
			if got, want := inotifyWatches(t, w), []string{inodeOf(t, dir)}; !slices.Equal(got, want) {
				t.Errorf("inotify watches %v, want the new directory's only, %v", got, want)
			}
			must(t, os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600))
			c2.waitFor(t, 1, "watched again")
			c.waitFor(t, 1, "the first subscriber, watched again")
			if moved != "" {
				settle()
				must(t, os.WriteFile(filepath.Join(moved, "probe"), nil, 0o600))
				c.quiet(t, 1, "the directory moved away")
			}
			s.Cancel()
			s2.Cancel()
			if got := w.Watched(); got != 0 {
				t.Errorf("%d directories still watched", got)
			}
			if got := inotifyWatches(t, w); len(got) != 0 {
				t.Errorf("inotify watches left: %q", got)
			}
		})
	}
}

// TestWatchNoisyDirectory: a container writing another file of its
// directory in a loop spends the directory's budget: the directory is no
// longer watched (the kernel queues nothing more), OnFallback is told once,
// other directories keep working, and after the back-off the directory is
// watched again and works.
func TestWatchNoisyDirectory(t *testing.T) {
	noisy, quiet := t.TempDir(), t.TempDir()
	logger, _ := ktesting.NewTestContext(t)
	// The fake clock never moves by itself: the budget is not refilled
	// while the test writes.
	clk := testingclock.NewFakeClock(time.Now())
	var mu sync.Mutex
	var fallbacks []string
	w := closeAtEnd(t, NewWithOptions(logger, Options{Clock: clk, OnFallback: func(dir string, subs int, reason error) {
		mu.Lock()
		defer mu.Unlock()
		fallbacks = append(fallbacks, fmt.Sprintf("%s:%d:%v", dir, subs, errors.Is(reason, ErrOverBudget)))
	}}))
	fallbackCalls := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(fallbacks) }
	var n, q counter
	sn, err := w.Watch(noisy, "probe", n.trigger)
	must(t, err)
	defer sn.Cancel()
	sq, err := w.Watch(quiet, "probe", q.trigger)
	must(t, err)
	defer sq.Cancel()

	// while :; do echo x > noise; done
	noise := filepath.Join(noisy, "noise")
	writes := 0
	for w.Suspended() == 0 {
		if writes++; writes > 100*budgetBurst {
			t.Fatalf("%d writes did not suspend the directory", writes)
		}
		must(t, os.WriteFile(noise, []byte("x\n"), 0o600))
	}
	t.Logf("suspended after %d writes", writes)
	if got := inotifyWatches(t, w); !slices.Equal(got, []string{inodeOf(t, quiet)}) {
		t.Errorf("inotify watches %v, want only the quiet directory's %v", got, inodeOf(t, quiet))
	}
	for range 100 {
		must(t, os.WriteFile(noise, []byte("x\n"), 0o600))
	}
	must(t, os.WriteFile(filepath.Join(noisy, "probe"), nil, 0o600)) // not seen: periodic
	must(t, os.WriteFile(filepath.Join(quiet, "probe"), nil, 0o600))
	q.waitFor(t, 1, "the other directory")
	if got := n.n.Load(); got != 0 {
		t.Errorf("the suspended directory's subscriber was triggered %d times", got)
	}
	if got, want := fallbackCalls(), []string{noisy + ":1:true"}; !slices.Equal(got, want) {
		t.Errorf("OnFallback calls %q, want %q", got, want)
	}

	clk.Step(backoffInitial)
	waitUntil(t, "watched again after the back-off", func() bool { return w.Suspended() == 0 })
	n.waitFor(t, 1, "the trigger when watched again")
	clk.Step(MinTriggerInterval)
	touch(t, filepath.Join(noisy, "probe"))
	n.waitFor(t, 2, "a touch once watched again")
	if got := len(inotifyWatches(t, w)); got != 2 {
		t.Errorf("%d inotify watches, want 2", got)
	}
}

// TestWatchClose: Close stops the reader; Watch then fails, Cancel is
// harmless.
func TestWatchClose(t *testing.T) {
	dir := t.TempDir()
	logger, _ := ktesting.NewTestContext(t)
	w := New(logger)
	s, err := w.Watch(dir, "probe", func() {})
	must(t, err)
	done := w.readerDone
	must(t, w.Close())
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader did not stop")
	}
	s.Cancel()
	if _, err := w.Watch(dir, "probe", func() {}); err == nil {
		t.Error("Watch after Close succeeded")
	}
	if got := w.Watched(); got != 0 {
		t.Errorf("%d directories watched after Close", got)
	}
	must(t, w.Close()) // twice is harmless
}

// TestInotifyABI: the constants the parser uses are the kernel's.
func TestInotifyABI(t *testing.T) {
	for _, c := range []struct {
		name      string
		ours, sys uint32
	}{
		{"IN_ATTRIB", inAttrib, unix.IN_ATTRIB},
		{"IN_CLOSE_WRITE", inCloseWrite, unix.IN_CLOSE_WRITE},
		{"IN_MOVED_TO", inMovedTo, unix.IN_MOVED_TO},
		{"IN_CREATE", inCreate, unix.IN_CREATE},
		{"IN_UNMOUNT", inUnmount, unix.IN_UNMOUNT},
		{"IN_Q_OVERFLOW", inQOverflow, unix.IN_Q_OVERFLOW},
		{"IN_IGNORED", inIgnored, unix.IN_IGNORED},
		{"IN_ONLYDIR", inOnlyDir, unix.IN_ONLYDIR},
		{"IN_DONT_FOLLOW", inDontFollow, unix.IN_DONT_FOLLOW},
		{"IN_EXCL_UNLINK", inExclUnlink, unix.IN_EXCL_UNLINK},
		{"IN_MASK_CREATE", inMaskCreate, unix.IN_MASK_CREATE},
		{"sizeof(struct inotify_event)", eventHeader, unix.SizeofInotifyEvent},
	} {
		if c.ours != c.sys {
			t.Errorf("%s: %#x, the kernel's is %#x", c.name, c.ours, c.sys)
		}
	}
	if watchMask&(unix.IN_MODIFY|unix.IN_ACCESS|unix.IN_OPEN|unix.IN_CLOSE_NOWRITE|unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
		t.Errorf("the mask %#x has events that cannot make a file fresh", watchMask)
	}
}
