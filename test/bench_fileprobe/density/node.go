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
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/kubernetes/test/bench_fileprobe/procstat"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat and
// /proc/stat.
const clockTicks = procstat.ClockTicks

// node reads what the node's components cost, from /proc and the pods'
// cgroups. The kubelet and containerd are found by their pid files; the
// shims are the containerd-shim processes in containerd's mount namespace:
// every binary whose command starts with shimPrefix. The kernel cuts a
// command to 15 bytes, so containerd-shim-runc-v2 and
// containerd-shim-shimless-v2 both run as "containerd-shim" and both count;
// which binary each one is comes from its /proc/<pid>/exe (shimBinary).
type node struct {
	procDir    string // /proc
	pidsDir    string // hack/local-up-node.sh's pid files
	kubepods   cgroupPaths
	shimPrefix string
}

// cgroupPaths are the kubelet's pod cgroup (kubepods) in the cpuacct and
// memory hierarchies of cgroup v1, or the one of cgroup v2.
type cgroupPaths struct{ cpuacct, memory, unified string }

// kubepodsCgroup finds the pods' cgroup, given as a path inside a hierarchy
// (e.g. fileprobe-local/kubepods, or kubepods.slice with the systemd driver).
func kubepodsCgroup(path string) cgroupPaths {
	v1cpu := filepath.Join("/sys/fs/cgroup/cpuacct", path)
	if _, err := os.Stat(v1cpu); err == nil {
		return cgroupPaths{cpuacct: v1cpu, memory: filepath.Join("/sys/fs/cgroup/memory", path)}
	}
	return cgroupPaths{unified: filepath.Join("/sys/fs/cgroup", path)}
}

// sample is one reading of the node: cumulative CPU ticks per process (with
// the children each one reaped), the pods' cgroup CPU time, and the CPU
// ticks of the whole machine.
type sample struct {
	at                  time.Time
	kubelet, containerd int64
	shims               map[int]int64
	podsCPU             time.Duration
	busy                int64 // ticks of all CPUs, not idle
}

// cpuCores is the CPU each part used between two samples, in cores (CPU
// seconds per second).
type cpuCores struct {
	Kubelet    float64 `json:"kubelet"`
	Containerd float64 `json:"containerd"`
	// Shims is the shims' own CPU (all their threads) plus what the children
	// they reaped used (runc, exec'd probe processes, exited containers):
	// fields 14-17 of /proc/<pid>/stat. The containers that still run are
	// not in it (they are in Pods).
	Shims float64 `json:"shims"`
	Pods  float64 `json:"pods"`
	Node  float64 `json:"node"`
}

// memoryMiB is the memory of each part at one time: resident set of the
// kubelet and containerd, the proportional set (shared pages split) and the
// resident set summed over the shims, and the pods' cgroup RSS.
type memoryMiB struct {
	Kubelet    float64 `json:"kubelet"`
	Containerd float64 `json:"containerd"`
	Shims      float64 `json:"shims"`
	ShimsRSS   float64 `json:"shimsRSS"`
	Pods       float64 `json:"pods"`
	// ShimProcesses counts the shims by binary (the base name of their
	// executable), e.g. {"containerd-shim-shimless-v2": 1}.
	ShimProcesses map[string]int `json:"shimProcesses,omitempty"`
}

// pid finds a daemon: by hack/local-up-node.sh's pid file ("<pid> <binary>")
// if there is a pids directory, else as the one process of that name.
func (n *node) pid(name string) (int, error) {
	if n.pidsDir == "" {
		pids, err := n.processes(func(comm string) bool { return comm == name }, "")
		if err != nil {
			return 0, err
		}
		if len(pids) != 1 {
			return 0, fmt.Errorf("want one %s process, found %d", name, len(pids))
		}
		return pids[0], nil
	}
	raw, err := os.ReadFile(filepath.Join(n.pidsDir, name))
	if err != nil {
		return 0, fmt.Errorf("%s is not running: %w", name, err)
	}
	pid, _, _ := strings.Cut(strings.TrimSpace(string(raw)), " ")
	return strconv.Atoi(pid)
}

func (n *node) take() (sample, error) {
	s := sample{at: time.Now(), shims: map[int]int64{}}
	kubelet, err := n.pid("kubelet")
	if err != nil {
		return s, err
	}
	containerd, err := n.pid("containerd")
	if err != nil {
		return s, err
	}
	if s.kubelet, err = n.ticks(kubelet); err != nil {
		return s, err
	}
	if s.containerd, err = n.ticks(containerd); err != nil {
		return s, err
	}
	shims, err := n.shims(containerd)
	if err != nil {
		return s, err
	}
	for _, pid := range shims {
		if t, err := n.ticks(pid); err == nil { // a shim may exit meanwhile
			s.shims[pid] = t
		}
	}
	if s.podsCPU, err = n.podsCPU(); err != nil {
		return s, err
	}
	s.busy, err = n.machineTicks()
	return s, err
}

// cpuBetween is what each part used from a to b. A shim that started in
// between counts with all its CPU; one that exited is lost (there are none
// in a steady state).
func cpuBetween(a, b sample) cpuCores {
	secs := b.at.Sub(a.at).Seconds()
	cores := func(ticks int64) float64 { return float64(ticks) / clockTicks / secs }
	var shims int64
	for pid, t := range b.shims {
		shims += t - a.shims[pid]
	}
	c := cpuCores{
		Kubelet:    cores(b.kubelet - a.kubelet),
		Containerd: cores(b.containerd - a.containerd),
		Shims:      cores(shims),
		Pods:       (b.podsCPU - a.podsCPU).Seconds() / secs,
	}
	// The whole machine's busy time (all CPUs), in cores like the others.
	c.Node = cores(b.busy - a.busy)
	return c
}

