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
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/test/bench_fileprobe/procstat"
)

// sharedShim is the binary of the shim that serves all pods of RuntimeClass
// shimless (docs/shimless.md): the one -kill-shim kills.
const sharedShim = "containerd-shim-shimless-v2"

// shimKill is the blast radius of one kill -9 of the shared shim, with every
// pod of a series running under it (-kill-shim): what the shim held, how
// many of its processes (the pods' sandboxes, containers and their children)
// lived on after it, how long until every pod was Ready again with a
// restarted container, and how often each pod restarted.
type shimKill struct {
	Series string `json:"series"`
	Pods   int    `json:"pods"`
	// Note says why nothing was killed (not one shared shim), else empty.
	Note      string  `json:"note,omitempty"`
	ShimPID   int     `json:"shimPid"`
	PSSMiB    float64 `json:"shimPssMiB"`
	RSSMiB    float64 `json:"shimRssMiB"`
	OpenFiles int     `json:"openFiles"`
	// Processes are the shim's descendants at the kill.
	Processes int `json:"processes"`
	// Alive counts them (same pid, same start time) at times after the
	// kill, the last at the end.
	Alive []aliveAt `json:"aliveAfter"`
	// Orphans are those alive at the end: "pid start-time command".
	Orphans []string `json:"orphans,omitempty"`
	// AllReadySeconds is from the kill until every pod was Ready with a
	// restarted container (0: not within the timeout).
	AllReadySeconds float64 `json:"allReadyAgainSeconds"`
	// ReadyAgain is how many pods were Ready with a restarted container at
	// the end.
	ReadyAgain int `json:"readyAgain"`
	// FewestReady is the fewest pods seen Ready at once after the kill.
	FewestReady          int     `json:"fewestReady"`
	FewestReadyAtSeconds float64 `json:"fewestReadyAtSeconds"`
	// Restarts counts pods by the restarts of their container since the
	// kill, at the end.
	Restarts map[int]int `json:"restartsPerPod"`
	// SharedShimsAfter counts the processes of sharedShim at the end.
	SharedShimsAfter int `json:"sharedShimsAfter"`
	// EndSeconds is when the end was, after the kill.
	EndSeconds float64 `json:"endSeconds"`
}

type aliveAt struct {
	Seconds float64 `json:"seconds"`
	Alive   int     `json:"alive"`
}

// killCheckpoints are when survivors of the killed shim are counted, in
// seconds after the kill (and once more at the end).
var killCheckpoints = []float64{5, 10, 30, 60, 120}

// killSettle is how long after every pod is Ready again the final counts
// wait: a second restart or a late orphan shows up there.
const killSettle = 30 * time.Second

