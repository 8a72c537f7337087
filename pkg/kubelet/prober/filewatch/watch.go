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

// Package filewatch wakes file probes up early. With one inotify instance
// for the whole kubelet, it watches the directories of probe files whose
// probes have not succeeded yet, and calls a subscriber's trigger as soon as
// its file is created, touched, closed after a write or renamed into place.
// A trigger only asks for a probe now rather than at the next period: the
// probe itself still resolves and examines the file securely, so whatever
// the container does in the directory (symbolic links, renames, floods of
// events) can at most make a probe run, never change its result.
//
// The directory belongs to the container, which may be noisy or hostile, so
// what it can make the kubelet do is bounded:
//
//   - The kernel queues only the events that can make a probe file fresh:
//     IN_ATTRIB (touch, utimensat), IN_CLOSE_WRITE (a write, seen once when
//     the file is closed rather than at every write(2)), IN_MOVED_TO (a
//     rename into place) and IN_CREATE. A writer that keeps its file open
//     and only writes to it is not seen: its probe runs at its period. The
//     watch follows no symbolic link (IN_DONT_FOLLOW, IN_ONLYDIR: a path
//     whose last component is a symbolic link is refused).
//   - Events are read in batches and parsed in place: no allocation per
//     event, one lock per batch, and triggers are called outside the lock.
//   - Every watched directory has an event budget (a token bucket: burst
//     budgetBurst, refilled at budgetRate events per second), spent by every
//     event of the directory whatever file it names. Over budget, the
//     directory is unwatched (the kernel stops queueing its events) for a
//     back-off (backoffInitial, doubling up to backoffMax), its subscribers'
//     probes stay periodic meanwhile, Options.OnFallback is told, and the
//     watcher then watches it again by itself.
//   - A subscriber is triggered at most once per MinTriggerInterval.
//   - When the kernel's event queue overflows (events were lost), every
//     subscriber is triggered once: its probe re-checks its file, so no
//     wake-up is lost.
//   - A panicking trigger or callback is recovered and logged.
//
// Directories are watched once however many subscribers they have, and
// unwatched when the last one cancels. When a directory cannot be watched
// (inotify limits, or any other error) Watch fails and the caller's probe
// stays periodic; when the inotify instance cannot be made, Watch fails
// until it is retried after a back-off.
package filewatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// MinTriggerInterval is the least time between two triggers of one
// subscriber: a container touching its file in a tight loop makes its probe
// run at most this often, on top of its period.
const MinTriggerInterval = 200 * time.Millisecond

// The event budget of one watched directory, a token bucket. A heartbeat is
// one to three events: a touch is IN_ATTRIB (and IN_CLOSE_WRITE when touch
// opens the file), a write is IN_CLOSE_WRITE (and IN_CREATE the first
// time), a rename into place is IN_CREATE and IN_CLOSE_WRITE of the
// temporary file and IN_MOVED_TO. A subscriber is triggered at most every
// MinTriggerInterval, five times a second, so heartbeats more frequent than
// that gain nothing: 20 events a second sustained covers a pod's few probe
// files in one volume heartbeating as often as it can matter, and a burst of
// 100 absorbs a container creating a few dozen files at once in its volume
// (at start, say). A container over budget then costs the kubelet the events
// the kernel had queued before its watch was removed (dropped by descriptor,
// without a lookup of their names), and at most budgetBurst more per
// back-off, instead of one per write(2)+close(2) for as long as it writes.
const (
	budgetBurst = 100
	budgetRate  = 20 // events per second
)

// The back-off of a directory over budget, and of an inotify instance that
// could not be made: backoffInitial, doubled at each new failure up to
// backoffMax; a directory watched for backoffReset since it was last
// watched again starts over from backoffInitial.
const (
	backoffInitial = 30 * time.Second
	backoffMax     = 10 * time.Minute
	backoffReset   = 10 * time.Minute
)

// ErrNotSetUp is returned by Watch when the directory does not exist (yet):
// the caller may try again later.
var ErrNotSetUp = errors.New("the directory does not exist")

// ErrOverBudget is the reason given to Options.OnFallback when a directory
// had more events than its budget and is no longer watched for a while.
var ErrOverBudget = errors.New("too many file events in the directory")

