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

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2/ktesting"
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

func newWatcher(t *testing.T) *Watcher {
	logger, _ := ktesting.NewTestContext(t)
	w := New(logger)
	t.Cleanup(func() { _ = w.Close() })
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
		name:  "touch",
		setup: func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
		act:   func(t *testing.T) { now := time.Now(); must(t, os.Chtimes(probe, now, now)) },
	}, {
		name:  "write",
		setup: func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
		act: func(t *testing.T) {
			f, err := os.OpenFile(probe, os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = f.WriteString("beat\n")
			must(t, err)
			must(t, f.Close())
		},
	}, {
		name:  "rename over",
		setup: func(t *testing.T) { must(t, os.WriteFile(probe, nil, 0o600)) },
		act: func(t *testing.T) {
			tmp := filepath.Join(dir, ".probe.tmp")
			must(t, os.WriteFile(tmp, nil, 0o600))
			must(t, os.Rename(tmp, probe))
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
	// Removing the probe file cannot make it fresh.
	must(t, os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600))
	c.waitFor(t, 1, "create")
	settle()
	must(t, os.Remove(filepath.Join(dir, "probe")))
	c.quiet(t, 1, "remove")
}

// TestWatchRateLimit: a container touching its file in a tight loop
// triggers its probe at most once per MinTriggerInterval.
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
		now := time.Now()
		must(t, os.Chtimes(probe, now, now))
		touches++
	}
	elapsed := time.Since(start) + 100*time.Millisecond // events still in flight
	time.Sleep(100 * time.Millisecond)
	limit := int64(elapsed/MinTriggerInterval) + 1
	if got := c.n.Load(); got < 1 || got > limit {
		t.Errorf("%d touches in %v gave %d triggers, want between 1 and %d", touches, elapsed, got, limit)
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
	if got := len(w.fs.(notifyWatcher).WatchList()); got != 2 {
		t.Fatalf("%d inotify watches, want 2", got)
	}
	must(t, os.WriteFile(filepath.Join(dir1, "probe"), nil, 0o600))
	a.waitFor(t, 1, "first subscriber")
	b.waitFor(t, 1, "second subscriber")

	sa.Cancel()
	sa.Cancel() // harmless
	settle()
	now := time.Now()
	must(t, os.Chtimes(filepath.Join(dir1, "probe"), now, now))
	b.waitFor(t, 2, "remaining subscriber")
	if a.n.Load() != 1 {
		t.Errorf("a cancelled subscriber was triggered")
	}
	sb.Cancel()
	sc.Cancel()
	if got := w.Watched(); got != 0 {
		t.Errorf("%d directories still watched", got)
	}
	if got := w.fs.(notifyWatcher).WatchList(); len(got) != 0 {
		t.Errorf("inotify watches left: %q", got)
	}
}

// TestWatchGoneDirectory: a directory removed while watched (the pod was
// torn down) is released cleanly.
func TestWatchGoneDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "volume")
	w := newWatcher(t)
	var c counter
	if _, err := w.Watch(dir, "probe", c.trigger); !errors.Is(err, ErrNotSetUp) {
		t.Fatalf("watching a missing directory: %v, want ErrNotSetUp", err)
	}
	must(t, os.Mkdir(dir, 0o700))
	s, err := w.Watch(dir, "probe", c.trigger)
	must(t, err)
	must(t, os.RemoveAll(dir))
	time.Sleep(50 * time.Millisecond)
	s.Cancel()
	if got := w.Watched(); got != 0 {
		t.Errorf("%d directories still watched", got)
	}
}

// fakeFS fails as an exhausted inotify does.
type fakeFS struct {
	addErr error
	ev     chan fsnotify.Event
	errs   chan error
}

func (f *fakeFS) Add(string) error              { return f.addErr }
func (f *fakeFS) Remove(string) error           { return nil }
func (f *fakeFS) Close() error                  { return nil }
func (f *fakeFS) events() <-chan fsnotify.Event { return f.ev }
func (f *fakeFS) errors() <-chan error          { return f.errs }
func newFakeFS(addErr error) func() (fsWatcher, error) {
	return func() (fsWatcher, error) { return &fakeFS{addErr: addErr}, nil }
}

// TestWatchLimits: exhausted inotify limits fail the watch (the caller
// stays periodic), and never panic or block.
func TestWatchLimits(t *testing.T) {
	dir := t.TempDir()
	t.Run("max_user_watches", func(t *testing.T) {
		w := newWatcher(t)
		w.newFS = newFakeFS(syscall.ENOSPC)
		_, err := w.Watch(dir, "probe", func() {})
		if err == nil || errors.Is(err, ErrNotSetUp) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Watch = %v, want the ENOSPC error", err)
		}
		if w.Watched() != 0 {
			t.Errorf("a failed watch is counted")
		}
	})
	t.Run("max_user_instances", func(t *testing.T) {
		w := newWatcher(t)
		w.newFS = func() (fsWatcher, error) { return nil, syscall.EMFILE }
		for i := 0; i < 2; i++ {
			if _, err := w.Watch(dir, "probe", func() {}); !errors.Is(err, syscall.EMFILE) {
				t.Errorf("Watch %d = %v, want the EMFILE error", i, err)
			}
		}
	})
}

// TestWatchErrors: errors from inotify (an overflow: a container flooding
// its volume with events) neither stop the watcher nor flood the log: the
// first is logged, the others only at -v=4.
func TestWatchErrors(t *testing.T) {
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true), ktesting.Verbosity(2)))
	w := New(logger)
	fake := &fakeFS{ev: make(chan fsnotify.Event), errs: make(chan error)}
	w.newFS = func() (fsWatcher, error) { return fake, nil }
	dir := t.TempDir()
	var c counter
	s, err := w.Watch(dir, "probe", c.trigger)
	must(t, err)
	defer s.Cancel()
	for i := 0; i < 5; i++ {
		fake.errs <- fsnotify.ErrEventOverflow
	}
	fake.ev <- fsnotify.Event{Name: filepath.Join(dir, "probe"), Op: fsnotify.Chmod}
	c.waitFor(t, 1, "an event after errors")
	logged := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
	if n := strings.Count(logged, "File probe watch error"); n != 1 {
		t.Errorf("%d watch errors logged, want 1:\n%s", n, logged)
	}
}
