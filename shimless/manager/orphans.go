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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// When a shim dies, containerd cleans up after it once per task: it runs
// `<shim> delete` for every container and sandbox the shim served, each
// bounded by its shim cleanup timeout (5 s), all at once
// (core/runtime/v2/shim.go, cleanupAfterDeadShim). containerd's delete
// (the runc manager's Stop) kills the container with `runc delete --force`;
// a delete that times out leaves its container running, orphaned, with no
// shim and no task in containerd. With one shim per pod that is two deletes;
// with one shim for 300 pods it is 600 Go processes and 600 runc processes on
// the node at once, and on 2 cores ~380 of them timed out and left 734
// container processes alive (docs/shimless.md).
//
// So the first delete that finds the group's shim dead kills every container
// the dead shim served, by its cgroup, before it does containerd's own
// delete of its container; the deletes after it find the work done. At 300
// pods even that delete is starved past its 5 s by the 599 others starting
// at once, so a shim that starts serving at the group's address also kills
// what a dead instance left (Adopt): the kubelet recreates the pods'
// sandboxes, and the first one starts the new shim. A
// container belongs to the dead shim when its bundle's bootstrap.json (written
// by containerd for every task) names the dead shim's socket and its init
// process has lost its parent: the init of a container of a live shim is that
// shim's child (the shim is a subreaper) or, while it is created, runc's.

// cleanupSuffix names the file beside a shim's socket that records which dead
// instance of the shim has been cleaned up after, and serializes the deletes.
const cleanupSuffix = ".shimless-cleanup"

// orphanKiller finds and kills the containers of a dead shim.
type orphanKiller struct {
	// TaskDir is containerd's task directory of the namespace, holding one
	// bundle per task (the parent of the delete's working directory).
	TaskDir string
	// Executable is the shim binary (a live shim's children are not orphans).
	Executable string
	// Kill kills the container id whose init is pid (cgroupKiller's by default).
	Kill func(id string, pid int) error
}

// bundleAddress returns the shim socket address the bundle's bootstrap.json
// names ("" when it has none).
func bundleAddress(bundle string) string {
	b, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json"))
	if err != nil {
		return ""
	}
	var params struct {
		Address string `json:"address"`
	}
	if json.Unmarshal(b, &params) != nil {
		return ""
	}
	return params.Address
}

// socketPath turns a shim address (unix:///run/containerd/s/<hash>) into a path.
func socketPath(address string) (string, bool) {
	p, ok := strings.CutPrefix(address, "unix://")
	return p, ok && filepath.IsAbs(p)
}

// deadInstance tells whether nothing listens on the socket at path, and if so
// names that socket file (inode and change time): a new instance of the shim
// replaces the file, so this names the dead instance. Only a refused
// connection counts as dead: a busy shim (a full backlog) is alive.
func deadInstance(path string) (string, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", false
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return "", false
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return "", false
	}
	return fmt.Sprintf("%d:%d.%09d", st.Ino, st.Ctim.Sec, st.Ctim.Nsec), true
}