// errClosed is returned by Watch after Close.
var errClosed = errors.New("the file probe watcher is closed")

// The inotify ABI (<linux/inotify.h>), the same on every Linux architecture.
const (
	inAttrib     = 0x4
	inCloseWrite = 0x8
	inMovedTo    = 0x80
	inCreate     = 0x100
	inUnmount    = 0x2000
	inQOverflow  = 0x4000
	inIgnored    = 0x8000
	inOnlyDir    = 0x1000000
	inDontFollow = 0x2000000
	inExclUnlink = 0x4000000
	inMaskCreate = 0x10000000

	// eventHeader is the size of struct inotify_event before its name.
	eventHeader = 16
)

// triggeringEvents are the events that can make a probe file fresh.
const triggeringEvents = inAttrib | inCloseWrite | inMovedTo | inCreate

// watchMask is the mask of every watch: the triggering events of the
// directory's entries, only on a directory, never through a symbolic link,
// not for entries already unlinked, and failing (EEXIST) rather than
// sharing a watch when the directory is already watched under another path.
const watchMask = triggeringEvents | inOnlyDir | inDontFollow | inExclUnlink | inMaskCreate

// readBufferSize is the buffer of one read of the inotify instance: 64 KiB,
// at least 2048 events with names of up to 16 bytes.
const readBufferSize = 64 << 10

// Options configure a Watcher.
type Options struct {
	// OnFallback, when set, is called each time a directory with
	// subscribers stops being watched by the watcher's decision (reason
	// wraps ErrOverBudget): its subscribers' probes are periodic until the
	// directory is watched again, which the watcher does by itself after a
	// back-off. subscriptions is how many subscriptions the directory has.
	// It is called outside the watcher's lock, under panic recovery, and
	// must not block.
	OnFallback func(dir string, subscriptions int, reason error)
	// Clock is the watcher's clock (event budgets, back-offs and the
	// triggers' rate limit); nil means the real one.
	Clock clock.WithDelayedExecution
}

// instance is what the Watcher needs of an inotify instance (a variable for
// tests: see newInstance).
type instance interface {
	// addWatch watches path with mask, and returns the watch descriptor.
	addWatch(path string, mask uint32) (int32, error)
	// rmWatch removes a watch; the kernel then queues IN_IGNORED for it.
	rmWatch(wd int32) error
	// read blocks until events are available and reads whole events into
	// buf; after close it returns an error wrapping os.ErrClosed.
	read(buf []byte) (int, error)
	// close releases the instance and wakes a blocked read up.
	close() error
}

// Watcher watches directories for its subscribers. The zero value is not
// usable; call New or NewWithOptions. All methods are safe for concurrent
// use.
type Watcher struct {
	logger     klog.Logger
	clock      clock.WithDelayedExecution
	onFallback func(dir string, subscriptions int, reason error)
	// newInstance makes an inotify instance; a variable for tests.
	newInstance func() (instance, error)

	// Set once the first of each thing was logged at the default verbosity;
	// the others go to -v=4, so that a container cannot flood the log.
	suspendLogged, overflowLogged, panicLogged atomic.Bool

	mu     sync.Mutex
	closed bool
	// ino is the inotify instance, made on first use; nil until then, and
	// after it failed.
	ino instance
	// readerDone is closed when the reader of ino returns.
	readerDone chan struct{}
	// initErr is why the last inotify instance could not be made: Watch
	// fails with it until initRetry, then tries again.
	initErr     error
	initRetry   time.Time
	initBackoff time.Duration
	// dirs are the directories with subscribers (and those suspended
	// without any, until their back-off ends), by path.
	dirs map[string]*directory
	// wds are the watched directories by watch descriptor.
	wds map[int32]*directory
	// batch numbers the batches of events, so that a subscriber is
	// triggered at most once per batch.
	batch uint64
}

// directory states.
type dirState uint8

const (
	// watching: the directory has an inotify watch, d.wd.
	watching dirState = iota
	// suspended: over budget, not watched until its back-off ends.
	suspended
	// lost: the kernel removed the watch (IN_IGNORED: the directory was
	// deleted or unmounted), or the inotify instance failed. Subscribers
	// stay, periodic; the next Watch of the directory watches it again.
	lost
)

