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
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
)

// The cleanups after a dead shim (orphans.go) first found its containers by
// their bundles, but containerd removes a task's bundle once its delete has
// run, whether or not that delete killed the container: after the death of a
// shim of 300 pods, 500 container processes were left whose bundles were
// gone before anything could find them (docs/shimless.md). So the shim keeps
// its own list of the tasks it serves, beside its socket where containerd's
// cleanup does not reach (/run/containerd/s/<hash>.shimless-tasks/<id>, the
// init's pid in each file): written when Create returns, removed when the
// task's Delete does, and read by both cleanups. A list that outlives its
// tasks costs nothing but a file: an entry's pid is killed only when it has
// lost its parent and its cgroup is named after the entry's id.

// tasksSuffix names the directory beside a shim's socket that lists its tasks.
const tasksSuffix = ".shimless-tasks"

// Registry is the list of the tasks the shim at a socket serves.
type Registry struct{ Dir string }

// RegistryOf is the registry of the shim listening at the socket path.
func RegistryOf(socket string) Registry { return Registry{Dir: socket + tasksSuffix} }

// validID tells whether id can name a file in the registry (containerd's
// identifiers are [A-Za-z0-9_.-], not starting with a dot or dash).
func validID(id string) bool {
	return id != "" && id[0] != '.' && !strings.ContainsAny(id, "/\x00")
}

// Add records that task id runs with init pid. The file is replaced
// atomically: a cleanup never reads half a pid.
func (r Registry) Add(id string, pid uint32) error {
	if !validID(id) || pid == 0 {
		return fmt.Errorf("task %q, pid %d: not recorded", id, pid)
	}
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(r.Dir, "."+id+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(uint64(pid), 10)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(r.Dir, id))
}

// Remove forgets task id (no error when it is not listed).
func (r Registry) Remove(id string) error {
	if !validID(id) {
		return nil
	}
	if err := os.Remove(filepath.Join(r.Dir, id)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// Tasks returns the listed tasks and their init pids (none when the
// directory does not exist; unreadable entries are skipped).
func (r Registry) Tasks() (map[string]int, error) {
	entries, err := os.ReadDir(r.Dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	tasks := map[string]int{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !validID(e.Name()) {
			continue
		}
		if pid, err := readPid(filepath.Join(r.Dir, e.Name())); err == nil {
			tasks[e.Name()] = pid
		}
	}
	return tasks, nil
}

// UnaryServerInterceptor keeps the registry up to date from the task API:
// a successful Create adds its task, a successful Delete of a task's init
// process (no exec id) removes it. Other calls pass untouched.
func (r Registry) UnaryServerInterceptor(logf func(format string, args ...any)) ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		if name := taskMethod(info); name != "Create" && name != "Delete" {
			return method(ctx, unmarshal)
		}
		var req any
		resp, err := method(ctx, func(v any) error {
			req = v
			return unmarshal(v)
		})
		if err != nil {
			return resp, err
		}
		switch q := req.(type) {
		case *taskAPI.CreateTaskRequest:
			if p, ok := resp.(*taskAPI.CreateTaskResponse); ok {
				if err := r.Add(q.GetID(), p.GetPid()); err != nil {
					logf("shimless: task %s not recorded: %v", q.GetID(), err)
				}
			}
		case *taskAPI.DeleteRequest:
			if q.GetExecID() == "" {
				if err := r.Remove(q.GetID()); err != nil {
					logf("shimless: task %s not forgotten: %v", q.GetID(), err)
				}
			}
		}
		return resp, err
	}
}

// ServingRegistry is the registry of the serving shim: that of the listening
// socket containerd's manager hands it as fd 3.
func ServingRegistry() (Registry, error) {
	path, err := servingSocket()
	if err != nil {
		return Registry{}, err
	}
	return RegistryOf(path), nil
}

// servingSocket is the path of the serving shim's listening socket (fd 3).
func servingSocket() (string, error) {
	sa, err := unix.Getsockname(3)
	if err != nil {
		return "", fmt.Errorf("the listening socket (fd 3): %w", err)
	}
	u, ok := sa.(*unix.SockaddrUnix)
	if !ok || !filepath.IsAbs(u.Name) {
		return "", fmt.Errorf("fd 3 is no unix socket with a path: %#v", sa)
	}
	return u.Name, nil
}
