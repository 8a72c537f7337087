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

// The dispatch of raw inotify events, with a fake inotify instance and a
// fake clock: what the kernel cannot be made to do on demand (an overflow of
// its queue) and what depends on time (budgets, back-offs, rate limits).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"
)

// fakeInstance is an inotify instance in memory: watch descriptors are
// numbered from 1, and read returns the buffers fed to it.
type fakeInstance struct {
	mu      sync.Mutex
	next    int32
	watches map[int32]string
	// addErr, when set, fails addWatch.
	addErr  error
	removed []int32

	feed      chan []byte
	readErr   chan error
	done      chan struct{}
	closeOnce sync.Once
}

func newFakeInstance() *fakeInstance {
	return &fakeInstance{watches: map[int32]string{}, feed: make(chan []byte), readErr: make(chan error), done: make(chan struct{})}
}

func (f *fakeInstance) addWatch(path string, mask uint32) (int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addErr != nil {
		return -1, f.addErr
	}
	if mask != watchMask {
		return -1, fmt.Errorf("mask %#x, want %#x", mask, watchMask)
	}
	for _, p := range f.watches {
		if p == path { // IN_MASK_CREATE
			return -1, syscall.EEXIST
		}
	}
	f.next++
	f.watches[f.next] = path
	return f.next, nil
}

func (f *fakeInstance) rmWatch(wd int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.watches[wd]; !ok {
		return syscall.EINVAL
	}
	delete(f.watches, wd)
	f.removed = append(f.removed, wd)
	return nil
}

func (f *fakeInstance) read(buf []byte) (int, error) {
	select {
	case b := <-f.feed:
		return copy(buf, b), nil
	case err := <-f.readErr:
		return 0, err
	case <-f.done:
		return 0, &os.PathError{Op: "read", Path: "inotify", Err: os.ErrClosed}
	}
}

func (f *fakeInstance) close() error {
	f.closeOnce.Do(func() { close(f.done) })
	return nil
}

// wd is the watch descriptor of path, or -1.
func (f *fakeInstance) wd(path string) int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for wd, p := range f.watches {
		if p == path {
			return wd
		}
	}
	return -1
}

// drop removes a watch as the kernel does when its directory goes.
func (f *fakeInstance) drop(wd int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watches, wd)
}

func (f *fakeInstance) setAddErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addErr = err
}

// event is one raw struct inotify_event, its name padded with NULs to a
// multiple of 16 bytes as the kernel does.
func event(wd int32, mask uint32, name string) []byte {
	n := 0
	if name != "" {
		n = (len(name) + 16) / 16 * 16
	}
	b := make([]byte, eventHeader+n)
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(n))
	copy(b[eventHeader:], name)
	return b
}

// events concatenates raw events into one read buffer.
func events(evs ...[]byte) []byte { return slices.Concat(evs...) }

// fakeWatcher is a Watcher on a fake inotify instance and a fake clock,
// whose batches of events the test hands to handle itself.
type fakeWatcher struct {
	*Watcher
	ino   *fakeInstance
	clock *testingclock.FakeClock
	// made counts the instances made.
	made int
	sc   scratch

	mu        sync.Mutex
	fallbacks []string
}

// newFake returns a fake watcher logging to logger (ktesting's when nil);
// its OnFallback records each call.
func newFake(t *testing.T, logger *klog.Logger) *fakeWatcher {
	t.Helper()
	if logger == nil {
		l, _ := ktesting.NewTestContext(t)
		logger = &l
	}
	f := &fakeWatcher{ino: newFakeInstance(), clock: testingclock.NewFakeClock(time.Unix(1_000_000, 0))}
	f.Watcher = NewWithOptions(*logger, Options{Clock: f.clock, OnFallback: func(dir string, subs int, reason error) {
		if !errors.Is(reason, ErrOverBudget) {
			t.Errorf("OnFallback(%s): reason %v, want ErrOverBudget", dir, reason)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.fallbacks = append(f.fallbacks, fmt.Sprintf("%s:%d", dir, subs))
	}})
	f.newInstance = func() (instance, error) { f.made++; return f.ino, nil }
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func (f *fakeWatcher) fallbackCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.fallbacks)
}

// handleEvents dispatches one batch, as the reader does after a read.
func (f *fakeWatcher) handleEvents(evs ...[]byte) { f.handle(f.ino, events(evs...), &f.sc) }

