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

package e2efileprobe

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/test/bench_fileprobe/procstat"
	"k8s.io/utils/ptr"
)

// shimlessPods is how many pods of RuntimeClass shimless testShimless runs.
const shimlessPods = 10

// testShimless: the pods of RuntimeClass shimless (containerd-shim-shimless-v2,
// docs/shimless.md) share one shim process, a pod of the default class keeps
// its own runc shim, and a kill -9 of the shared shim restarts every shimless
// pod's container once and leaves no process of the old shim behind. It runs
// alone: it counts the node's shim processes and kills one.
func testShimless(t *testing.T) {
	ns := namespace(t)
	// Pods of an earlier case still terminating would be in the shared shim
	// too, and die with it: the counts below are of this case's pods.
	settled(t, ns)
	shimless := envOr("FP_SHIMLESS_BIN", filepath.Join(cluster.root, "_output", "bin", "containerd-shim-shimless-v2"))
	runcShim := filepath.Join(cluster.root, "_output", "node", "bin", "containerd-shim-runc-v2")

	var names []string
	for i := 0; i < shimlessPods; i++ {
		name := fmt.Sprintf("shared-%d", i)
		c := shell("app", heartbeat("probe")+" # "+ns+"/"+name)
		c.ReadinessProbe = fileProbe("probe", 5, 1, 1)
		pod := podWith(name, "", c)
		pod.Spec.RuntimeClassName = ptr.To("shimless")
		createPod(t, ns, pod)
		names = append(names, name)
	}
	own := shell("app", heartbeat("probe")+" # "+ns+"/own")
	own.ReadinessProbe = fileProbe("probe", 5, 1, 1)
	createPod(t, ns, podWith("own", "", own))
	for _, name := range append(names, "own") {
		waitForPod(t, ns, name, podTimeout, "Ready", podReady)
	}

	// Each pod's container (found by the marker in its command line) is a
	// descendant of its shim.
	shims := processesOf(t, shimless)
	if len(shims) != 1 {
		t.Fatalf("%d pods of RuntimeClass shimless: %d processes of %s, want 1: %v", shimlessPods, len(shims), shimless, shims)
	}
	shared := shims[0]
	for _, name := range names {
		if got := shimOf(t, ns+"/"+name, shimless, runcShim); got != shared {
			t.Errorf("pod %s runs under shim %d, want the shared shim %d", name, got, shared)
		}
	}
	ownShim := shimOf(t, ns+"/own", shimless, runcShim)
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", ownShim)); exe != runcShim {
		t.Errorf("the pod of the default class runs under %d (%s), want a %s", ownShim, exe, runcShim)
	}
	if kids := descendants(shared); len(kids) < 2*shimlessPods {
		t.Errorf("the shared shim has %d descendants, want at least %d (a sandbox and a container per pod)", len(kids), 2*shimlessPods)
	}
	if limit := openFileLimit(t, shared); limit < 16384 {
		t.Errorf("the shared shim's open-file limit is %d, want at least 16384 (1000 pods)", limit)
	}
	t.Logf("shared shim %d: %d pods, %s, %d open files; the default pod's runc shim %d: %s",
		shared, shimlessPods, memory(shared), openFiles(shared), ownShim, memory(ownShim))

	// kill -9 of the shared shim.
	recordsBefore := cleanupRecords(shared)
	before := map[int]string{}
	for _, pid := range descendants(shared) {
		before[pid] = startTime(pid)
	}
	if err := syscallKill(shared); err != nil {
		t.Fatalf("kill -9 %d: %v", shared, err)
	}
	killed := time.Now()
	for _, name := range names {
		// The kubelet may report the new instance before the old one's end:
		// containerd learns that exit from the cleanup of the dead shim.
		pod := waitForPod(t, ns, name, podTimeout, "restarted and Ready after the shim's kill, the old instance's end reported", func(p *v1.Pod) bool {
			s := containerStatus(p, "app")
			return podReady(p) && s != nil && s.RestartCount > 0 && s.LastTerminationState.Terminated != nil
		})
		s := containerStatus(pod, "app")
		last := s.LastTerminationState.Terminated
		if s.RestartCount != 1 || last == nil || last.ExitCode != 255 {
			t.Errorf("pod %s after the kill: %d restarts, last termination %+v; want 1 restart, exit code 255", name, s.RestartCount, last)
		}
	}
	t.Logf("all %d pods restarted once and Ready %v after the kill", shimlessPods, time.Since(killed).Round(time.Second))
	var orphans []string
	for pid, started := range before {
		// The same pid and start time: the same process, not a reused pid
		// (the restarted containers spawn a process a second each).
		if startTime(pid) != started {
			continue
		}
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			orphans = append(orphans, fmt.Sprintf("%d %q", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
		}
	}
	if len(orphans) > 0 {
		t.Errorf("%d of the %d processes of the killed shim live on: %v", len(orphans), len(before), orphans)
	}
	if shims = processesOf(t, shimless); len(shims) != 1 || shims[0] == shared {
		t.Errorf("after the kill: shimless shims %v, want one new one", shims)
	}
	// The first of containerd's deletes after the kill killed every
	// container of the dead shim at once (shimless/manager/orphans.go); or,
	// when the new shim started serving before that delete ran (a loaded
	// node), the new shim killed them (Adopt), and the delete found the rest.
	// Either said so beside the shim's socket, in the node's mount namespace.
	if len(shims) > 0 {
		var added []string
		killed := 0
		// A delete writes its line once its kills are done: wait a little.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			added, killed = nil, 0
			for _, l := range cleanupRecords(shims[0]) {
				if slices.Contains(recordsBefore, l) {
					continue
				}
				added = append(added, l)
				if m := killedRecord.FindStringSubmatch(l); m != nil {
					n, _ := strconv.Atoi(m[1])
					killed += n
				}
			}
			if killed >= 2*shimlessPods || time.Now().After(deadline) {
				break
			}
		}
		// Concurrent kills of one container may both count it.
		if killed < 2*shimlessPods {
			t.Errorf("cleanup records since the kill %q: %d containers killed, want %d or more (a sandbox and a container per pod)", added, killed, 2*shimlessPods)
		} else {
			t.Logf("cleanup after the kill: %q", added)
		}
		// The new shim's task list (shimless/manager/registry.go) names its
		// own live tasks only: the dead instance's are forgotten.
		entries, _ := filepath.Glob(fmt.Sprintf("/proc/%d/root/run/containerd/s/*.shimless-tasks/*", shims[0]))
		var stale []string
		for _, e := range entries {
			b, _ := os.ReadFile(e)
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || parent(pid) != shims[0] {
				stale = append(stale, fmt.Sprintf("%s (pid %q, parent %d)", filepath.Base(e), b, parent(pid)))
			}
		}
		if len(entries) < 2*shimlessPods || len(stale) > 0 {
			t.Errorf("the new shim lists %d tasks, want %d or more; not its children: %q", len(entries), 2*shimlessPods, stale)
		}
	}
	pod := waitForPod(t, ns, "own", podTimeout, "Ready", podReady)
	if s := containerStatus(pod, "app"); s.RestartCount != 0 {
		t.Errorf("the pod of the default class restarted %d times, want 0", s.RestartCount)
	}
	if got := shimOf(t, ns+"/own", shimless, runcShim); got != ownShim {
		t.Errorf("the pod of the default class moved from shim %d to %d", ownShim, got)
	}
}

