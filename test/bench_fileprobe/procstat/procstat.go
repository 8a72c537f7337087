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

// Package procstat reads the CPU time of a process from /proc/<pid>/stat,
// for the benchmarks in test/bench_fileprobe.
package procstat

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat and
// /proc/stat.
const ClockTicks = 100

// Parse returns a process's command and the CPU ticks it and the children it
// reaped used (utime, stime, cutime, cstime: fields 14-17 of
// /proc/<pid>/stat).
func Parse(raw []byte) (comm string, ticks int64, err error) {
	comm, fields, err := split(raw, 15)
	if err != nil {
		return "", 0, err
	}
	for _, f := range fields[11:15] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return "", 0, fmt.Errorf("malformed stat %q: %w", raw, err)
		}
		ticks += v
	}
	return comm, ticks, nil
}

// ParentAndStart returns a process's parent pid (field 4 of /proc/<pid>/stat)
// and its start time (field 22, clock ticks since boot).
func ParentAndStart(raw []byte) (ppid int, start string, err error) {
	_, fields, err := split(raw, 20)
	if err != nil {
		return 0, "", err
	}
	if ppid, err = strconv.Atoi(fields[1]); err != nil {
		return 0, "", fmt.Errorf("malformed stat %q: %w", raw, err)
	}
	return ppid, fields[19], nil
}

// split returns the command of a /proc/<pid>/stat line (which may hold spaces
// and parentheses) and the fields after it, field 3 (state) first, at least n.
func split(raw []byte, n int) (comm string, fields []string, err error) {
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open {
		return "", nil, fmt.Errorf("malformed stat %q", raw)
	}
	fields = strings.Fields(string(raw[end+1:]))
	if len(fields) < n {
		return "", nil, fmt.Errorf("malformed stat %q", raw)
	}
	return string(raw[open+1 : end]), fields, nil
}