func (f *fakeWatcher) watch(t *testing.T, dir, name string, trigger func()) *Subscription {
	t.Helper()
	s, err := f.Watch(dir, name, trigger)
	if err != nil {
		t.Fatalf("Watch(%s, %s): %v", dir, name, err)
	}
	return s
}

// count is a trigger counter for dispatch tests, where triggers run in the
// test's goroutine.
type count struct {
	mu sync.Mutex
	n  int
}

func (c *count) trigger() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *count) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// TestHandle: the parser and the dispatch of one batch of raw events.
func TestHandle(t *testing.T) {
	const dirA, dirB = "/pods/a/volume", "/pods/b/volume"
	for _, test := range []struct {
		name string
		// batch is built once dirA is watch 1 and dirB watch 2.
		batch [][]byte
		// want are the triggers of a/probe, a/other, b/probe.
		want [3]int
	}{{
		name:  "touch",
		batch: [][]byte{event(1, inAttrib, "probe")},
		want:  [3]int{1, 0, 0},
	}, {
		name:  "every triggering event",
		batch: [][]byte{event(1, inCreate, "probe"), event(2, inCloseWrite, "probe"), event(1, inMovedTo, "other")},
		want:  [3]int{1, 1, 1},
	}, {
		name:  "one trigger per batch and subscriber",
		batch: [][]byte{event(1, inCreate, "probe"), event(1, inCloseWrite, "probe"), event(1, inAttrib, "probe")},
		want:  [3]int{1, 0, 0},
	}, {
		name:  "the name is compared whole, not as a prefix",
		batch: [][]byte{event(1, inAttrib, "probe.tmp"), event(1, inAttrib, "prob"), event(1, inAttrib, "probe/x")},
		want:  [3]int{0, 0, 0},
	}, {
		name:  "names of 15 and 16 bytes (16 and 32 with their padding) before an event",
		batch: [][]byte{event(1, inAttrib, "probe-0123456789"), event(1, inAttrib, "probe-012345678"), event(2, inAttrib, "probe")},
		want:  [3]int{0, 0, 1},
	}, {
		name:  "another directory's file of the same name",
		batch: [][]byte{event(2, inAttrib, "probe")},
		want:  [3]int{0, 0, 1},
	}, {
		name:  "unknown watch descriptor",
		batch: [][]byte{event(7, inAttrib, "probe")},
		want:  [3]int{0, 0, 0},
	}, {
		name:  "no triggering event: unmount, an event on the directory itself",
		batch: [][]byte{event(1, inUnmount, ""), event(1, 0x2 /* IN_MODIFY */, "probe")},
		want:  [3]int{0, 0, 0},
	}, {
		name:  "a truncated event ends the batch",
		batch: [][]byte{event(2, inAttrib, "probe"), event(1, inAttrib, "probe")[:20]},
		want:  [3]int{0, 0, 1},
	}, {
		name:  "overflow triggers every subscriber once",
		batch: [][]byte{event(1, inAttrib, "probe"), event(-1, inQOverflow, ""), event(-1, inQOverflow, "")},
		want:  [3]int{1, 1, 1},
	}} {
		t.Run(test.name, func(t *testing.T) {
			f := newFake(t, nil)
			var aProbe, aOther, bProbe count
			f.watch(t, dirA, "probe", aProbe.trigger)
			f.watch(t, dirA, "other", aOther.trigger)
			f.watch(t, dirB, "probe", bProbe.trigger)
			if f.ino.wd(dirA) != 1 || f.ino.wd(dirB) != 2 {
				t.Fatalf("watch descriptors %d, %d; want 1, 2", f.ino.wd(dirA), f.ino.wd(dirB))
			}
			f.handleEvents(test.batch...)
			if got := [3]int{aProbe.get(), aOther.get(), bProbe.get()}; got != test.want {
				t.Errorf("triggers of a/probe, a/other, b/probe: %v, want %v", got, test.want)
			}
		})
	}
}

