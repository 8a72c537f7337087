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

package sharedticker

import (
	"testing"
	"time"
)

// fakeClock drives a Scheduler: its timer fires only when the test says.
type fakeClock struct {
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool {
	was := !t.stopped
	t.stopped = true
	return was
}

func newFakeScheduler() (*Scheduler, *fakeClock) {
	c := &fakeClock{now: time.Unix(1000, 0)}
	s := &Scheduler{
		now: func() time.Time { return c.now },
		afterFunc: func(d time.Duration, f func()) stopper {
			t := &fakeTimer{at: c.now.Add(d), f: f}
			c.timers = append(c.timers, t)
			return t
		},
	}
	return s, c
}

// advance moves the clock to at, firing every timer due by then at its time.
func (c *fakeClock) advance(at time.Time) {
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && !t.at.After(at) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.stopped = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		next.f()
	}
	c.now = at
}

func (c *fakeClock) armed() int {
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// received returns the tick waiting on t, if any.
func received(t *Ticker) (time.Time, bool) {
	select {
	case v := <-t.C:
		return v, true
	default:
		return time.Time{}, false
	}
}

// tickStep advances the clock to at (with late, the timer fires only then,
// as a timer of a busy node fires late), then receives a tick (unless
// !receive) and expects it at want (0: none).
type tickStep struct {
	at, want time.Duration
	late     bool
	receive  bool
}

func TestTicks(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		steps []tickStep // from the ticker's creation at 0, with period 1s
	}{
		{
			name:  "on the grid",
			steps: []tickStep{{at: 999 * ms, receive: true}, {at: 1000 * ms, want: 1000 * ms, receive: true}, {at: 2000 * ms, want: 2000 * ms, receive: true}},
		},
		{
			name: "a late batch skips the ticks it missed and stays on the grid",
			steps: []tickStep{{at: 3500 * ms, want: 3500 * ms, late: true, receive: true},
				{at: 3999 * ms, receive: true}, {at: 4000 * ms, want: 4000 * ms, receive: true}},
		},
		{
			name:  "a tick not received is dropped, not queued",
			steps: []tickStep{{at: 1000 * ms}, {at: 2000 * ms, want: 1000 * ms, receive: true}, {at: 2500 * ms, receive: true}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newFakeScheduler()
			start := c.now
			tk := s.NewTicker(time.Second)
			for i, step := range tc.steps {
				if step.late {
					c.now = start.Add(step.at)
				}
				c.advance(start.Add(step.at))
				if !step.receive {
					continue
				}
				got, ok := received(tk)
				switch {
				case step.want == 0 && ok:
					t.Errorf("step %d at %v: tick %v, want none", i, step.at, got.Sub(start))
				case step.want != 0 && !ok:
					t.Errorf("step %d at %v: no tick, want one at %v", i, step.at, step.want)
				case step.want != 0 && !got.Equal(start.Add(step.want)):
					t.Errorf("step %d at %v: tick at %v, want %v", i, step.at, got.Sub(start), step.want)
				}
			}
		})
	}
}

func TestResetAndStop(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(*Ticker)
		// wantTickAt is when the next tick comes after op at 1.5s (0: never).
		wantTickAt time.Duration
	}{
		{name: "reset restarts the grid from now", op: func(t *Ticker) { t.Reset(2 * time.Second) }, wantTickAt: 3500 * time.Millisecond},
		{name: "stop", op: func(t *Ticker) { t.Stop() }},
		{name: "stop twice", op: func(t *Ticker) { t.Stop(); t.Stop() }},
		{name: "reset after stop", op: func(t *Ticker) { t.Stop(); t.Reset(time.Second) }, wantTickAt: 2500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newFakeScheduler()
			start := c.now
			tk := s.NewTicker(time.Second)
			c.advance(start.Add(1500 * time.Millisecond)) // a tick at 1s, not received
			tc.op(tk)
			if got, ok := received(tk); ok {
				t.Fatalf("a tick at %v is left after the reset or stop", got.Sub(start))
			}
			c.advance(start.Add(10 * time.Second))
			got, ok := received(tk)
			switch {
			case tc.wantTickAt == 0 && ok:
				t.Errorf("tick at %v, want none", got.Sub(start))
			case tc.wantTickAt == 0:
				if s.Len() != 0 || c.armed() != 0 {
					t.Errorf("stopped: %d tickers, %d timers armed; want none", s.Len(), c.armed())
				}
			case !ok:
				t.Errorf("no tick, want one")
			case got.Before(start.Add(tc.wantTickAt)):
				t.Errorf("first tick at %v, before %v", got.Sub(start), tc.wantTickAt)
			}
		})
	}
}

// TestBatches: tickers due within Quantum of a batch wait for the next
// batch, never tick early, and are at most Quantum late; one timer serves
// them all.
func TestBatches(t *testing.T) {
	s, c := newFakeScheduler()
	start := c.now
	const n = 100
	tickers := make([]*Ticker, n)
	for i := range tickers {
		// due 1s + i*0.1ms after start
		c.now = start.Add(time.Duration(i) * 100 * time.Microsecond)
		tickers[i] = s.NewTicker(time.Second)
	}
	if c.armed() != 1 {
		t.Fatalf("%d timers armed for %d tickers, want 1", c.armed(), n)
	}
	c.advance(start.Add(2 * time.Second))
	batches := map[time.Time]int{}
	for i, tk := range tickers {
		due := start.Add(time.Second + time.Duration(i)*100*time.Microsecond)
		got, ok := received(tk)
		if !ok {
			t.Fatalf("ticker %d: no tick", i)
		}
		if got.Before(due) || got.Sub(due) > Quantum {
			t.Errorf("ticker %d: due at %v, ticked at %v: want within [0, %v] after", i, due.Sub(start), got.Sub(start), Quantum)
		}
		batches[got]++
	}
	// 100 tickers due over 10ms: one batch at the first's time, one
	// Quantum later.
	if len(batches) != 2 {
		t.Errorf("%d batches, want 2: %v", len(batches), batches)
	}
	for _, tk := range tickers {
		tk.Stop()
	}
	if s.Len() != 0 || c.armed() != 0 {
		t.Errorf("all stopped: %d tickers, %d timers armed; want none", s.Len(), c.armed())
	}
}

func TestStdTicker(t *testing.T) {
	tk := NewStdTicker(time.Hour)
	tk.Reset(time.Hour)
	tk.Stop()
	if _, ok := received(tk); ok {
		t.Error("a time.Ticker of an hour ticked")
	}
}
