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
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sleeper starts a child process that lives until the test ends.
func sleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// socketDir is a directory for unix sockets, whose paths must be short (108
// bytes; t.TempDir's may be longer).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shimless-s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// deadSocket leaves a unix socket file nothing listens on, as a shim killed
// with SIGKILL does.
func deadSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
}

// writeBundle writes a task bundle: bootstrap.json naming address (none if
// empty) and init.pid (none if 0).
func writeBundle(t *testing.T, taskDir, id, address string, pid int) {
	t.Helper()
	dir := filepath.Join(taskDir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if address != "" {
		b := fmt.Sprintf(`{"version":3,"address":%q,"protocol":"ttrpc"}`, address)
		if err := os.WriteFile(filepath.Join(dir, "bootstrap.json"), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if pid != 0 {
		if err := os.WriteFile(filepath.Join(dir, "init.pid"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCleanUpKillsTheDeadShimsContainers(t *testing.T) {
	sockDir := socketDir(t)
	dead, live := filepath.Join(sockDir, "dead"), filepath.Join(sockDir, "live")
	deadSocket(t, dead)
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	taskDir := t.TempDir()
	a, b, other := sleeper(t), sleeper(t), sleeper(t)
	writeBundle(t, taskDir, "sandbox-a", "unix://"+dead, a)
	writeBundle(t, taskDir, "container-b", "unix://"+dead, b)
	writeBundle(t, taskDir, "exited", "unix://"+dead, 0x3fffffff) // no such process
	writeBundle(t, taskDir, "no-pid", "unix://"+dead, 0)
	writeBundle(t, taskDir, "live-shim", "unix://"+live, other)
	writeBundle(t, taskDir, "no-bootstrap", "", other)
	if err := os.WriteFile(filepath.Join(taskDir, "a-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	var killed []string
	record := func(id string, pid int) error { killed = append(killed, fmt.Sprintf("%s/%d", id, pid)); return nil }
	// The sleepers' parent is this test binary: as a shim binary, its
	// children are a live shim's; as anything else, they are orphans.
	self, _ := os.Executable()
	k := &orphanKiller{TaskDir: taskDir, Executable: "/usr/local/bin/containerd-shim-shimless-v2", Kill: record}

	n, err := k.cleanUp("container-b")
	want := []string{fmt.Sprintf("container-b/%d", b), fmt.Sprintf("sandbox-a/%d", a)}
	if err != nil || n != 2 || !slices.Equal(killed, want) {
		t.Fatalf("first delete after the shim died: killed %d %q (err %v), want %q", n, killed, err, want)
	}
	rec, _ := os.ReadFile(dead + cleanupSuffix)
	if !strings.Contains(string(rec), "killed 2 of the dead shim's containers, first delete container-b") {
		t.Errorf("cleanup record %q", rec)
	}

	killed = nil
	if n, err := k.cleanUp("sandbox-a"); n != 0 || err != nil || killed != nil {
		t.Errorf("a second delete of the same dead shim killed %d %q (err %v), want none", n, killed, err)
	}
	if n, _ := k.cleanUp("live-shim"); n != 0 || killed != nil {
		t.Errorf("a delete of a live shim's task killed %d %q, want none", n, killed)
	}
	if n, _ := k.cleanUp("no-bootstrap"); n != 0 || killed != nil {
		t.Errorf("a delete of a task without bootstrap.json killed %d %q, want none", n, killed)
	}

	// A new instance of the shim that died too (a new socket file): its
	// containers are cleaned up again, unless a shim of ours is their parent.
	os.Remove(dead)
	deadSocket(t, dead)
	k.Executable = self
	if n, _ := k.cleanUp("sandbox-a"); n != 0 || killed != nil {
		t.Errorf("containers whose parent is a shim of ours: killed %d %q, want none", n, killed)
	}
	k.Executable = "/usr/local/bin/containerd-shim-shimless-v2"
	os.Remove(dead)
	deadSocket(t, dead)
	if n, _ := k.cleanUp("sandbox-a"); n != 2 {
		t.Errorf("a dead new instance: killed %d %q, want 2", n, killed)
	}

	// A kill that fails is reported, and the others are still killed.
	killed = nil
	os.Remove(dead)
	deadSocket(t, dead)
	k.Kill = func(id string, pid int) error {
		if id == "sandbox-a" {
			return fmt.Errorf("refused")
		}
		return record(id, pid)
	}
	if n, err := k.cleanUp("sandbox-a"); n != 1 || err == nil || !strings.Contains(err.Error(), "sandbox-a") {
		t.Errorf("one kill failing: killed %d %q, err %v; want 1 and an error naming sandbox-a", n, killed, err)
	}
}

func TestParentOf(t *testing.T) {
	if got, err := parentOf(os.Getpid()); err != nil || got != os.Getppid() {
		t.Errorf("parentOf(self) = %d, %v; want %d", got, err, os.Getppid())
	}
	// A command name with spaces and parentheses.
	dir := t.TempDir()
	odd := filepath.Join(dir, "a) b (c")
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if got, err := parentOf(cmd.Process.Pid); err != nil || got != os.Getpid() {
		t.Errorf("parentOf(%q) = %d, %v; want %d", odd, got, err, os.Getpid())
	}
}

func TestCgroupKillTouchesOnlyTheContainersCgroup(t *testing.T) {
	pid := sleeper(t)
	if err := cgroupKiller()("0123456789abcdef-not-its-container", pid); err == nil {
		t.Fatal("killed a process outside the container's cgroup")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Errorf("the process is gone: %v", err)
	}
}

// TestCgroupKill puts a process, and two it forks afterwards, in a cgroup
// named after a container, in each kind of hierarchy the host has (cgroup
// v2, or the unified hierarchy of a hybrid host; the pids controller of
// cgroup v1), and kills them by the cgroup.
func TestCgroupKill(t *testing.T) {
	m := cgroupMounts()
	hierarchies := map[string]string{}
	if m.v2 != "" {
		hierarchies["cgroup v2 (cgroup.kill)"] = m.v2
	}
	if pids, ok := m.v1["pids"]; ok {
		hierarchies["cgroup v1 (pids, SIGKILL)"] = pids
	}
	if len(hierarchies) == 0 {
		t.Fatal("no cgroup v2 mount and no cgroup v1 pids controller in /proc/self/mountinfo")
	}
	for name, mount := range hierarchies {
		t.Run(name, func(t *testing.T) {
			id := fmt.Sprintf("shimless-test-%d-%x", os.Getpid(), len(name))
			dir := filepath.Join(mount, id)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatalf("a cgroup for the test (run as root): %v", err)
			}
			t.Cleanup(func() { os.Remove(dir) })
			cmd := exec.Command("sh", "-c", "read x; sleep 600 & sleep 600 & wait")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }() // reaps it when killed
			pid := cmd.Process.Pid
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
				cmd.Process.Kill()
				t.Fatal(err)
			}
			stdin.Write([]byte("\n"))
			procs := func() []string {
				b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				return strings.Fields(string(b))
			}
			for i := 0; len(procs()) < 3; i++ {
				if i > 500 {
					cmd.Process.Kill()
					t.Fatalf("the cgroup holds %v, want the shell and its two sleeps", procs())
				}
				time.Sleep(10 * time.Millisecond)
			}
			kill := cgroupKiller()
			if err := kill("another-container", pid); err == nil {
				t.Error("killed a process that is not in the container's cgroup")
			}
			if err := kill(id, pid); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Fatal("the shell lives on")
			}
			for i := 0; len(procs()) > 0; i++ {
				if i > 500 {
					t.Fatalf("left in the cgroup: %v", procs())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestAdoptKillsWhatDeadInstancesLeft(t *testing.T) {
	sockDir := socketDir(t)
	sock := filepath.Join(sockDir, "s")
	l, err := net.Listen("unix", sock) // the new instance
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taskDir := t.TempDir()
	left, other := sleeper(t), sleeper(t)
	writeBundle(t, taskDir, "left-by-a-dead-instance", "unix://"+sock, left)
	writeBundle(t, taskDir, "another-shim", "unix://"+sock+"x", other)
	var killed []string
	k := &orphanKiller{TaskDir: taskDir, Executable: "/usr/local/bin/containerd-shim-shimless-v2",
		Kill: func(id string, pid int) error { killed = append(killed, id); return nil }}
	if n, err := k.Adopt("unix://" + sock); n != 1 || err != nil || !slices.Equal(killed, []string{"left-by-a-dead-instance"}) {
		t.Errorf("Adopt: killed %d %q (err %v), want the one container at this address", n, killed, err)
	}
	rec, _ := os.ReadFile(sock + cleanupSuffix)
	if !strings.Contains(string(rec), "start killed 1 containers of dead instances") {
		t.Errorf("record %q", rec)
	}
	// Its own containers (children of a shim of ours) are not touched.
	self, _ := os.Executable()
	k.Executable, killed = self, nil
	if n, _ := k.Adopt("unix://" + sock); n != 0 || killed != nil {
		t.Errorf("Adopt with the containers' parent a shim of ours: killed %d %q", n, killed)
	}
}

func TestCleanUpLeavesNoRecordWhenNothingWasLeft(t *testing.T) {
	sockDir := socketDir(t)
	dead := filepath.Join(sockDir, "dead")
	deadSocket(t, dead)
	taskDir := t.TempDir()
	writeBundle(t, taskDir, "deleted-already", "unix://"+dead, 0x3fffffff)
	if err := RegistryOf(dead).Add("deleted-already", 0x3fffffff); err != nil {
		t.Fatal(err)
	}
	k := &orphanKiller{TaskDir: taskDir, Executable: "/x", Kill: func(string, int) error { return nil }}
	if n, err := k.cleanUp("deleted-already"); n != 0 || err != nil {
		t.Fatalf("killed %d, %v", n, err)
	}
	if _, err := os.Stat(dead + cleanupSuffix); !os.IsNotExist(err) {
		t.Errorf("a shim that left nothing behind got a cleanup record: %v", err)
	}
	if _, err := os.Stat(RegistryOf(dead).Dir); !os.IsNotExist(err) {
		t.Errorf("a shim that left nothing behind left its task registry: %v", err)
	}
	if n, err := k.Adopt("unix://" + dead); n != 0 || err != nil {
		t.Fatalf("Adopt: killed %d, %v", n, err)
	}
	if _, err := os.Stat(dead + cleanupSuffix); !os.IsNotExist(err) {
		t.Errorf("a starting shim with nothing to kill wrote a cleanup record: %v", err)
	}
}