// TestHandleRateLimit: a subscriber is triggered at most once per
// MinTriggerInterval, except after an overflow.
func TestHandleRateLimit(t *testing.T) {
	touch := event(1, inAttrib, "probe")
	overflow := event(-1, inQOverflow, "")
	for _, test := range []struct {
		name string
		// steps are the times (since the first batch) and batches.
		steps []struct {
			at    time.Duration
			batch []byte
		}
		want int
	}{{
		name: "batches within the interval",
		steps: []struct {
			at    time.Duration
			batch []byte
		}{{0, touch}, {50 * time.Millisecond, touch}, {MinTriggerInterval - time.Millisecond, touch}},
		want: 1,
	}, {
		name: "one per interval",
		steps: []struct {
			at    time.Duration
			batch []byte
		}{{0, touch}, {MinTriggerInterval, touch}, {MinTriggerInterval + time.Millisecond, touch}, {2 * MinTriggerInterval, touch}},
		want: 3,
	}, {
		name: "an overflow ignores the rate limit",
		steps: []struct {
			at    time.Duration
			batch []byte
		}{{0, touch}, {time.Millisecond, overflow}, {2 * time.Millisecond, touch}},
		want: 2,
	}} {
		t.Run(test.name, func(t *testing.T) {
			f := newFake(t, nil)
			var c count
			f.watch(t, "/pods/a/volume", "probe", c.trigger)
			start := f.clock.Now()
			for _, step := range test.steps {
				f.clock.SetTime(start.Add(step.at))
				f.handleEvents(step.batch)
			}
			if got := c.get(); got != test.want {
				t.Errorf("%d triggers, want %d", got, test.want)
			}
		})
	}
}

// TestHandleBudget: every event of a directory spends its budget, whatever
// file it names; over budget, the directory is unwatched, OnFallback is told
// once, its subscribers are no longer triggered, and other directories are
// not affected.
func TestHandleBudget(t *testing.T) {
	const noisy, quiet = "/pods/noisy/volume", "/pods/quiet/volume"
	for _, test := range []struct {
		name string
		// before spends the noisy directory's budget: events at times
		// since the watch.
		before func(f *fakeWatcher, start time.Time)
		// suspended: whether the noisy directory is then suspended.
		suspended bool
	}{{
		name: "a burst of the budget",
		before: func(f *fakeWatcher, start time.Time) {
			for range budgetBurst {
				f.handleEvents(event(1, inCloseWrite, "noise"))
			}
		},
	}, {
		name: "one more than the burst",
		before: func(f *fakeWatcher, start time.Time) {
			for range budgetBurst + 1 {
				f.handleEvents(event(1, inCloseWrite, "noise"))
			}
		},
		suspended: true,
	}, {
		name: "in one batch",
		before: func(f *fakeWatcher, start time.Time) {
			var evs [][]byte
			for range budgetBurst + 1 {
				evs = append(evs, event(1, inCloseWrite, "noise"))
			}
			f.handleEvents(evs...)
		},
		suspended: true,
	}, {
		name: "the burst, then the rate for a second",
		before: func(f *fakeWatcher, start time.Time) {
			for range budgetBurst {
				f.handleEvents(event(1, inCreate, "noise"))
			}
			f.clock.SetTime(start.Add(time.Second))
			for range budgetRate {
				f.handleEvents(event(1, inAttrib, "noise"))
			}
		},
	}, {
		name: "the burst, then more than the rate for a second",
		before: func(f *fakeWatcher, start time.Time) {
			for range budgetBurst {
				f.handleEvents(event(1, inCreate, "noise"))
			}
			f.clock.SetTime(start.Add(time.Second))
			for range budgetRate + 1 {
				f.handleEvents(event(1, inAttrib, "noise"))
			}
		},
		suspended: true,
	}, {
		name: "the probe file's own events count",
		before: func(f *fakeWatcher, start time.Time) {
			for i := range budgetBurst + 1 {
				f.clock.SetTime(start.Add(time.Duration(i) * time.Microsecond))
				f.handleEvents(event(1, inAttrib, "probe"))
			}
		},
		suspended: true,
	}} {
		t.Run(test.name, func(t *testing.T) {
			f := newFake(t, nil)
			var n1, n2, q count
			f.watch(t, noisy, "probe", n1.trigger)
			f.watch(t, noisy, "probe", n2.trigger)
			f.watch(t, quiet, "probe", q.trigger)
			start := f.clock.Now()
			test.before(f, start)
			wantSuspended, wantFallbacks, wantWD := 0, []string(nil), int32(1)
			if test.suspended {
				wantSuspended, wantFallbacks, wantWD = 1, []string{noisy + ":2"}, -1
			}
			if got := f.Suspended(); got != wantSuspended {
				t.Fatalf("%d directories suspended, want %d", got, wantSuspended)
			}
			if got := f.ino.wd(noisy); got != wantWD {
				t.Errorf("the noisy directory's watch descriptor is %d, want %d", got, wantWD)
			}
			if got := f.fallbackCalls(); !slices.Equal(got, wantFallbacks) {
				t.Errorf("OnFallback calls %q, want %q", got, wantFallbacks)
			}
			if got := f.Watched(); got != 2 {
				t.Errorf("%d directories with subscribers, want 2", got)
			}
			// Later events: those of the noisy directory already queued by
			// the kernel are dropped, the quiet directory works.
			f.clock.Step(MinTriggerInterval)
			before := n1.get()
			f.handleEvents(event(1, inAttrib, "probe"), event(1, inAttrib, "noise"), event(2, inAttrib, "probe"))
			if test.suspended && n1.get() != before {
				t.Errorf("a suspended directory's subscriber was triggered")
			}
			if !test.suspended && n1.get() != before+1 {
				t.Errorf("a directory within budget did not trigger")
			}
			if q.get() != 1 {
				t.Errorf("the quiet directory's subscriber: %d triggers, want 1", q.get())
			}
			if got := f.fallbackCalls(); !slices.Equal(got, wantFallbacks) {
				t.Errorf("OnFallback calls %q after more events, want %q", got, wantFallbacks)
			}
		})
	}
}

