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
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The shared shim holds ~14 open files per pod (measured: 4215 at 300 pods,
// docs/shimless.md). NofileMin (1000 pods and ~15% margin) is what it must
// get to hold 1000 pods; NofileWant is what it asks for when it has to raise
// its hard limit to get there.
const (
	NofileWant = 1 << 20
	NofileMin  = 16384
)

// RaiseNofile makes the process's soft RLIMIT_NOFILE at least min, if it can,
// without changing what the processes it starts inherit where it need not.
//
// Go's runtime already raises a Go program's soft limit to (almost) its hard
// limit at start, and os/exec gives child processes the original limits back,
// unless the program itself sets RLIMIT_NOFILE (syscall.Setrlimit clears the
// saved original). The stock runc shim never sets it, so runc, and through it
// every container (containerd's CRI plugin drops the spec's rlimits), starts
// with the limits containerd started the shim with (1024:524288 under
// systemd's defaults). The shared shim keeps that: while its soft limit
// already holds min, it sets nothing. Only below min does it set the limit,
// both limits to want (at most fs.nr_open) when it may raise the hard limit
// (CAP_SYS_RESOURCE), else the soft limit to the hard one; then the processes
// it starts inherit the raised limit, and it says so (inherited).
//
// It returns the soft limit in force, whether it set the limit, and an error
// when the limit is below min.
func RaiseNofile(want, min uint64) (limit uint64, inherited bool, err error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false, err
	}
	if lim.Cur >= min {
		return lim.Cur, false, nil
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n < want {
			want = n
		}
	}
	if lim.Max < want {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: want}); err == nil {
			lim = unix.Rlimit{Cur: want, Max: want}
			inherited = true
		}
	}
	if lim.Cur < lim.Max {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim.Max, Max: lim.Max}); err != nil {
			return lim.Cur, inherited, err
		}
		lim.Cur = lim.Max
		inherited = true
	}
	if lim.Cur < min {
		return lim.Cur, inherited, fmt.Errorf("RLIMIT_NOFILE is %d, below the %d needed for 1000 pods; raise containerd's hard limit (LimitNOFILE)", lim.Cur, min)
	}
	return lim.Cur, inherited, nil
}