// directory is one directory and its subscribers, by file name.
type directory struct {
	path  string
	state dirState
	wd    int32
	files map[string]map[*Subscription]struct{}
	count int

	// The event budget: tokens left at tokensAt.
	tokens   float64
	tokensAt time.Time
	// backoff is the last suspension's; watchedAt is when the directory
	// was last watched again after one; timer ends the current one.
	backoff   time.Duration
	watchedAt time.Time
	timer     clock.Timer
}

// Subscription is one subscriber's interest in one file.
type Subscription struct {
	w       *Watcher
	d       *directory
	name    string
	trigger func()
	// last is when trigger was last called, in Unix nanoseconds of the
	// watcher's clock; batch is the last batch that queued it; both under
	// w.mu.
	last  int64
	batch uint64
	// cancelled is set by Cancel: a trigger collected before is skipped.
	cancelled atomic.Bool
}

// New returns a Watcher with default options; it makes its inotify instance
// on first use.
func New(logger klog.Logger) *Watcher {
	return NewWithOptions(logger, Options{})
}

// NewWithOptions returns a Watcher; it makes its inotify instance on first
// use.
func NewWithOptions(logger klog.Logger, opts Options) *Watcher {
	c := opts.Clock
	if c == nil {
		c = clock.RealClock{}
	}
	return &Watcher{
		logger:      logger,
		clock:       c,
		onFallback:  opts.OnFallback,
		newInstance: newInotify,
		dirs:        map[string]*directory{},
		wds:         map[int32]*directory{},
	}
}

// Watch calls trigger (at most once per MinTriggerInterval, outside the
// watcher's lock; it must not block) whenever dir/name is created, touched,
// closed after a write or renamed into place, until the subscription is
// cancelled, and once after an overflow of the kernel's event queue or when
// the directory is watched again after a suspension. A trigger only says
// that the file may have changed. It fails with ErrNotSetUp when dir does
// not exist, and with another error when dir cannot be watched (the caller
// then probes periodically, and may try again later). dir is not followed
// if it is a symbolic link: that is an error.
func (w *Watcher) Watch(dir, name string, trigger func()) (*Subscription, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errClosed
	}
	ino, err := w.instance()
	if err != nil {
		return nil, err
	}
	d := w.dirs[dir]
	if d == nil {
		d = &directory{path: dir, state: lost, wd: -1, files: map[string]map[*Subscription]struct{}{}}
	}
	switch d.state {
	case lost:
		if err := w.add(ino, d); err != nil {
			return nil, err
		}
	case watching:
		if err := w.recheck(ino, d); err != nil {
			return nil, err
		}
	}
	w.dirs[dir] = d
	s := &Subscription{w: w, d: d, name: name, trigger: trigger}
	if d.files[name] == nil {
		d.files[name] = map[*Subscription]struct{}{}
	}
	d.files[name][s] = struct{}{}
	d.count++
	return s, nil
}

// add watches d; w.mu is held.
func (w *Watcher) add(ino instance, d *directory) error {
	wd, err := ino.addWatch(d.path, watchMask)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ErrNotSetUp
		}
		return fmt.Errorf("watching %s: %w", d.path, err)
	}
	if other := w.wds[wd]; other != nil && other != d {
		// IN_MASK_CREATE makes this EEXIST; never share a descriptor.
		return fmt.Errorf("watching %s: the directory is already watched as %s", d.path, other.path)
	}
	d.state, d.wd = watching, wd
	w.wds[wd] = d
	d.tokens, d.tokensAt = budgetBurst, w.clock.Now()
	return nil
}

// recheck makes sure that a watched directory's watch is still on the
// directory at its path: it may have been deleted or moved away and another
// made in its place, before the watcher read the IN_IGNORED of its watch.
// It costs one inotify_add_watch, which fails with EEXIST (IN_MASK_CREATE)
// when the watch is still the directory's. w.mu is held.
func (w *Watcher) recheck(ino instance, d *directory) error {
	wd, err := ino.addWatch(d.path, watchMask)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return ErrNotSetUp
	case err != nil:
		return fmt.Errorf("watching %s: %w", d.path, err)
	}
	// A new directory: the old watch is gone or on a directory moved away.
	delete(w.wds, d.wd)
	_ = ino.rmWatch(d.wd)
	if other := w.wds[wd]; other != nil {
		d.state, d.wd = lost, -1
		return fmt.Errorf("watching %s: the directory is already watched as %s", d.path, other.path)
	}
	d.wd = wd
	w.wds[wd] = d
	return nil
}