// TestSuspensionBackoff: a suspended directory is watched again by the
// watcher after its back-off, and its subscribers triggered once; the
// back-off doubles at each suspension up to backoffMax, and starts over
// after a quiet period.
func TestSuspensionBackoff(t *testing.T) {
	const dir = "/pods/noisy/volume"
	f := newFake(t, nil)
	var c count
	s := f.watch(t, dir, "probe", c.trigger)
	exhaust := func() {
		t.Helper()
		wd := f.ino.wd(dir)
		for range budgetBurst + 1 {
			f.handleEvents(event(wd, inCloseWrite, "noise"))
		}
		if f.Suspended() != 1 {
			t.Fatalf("not suspended")
		}
	}
	// resumesAfter checks that the directory is watched again after d and
	// not before, then moves the clock on by the rate limit.
	resumesAfter := func(d time.Duration) {
		t.Helper()
		before := c.get()
		f.clock.Step(d - time.Second)
		if f.Suspended() != 1 || !f.clock.HasWaiters() {
			t.Fatalf("watched again %s before the back-off of %s ended", time.Second, d)
		}
		f.clock.Step(time.Second)
		// The trigger is called once the directory is watched again.
		waitUntil(t, "the trigger when watched again", func() bool { return c.get() > before })
		if f.Suspended() != 0 || f.ino.wd(dir) < 0 {
			t.Fatalf("no inotify watch after the back-off")
		}
		if got := c.get(); got != before+1 {
			t.Errorf("%d triggers when watched again, want 1", got-before)
		}
		f.clock.Step(MinTriggerInterval)
	}
	want := backoffInitial
	for i := range 6 {
		exhaust()
		resumesAfter(want)
		if i < 5 {
			want = min(2*want, backoffMax)
		}
	}
	if want != backoffMax {
		t.Fatalf("the test did not reach the maximum back-off: %s", want)
	}
	// Events trigger again.
	before := c.get()
	f.handleEvents(event(f.ino.wd(dir), inAttrib, "probe"))
	if c.get() != before+1 {
		t.Errorf("no trigger once watched again")
	}
	// Quiet for backoffReset: the next suspension starts over.
	f.clock.Step(backoffReset)
	exhaust()
	resumesAfter(backoffInitial)
	if got := len(f.fallbackCalls()); got != 7 {
		t.Errorf("%d OnFallback calls, want one per suspension, 7", got)
	}

	// Cancelled while suspended: the directory goes when its back-off
	// ends, but subscribing again meanwhile does not renew its budget.
	exhaust()
	s.Cancel()
	if f.Watched() != 0 || f.Suspended() != 0 {
		t.Errorf("Watched %d, Suspended %d after the last Cancel, want 0", f.Watched(), f.Suspended())
	}
	var c2 count
	s2 := f.watch(t, dir, "probe", c2.trigger)
	if f.Suspended() != 1 || f.ino.wd(dir) >= 0 {
		t.Errorf("subscribing again to a suspended directory watched it")
	}
	s2.Cancel()
	f.clock.Step(backoffMax)
	waitUntil(t, "the directory record goes", func() bool {
		f.Watcher.mu.Lock()
		defer f.Watcher.mu.Unlock()
		return len(f.dirs) == 0
	})
	if f.ino.wd(dir) >= 0 || c2.get() != 0 {
		t.Errorf("a directory without subscribers was watched again")
	}
}

