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

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// fakeProc is a /proc of a few processes, for the node's readers.
type fakeProc struct {
	t   *testing.T
	dir string
}

// add writes a process: its stat (parent, CPU ticks, start time), comm,
// executable, mount namespace and memory.
func (f fakeProc) add(pid, ppid int, comm, exe string, ticks, start int, pssKiB, rssKiB int) {
	f.t.Helper()
	d := filepath.Join(f.dir, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(d, "ns"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	// After "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice threads
	// itrealvalue starttime ...
	stat := fmt.Sprintf("%d (%s) S %d 1 1 0 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 %d 0 0\n", pid, comm, ppid, ticks, start)
	files := map[string]string{
		"stat": stat, "comm": comm + "\n", "cmdline": strings.ReplaceAll(exe+" -flag x", " ", "\x00") + "\x00",
		"status":       fmt.Sprintf("Name:\t%s\nVmRSS:\t%d kB\n", comm, rssKiB),
		"smaps_rollup": fmt.Sprintf("00400000-7fff0000 ---p 00000000 00:00 0 [rollup]\nRss: %d kB\nPss: %d kB\n", rssKiB, pssKiB),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"exe": exe, "ns/mnt": "mnt:[4026532000]"} {
		if err := os.Symlink(target, filepath.Join(d, link)); err != nil {
			f.t.Fatal(err)
		}
	}
}

// Both shim binaries run as "containerd-shim" (the kernel cuts a command to
// 15 bytes): both count, by binary, and a kill finds only the shared one.
func TestShimsOfBothBinaries(t *testing.T) {
	proc, pids, cg := t.TempDir(), t.TempDir(), t.TempDir()
	f := fakeProc{t, proc}
	f.add(10, 1, "kubelet", "/o/bin/kubelet", 100, 50, 0, 200<<10)
	f.add(11, 1, "containerd", "/o/node/bin/containerd", 100, 50, 0, 100<<10)
	f.add(20, 1, "containerd-shim", "/o/node/bin/containerd-shim-runc-v2", 30, 60, 4<<10, 16<<10)
	f.add(21, 1, "containerd-shim", "/o/node/bin/containerd-shim-runc-v2", 30, 60, 5<<10, 17<<10)
	f.add(30, 1, "containerd-shim", "/o/bin/containerd-shim-shimless-v2", 70, 61, 40<<10, 41<<10)
	// The shared shim's pods: a pause and a shell each, httpd under the shell.
	f.add(31, 30, "pause", "/pause", 0, 70, 0, 1)
	f.add(32, 30, "sh", "/bin/busybox", 0, 71, 0, 1)
	f.add(33, 32, "httpd", "/bin/busybox", 0, 72, 0, 1)
	f.add(34, 30, "sh", "/bin/busybox", 0, 73, 0, 1)
	for name, pid := range map[string]int{"kubelet": 10, "containerd": 11} {
		if err := os.WriteFile(filepath.Join(pids, name), []byte(fmt.Sprintf("%d /o/%s\n", pid, name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{"memory.stat": "total_rss 1048576\n", "cpuacct.usage": "5000000\n"} {
		if err := os.WriteFile(filepath.Join(cg, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu  100 2 30 5000 40 1 3 4 50 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &node{procDir: proc, pidsDir: pids, kubepods: cgroupPaths{cpuacct: cg, memory: cg}, shimPrefix: "containerd-shim"}
	m, err := n.memory()
	if err != nil {
		t.Fatal(err)
	}
	want := memoryMiB{Kubelet: 200, Containerd: 100, Shims: 49, ShimsRSS: 74, Pods: 1,
		ShimProcesses: map[string]int{"containerd-shim-runc-v2": 2, "containerd-shim-shimless-v2": 1}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("memory() = %+v, want %+v", m, want)
	}
	s, err := n.take()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]int64{20: 30, 21: 30, 30: 70}; !reflect.DeepEqual(s.shims, want) {
		t.Errorf("take().shims = %v, want %v", s.shims, want)
	}
	if shared, err := n.sharedShims(); err != nil || !reflect.DeepEqual(shared, []int{30}) {
		t.Errorf("sharedShims() = %v, %v; want [30]", shared, err)
	}
	desc, err := n.descendants(30)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]string{31: "70", 32: "71", 33: "72", 34: "73"}; !reflect.DeepEqual(desc, want) {
		t.Errorf("descendants(30) = %v, want %v", desc, want)
	}
	// 31 exits, 34's pid is reused by another process: only 32 and 33 live on.
	if err := os.RemoveAll(filepath.Join(proc, "31")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(proc, "34")); err != nil {
		t.Fatal(err)
	}
	f.add(34, 1, "sh", "/bin/busybox", 0, 900, 0, 1)
	if got, want := n.alive(desc), map[int]string{32: "71", 33: "72"}; !reflect.DeepEqual(got, want) {
		t.Errorf("alive() = %v, want %v", got, want)
	}
	if got := n.cmdline(33); got != "/bin/busybox -flag x" {
		t.Errorf("cmdline(33) = %q", got)
	}
}

func TestReadyAgain(t *testing.T) {
	pod := func(name string, ready bool, restarts int32) *v1.Pod {
		status := v1.ConditionFalse
		if ready {
			status = v1.ConditionTrue
		}
		p := &v1.Pod{}
		p.Name = name
		p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: status}}
		p.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "app", RestartCount: restarts}}
		return p
	}
	before := restartsOf([]*v1.Pod{pod("a", true, 0), pod("b", true, 0), pod("c", true, 1), pod("d", true, 0)})
	// a: not noticed yet (Ready, no restart); b: restarted, not Ready yet;
	// c: restarted and Ready again; d: restarted twice, Ready again.
	after := []*v1.Pod{pod("a", true, 0), pod("b", false, 1), pod("c", true, 2), pod("d", true, 2)}
	if ready, again := readyAgain(after, before); ready != 3 || again != 2 {
		t.Errorf("readyAgain() = %d, %d; want 3, 2", ready, again)
	}
	k := shimKill{Restarts: map[int]int{}}
	for name, r := range restartsOf(after) {
		k.Restarts[r-before[name]]++
	}
	if got := k.restartsString(); got != "0: 1 pods, 1: 2 pods, 2: 1 pods" {
		t.Errorf("restartsString() = %q", got)
	}
}

func TestOrphanCommands(t *testing.T) {
	long := "/bin/sh -c httpd -p 8080 -h /probe-volume && mkfifo /tmp/tick && exec 3<>/tmp/tick"
	got := orphanCommands([]string{"3 30 sleep 3600", "1 10 " + long, "2 20 sleep 3600", "4 40 (gone)"})
	want := []string{"2 × `sleep 3600`", "1 × `(gone)`", "1 × `" + long[:60] + "…`"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("orphanCommands() = %q, want %q", got, want)
	}
}
