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
	"fmt"
	"io"
	"os"
	"regexp"
	"time"
)

// A pod's readiness latency has two parts: from the first heartbeat until
// the kubelet knows the pod is Ready (the file watch or the period, the
// probe, its result reaching the kubelet's sync loop) and from there until
// the pod's Ready condition is seen through the API (the kubelet's status
// manager, which writes one pod status after the other, the apiserver and
// its watch). The first part is the probe's, the second is the same for
// every probe handler. The kubelet logs the boundary, at -v=1:
//
//	I1122 22:03:41.991860    2307 kubelet.go:2878] "SyncLoop (probe)" probe="readiness" status="ready" pod="density-latency/file-0003"
var syncLoopReady = regexp.MustCompile(`^I(\d{4} \d{2}:\d{2}:\d{2}\.\d{6}) .*\] "SyncLoop \(probe\)" probe="readiness" status="ready" pod="([^"/]+)/([^"]+)"`)

// kubeletReadyTimes reads a kubelet log and returns, for each pod of
// namespace, the times the kubelet's sync loop took a "ready" readiness
// result, in log order. klog's headers have no year and are in the
// kubelet's local time: year and loc supply them.
func kubeletReadyTimes(r io.Reader, namespace string, year int, loc *time.Location) (map[string][]time.Time, error) {
	out := map[string][]time.Time{}
	sc := bufio.NewScanner(r)
	// At -v=3 the kubelet logs whole pod statuses on one line.
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		m := syncLoopReady.FindSubmatch(sc.Bytes())
		if m == nil || string(m[2]) != namespace {
			continue
		}
		t, err := time.ParseInLocation("2006 0102 15:04:05.000000", fmt.Sprintf("%d %s", year, m[1]), loc)
		if err != nil {
			return nil, fmt.Errorf("kubelet log line %q: %w", sc.Text(), err)
		}
		out[string(m[3])] = append(out[string(m[3])], t)
	}
	return out, sc.Err()
}

// kubeletReadyAfter is the first of times at or after t: when the kubelet
// learnt of the readiness that t started. Zero if none.
func kubeletReadyAfter(times []time.Time, t time.Time) time.Time {
	for _, k := range times {
		if !k.Before(t) {
			return k
		}
	}
	return time.Time{}
}

// readKubeletLog is kubeletReadyTimes of the file path; no path, no times.
func readKubeletLog(path, namespace string, year int) (map[string][]time.Time, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return kubeletReadyTimes(f, namespace, year, time.Local)
}