// killSharedShim kills -9 the one sharedShim process, which must serve the
// series' pods, and measures the blast radius.
func killSharedShim(ctx context.Context, o options, n *node, set *podSet, spec seriesSpec, pods int) (shimKill, error) {
	k := shimKill{Series: spec.String(), Pods: pods}
	shared, err := n.sharedShims()
	if err != nil {
		return k, err
	}
	if len(shared) != 1 {
		k.Note = fmt.Sprintf("%d processes of %s, want 1: nothing killed", len(shared), sharedShim)
		logf("%s: %s", spec, k.Note)
		return k, nil
	}
	pid := shared[0]
	k.ShimPID = pid
	rollup := filepath.Join(n.procDir, strconv.Itoa(pid), "smaps_rollup")
	if v, err := statKey(rollup, "Pss:"); err == nil {
		k.PSSMiB = float64(v) / 1024
	}
	if v, err := statKey(rollup, "Rss:"); err == nil {
		k.RSSMiB = float64(v) / 1024
	}
	if fds, err := os.ReadDir(filepath.Join(n.procDir, strconv.Itoa(pid), "fd")); err == nil {
		k.OpenFiles = len(fds)
	}
	restartsBefore := restartsOf(set.pods())
	before, err := n.descendants(pid)
	if err != nil {
		return k, err
	}
	k.Processes = len(before)
	logf("%s: kill -9 of %s %d (%d pods, %d processes under it, %d open files)", spec, sharedShim, pid, pods, len(before), k.OpenFiles)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return k, err
	}
	killed := time.Now()
	since := func() float64 { return time.Since(killed).Seconds() }
	k.FewestReady = pods
	next := 0
	deadline := killed.Add(2*time.Minute + time.Duration(pods)*2*time.Second)
	for time.Now().Before(deadline) {
		if err := sleepCtx(ctx, time.Second); err != nil {
			return k, err
		}
		ready, again := readyAgain(set.pods(), restartsBefore)
		if ready < k.FewestReady {
			k.FewestReady, k.FewestReadyAtSeconds = ready, since()
		}
		for next < len(killCheckpoints) && since() >= killCheckpoints[next] {
			k.Alive = append(k.Alive, aliveAt{Seconds: killCheckpoints[next], Alive: len(n.alive(before))})
			next++
		}
		if again == pods {
			k.AllReadySeconds = since()
			break
		}
	}
	if k.AllReadySeconds > 0 {
		logf("%s: all %d pods Ready again with a restarted container %.0f s after the kill; settling %s", spec, pods, k.AllReadySeconds, killSettle)
	} else {
		logf("%s: not all %d pods Ready again with a restarted container %.0f s after the kill", spec, pods, since())
	}
	if err := sleepCtx(ctx, killSettle); err != nil {
		return k, err
	}
	k.EndSeconds = since()
	left := n.alive(before)
	k.Alive = append(k.Alive, aliveAt{Seconds: k.EndSeconds, Alive: len(left)})
	for _, p := range slices.Sorted(maps.Keys(left)) {
		k.Orphans = append(k.Orphans, fmt.Sprintf("%d %s %s", p, left[p], n.cmdline(p)))
	}
	_, k.ReadyAgain = readyAgain(set.pods(), restartsBefore)
	k.Restarts = map[int]int{}
	after := restartsOf(set.pods())
	for name, r := range after {
		k.Restarts[r-restartsBefore[name]]++
	}
	if shared, err = n.sharedShims(); err == nil {
		k.SharedShimsAfter = len(shared)
	}
	logf("%s", k.summary())
	return k, nil
}

// restartsOf is each pod's restart count (of all its containers).
func restartsOf(pods []*v1.Pod) map[string]int {
	out := map[string]int{}
	for _, pod := range pods {
		out[pod.Name] = 0
		for _, c := range pod.Status.ContainerStatuses {
			out[pod.Name] += int(c.RestartCount)
		}
	}
	return out
}

// readyAgain counts the pods Ready, and those Ready with a container
// restarted since restartsBefore (a pod still reported Ready whose kubelet
// did not notice the kill yet is Ready, not Ready again).
func readyAgain(pods []*v1.Pod, restartsBefore map[string]int) (ready, again int) {
	now := restartsOf(pods)
	for _, pod := range pods {
		if !podReady(pod) {
			continue
		}
		ready++
		if now[pod.Name] > restartsBefore[pod.Name] {
			again++
		}
	}
	return ready, again
}

// sharedShims lists the sharedShim processes in containerd's mount
// namespace.
func (n *node) sharedShims() ([]int, error) {
	containerd, err := n.pid("containerd")
	if err != nil {
		return nil, err
	}
	shims, err := n.shims(containerd)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, pid := range shims {
		if n.shimBinary(pid) == sharedShim {
			out = append(out, pid)
		}
	}
	return out, nil
}

// descendants are a process's descendants, each with its start time (pids
// are reused within a minute at density: a pid and its start time name one
// process).
func (n *node) descendants(root int) (map[int]string, error) {
	entries, err := os.ReadDir(n.procDir)
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	start := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(n.procDir, e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		ppid, started, err := procstat.ParentAndStart(raw)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		start[pid] = started
	}
	out := map[int]string{}
	for queue := children[root]; len(queue) > 0; queue = queue[1:] {
		p := queue[0]
		out[p] = start[p]
		queue = append(queue, children[p]...)
	}
	return out, nil
}

// alive are the processes of procs (pid: start time) that still run: the
// same pid with the same start time.
func (n *node) alive(procs map[int]string) map[int]string {
	out := map[int]string{}
	for pid, started := range procs {
		raw, err := os.ReadFile(filepath.Join(n.procDir, strconv.Itoa(pid), "stat"))
		if err != nil {
			continue
		}
		if _, s, err := procstat.ParentAndStart(raw); err == nil && s == started {
			out[pid] = started
		}
	}
	return out
}

