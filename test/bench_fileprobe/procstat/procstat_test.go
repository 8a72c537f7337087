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

package procstat

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		comm    string
		want    int64
		wantErr bool
	}{{
		name: "utime, stime, cutime, cstime",
		stat: "4242 (containerd-shim) S 1 4242 4242 0 -1 4194560 2000 0 0 0 7 15 17 17 20 0 12 0 100 0 0",
		comm: "containerd-shim",
		want: 7 + 15 + 17 + 17,
	}, {
		name: "a command with spaces and parentheses",
		stat: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 0 0",
		comm: "a (b) c",
		want: 10,
	}, {
		name:    "truncated",
		stat:    "7 (sh) R 1 7 7",
		wantErr: true,
	}, {
		name:    "no command",
		stat:    "7 sh R",
		wantErr: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			comm, got, err := Parse([]byte(tc.stat))
			if (err != nil) != tc.wantErr || got != tc.want || comm != tc.comm {
				t.Errorf("Parse() = %q, %d, %v; want %q, %d, error %v", comm, got, err, tc.comm, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParentAndStart(t *testing.T) {
	ppid, start, err := ParentAndStart([]byte("42 (a (b) c) S 7 1 1 0 -1 0 0 0 0 0 3 4 5 6 20 0 1 0 98765 0 0\n"))
	if err != nil || ppid != 7 || start != "98765" {
		t.Errorf("ParentAndStart() = %d, %q, %v; want 7, 98765", ppid, start, err)
	}
	if _, _, err := ParentAndStart([]byte("42 (x) S 7")); err == nil {
		t.Error("ParentAndStart() of a short stat: no error")
	}
}