// TestResumeFails: a directory that cannot be watched again when its
// back-off ends (inotify limits) is retried later; one that is gone is
// dropped.
func TestResumeFails(t *testing.T) {
	const dir = "/pods/noisy/volume"
	f := newFake(t, nil)
	var c count
	f.watch(t, dir, "probe", c.trigger)
	for range budgetBurst + 1 {
		f.handleEvents(event(1, inCloseWrite, "noise"))
	}
	f.ino.setAddErr(syscall.ENOSPC)
	f.clock.Step(backoffInitial)
	waitUntil(t, "a new back-off", func() bool { return f.clock.HasWaiters() })
	if f.Suspended() != 1 {
		t.Fatalf("not suspended after a failed watch")
	}
	f.ino.setAddErr(nil)
	f.clock.Step(2 * backoffInitial)
	waitUntil(t, "the trigger when watched again", func() bool { return c.get() > 0 })
	if f.Suspended() != 0 || c.get() != 1 {
		t.Errorf("%d triggers, want 1", c.get())
	}

	for range budgetBurst + 1 {
		f.handleEvents(event(f.ino.wd(dir), inCloseWrite, "noise"))
	}
	f.ino.setAddErr(syscall.ENOENT)
	f.clock.Step(backoffMax)
	waitUntil(t, "no longer suspended", func() bool { return f.Suspended() == 0 })
	if f.clock.HasWaiters() || f.Watched() != 1 {
		t.Errorf("a gone directory: waiters %v, Watched %d; want none and 1", f.clock.HasWaiters(), f.Watched())
	}
}

// TestHandleIgnored: a watch the kernel removed (the directory was deleted)
// leaves its subscribers subscribed but no longer triggered; the next Watch
// of the directory watches it again.
func TestHandleIgnored(t *testing.T) {
	const dir = "/pods/a/volume"
	f := newFake(t, nil)
	var c count
	s := f.watch(t, dir, "probe", c.trigger)
	f.ino.drop(1) // the directory was deleted
	f.handleEvents(event(1, inIgnored, ""), event(1, inAttrib, "probe"))
	if c.get() != 0 {
		t.Errorf("triggered after IN_IGNORED")
	}
	if f.Watched() != 1 {
		t.Errorf("%d directories with subscribers, want 1", f.Watched())
	}
	var c2 count
	f.watch(t, dir, "probe", c2.trigger)
	wd := f.ino.wd(dir)
	if wd != 2 {
		t.Fatalf("watched again with descriptor %d, want 2", wd)
	}
	f.handleEvents(event(wd, inAttrib, "probe"))
	if c.get() != 1 || c2.get() != 1 {
		t.Errorf("triggers %d, %d after watching again; want 1, 1", c.get(), c2.get())
	}
	// IN_IGNORED of a watch the watcher removed itself is nothing.
	s.Cancel()
	f.handleEvents(event(1, inIgnored, ""))
	if f.Watched() != 1 {
		t.Errorf("%d directories with subscribers, want 1", f.Watched())
	}

	// Deleted and made again before the watcher read IN_IGNORED: the next
	// Watch sees that the watch is gone and watches the new directory.
	f.ino.drop(wd)
	var c3 count
	f.watch(t, dir, "probe", c3.trigger)
	if got := f.ino.wd(dir); got != 3 {
		t.Fatalf("watched again with descriptor %d, want 3", got)
	}
	f.clock.Step(MinTriggerInterval)
	f.handleEvents(event(wd, inIgnored, ""), event(3, inAttrib, "probe"))
	if c2.get() != 2 || c3.get() != 1 {
		t.Errorf("triggers %d, %d after the directory was replaced; want 2, 1", c2.get(), c3.get())
	}
}