// cmdline is a process's command line on one line: arguments separated by
// spaces, runs of white space (a shell script's newlines) as one space.
func (n *node) cmdline(pid int) string {
	raw, err := os.ReadFile(filepath.Join(n.procDir, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "(gone)"
	}
	return strings.Join(strings.Fields(string(bytes.ReplaceAll(raw, []byte{0}, []byte{' '}))), " ")
}

// aliveString prints the survivors at each checkpoint: "5 s: 120, 10 s: 0".
func (k shimKill) aliveString() string {
	var out []string
	for _, a := range k.Alive {
		out = append(out, fmt.Sprintf("%.0f s: %d", a.Seconds, a.Alive))
	}
	return strings.Join(out, ", ")
}

// restartsString prints pods by restarts since the kill, "restarts: pods":
// "1: 300 pods".
func (k shimKill) restartsString() string {
	var out []string
	for _, r := range slices.Sorted(maps.Keys(k.Restarts)) {
		out = append(out, fmt.Sprintf("%d: %d pods", r, k.Restarts[r]))
	}
	return strings.Join(out, ", ")
}

func (k shimKill) readyString() string {
	if k.AllReadySeconds > 0 {
		return fmt.Sprintf("%.0f s", k.AllReadySeconds)
	}
	return fmt.Sprintf("not within the timeout (%d of %d at %.0f s)", k.ReadyAgain, k.Pods, k.EndSeconds)
}

func (k shimKill) summary() string {
	if k.Note != "" {
		return fmt.Sprintf("kill -9 of the shared shim, %s at %d pods: %s", k.Series, k.Pods, k.Note)
	}
	return fmt.Sprintf("kill -9 of the shared shim, %s at %d pods: shim %d (PSS %.0f MiB, RSS %.0f MiB, %d open files, %d processes under it); "+
		"its processes alive after %s; all pods Ready again with a restarted container after %s (fewest Ready %d, at %.0f s); restarts since the kill: %s; %d %s after",
		k.Series, k.Pods, k.ShimPID, k.PSSMiB, k.RSSMiB, k.OpenFiles, k.Processes, k.aliveString(), k.readyString(),
		k.FewestReady, k.FewestReadyAtSeconds, k.restartsString(), k.SharedShimsAfter, sharedShim)
}

// orphanCommands counts orphans ("pid start command") by command, most
// frequent first, the command cut to 60 bytes.
func orphanCommands(orphans []string) []string {
	counts := map[string]int{}
	for _, o := range orphans {
		f := strings.SplitN(o, " ", 3)
		cmd := strings.Join(strings.Fields(f[len(f)-1]), " ")
		if len(cmd) > 60 {
			cmd = cmd[:60] + "…"
		}
		counts[cmd]++
	}
	cmds := slices.Collect(maps.Keys(counts))
	slices.SortFunc(cmds, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	var out []string
	for _, c := range cmds {
		out = append(out, fmt.Sprintf("%d × `%s`", counts[c], c))
	}
	return out
}

// printKillsMarkdown prints the -kill-shim runs as a table, and the orphans
// by command.
func printKillsMarkdown(w io.Writer, kills []shimKill) {
	fmt.Fprintln(w, "| kill -9 of the shared shim | pods | shim PSS / RSS MiB | open files | processes under it | of those alive after | all Ready again after | fewest Ready | restarts since the kill: pods | shared shims after |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range kills {
		if k.Note != "" {
			fmt.Fprintf(w, "| %s | %d | %s | | | | | | | |\n", k.Series, k.Pods, k.Note)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.0f / %.0f | %d | %d | %s | %s | %d (at %.0f s) | %s | %d |\n", k.Series, k.Pods, k.PSSMiB, k.RSSMiB,
			k.OpenFiles, k.Processes, k.aliveString(), k.readyString(), k.FewestReady, k.FewestReadyAtSeconds, k.restartsString(), k.SharedShimsAfter)
	}
	for _, k := range kills {
		if len(k.Orphans) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nOrphans of the killed shim (%s), %d alive %.0f s after the kill, by command (each with its pid and start time in the JSON):\n\n", k.Series, len(k.Orphans), k.EndSeconds)
		for _, c := range orphanCommands(k.Orphans) {
			fmt.Fprintf(w, "- %s\n", c)
		}
	}
}