// cleanUp kills the containers of the shim that served the bundle id, if
// that shim is dead and no delete has done so yet for this instance of it.
// It returns how many containers it killed and the errors of those it could
// not kill.
func (k *orphanKiller) cleanUp(id string) (int, error) {
	address := bundleAddress(filepath.Join(k.TaskDir, id))
	path, ok := socketPath(address)
	if !ok {
		return 0, nil
	}
	instance, dead := deadInstance(path)
	if !dead {
		return 0, nil
	}
	f, err := lockRecord(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	done, _ := os.ReadFile(f.Name())
	for _, l := range strings.Split(string(done), "\n") {
		if first, _, _ := strings.Cut(l, " "); first == instance {
			return 0, nil
		}
	}
	// Hundreds of deletes start at once here, and containerd kills each
	// after 5 s: the one that does the work for all goes first.
	_ = unix.Setpriority(unix.PRIO_PROCESS, 0, -20)
	killed, err := k.killOrphans(address)
	if killed == 0 && len(done) == 0 {
		// Nothing left behind (a shim that exited with its last task): leave
		// nothing behind either.
		os.Remove(f.Name())
		os.Remove(RegistryOf(path).Dir) // only when empty
		return 0, err
	}
	record(f, fmt.Sprintf("%s killed %d of the dead shim's containers, first delete %s", instance, killed, id))
	return killed, err
}

// Adopt is run by a shim when it starts serving at address: a shim of ours
// starts only where none answers, so any container whose bundle names the
// address and whose init has lost its parent belongs to an instance that
// died, and was left by deletes that did not finish (containerd's delete
// storm after the death of a shim of 300 pods starves them all past their
// 5 s). It kills them and returns how many.
func (k *orphanKiller) Adopt(address string) (int, error) {
	path, ok := socketPath(address)
	if !ok {
		return 0, fmt.Errorf("shim address %q is no unix socket", address)
	}
	// Concurrent deletes may kill the same containers: a second kill does
	// no harm. The record is written only when there was something to kill.
	killed, err := k.killOrphans(address)
	if killed > 0 {
		if f, lerr := lockRecord(path); lerr == nil {
			record(f, fmt.Sprintf("start killed %d containers of dead instances of the shim", killed))
			f.Close()
		}
	}
	return killed, err
}

// lockRecord opens and locks the record beside the socket at path.
func lockRecord(path string) (*os.File, error) {
	f, err := os.OpenFile(path+cleanupSuffix, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// record appends a line to the record, keeping the last few.
func record(f *os.File, line string) {
	old, _ := os.ReadFile(f.Name())
	lines := append(strings.Split(strings.TrimSpace(string(old)), "\n"), line)
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	if f.Truncate(0) == nil {
		_, _ = f.Write([]byte(strings.TrimSpace(strings.Join(lines, "\n")) + "\n"))
	}
}

// killOrphans kills every container of the shim at address whose init has
// lost its parent: those the shim's registry lists, and those whose bundle
// names the address (tasks of a shim without a registry). It forgets the
// listed tasks it killed and those whose init is gone.
func (k *orphanKiller) killOrphans(address string) (int, error) {
	candidates := map[string]int{}
	var errs []error
	path, _ := socketPath(address)
	reg := RegistryOf(path)
	listed, err := reg.Tasks()
	if err != nil {
		errs = append(errs, err)
	}
	for id, pid := range listed {
		candidates[id] = pid
	}
	entries, err := os.ReadDir(k.TaskDir)
	if err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		bundle := filepath.Join(k.TaskDir, e.Name())
		if !e.IsDir() || bundleAddress(bundle) != address {
			continue
		}
		if pid, err := readPid(filepath.Join(bundle, "init.pid")); err == nil {
			candidates[e.Name()] = pid
		}
	}
	forget := func(id string) {
		if _, ok := listed[id]; ok {
			_ = reg.Remove(id)
		}
	}
	ids := make([]string, 0, len(candidates))
	for id := range candidates {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	killed := 0
	for _, id := range ids {
		pid := candidates[id]
		if _, err := parentOf(pid); errors.Is(err, fs.ErrNotExist) {
			forget(id)
			continue
		}
		if !k.orphan(pid) {
			continue
		}
		switch err := k.Kill(id, pid); {
		case errors.Is(err, errNotContainer):
			// The pid was reused by a process of no container of this id.
			forget(id)
		case err != nil:
			errs = append(errs, fmt.Errorf("%s (pid %d): %w", id, pid, err))
		default:
			forget(id)
			killed++
		}
	}
	return killed, errors.Join(errs...)
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && pid <= 0 {
		err = fmt.Errorf("%s: pid %d", path, pid)
	}
	return pid, err
}

// orphan tells whether pid runs and its parent is neither a shim of ours (a
// live shim's container) nor runc (a container being created).
func (k *orphanKiller) orphan(pid int) bool {
	ppid, err := parentOf(pid)
	if err != nil {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", ppid))
	if err != nil {
		// The parent is gone since, or is PID 1 of another namespace.
		return ppid == 1 || errors.Is(err, os.ErrNotExist)
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	return exe != k.Executable && !strings.HasPrefix(filepath.Base(exe), "runc")
}

// parentOf reads the parent pid of pid from /proc/<pid>/stat.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return strconv.Atoi(fields[1])
}

// errNotContainer is cgroupKill's error for a process in no cgroup named
// after the container: not the container's init (a reused pid).
var errNotContainer = errors.New("the process is in no cgroup of the container")

// cgroupKill kills every process of container id, whose init is pid, by its
// cgroup: one write to cgroup.kill where the container has a cgroup v2
// (unified, or the unified hierarchy of a hybrid host; Linux 5.14), else
// SIGKILL to every process listed in one of its cgroup v1 hierarchies, until
// none is left. The cgroup must be named after the container (kubelet's
// cri-containerd-<id>.scope, or .../<id> with cgroupfs): a pid reused since
// init.pid was written, or a container in no cgroup of its own, is not
// touched.
func cgroupKill(m cgroupMountpoints, id string, pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return err
	}
	var v1Dirs []string
	named := false
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 || !strings.Contains(parts[2], id) {
			continue
		}
		named = true
		if parts[0] == "0" && parts[1] == "" {
			if m.v2 != "" && os.WriteFile(filepath.Join(m.v2, parts[2], "cgroup.kill"), []byte("1"), 0) == nil {
				return nil
			}
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if mp, ok := m.v1[c]; ok {
				v1Dirs = append(v1Dirs, filepath.Join(mp, parts[2]))
			}
		}
	}
	if !named {
		return fmt.Errorf("process %d, container %s: %w", pid, id, errNotContainer)
	}
	if len(v1Dirs) == 0 {
		return fmt.Errorf("process %d of container %s: no cgroup.kill, no cgroup v1 hierarchy mounted", pid, id)
	}
	// Processes may fork while they are killed: read again until it is empty.
	procs := filepath.Join(v1Dirs[0], "cgroup.procs")
	for round := 0; round < 50; round++ {
		b, err := os.ReadFile(procs)
		if err != nil {
			return err
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			if n, err := strconv.Atoi(p); err == nil {
				_ = unix.Kill(n, unix.SIGKILL)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("processes left in %s after SIGKILL", procs)
}

// cgroupKiller is cgroupKill with the host's cgroup mounts read once, when it
// first kills: a cleanup kills hundreds of containers, and most deletes kill
// none.
func cgroupKiller() func(id string, pid int) error {
	var once sync.Once
	var m cgroupMountpoints
	return func(id string, pid int) error {
		once.Do(func() { m = cgroupMounts() })
		return cgroupKill(m, id, pid)
	}
}

// cgroupMountpoints are the mount points cgroupMounts finds.
type cgroupMountpoints struct {
	v2 string
	v1 map[string]string
}

// cgroupMounts finds the cgroup v2 mount (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host) and each cgroup v1 controller's
// (by controller, "name=systemd" included) in /proc/self/mountinfo.
func cgroupMounts() (m cgroupMountpoints) {
	m.v1 = map[string]string{}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		left, right, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 {
			continue
		}
		switch rf[0] {
		case "cgroup2":
			m.v2 = lf[4]
		case "cgroup":
			for _, o := range strings.Split(rf[2], ",") {
				if o != "rw" && o != "ro" {
					m.v1[o] = lf[4]
				}
			}
		}
	}
	return m
}

// AdoptOrphans is Adopt for the serving shim: its address is that of the
// listening socket containerd's manager hands it as fd 3, the task directory
// the parent of its working directory (the bundle of its first task).
func AdoptOrphans() (int, error) {
	socket, err := servingSocket()
	if err != nil {
		return 0, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return 0, err
	}
	exe, _ := os.Executable()
	k := &orphanKiller{TaskDir: filepath.Dir(cwd), Executable: exe, Kill: cgroupKiller()}
	return k.Adopt("unix://" + socket)
}
