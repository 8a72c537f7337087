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
// (github.com/fsnotify/fsnotify) for the whole kubelet, it watches the
// directories of probe files whose probes have not succeeded yet, and calls
// a subscriber's trigger as soon as its file is created, written, touched or
// renamed into place. A trigger only asks for a probe now rather than at the
// next period: the probe itself still resolves and examines the file
// securely, so whatever the container does in the directory (symbolic links,
// renames, floods of events) can at most make a probe run, never change its
// result, and a subscriber's triggers are rate-limited.
//
// Directories are watched once however many subscribers they have, and
// unwatched when the last one cancels. When a directory cannot be watched
// (inotify limits, or any other error) the subscriber is told, and its probe
// stays periodic.
package filewatch

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2"
)

// MinTriggerInterval is the least time between two triggers of one
// subscriber: a container touching its file in a tight loop makes its probe
// run at most this often, on top of its period.
const MinTriggerInterval = 200 * time.Millisecond

// ErrNotSetUp is returned by Watch when the directory does not exist (yet):
// the caller may try again later.
var ErrNotSetUp = errors.New("the directory does not exist")

// Watcher watches directories for its subscribers. The zero value is not
// usable; call New. All methods are safe for concurrent use.
type Watcher struct {
	logger klog.Logger
	// newFS makes the inotify instance, on first use; a variable for tests.
	newFS func() (fsWatcher, error)

	// errorLogged is set once a watch error was logged at the default
	// verbosity: a container flooding its volume with events must not flood
	// the kubelet's log with overflows.
	errorLogged atomic.Bool

	mu sync.Mutex
	fs fsWatcher
	// broken is why the inotify instance could not be made or failed: every
	// Watch fails with it, and probes stay periodic.
	broken error
	dirs   map[string]*directory
}

// fsWatcher is what Watcher needs of *fsnotify.Watcher.
type fsWatcher interface {
	Add(path string) error
	Remove(path string) error
	Close() error
	events() <-chan fsnotify.Event
	errors() <-chan error
}

type notifyWatcher struct{ *fsnotify.Watcher }

func (w notifyWatcher) events() <-chan fsnotify.Event { return w.Events }
func (w notifyWatcher) errors() <-chan error          { return w.Errors }

func newNotifyWatcher() (fsWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return notifyWatcher{w}, nil
}

// directory is one watched directory and its subscribers, by file name.
type directory struct {
	files map[string]map[*Subscription]struct{}
	count int
}

// Subscription is one subscriber's interest in one file.
type Subscription struct {
	w       *Watcher
	dir     string
	name    string
	trigger func()
	// last is when trigger was last called, in Unix nanoseconds.
	last atomic.Int64
}

// New returns a Watcher; it makes its inotify instance on first use.
func New(logger klog.Logger) *Watcher {
	return &Watcher{logger: logger, newFS: newNotifyWatcher, dirs: map[string]*directory{}}
}

// Watch calls trigger (at most once per MinTriggerInterval, and never
// blocking the watcher: it must not block) whenever dir/name is created,
// written, touched or renamed into place, until the subscription is
// cancelled. It fails with ErrNotSetUp when dir does not exist, and with
// another error when dir cannot be watched (the caller then probes
// periodically only).
func (w *Watcher) Watch(dir, name string, trigger func()) (*Subscription, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.start(); err != nil {
		return nil, err
	}
	d := w.dirs[dir]
	if d == nil {
		if err := w.fs.Add(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, ErrNotSetUp
			}
			return nil, fmt.Errorf("watching %s: %w", dir, err)
		}
		d = &directory{files: map[string]map[*Subscription]struct{}{}}
		w.dirs[dir] = d
	}
	s := &Subscription{w: w, dir: dir, name: name, trigger: trigger}
	if d.files[name] == nil {
		d.files[name] = map[*Subscription]struct{}{}
	}
	d.files[name][s] = struct{}{}
	d.count++
	return s, nil
}

// Cancel ends the subscription; the directory is unwatched when it was the
// last one. Cancelling twice is harmless.
func (s *Subscription) Cancel() {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.dirs[s.dir]
	if d == nil {
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
	if d.count == 0 {
		delete(w.dirs, s.dir)
		if w.fs != nil {
			// The directory may be gone already (the pod was torn down),
			// which removed the watch with it.
			_ = w.fs.Remove(s.dir)
		}
	}
}

// Watched returns the number of watched directories.
func (w *Watcher) Watched() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.dirs)
}

// start makes the inotify instance and its event loop, once; w.mu is held.
func (w *Watcher) start() error {
	if w.broken != nil {
		return w.broken
	}
	if w.fs != nil {
		return nil
	}
	fsw, err := w.newFS()
	if err != nil {
		w.broken = fmt.Errorf("making an inotify instance: %w", err)
		return w.broken
	}
	w.fs = fsw
	go w.loop(fsw)
	return nil
}

// loop dispatches the events of fsw until it is closed.
func (w *Watcher) loop(fsw fsWatcher) {
	events, errs := fsw.events(), fsw.errors()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return
			}
			w.dispatch(e)
		case err, ok := <-errs:
			if !ok {
				return
			}
			// An overflow loses events, not watches: the probes that missed
			// one still run at their period.
			logger := w.logger.V(4)
			if w.errorLogged.CompareAndSwap(false, true) {
				logger = w.logger
			}
			logger.Info("File probe watch error; probes that missed an event run at their period (logged once, then at -v=4)", "err", err)
		}
	}
}

// triggeringOps are the operations that may make a probe file fresh.
const triggeringOps = fsnotify.Create | fsnotify.Write | fsnotify.Chmod

func (w *Watcher) dispatch(e fsnotify.Event) {
	if e.Op&triggeringOps == 0 {
		return
	}
	dir, name := filepath.Dir(e.Name), filepath.Base(e.Name)
	now := time.Now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.dirs[dir]
	if d == nil {
		return
	}
	for s := range d.files[name] {
		if last := s.last.Load(); now-last >= int64(MinTriggerInterval) && s.last.CompareAndSwap(last, now) {
			s.trigger()
		}
	}
}

// Close stops watching; subsequent Watch calls fail.
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.broken = errors.New("the file probe watcher is closed")
	w.dirs = map[string]*directory{}
	if w.fs == nil {
		return nil
	}
	return w.fs.Close()
}