// ticks is a process's user+system CPU time and its reaped children's
// (fields 14-17 of /proc/<pid>/stat).
func (n *node) ticks(pid int) (int64, error) {
	raw, err := os.ReadFile(filepath.Join(n.procDir, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	_, ticks, err := procstat.Parse(raw)
	return ticks, err
}

// shims lists the containerd-shim processes in containerd's mount namespace.
func (n *node) shims(containerd int) ([]int, error) {
	mnt, err := os.Readlink(filepath.Join(n.procDir, strconv.Itoa(containerd), "ns", "mnt"))
	if err != nil {
		return nil, err
	}
	return n.processes(func(comm string) bool { return strings.HasPrefix(comm, n.shimPrefix) }, mnt)
}

// shimBinary is the base name of a process's executable ("?" when it is
// gone).
func (n *node) shimBinary(pid int) string {
	exe, err := os.Readlink(filepath.Join(n.procDir, strconv.Itoa(pid), "exe"))
	if err != nil {
		return "?"
	}
	return filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
}

// processes lists the processes whose command matches, in the mount
// namespace mnt if it is not empty.
func (n *node) processes(match func(comm string) bool, mnt string) ([]int, error) {
	entries, err := os.ReadDir(n.procDir)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(n.procDir, e.Name(), "comm"))
		if err != nil || !match(strings.TrimSpace(string(comm))) {
			continue
		}
		if mnt == "" {
			pids = append(pids, pid)
		} else if m, err := os.Readlink(filepath.Join(n.procDir, e.Name(), "ns", "mnt")); err == nil && m == mnt {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func (n *node) podsCPU() (time.Duration, error) {
	if n.kubepods.unified != "" {
		v, err := statKey(filepath.Join(n.kubepods.unified, "cpu.stat"), "usage_usec")
		return time.Duration(v) * time.Microsecond, err
	}
	raw, err := os.ReadFile(filepath.Join(n.kubepods.cpuacct, "cpuacct.usage"))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	return time.Duration(ns), err
}

// machineTicks reads the busy CPU ticks of all CPUs (/proc/stat).
func (n *node) machineTicks() (int64, error) {
	raw, err := os.ReadFile(filepath.Join(n.procDir, "stat"))
	if err != nil {
		return 0, err
	}
	return parseMachineTicks(raw)
}

func parseMachineTicks(raw []byte) (busy int64, err error) {
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0, fmt.Errorf("malformed /proc/stat line %q", line)
	}
	// user nice system idle iowait irq softirq steal ...; idle and iowait
	// are not busy. guest times are already in user and nice.
	for i, f := range fields[1:] {
		if i >= 8 {
			break
		}
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc/stat line %q: %w", line, err)
		}
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, nil
}

// memory reads every part's memory now.
func (n *node) memory() (memoryMiB, error) {
	var m memoryMiB
	const kib = 1.0 / 1024
	kubelet, err := n.pid("kubelet")
	if err != nil {
		return m, err
	}
	containerd, err := n.pid("containerd")
	if err != nil {
		return m, err
	}
	k, err := statKey(filepath.Join(n.procDir, strconv.Itoa(kubelet), "status"), "VmRSS:")
	if err != nil {
		return m, err
	}
	c, err := statKey(filepath.Join(n.procDir, strconv.Itoa(containerd), "status"), "VmRSS:")
	if err != nil {
		return m, err
	}
	m.Kubelet, m.Containerd = float64(k)*kib, float64(c)*kib
	shims, err := n.shims(containerd)
	if err != nil {
		return m, err
	}
	m.ShimProcesses = map[string]int{}
	for _, pid := range shims {
		rollup := filepath.Join(n.procDir, strconv.Itoa(pid), "smaps_rollup")
		pss, err := statKey(rollup, "Pss:")
		if err != nil {
			continue // a shim may exit meanwhile
		}
		rss, err := statKey(rollup, "Rss:")
		if err != nil {
			continue
		}
		m.Shims += float64(pss) * kib
		m.ShimsRSS += float64(rss) * kib
		m.ShimProcesses[n.shimBinary(pid)]++
	}
	var rss int64
	if n.kubepods.unified != "" {
		rss, err = statKey(filepath.Join(n.kubepods.unified, "memory.stat"), "anon")
	} else {
		rss, err = statKey(filepath.Join(n.kubepods.memory, "memory.stat"), "total_rss")
	}
	m.Pods = float64(rss) / (1 << 20)
	return m, err
}

// statKey reads the number after key in a "key value [unit]" file.
func statKey(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == key {
			return strconv.ParseInt(fields[1], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %q", path, key)
}

// quiesce waits until the node is back to rest after a series' pods went
// away: no more shims than before the run, then containerd (which removes
// containers and snapshots after the API objects are gone) using less than
// 5% of a core over 10 s.
func (n *node) quiesce(ctx context.Context, shims int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		a, err := n.take()
		if err != nil || len(a.shims) > shims {
			return false, err
		}
		if err := sleepCtx(ctx, 10*time.Second); err != nil {
			return false, err
		}
		b, err := n.take()
		if err != nil {
			return false, err
		}
		return len(b.shims) <= shims && cpuBetween(a, b).Containerd < 0.05, nil
	})
}