// killedRecord matches a line of a shim's cleanup record: a delete's
// "<instance> killed N of the dead shim's containers, ..." or a new shim's
// "start killed N containers of dead instances of the shim".
var killedRecord = regexp.MustCompile(` killed (\d+) (?:of the dead shim's containers|containers of dead instances)`)

// cleanupRecords returns the lines of the cleanup records beside the sockets
// of the shimless shims, as the shim pid sees the node's /run.
func cleanupRecords(pid int) []string {
	records, _ := filepath.Glob(fmt.Sprintf("/proc/%d/root/run/containerd/s/*.shimless-cleanup", pid))
	var lines []string
	for _, r := range records {
		b, _ := os.ReadFile(r)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				lines = append(lines, filepath.Base(r)+": "+l)
			}
		}
	}
	return lines
}

// processesOf lists the processes whose executable is exe.
func processesOf(t *testing.T, exe string) []int {
	t.Helper()
	var pids []int
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && link == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}

// shimOf finds the process whose command line holds marker and returns the
// shim it descends from.
func shimOf(t *testing.T, marker string, shims ...string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.HasSuffix(strings.TrimRight(string(cmd), "\x00"), "# "+marker) {
			continue
		}
		for p := pid; p > 1; p = parent(p) {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
			for _, s := range shims {
				if link == s {
					return p
				}
			}
		}
		t.Fatalf("process %d (%s) descends from no shim", pid, marker)
	}
	t.Fatalf("no process with %q in its command line", marker)
	return 0
}

// startTime is a process's start time (field 22 of /proc/<pid>/stat), "" when it is gone.
func startTime(pid int) string {
	_, start := parentAndStart(pid)
	return start
}

// parent is a process's parent pid, 0 when it is gone.
func parent(pid int) int {
	ppid, _ := parentAndStart(pid)
	return ppid
}

// parentAndStart reads a process's parent pid and start time, zero when it
// is gone.
func parentAndStart(pid int) (int, string) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, ""
	}
	ppid, start, err := procstat.ParentAndStart(stat)
	if err != nil {
		return 0, ""
	}
	return ppid, start
}

func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			child, _ := strconv.Atoi(c)
			out = append(out, child)
			out = append(out, descendants(child)...)
		}
	}
	return out
}

// openFileLimit is the soft open-file limit of a process.
func openFileLimit(t *testing.T, pid int) int {
	t.Helper()
	soft, _ := openFileLimits(t, pid)
	n, err := strconv.Atoi(soft)
	if err != nil {
		t.Fatalf("/proc/%d/limits: soft open-file limit %q", pid, soft)
	}
	return n
}

// openFileLimits reads the open-file limits (soft, hard) of a process.
func openFileLimits(t *testing.T, pid int) (soft, hard string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(line)
			return f[3], f[4]
		}
	}
	t.Fatalf("no open-file limit in /proc/%d/limits", pid)
	return "", ""
}

func openFiles(pid int) int {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(fds)
}

// memory prints a process's proportional and resident set size.
func memory(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Pss:") || strings.HasPrefix(line, "Rss:") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, ", ")
}

func syscallKill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
