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
	"os"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	runcmanager "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
)

// The seam against containerd's real runc manager (v2.4.2): with a shim
// listening on the socket of our key, Start for the containers of two
// different pods returns that shim's address instead of starting a shim per
// pod. If containerd stops grouping by io.containerd.runc.v2.group, or
// derives the socket differently, this fails (the manager would try to start
// a shim, the test binary, and return another address).
func TestContainerdManagerJoinsTheRunningShim(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	// Short: the socket path must fit a sockaddr_un.
	socketDir, err := os.MkdirTemp("/tmp", "shimless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(socketDir) })
	const grpcAddress = "/run/containerd/containerd.sock"
	p := params(t, &options.Options{BinaryName: "/node/bin/runc"})
	p.SocketDir = &socketDir
	p.ContainerdGrpcAddress = grpcAddress
	p.LogLevel = bootapi.LogLevel_LOG_LEVEL_INFO

	m := New(runcmanager.NewShimManager("io.containerd.runc.v2"))
	key, err := m.Key(p)
	if err != nil {
		t.Fatal(err)
	}
	address, err := shim.CreateSocketAddress(ctx, socketDir, grpcAddress, key, false)
	if err != nil {
		t.Fatal(err)
	}
	l, err := shim.NewSocket(address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	for _, sandbox := range []string{"pod-a", "pod-b"} {
		t.Chdir(bundle(t, sandbox)) // containerd runs `shim start` in the bundle
		res, err := m.Start(ctx, p)
		if err != nil {
			t.Fatalf("%s: Start: %v", sandbox, err)
		}
		if res.GetAddress() != address {
			t.Errorf("%s: Start returned %q, want the running shim's %q", sandbox, res.GetAddress(), address)
		}
	}
}