// Cancel ends the subscription; the directory is unwatched when it was the
// last one. Cancelling twice is harmless. A trigger that was being
// dispatched when Cancel was called may still run once, concurrently or
// just after: a trigger must be harmless then.
func (s *Subscription) Cancel() {
	s.cancelled.Store(true)
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	d := s.d
	if w.dirs[d.path] != d {
		return
	}
	subs := d.files[s.name]
	if _, ok := subs[s]; !ok {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(d.files, s.name)
	}
	d.count--
	if d.count > 0 {
		return
	}
	switch d.state {
	case watching:
		delete(w.wds, d.wd)
		// The directory may be gone already (the pod was torn down),
		// which removed the watch with it.
		_ = w.ino.rmWatch(d.wd)
		delete(w.dirs, d.path)
	case lost:
		delete(w.dirs, d.path)
	case suspended:
		// Kept until its back-off ends, so that subscribing again does not
		// renew its budget.
	}
}

// Watched returns the number of directories with subscribers, watched or
// suspended.
func (w *Watcher) Watched() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, d := range w.dirs {
		if d.count > 0 {
			n++
		}
	}
	return n
}

// Suspended returns the number of directories with subscribers that are
// not watched for now because they were over their event budget.
func (w *Watcher) Suspended() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, d := range w.dirs {
		if d.count > 0 && d.state == suspended {
			n++
		}
	}
	return n
}

// Close stops watching; subsequent Watch calls fail. It does not wait for
// triggers being called.
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	for _, d := range w.dirs {
		if d.timer != nil {
			d.timer.Stop()
		}
	}
	w.dirs, w.wds = map[string]*directory{}, map[int32]*directory{}
	if w.ino == nil {
		return nil
	}
	ino := w.ino
	w.ino = nil
	return ino.close()
}

// instance returns the inotify instance, making it (and its reader) if
// there is none; after a failure, it tries again once its back-off ended.
// w.mu is held.
func (w *Watcher) instance() (instance, error) {
	if w.ino != nil {
		return w.ino, nil
	}
	now := w.clock.Now()
	if w.initErr != nil && now.Before(w.initRetry) {
		return nil, w.initErr
	}
	ino, err := w.newInstance()
	if err != nil {
		w.initBackoff = nextBackoff(w.initBackoff, time.Time{}, now)
		w.initRetry = now.Add(w.initBackoff)
		w.initErr = fmt.Errorf("making an inotify instance (next try in %s): %w", w.initBackoff, err)
		w.logger.V(4).Info("Cannot make the file probe watcher's inotify instance; file probes stay periodic", "err", err, "retryIn", w.initBackoff)
		return nil, w.initErr
	}
	w.ino, w.initErr, w.initBackoff = ino, nil, 0
	done := make(chan struct{})
	w.readerDone = done
	go w.read(ino, done)
	return ino, nil
}

// nextBackoff is the back-off after a failure: backoffInitial for a first
// one, or one more than backoffReset after the last recovery (at), else the
// previous one doubled, up to backoffMax. A zero at never resets.
func nextBackoff(prev time.Duration, at, now time.Time) time.Duration {
	if prev == 0 || (!at.IsZero() && now.Sub(at) >= backoffReset) {
		return backoffInitial
	}
	return min(2*prev, backoffMax)
}

// scratch is what a reader reuses from batch to batch.
type scratch struct {
	triggers  []*Subscription
	fallbacks []fallback
}

// fallback is one call of Options.OnFallback to make.
type fallback struct {
	dir    string
	subs   int
	reason error
}

// read is the reader of ino: it dispatches batches of events until ino is
// closed or fails.
func (w *Watcher) read(ino instance, done chan struct{}) {
	defer close(done)
	buf := make([]byte, readBufferSize)
	var sc scratch
	for {
		n, err := ino.read(buf)
		if err == nil && n == 0 {
			err = errors.New("read of 0 bytes")
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.fail(ino, err)
			}
			return
		}
		w.handle(ino, buf[:n], &sc)
	}
}

