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
	"strings"

	"github.com/containerd/ttrpc"
)

// containerd's runc shim runs runc for a task while it holds the task's
// process lock, and learns that runc exited from its reaper, which hands
// every exit of the shim's children to every subscriber in turn, waiting up
// to a second for each (pkg/sys/reaper, containerd v2.4.2). One of the
// subscribers is the task service's exit loop, with room for 32 exits; when
// it is itself waiting for a process lock held by a call that waits for
// runc's exit, and 32 exits are queued, the reaper delivers about one exit a
// second and every call waits behind it. A shim serves one pod's calls and
// never gets there; a shim shared by 300 pods did when they were deleted at
// once: calls timed out, the kubelet retried them, and 223 pods stayed
// Terminating (make bench, docs/shimless.md).
//
// So the shared shim runs at most RuncCallLimit of the calls that run runc at
// once, and queues the others (a queued call gives up when its caller's
// deadline passes): each makes about two exits (runc's, and that of the
// container it kills or deletes), 2 x 8 = 16, half the exit loop's room. The
// other calls (State, Wait, Stats, Connect, ...) run no runc and are not held
// up. Eight runc calls at once keep two cores busy; a runc call takes tens of
// milliseconds, so the queue moves at ~100 calls a second.
const RuncCallLimit = 8

// runcCalls are the methods of containerd's task API (containerd.task.v3.Task)
// whose handlers run runc.
var runcCalls = map[string]bool{
	"Create": true, "Start": true, "Delete": true, "Kill": true, "Pause": true,
	"Resume": true, "Checkpoint": true, "Update": true, "Pids": true,
}

// taskMethod is the method's name when info is a call of containerd's task
// API (containerd.task.v3.Task), else "".
func taskMethod(info *ttrpc.UnaryServerInfo) string {
	service, name, _ := strings.Cut(strings.TrimPrefix(info.FullMethod, "/"), "/")
	if service != "containerd.task.v3.Task" {
		return ""
	}
	return name
}

// Limiter is a shim plugin (shim.TTRPCServerUnaryOptioner) that holds the
// task API's runc calls to a number at once.
type Limiter struct{ sem chan struct{} }

// NewLimiter lets n runc calls run at once.
func NewLimiter(n int) *Limiter { return &Limiter{sem: make(chan struct{}, n)} }

// UnaryServerInterceptor is the shim's ttrpc server interceptor.
func (l *Limiter) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		if !runcCalls[taskMethod(info)] {
			return method(ctx, unmarshal)
		}
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-l.sem }()
		return method(ctx, unmarshal)
	}
}