// TestPanics: a panicking trigger or OnFallback neither stops the dispatch
// of its batch nor later ones.
func TestPanics(t *testing.T) {
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true), ktesting.Verbosity(2)))
	f := newFake(t, &logger)
	f.onFallback = func(string, int, error) { panic("fallback") }
	var c count
	f.watch(t, "/pods/a/volume", "probe", func() { panic("trigger") })
	f.watch(t, "/pods/a/volume", "probe", c.trigger)
	f.watch(t, "/pods/b/volume", "probe", func() { panic("trigger") })
	for i := range 3 {
		f.handleEvents(event(1, inAttrib, "probe"), event(2, inAttrib, "probe"))
		if c.get() != i+1 {
			t.Fatalf("batch %d: %d triggers, want %d", i, c.get(), i+1)
		}
		f.clock.Step(MinTriggerInterval)
	}
	for range budgetBurst + 1 {
		f.handleEvents(event(2, inAttrib, "noise"))
	}
	if f.Suspended() != 1 {
		t.Errorf("not suspended after a panicking OnFallback")
	}
	f.handleEvents(event(1, inAttrib, "probe"))
	if c.get() != 4 {
		t.Errorf("%d triggers after a panicking OnFallback, want 4", c.get())
	}
	logged := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
	if n := strings.Count(logged, "panicked"); n != 1 {
		t.Errorf("%d panics logged at -v=2, want 1 (then at -v=4):\n%s", n, logged)
	}
}

// TestTriggerOutsideLock: triggers and OnFallback are called without the
// watcher's lock: they may use the watcher (here: Watched, Watch, Cancel)
// without deadlocking it, and a subscription cancelled by an earlier
// trigger of the same batch is not triggered.
func TestTriggerOutsideLock(t *testing.T) {
	f := newFake(t, nil)
	var c count
	var second *Subscription
	f.onFallback = func(string, int, error) { _ = f.Watched() }
	f.watch(t, "/pods/a/volume", "probe", func() {
		_ = f.Watched()
		s, err := f.Watch("/pods/b/volume", "probe", func() {})
		if err == nil {
			s.Cancel()
		}
		second.Cancel()
	})
	second = f.watch(t, "/pods/a/volume", "probe", c.trigger)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.handleEvents(event(1, inAttrib, "probe"))
		for range budgetBurst + 1 {
			f.handleEvents(event(1, inAttrib, "noise"))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a trigger or OnFallback using the watcher deadlocked it")
	}
	// Map order decides which of the two is triggered first: the second
	// one either ran before it was cancelled, or not at all.
	if got := c.get(); got > 1 {
		t.Errorf("%d triggers of a subscription cancelled during the batch, want at most 1", got)
	}
	if f.Suspended() != 1 {
		t.Errorf("not suspended")
	}
}

// TestLogOnce: suspensions and overflows are logged once at the default
// verbosity, then at -v=4: a container cannot flood the kubelet's log.
func TestLogOnce(t *testing.T) {
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true), ktesting.Verbosity(2)))
	f := newFake(t, &logger)
	f.watch(t, "/pods/a/volume", "probe", func() {})
	for range 3 {
		f.handleEvents(event(-1, inQOverflow, ""))
		for range budgetBurst + 1 {
			f.handleEvents(event(f.ino.wd("/pods/a/volume"), inCloseWrite, "noise"))
		}
		f.clock.Step(backoffMax)
		waitUntil(t, "watched again", func() bool { return f.Suspended() == 0 })
	}
	logged := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
	for _, msg := range []string{"Too many file events", "event queue overflowed"} {
		if n := strings.Count(logged, msg); n != 1 {
			t.Errorf("%q logged %d times at -v=2, want 1:\n%s", msg, n, logged)
		}
	}
	if !strings.Contains(logged, `dir="/pods/a/volume"`) {
		t.Errorf("the suspension's log does not name the directory:\n%s", logged)
	}
}