// fail drops ino after a read error: its directories are lost (their
// subscribers stay, periodic), and the next Watch makes a new instance.
func (w *Watcher) fail(ino instance, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ino != ino {
		return
	}
	w.logger.Info("The file probe watcher's inotify instance failed; watched file probes are periodic until watched again", "err", err)
	_ = ino.close()
	w.ino = nil
	for wd, d := range w.wds {
		d.state, d.wd = lost, -1
		delete(w.wds, wd)
	}
}

// handle dispatches one batch of raw events read from ino: it parses them
// in place, spends the directories' budgets, collects the subscribers to
// trigger and the fallbacks to report under the lock, and calls them after.
func (w *Watcher) handle(ino instance, buf []byte, sc *scratch) {
	sc.triggers, sc.fallbacks = sc.triggers[:0], sc.fallbacks[:0]
	w.mu.Lock()
	if w.ino != ino {
		w.mu.Unlock()
		return
	}
	now := w.clock.Now()
	w.batch++
	for len(buf) >= eventHeader {
		wd := int32(binary.NativeEndian.Uint32(buf[0:4]))
		mask := binary.NativeEndian.Uint32(buf[4:8])
		size := eventHeader + int(binary.NativeEndian.Uint32(buf[12:16]))
		if size > len(buf) {
			break // never from the kernel: it returns whole events
		}
		name := buf[eventHeader:size]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		buf = buf[size:]
		switch {
		case mask&inQOverflow != 0:
			w.overflow(now, sc)
			continue
		case mask&inIgnored != 0:
			w.ignored(wd)
			continue
		}
		d := w.wds[wd]
		if d == nil || mask&triggeringEvents == 0 {
			// Events of a watch removed (suspended, cancelled) but already
			// queued, or IN_UNMOUNT (IN_IGNORED follows).
			continue
		}
		if !d.spend(now) {
			w.suspend(d, now, sc)
			continue
		}
		// A map lookup by string(name) does not allocate.
		for s := range d.files[string(name)] {
			w.queue(s, now, false, sc)
		}
	}
	w.mu.Unlock()

	for _, f := range sc.fallbacks {
		w.callFallback(f)
	}
	for _, s := range sc.triggers {
		if !s.cancelled.Load() {
			w.callTrigger(s)
		}
	}
	clear(sc.triggers) // let cancelled subscriptions go
}

// queue adds s to the triggers of the batch, unless it was triggered less
// than MinTriggerInterval ago (force ignores that) or is queued already.
// w.mu is held.
func (w *Watcher) queue(s *Subscription, now time.Time, force bool, sc *scratch) {
	t := now.UnixNano()
	if s.batch == w.batch || (!force && t-s.last < int64(MinTriggerInterval)) {
		return
	}
	s.batch, s.last = w.batch, t
	sc.triggers = append(sc.triggers, s)
}

// spend takes one event from the directory's budget, and says whether
// there was one left.
func (d *directory) spend(now time.Time) bool {
	if elapsed := now.Sub(d.tokensAt); elapsed > 0 {
		d.tokens = min(budgetBurst, d.tokens+elapsed.Seconds()*budgetRate)
		d.tokensAt = now
	}
	if d.tokens < 1 {
		return false
	}
	d.tokens--
	return true
}

// suspend unwatches a directory over budget until its back-off ends.
// w.mu is held.
func (w *Watcher) suspend(d *directory, now time.Time, sc *scratch) {
	delete(w.wds, d.wd)
	_ = w.ino.rmWatch(d.wd) // its events already queued are dropped: no longer in wds
	d.state, d.wd = suspended, -1
	d.backoff = nextBackoff(d.backoff, d.watchedAt, now)
	d.timer = w.clock.AfterFunc(d.backoff, func() {
		// Not in the clock's callback: a fake clock calls it under its
		// own lock.
		go w.resume(d)
	})
	w.onceLogger(&w.suspendLogged).Info("Too many file events in a directory watched for file probes: not watching it for a while, its probes are periodic (logged once, then at -v=4)",
		"dir", d.path, "subscriptions", d.count, "burst", budgetBurst, "ratePerSecond", budgetRate, "retryIn", d.backoff)
	if d.count > 0 && w.onFallback != nil {
		sc.fallbacks = append(sc.fallbacks, fallback{dir: d.path, subs: d.count,
			reason: fmt.Errorf("%w: more than %d events at once or %d per second; watched again in %s", ErrOverBudget, budgetBurst, budgetRate, d.backoff)})
	}
}

