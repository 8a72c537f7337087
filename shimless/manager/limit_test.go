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

package manager

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
)

func TestLimiter(t *testing.T) {
	const n = 3
	intercept := NewLimiter(n).UnaryServerInterceptor()
	release := make(chan struct{})
	var running, most atomic.Int32
	blocking := func(ctx context.Context, _ func(any) error) (any, error) {
		r := running.Add(1)
		for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
		}
		<-release
		running.Add(-1)
		return "done", nil
	}
	call := func(ctx context.Context, method string, m ttrpc.Method) (any, error) {
		return intercept(ctx, nil, &ttrpc.UnaryServerInfo{FullMethod: "/containerd.task.v3.Task/" + method}, m)
	}

	// Twice the limit of Kill and Delete calls: n run, n wait.
	var wg sync.WaitGroup
	for i := 0; i < 2*n; i++ {
		wg.Add(1)
		method := []string{"Kill", "Delete"}[i%2]
		go func() {
			defer wg.Done()
			if out, err := call(context.Background(), method, blocking); err != nil || out != "done" {
				t.Errorf("%s: %v, %v", method, out, err)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := running.Load(); got != n {
		t.Fatalf("%d runc calls running, want the limit %d", got, n)
	}

	// Calls that run no runc pass while the limit is reached.
	quick := func(context.Context, func(any) error) (any, error) { return "state", nil }
	for _, method := range []string{"State", "Wait", "Stats", "Connect"} {
		if out, err := call(context.Background(), method, quick); err != nil || out != "state" {
			t.Errorf("%s while the runc calls are held: %v, %v", method, out, err)
		}
	}
	// A queued call gives up with its caller's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := call(ctx, "Start", quick); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a queued Start past its deadline: %v, want %v", err, context.DeadlineExceeded)
	}

	close(release)
	wg.Wait()
	if most.Load() != n {
		t.Errorf("at most %d runc calls ran at once, want %d", most.Load(), n)
	}
}
