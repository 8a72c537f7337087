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
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/typeurl/v2"
)

// fake records what containerd's manager would read when Start is delegated.
type fake struct {
	bundle string
	spec   map[string]any
	calls  int
}

func (f *fake) Name() string { return "io.containerd.runc.v2" }
func (f *fake) Start(ctx context.Context, p *bootapi.BootstrapParams) (*bootapi.BootstrapResult, error) {
	f.calls++
	b, err := os.ReadFile(filepath.Join(f.bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	f.spec = map[string]any{}
	if err := json.Unmarshal(b, &f.spec); err != nil {
		return nil, err
	}
	return &bootapi.BootstrapResult{Address: "unix:///x"}, nil
}
func (f *fake) Stop(context.Context, string) (shim.StopStatus, error) { return shim.StopStatus{}, nil }
func (f *fake) Info(context.Context, io.Reader) (*types.RuntimeInfo, error) {
	return &types.RuntimeInfo{}, nil
}

const specJSON = `{"ociVersion":"1.2.0","process":{"args":["sh"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}]},` +
	`"linux":{"resources":{"memory":{"limit":9223372036854775807}}},` +
	`"annotations":{"io.kubernetes.cri.sandbox-id":"%s","io.kubernetes.cri.container-type":"container"}}`

func bundle(t *testing.T, sandbox string) string {
	t.Helper()
	dir := t.TempDir()
	spec := strings.Replace(specJSON, "%s", sandbox, 1)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(spec), 0o640); err != nil {
		t.Fatal(err)
	}
	return dir
}

func params(t *testing.T, opts *options.Options, extra ...*bootapi.Extension) *bootapi.BootstrapParams {
	t.Helper()
	p := &bootapi.BootstrapParams{InstanceID: "c1", Namespace: "k8s.io"}
	if opts != nil {
		if err := p.AddExtension(opts); err != nil {
			t.Fatal(err)
		}
	}
	p.Extensions = append(p.Extensions, extra...)
	return p
}

func start(t *testing.T, exe, sandbox string, p *bootapi.BootstrapParams) (*fake, string) {
	t.Helper()
	f := &fake{bundle: bundle(t, sandbox)}
	m := &Manager{Shim: f, Executable: exe, Bundle: f.bundle}
	if _, err := m.Start(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if f.calls != 1 {
		t.Fatalf("Start delegated %d times, want 1", f.calls)
	}
	ann := f.spec["annotations"].(map[string]any)
	if ann["io.kubernetes.cri.sandbox-id"] != sandbox {
		t.Errorf("sandbox-id annotation lost: %v", ann)
	}
	key, _ := ann[GroupAnnotation].(string)
	return f, key
}

// The grouping seam: what containerd's manager reads after our Start is one
// key for every pod of a handler, which it takes before the sandbox id.
func TestStartGroupsAllPodsOfAHandler(t *testing.T) {
	opts := &options.Options{BinaryName: "/node/bin/runc", SystemdCgroup: false}
	_, a := start(t, "/node/bin/containerd-shim-shimless-v2", "pod-a", params(t, opts))
	_, b := start(t, "/node/bin/containerd-shim-shimless-v2", "pod-b", params(t, opts))
	if a == "" || !strings.HasPrefix(a, KeyPrefix) {
		t.Fatalf("group annotation %q, want %s...", a, KeyPrefix)
	}
	if a != b {
		t.Errorf("two pods of one handler: keys %q and %q, want one", a, b)
	}
	// Per-pod extensions (the CRI plugin may send the sandbox config) do not split the group.
	sandboxConfig, err := typeurl.MarshalAnyToProto(&options.Options{Root: "per-pod"})
	if err != nil {
		t.Fatal(err)
	}
	_, c := start(t, "/node/bin/containerd-shim-shimless-v2", "pod-c",
		params(t, opts, &bootapi.Extension{Value: sandboxConfig}))
	if c != a {
		t.Errorf("with another extension: key %q, want %q", c, a)
	}
}

func TestStartSeparatesHandlers(t *testing.T) {
	exe := "/node/bin/containerd-shim-shimless-v2"
	_, base := start(t, exe, "p", params(t, &options.Options{BinaryName: "/node/bin/runc"}))
	_, otherOpts := start(t, exe, "p", params(t, &options.Options{BinaryName: "/node/bin/crun"}))
	_, otherBin := start(t, "/opt/containerd-shim-shimless-v2", "p", params(t, &options.Options{BinaryName: "/node/bin/runc"}))
	_, noOpts := start(t, exe, "p", params(t, nil))
	keys := map[string]string{"base": base, "other options": otherOpts, "other binary": otherBin, "no options": noOpts}
	seen := map[string]string{}
	for name, k := range keys {
		if prev, ok := seen[k]; ok {
			t.Errorf("%s and %s share key %q", name, prev, k)
		}
		seen[k] = name
	}
}

// A group annotation from the pod does not choose the shim: the binary does.
func TestStartOverridesUserGroup(t *testing.T) {
	f := &fake{bundle: bundle(t, "p")}
	path := filepath.Join(f.bundle, "config.json")
	if err := SetAnnotation(path, GroupAnnotation, "mine"); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Shim: f, Executable: "/x", Bundle: f.bundle}
	if _, err := m.Start(context.Background(), params(t, nil)); err != nil {
		t.Fatal(err)
	}
	want, _ := m.Key(params(t, nil))
	if got := f.spec["annotations"].(map[string]any)[GroupAnnotation]; got != want {
		t.Errorf("group %v, want %v", got, want)
	}
}

// The rest of the spec reaches runc as it was: numbers beyond float64, mode.
func TestSetAnnotationKeepsSpec(t *testing.T) {
	dir := bundle(t, "p")
	path := filepath.Join(dir, "config.json")
	if err := SetAnnotation(path, GroupAnnotation, "g"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	var got, want map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(strings.Replace(specJSON, "%s", "p", 1)), &want)
	want["annotations"].(map[string]any)[GroupAnnotation] = "g"
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("spec after SetAnnotation:\n%s\nwant\n%s", gb, wb)
	}
	if !strings.Contains(string(b), "9223372036854775807") {
		t.Errorf("memory limit not kept exactly: %s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("bundle holds %d files, want config.json only", len(entries))
	}
	// No annotations at all.
	if err := os.WriteFile(path, []byte(`{"ociVersion":"1.2.0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SetAnnotation(path, GroupAnnotation, "g"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if string(b) != `{"annotations":{"io.containerd.runc.v2.group":"g"},"ociVersion":"1.2.0"}` {
		t.Errorf("got %s", b)
	}
}

func TestStartFailsWithoutSpec(t *testing.T) {
	f := &fake{bundle: t.TempDir()}
	m := &Manager{Shim: f, Executable: "/x", Bundle: f.bundle}
	if _, err := m.Start(context.Background(), params(t, nil)); err == nil || f.calls != 0 {
		t.Errorf("Start without config.json: err %v, delegated %d times; want an error and no delegation", err, f.calls)
	}
}

// TestStartReturnsTheRunningShim: Start hands containerd the address of the
// group's running shim itself (containerd's manager would start a second
// shim when it cannot connect within 100 ms), and delegates when no shim
// answers there.
func TestStartReturnsTheRunningShim(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	opts := &options.Options{BinaryName: "/node/bin/runc"}
	f := &fake{bundle: bundle(t, "pod-a")}
	m := &Manager{Shim: f, Executable: "/node/bin/containerd-shim-shimless-v2", Bundle: f.bundle}
	p := params(t, opts)
	p.SocketDir = ptrTo(socketDir(t))
	p.ContainerdGrpcAddress = "/run/containerd/containerd.sock"
	key, err := m.Key(p)
	if err != nil {
		t.Fatal(err)
	}
	address, err := shim.CreateSocketAddress(ctx, p.GetSocketDir(), p.ContainerdGrpcAddress, key, false)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := socketPath(address)

	// No shim yet: containerd's manager starts one.
	if r, err := m.Start(ctx, p); err != nil || f.calls != 1 || r.Address != "unix:///x" {
		t.Fatalf("no shim running: %v, %v, %d delegated; want containerd's Start", r, err, f.calls)
	}
	// A shim serves the group: its address, without containerd's Start.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Start(ctx, p)
	if err != nil || f.calls != 1 || r.GetAddress() != address || r.GetProtocol() != "ttrpc" || r.GetVersion() != 3 {
		t.Fatalf("a shim running: %v, %v, %d delegated; want %s (ttrpc, version 3), not delegated", r, err, f.calls, address)
	}
	// Its socket left by a dead shim: containerd's Start replaces it.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if r, err := m.Start(ctx, p); err != nil || f.calls != 2 || r.Address != "unix:///x" {
		t.Fatalf("a dead shim's socket: %v, %v, %d delegated; want containerd's Start", r, err, f.calls)
	}
}

func TestServing(t *testing.T) {
	dir := socketDir(t)
	live, dead := filepath.Join(dir, "live"), filepath.Join(dir, "dead")
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	deadSocket(t, dead)
	for _, c := range []struct {
		address string
		want    bool
	}{
		{"unix://" + live, true},
		{"unix://" + dead, false},
		{"unix://" + filepath.Join(dir, "none"), false},
		{"vsock://3:1024", false},
		{"relative", false},
	} {
		if got := serving(c.address, time.Second); got != c.want {
			t.Errorf("serving(%q) = %v, want %v", c.address, got, c.want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
