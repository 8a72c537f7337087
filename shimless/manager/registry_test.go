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
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

func TestRegistry(t *testing.T) {
	r := RegistryOf(filepath.Join(t.TempDir(), "s"))
	if tasks, err := r.Tasks(); err != nil || len(tasks) != 0 {
		t.Fatalf("a registry never written: %v, %v; want none", tasks, err)
	}
	for _, c := range []struct {
		id  string
		pid uint32
		ok  bool
	}{
		{"sandbox-0123", 100, true},
		{"container.b_c", 200, true},
		{"container.b_c", 201, true}, // replaced
		{"", 1, false},
		{".hidden", 1, false},
		{"../escape", 1, false},
		{"a/b", 1, false},
		{"no-pid", 0, false},
	} {
		if err := r.Add(c.id, c.pid); (err == nil) != c.ok {
			t.Errorf("Add(%q, %d): %v, want ok %v", c.id, c.pid, err, c.ok)
		}
	}
	want := map[string]int{"sandbox-0123": 100, "container.b_c": 201}
	if tasks, err := r.Tasks(); err != nil || !maps.Equal(tasks, want) {
		t.Fatalf("Tasks() = %v, %v; want %v", tasks, err, want)
	}
	for _, id := range []string{"sandbox-0123", "never-added", "../escape"} {
		if err := r.Remove(id); err != nil {
			t.Errorf("Remove(%q): %v", id, err)
		}
	}
	if tasks, _ := r.Tasks(); !maps.Equal(tasks, map[string]int{"container.b_c": 201}) {
		t.Errorf("after Remove: %v", tasks)
	}
	// A partial write (the temporary file) is never listed.
	if err := os.WriteFile(filepath.Join(r.Dir, ".x.tmp"), []byte("3"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tasks, _ := r.Tasks(); len(tasks) != 1 {
		t.Errorf("a temporary file listed: %v", tasks)
	}
}

// TestRegistryInterceptor calls the interceptor as the shim's ttrpc server
// does: the method decodes its request through the unmarshaler it is given.
func TestRegistryInterceptor(t *testing.T) {
	r := RegistryOf(filepath.Join(t.TempDir(), "s"))
	var logged []string
	intercept := r.UnaryServerInterceptor(func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) })
	call := func(method string, req proto.Message, resp any, err error) {
		t.Helper()
		b, merr := proto.Marshal(req)
		if merr != nil {
			t.Fatal(merr)
		}
		unmarshal := func(v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
		m := func(ctx context.Context, unmarshal func(any) error) (any, error) {
			// As containerd's generated service: a new request, decoded.
			fresh := req.ProtoReflect().New().Interface()
			if err := unmarshal(fresh); err != nil {
				return nil, err
			}
			return resp, err
		}
		got, gerr := intercept(context.Background(), unmarshal, &ttrpc.UnaryServerInfo{FullMethod: "/containerd.task.v3.Task/" + method}, m)
		if got != resp || !errors.Is(gerr, err) {
			t.Fatalf("%s: the interceptor returned %v, %v; want the method's %v, %v", method, got, gerr, resp, err)
		}
	}
	for _, step := range []struct {
		what   string
		method string
		req    proto.Message
		resp   any
		err    error
		want   map[string]int
	}{
		{"a created task is listed", "Create", &taskAPI.CreateTaskRequest{ID: "a"}, &taskAPI.CreateTaskResponse{Pid: 10}, nil, map[string]int{"a": 10}},
		{"a failed Create lists nothing", "Create", &taskAPI.CreateTaskRequest{ID: "b"}, nil, errors.New("runc failed"), map[string]int{"a": 10}},
		{"another task", "Create", &taskAPI.CreateTaskRequest{ID: "c"}, &taskAPI.CreateTaskResponse{Pid: 30}, nil, map[string]int{"a": 10, "c": 30}},
		{"deleting an exec keeps the task", "Delete", &taskAPI.DeleteRequest{ID: "a", ExecID: "exec-1"}, &taskAPI.DeleteResponse{}, nil, map[string]int{"a": 10, "c": 30}},
		{"a failed Delete keeps it", "Delete", &taskAPI.DeleteRequest{ID: "a"}, nil, errors.New("busy"), map[string]int{"a": 10, "c": 30}},
		{"a deleted task is forgotten", "Delete", &taskAPI.DeleteRequest{ID: "a"}, &taskAPI.DeleteResponse{}, nil, map[string]int{"c": 30}},
		{"other calls change nothing", "Kill", &taskAPI.KillRequest{ID: "c"}, &taskAPI.DeleteResponse{}, nil, map[string]int{"c": 30}},
		{"a task without a pid is not listed, and said", "Create", &taskAPI.CreateTaskRequest{ID: "d"}, &taskAPI.CreateTaskResponse{}, nil, map[string]int{"c": 30}},
	} {
		call(step.method, step.req, step.resp, step.err)
		if tasks, err := r.Tasks(); err != nil || !maps.Equal(tasks, step.want) {
			t.Fatalf("%s: listed %v (%v), want %v", step.what, tasks, err, step.want)
		}
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "task d not recorded") {
		t.Errorf("logged %q, want one line about task d", logged)
	}
}

// TestCleanUpKillsListedTasksWithoutBundles: containerd removed the bundles
// of most of the dead shim's tasks; the registry still names them.
func TestCleanUpKillsListedTasksWithoutBundles(t *testing.T) {
	sockDir := socketDir(t)
	dead := filepath.Join(sockDir, "dead")
	deadSocket(t, dead)
	taskDir := t.TempDir()
	reg := RegistryOf(dead)
	a, b, reused := sleeper(t), sleeper(t), sleeper(t)
	writeBundle(t, taskDir, "deleting", "unix://"+dead, b) // the delete's own bundle
	for id, pid := range map[string]int{"deleting": b, "bundle-gone": a, "exited": 0x3fffffff, "pid-reused": reused} {
		if err := reg.Add(id, uint32(pid)); err != nil {
			t.Fatal(err)
		}
	}
	var killed []string
	k := &orphanKiller{TaskDir: taskDir, Executable: "/usr/local/bin/containerd-shim-shimless-v2",
		Kill: func(id string, pid int) error {
			if id == "pid-reused" {
				return fmt.Errorf("process %d: %w", pid, errNotContainer)
			}
			killed = append(killed, fmt.Sprintf("%s/%d", id, pid))
			return nil
		}}
	n, err := k.cleanUp("deleting")
	want := []string{fmt.Sprintf("bundle-gone/%d", a), fmt.Sprintf("deleting/%d", b)}
	if err != nil || n != 2 || !slices.Equal(killed, want) {
		t.Fatalf("killed %d %q (err %v), want %q", n, killed, err, want)
	}
	// What was killed, what had exited and what is no container of this id
	// are forgotten.
	if tasks, err := reg.Tasks(); err != nil || len(tasks) != 0 {
		t.Errorf("listed after the cleanup: %v (%v), want none", tasks, err)
	}
}

func TestAdoptKillsListedOrphansAndKeepsItsOwn(t *testing.T) {
	sockDir := socketDir(t)
	sock := filepath.Join(sockDir, "s")
	l, err := net.Listen("unix", sock) // the new instance
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := RegistryOf(sock)
	orphan, own := sleeper(t), sleeper(t)
	// The test binary is the sleepers' parent: "own" stands for a container
	// of the new instance (the parent a shim of ours), "orphan" for one of a
	// dead instance (checked with another executable as ours).
	for id, pid := range map[string]int{"left": orphan, "own": own} {
		if err := reg.Add(id, uint32(pid)); err != nil {
			t.Fatal(err)
		}
	}
	self, _ := os.Executable()
	var killed []string
	k := &orphanKiller{TaskDir: t.TempDir(), Executable: self,
		Kill: func(id string, pid int) error { killed = append(killed, id); return nil }}
	if n, err := k.Adopt("unix://" + sock); n != 0 || err != nil || killed != nil {
		t.Fatalf("Adopt with every listed init a child of a shim of ours: killed %d %q (%v)", n, killed, err)
	}
	if tasks, _ := reg.Tasks(); len(tasks) != 2 {
		t.Fatalf("live tasks forgotten: %v", tasks)
	}
	k.Executable = "/usr/local/bin/containerd-shim-shimless-v2"
	if n, err := k.Adopt("unix://" + sock); n != 2 || err != nil {
		t.Fatalf("Adopt of orphans: killed %d %q (%v), want 2", n, killed, err)
	}
	if tasks, _ := reg.Tasks(); len(tasks) != 0 {
		t.Errorf("killed tasks still listed: %v", tasks)
	}
}
