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
// docs/shimless.md). NofileWant is what it asks for; NofileMin (1000 pods and
// ~15% margin) is what it must get to hold 1000 pods.
const (
	NofileWant = 1 << 20
	NofileMin  = 16384
)

// RaiseNofile raises the process's RLIMIT_NOFILE: both limits to want (at
// most fs.nr_open) when the hard limit is lower and the process may raise it
// (CAP_SYS_RESOURCE), else the soft limit to the hard one. Processes the shim
// starts (runc, and so the containers) inherit the result, as they inherit
// whatever limit the shim runs with. It returns the limit in force and an
// error when that is below min.
func RaiseNofile(want, min uint64) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n < want {
			want = n
		}
	}
	if lim.Max < want {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: want}); err == nil {
			lim = unix.Rlimit{Cur: want, Max: want}
		}
	}
	if lim.Cur < lim.Max {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim.Max, Max: lim.Max}); err != nil {
			return lim.Cur, err
		}
		lim.Cur = lim.Max
	}
	if lim.Cur < min {
		return lim.Cur, fmt.Errorf("RLIMIT_NOFILE is %d, below the %d needed for 1000 pods; raise containerd's hard limit (LimitNOFILE)", lim.Cur, min)
	}
	return lim.Cur, nil
}