// TestHandleAllocations: dispatching a batch allocates nothing, however
// many events it has.
func TestHandleAllocations(t *testing.T) {
	// Logging allocates, when enabled: the kubelet logs these at -v=4.
	discard := logr.Discard()
	f := newFake(t, &discard)
	var c count
	f.watch(t, "/pods/a/volume", "probe", c.trigger)
	var evs [][]byte
	for i := range 50 {
		evs = append(evs, event(1, inCloseWrite, fmt.Sprintf("noise-%d", i)), event(1, inAttrib, "probe"))
	}
	evs = append(evs, event(-1, inQOverflow, ""))
	batch := events(evs...)
	d := f.dirs["/pods/a/volume"]
	allocs := testing.AllocsPerRun(100, func() {
		d.tokens = budgetBurst
		f.handle(f.ino, batch, &f.sc)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch of %d events, want 0", allocs, len(evs))
	}
	if c.get() == 0 {
		t.Errorf("never triggered")
	}
}

// TestInstanceRetry: an inotify instance that cannot be made fails Watch
// until its back-off ended, then is made again; one that fails while
// reading is dropped and made again by the next Watch.
func TestInstanceRetry(t *testing.T) {
	f := newFake(t, nil)
	fail := true
	f.newInstance = func() (instance, error) {
		f.made++
		if fail {
			return nil, syscall.EMFILE
		}
		return f.ino, nil
	}
	for i, test := range []struct {
		step time.Duration
		made int
		ok   bool
	}{
		{0, 1, false},
		{backoffInitial - time.Second, 1, false}, // no new try before the back-off ends
		{time.Second, 2, false},                  // tried again
		{2*backoffInitial - time.Second, 2, false},
		{time.Second, 3, true}, // the limit was raised meanwhile
		{0, 3, true},
	} {
		f.clock.Step(test.step)
		if test.ok {
			fail = false
		}
		s, err := f.Watch("/pods/a/volume", "probe", func() {})
		if test.ok != (err == nil) || (err != nil && !errors.Is(err, syscall.EMFILE)) {
			t.Errorf("step %d: Watch = %v, want ok %v or EMFILE", i, err, test.ok)
		}
		if f.made != test.made {
			t.Errorf("step %d: %d instances tried, want %d", i, f.made, test.made)
		}
		if s != nil {
			s.Cancel()
		}
	}

	// A read error drops the instance: the directory is lost, its
	// subscriber kept; the next Watch makes a new instance.
	var c count
	f.watch(t, "/pods/a/volume", "probe", c.trigger)
	old := f.ino
	f.ino = newFakeInstance()
	old.readErr <- syscall.EIO
	waitUntil(t, "the instance is dropped", func() bool {
		f.Watcher.mu.Lock()
		defer f.Watcher.mu.Unlock()
		return f.Watcher.ino == nil
	})
	if f.Watched() != 1 {
		t.Errorf("%d directories with subscribers after a failed instance, want 1", f.Watched())
	}
	f.watch(t, "/pods/a/volume", "probe", c.trigger)
	if f.made != 4 || f.ino.wd("/pods/a/volume") != 1 {
		t.Errorf("no new instance and watch after a failed one")
	}
	f.handleEvents(event(1, inAttrib, "probe"))
	if c.get() != 2 {
		t.Errorf("%d triggers, want both subscribers", c.get())
	}
}

// TestWatchAddErrors: errors of inotify_add_watch fail Watch (the caller
// stays periodic) and are not counted as watched.
func TestWatchAddErrors(t *testing.T) {
	for _, test := range []struct {
		err   error
		check func(error) bool
	}{
		{syscall.ENOSPC, func(err error) bool { return errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrNotSetUp) }},
		{syscall.ENOTDIR, func(err error) bool { return errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, ErrNotSetUp) }},
		{syscall.EEXIST, func(err error) bool { return errors.Is(err, syscall.EEXIST) }},
		{syscall.ENOENT, func(err error) bool { return errors.Is(err, ErrNotSetUp) }},
	} {
		t.Run(test.err.Error(), func(t *testing.T) {
			f := newFake(t, nil)
			f.ino.setAddErr(test.err)
			if _, err := f.Watch("/pods/a/volume", "probe", func() {}); !test.check(err) {
				t.Errorf("Watch = %v", err)
			}
			if f.Watched() != 0 {
				t.Errorf("a failed watch is counted")
			}
		})
	}
}

func TestNextBackoff(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, test := range []struct {
		prev time.Duration
		at   time.Time
		want time.Duration
	}{
		{0, time.Time{}, backoffInitial},
		{backoffInitial, time.Time{}, 2 * backoffInitial},
		{backoffInitial, now.Add(-time.Minute), 2 * backoffInitial},
		{backoffMax / 2, time.Time{}, backoffMax},
		{backoffMax * 3 / 4, time.Time{}, backoffMax},
		{backoffMax, time.Time{}, backoffMax},
		{backoffMax, now.Add(-backoffReset), backoffInitial},
		{backoffMax, now.Add(-backoffReset + time.Second), backoffMax},
	} {
		if got := nextBackoff(test.prev, test.at, now); got != test.want {
			t.Errorf("nextBackoff(%s, %v) = %s, want %s", test.prev, now.Sub(test.at), got, test.want)
		}
	}
}

// waitUntil polls cond for up to 5 seconds, for what goroutines of the
// watcher do (a back-off's end runs in its own).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