// resume watches a suspended directory again once its back-off ended, if it
// still has subscribers, and triggers them once: their files may have
// changed meanwhile.
func (w *Watcher) resume(d *directory) {
	var sc scratch
	w.mu.Lock()
	if w.closed || w.dirs[d.path] != d || d.state != suspended {
		w.mu.Unlock()
		return
	}
	d.timer = nil
	if d.count == 0 {
		delete(w.dirs, d.path)
		w.mu.Unlock()
		return
	}
	now := w.clock.Now()
	ino, err := w.instance()
	if err == nil {
		err = w.add(ino, d)
	}
	switch {
	case err == nil:
		d.watchedAt = now
		w.batch++
		for _, subs := range d.files {
			for s := range subs {
				w.queue(s, now, true, &sc)
			}
		}
		w.logger.V(4).Info("Watching a directory for file probes again", "dir", d.path, "subscriptions", d.count)
	case errors.Is(err, ErrNotSetUp):
		d.state = lost
	default:
		// inotify limits, most likely: try again later.
		d.backoff = nextBackoff(d.backoff, time.Time{}, now)
		d.timer = w.clock.AfterFunc(d.backoff, func() { go w.resume(d) })
		w.logger.V(4).Info("Cannot watch a directory for file probes again; its probes stay periodic", "dir", d.path, "err", err, "retryIn", d.backoff)
	}
	w.mu.Unlock()
	for _, s := range sc.triggers {
		if !s.cancelled.Load() {
			w.callTrigger(s)
		}
	}
}

// overflow handles IN_Q_OVERFLOW: events were lost, so every subscriber is
// triggered once, whatever its rate limit. w.mu is held.
func (w *Watcher) overflow(now time.Time, sc *scratch) {
	n := 0
	for _, d := range w.dirs {
		for _, subs := range d.files {
			for s := range subs {
				w.queue(s, now, true, sc)
				n++
			}
		}
	}
	if logger := w.onceLogger(&w.overflowLogged); logger.Enabled() {
		logger.Info("The file probe watcher's event queue overflowed: probing every watched file once (logged once, then at -v=4)", "subscriptions", n)
	}
}

// ignored handles IN_IGNORED: the kernel removed a watch. For a watch the
// watcher removed itself, the descriptor is no longer known; otherwise the
// directory was deleted or unmounted, and its subscribers stay periodic.
// w.mu is held.
func (w *Watcher) ignored(wd int32) {
	d := w.wds[wd]
	if d == nil {
		return
	}
	delete(w.wds, wd)
	d.state, d.wd = lost, -1
	if d.count == 0 {
		delete(w.dirs, d.path)
	}
	w.logger.V(4).Info("A directory watched for file probes is gone; its probes are periodic", "dir", d.path, "subscriptions", d.count)
}

// callTrigger calls a subscriber's trigger under panic recovery.
func (w *Watcher) callTrigger(s *Subscription) {
	defer w.recover("trigger", s.d.path, s.name)
	s.trigger()
}

// callFallback calls Options.OnFallback under panic recovery.
func (w *Watcher) callFallback(f fallback) {
	defer w.recover("fallback callback", f.dir, "")
	w.onFallback(f.dir, f.subs, f.reason)
}

// recover logs a panic of a callback, which must not stop the watcher.
func (w *Watcher) recover(what, dir, name string) {
	r := recover()
	if r == nil {
		return
	}
	w.onceLogger(&w.panicLogged).Info("File probe watcher: a "+what+" panicked; the watcher goes on (logged once, then at -v=4)",
		"dir", dir, "file", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}

// onceLogger is the watcher's logger the first time logged is consulted,
// then its -v=4 logger.
func (w *Watcher) onceLogger(logged *atomic.Bool) klog.Logger {
	if logged.CompareAndSwap(false, true) {
		return w.logger
	}
	return w.logger.V(4)
}
