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

// Package sharedticker ticks many probe workers from one timer.
//
// A kubelet's probe worker waits for its next period on a time.Ticker of its
// own. For a probe that costs microseconds (a file probe: one statx), the
// machinery around the check is the cost: a thousand pods probed every
// second are a thousand timer expiries a second, each waking an idle thread
// that runs one probe and then looks for work again before it sleeps
// (docs/benchmarks.md measures it). A Scheduler keeps the tickers of many
// workers on one timer instead, and wakes them up in batches: it fires every
// ticker that is due, then sleeps until the next one is due, but at least
// Quantum after it last fired. A tick is therefore never early, and at most
// Quantum (plus the time to fire the batch) late; a node with few probes
// keeps exact ticks.
//
// A Ticker behaves as a time.Ticker does for its one receiver (Go 1.23
// semantics): a tick is dropped when the previous one was not received yet,
// the ticks stay on the grid of the ticker's start (a slow receiver skips
// ticks, it does not shift them), Reset restarts the grid from now and, like
// Stop, discards a tick not received yet.
package sharedticker

import (
	"container/heap"
	"sync"
	"time"
)

// Quantum is the least time between two batches of ticks of a Scheduler,
// and so the most a tick is late (plus the time to fire the batch): a
// hundredth of the shortest probe period.
const Quantum = 10 * time.Millisecond

// Scheduler ticks its tickers from one timer. Its zero value is ready to
// use; it holds no goroutine of its own (the timer's function runs on a
// goroutine of its own for each batch), so it needs no stopping.
type Scheduler struct {
	// now and afterFunc are the clock; nil means the time package's.
	now       func() time.Time
	afterFunc func(time.Duration, func()) stopper

	mu      sync.Mutex
	tickers tickerHeap
	// timer is armed for armedAt while a ticker is due, with generation
	// gen (a timer stopped too late to keep its function from running
	// does nothing); lastFired is when the last batch fired.
	timer     stopper
	gen       uint64
	armedAt   time.Time
	lastFired time.Time
}

type stopper interface{ Stop() bool }

// Ticker is a ticker of a Scheduler, or a time.Ticker: C, Reset and Stop as
// time.Ticker's, for one receiver.
type Ticker struct {
	// C delivers the ticks.
	C <-chan time.Time

	std *time.Ticker

	s      *Scheduler
	c      chan time.Time
	period time.Duration
	// next is when the ticker is next due, index its place in the
	// Scheduler's heap (-1 when stopped); both under s.mu.
	next  time.Time
	index int
}

// NewStdTicker returns a Ticker that is a time.Ticker: for callers that
// tick some workers from a Scheduler and others not.
func NewStdTicker(d time.Duration) *Ticker {
	t := time.NewTicker(d)
	return &Ticker{C: t.C, std: t}
}

// NewTicker returns a ticker of the Scheduler that ticks every d, the first
// time d from now. d must be positive.
func (s *Scheduler) NewTicker(d time.Duration) *Ticker {
	if d <= 0 {
		panic("sharedticker: non-positive interval for NewTicker")
	}
	c := make(chan time.Time, 1)
	t := &Ticker{C: c, s: s, c: c, period: d, index: -1}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.next = s.clock().Add(d)
	heap.Push(&s.tickers, t)
	s.arm()
	return t
}

// Reset stops the ticker, discards a tick not received yet, and restarts it
// with period d from now. d must be positive.
func (t *Ticker) Reset(d time.Duration) {
	if t.std != nil {
		t.std.Reset(d)
		return
	}
	if d <= 0 {
		panic("sharedticker: non-positive interval for Reset")
	}
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	t.drain()
	t.period = d
	t.next = s.clock().Add(d)
	if t.index >= 0 {
		heap.Fix(&s.tickers, t.index)
	} else {
		heap.Push(&s.tickers, t)
	}
	s.arm()
}

// Stop stops the ticker and discards a tick not received yet. A stopped
// ticker holds nothing of its Scheduler's.
func (t *Ticker) Stop() {
	if t.std != nil {
		t.std.Stop()
		return
	}
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	t.drain()
	if t.index >= 0 {
		heap.Remove(&s.tickers, t.index)
	}
	if len(s.tickers) == 0 && s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// Len returns how many tickers the Scheduler ticks.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tickers)
}

func (t *Ticker) drain() {
	select {
	case <-t.c:
	default:
	}
}

func (s *Scheduler) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// arm makes sure the timer fires when the first ticker is due, but not
// within Quantum of the last batch. Called with mu held.
func (s *Scheduler) arm() {
	if len(s.tickers) == 0 {
		return
	}
	at := s.tickers[0].next
	if earliest := s.lastFired.Add(Quantum); at.Before(earliest) {
		at = earliest
	}
	if s.timer != nil {
		if !at.Before(s.armedAt) {
			return // armed early enough
		}
		s.timer.Stop()
	}
	s.armedAt = at
	s.gen++
	gen := s.gen
	fire := func() { s.fire(gen) }
	d := at.Sub(s.clock())
	if s.afterFunc != nil {
		s.timer = s.afterFunc(d, fire)
	} else {
		s.timer = time.AfterFunc(d, fire)
	}
}

// fire ticks every ticker that is due, and arms the timer for the next.
func (s *Scheduler) fire(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || s.timer == nil {
		return // a timer stopped or replaced, too late to keep it from running
	}
	now := s.clock()
	s.timer = nil
	s.lastFired = now
	for len(s.tickers) > 0 && !s.tickers[0].next.After(now) {
		t := s.tickers[0]
		select {
		case t.c <- now:
		default: // the last tick was not received: drop this one
		}
		// Stay on the grid; a late batch skips the ticks it missed.
		t.next = t.next.Add(t.period * (1 + now.Sub(t.next)/t.period))
		heap.Fix(&s.tickers, 0)
	}
	s.arm()
}

// tickerHeap orders tickers by when they are next due.
type tickerHeap []*Ticker

func (h tickerHeap) Len() int           { return len(h) }
func (h tickerHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h tickerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *tickerHeap) Push(x any) {
	t := x.(*Ticker)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *tickerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}
