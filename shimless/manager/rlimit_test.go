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
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// rlimitResult is what the helper process reports: RaiseNofile's results,
// its own limits afterwards, and those a process it starts gets.
type rlimitResult struct {
	Limit                uint64
	Inherited            bool
	Err                  string
	Soft, Hard           uint64
	ChildSoft, ChildHard uint64
}

// TestRaiseNofileHelper is not a test: TestRaiseNofile runs the test binary
// as a process started with given limits, as containerd starts the shim, and
// this runs RaiseNofile there and reports.
func TestRaiseNofileHelper(t *testing.T) {
	min := os.Getenv("FP_RLIMIT_HELPER_MIN")
	if min == "" {
		return
	}
	var r rlimitResult
	m, _ := strconv.ParseUint(min, 10, 64)
	limit, inherited, err := RaiseNofile(NofileWant, m)
	r.Limit, r.Inherited = limit, inherited
	if err != nil {
		r.Err = err.Error()
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	r.Soft, r.Hard = lim.Cur, lim.Max
	// A child as the shim starts runc: os/exec.
	out, err := exec.Command("sh", "-c", "ulimit -Sn; ulimit -Hn").Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(string(out), &r.ChildSoft, &r.ChildHard); err != nil {
		t.Fatalf("child limits %q: %v", out, err)
	}
	b, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", b)
}

func TestRaiseNofile(t *testing.T) {
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	if own.Max < 20000 {
		t.Fatalf("the test needs a hard RLIMIT_NOFILE of at least 20000 to start its helpers with; it has %d", own.Max)
	}
	nrOpen := uint64(NofileWant)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n < nrOpen {
			nrOpen = n
		}
	}
	canRaise := hasCapSysResource(t)
	raised := func(hard uint64) uint64 {
		if canRaise && hard < nrOpen {
			return nrOpen
		}
		return hard
	}

	for _, tc := range []struct {
		name       string
		soft, hard uint64 // what the process is started with
		min        uint64
		want       rlimitResult // Err: a substring, "" for none
	}{
		{
			// systemd's default for containerd (1024:524288), scaled to
			// what this machine allows: Go's runtime raises the shim's soft
			// limit to hard-1, which holds min; nothing is set, so runc and
			// the containers get 1024 back, as under the stock shim.
			name: "hard limit holds min: children keep the original limits",
			soft: 1024, hard: 20000, min: 16384,
			want: rlimitResult{Limit: 19999, Soft: 19999, Hard: 20000, ChildSoft: 1024, ChildHard: 20000},
		},
		{
			name: "soft = hard above min: nothing to do",
			soft: 20000, hard: 20000, min: 16384,
			want: rlimitResult{Limit: 20000, Soft: 20000, Hard: 20000, ChildSoft: 20000, ChildHard: 20000},
		},
		{
			name: "only soft = hard reaches min: set, and inherited",
			soft: 1024, hard: 20000, min: 20000,
			want: rlimitResult{Limit: raised(20000), Inherited: true, Soft: raised(20000), Hard: raised(20000), ChildSoft: raised(20000), ChildHard: raised(20000)},
		},
		{
			name: "hard limit below min: raised with CAP_SYS_RESOURCE, else an error",
			soft: 1024, hard: 8000, min: 16384,
			want: func() rlimitResult {
				if canRaise {
					return rlimitResult{Limit: nrOpen, Inherited: true, Soft: nrOpen, Hard: nrOpen, ChildSoft: nrOpen, ChildHard: nrOpen}
				}
				return rlimitResult{Limit: 8000, Inherited: true, Err: "below the 16384 needed", Soft: 8000, Hard: 8000, ChildSoft: 8000, ChildHard: 8000}
			}(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -Sn %d && ulimit -Hn %d && exec "$0" -test.run='^TestRaiseNofileHelper$' -test.v`, tc.soft, tc.hard), os.Args[0])
			cmd.Env = append(os.Environ(), fmt.Sprintf("FP_RLIMIT_HELPER_MIN=%d", tc.min))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			var got rlimitResult
			_, line, ok := strings.Cut(string(out), "RESULT ")
			if !ok {
				t.Fatalf("helper printed no result:\n%s", out)
			}
			line, _, _ = strings.Cut(line, "\n")
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("helper result %q: %v", line, err)
			}
			wantErr := tc.want.Err
			if (wantErr == "") != (got.Err == "") || !strings.Contains(got.Err, wantErr) {
				t.Errorf("error %q, want one containing %q", got.Err, wantErr)
			}
			got.Err, tc.want.Err = "", ""
			if got != tc.want {
				t.Errorf("started with %d:%d, min %d:\n got %+v\nwant %+v", tc.soft, tc.hard, tc.min, got, tc.want)
			}
		})
	}
}

// hasCapSysResource tells whether this process may raise its hard limits.
func hasCapSysResource(t *testing.T) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}
