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

// Package manager is the one thing containerd-shim-shimless-v2 adds to
// containerd's stock runc v2 shim: it makes every container of a containerd
// namespace and runtime handler share one shim process.
//
// containerd's runc shim already groups containers. Its manager's Start
// (cmd/containerd-shim-runc-v2/manager, containerd v2.4.2) reads the bundle's
// config.json from its working directory and takes the first of the spec
// annotations io.containerd.runc.v2.group and io.kubernetes.cri.sandbox-id
// (else the container id) as the grouping key; the shim's socket address is a
// hash of containerd's address, the namespace and that key, and when a shim
// already listens there, Start returns its address instead of starting one.
// So the stock shim gives one shim per pod, or per value of a group annotation
// the user passes through from the pod.
//
// The seam chosen here is the narrowest one that needs no copy of upstream
// code: Manager wraps containerd's shim.Shim (the runc manager) and, in Start
// only, sets io.containerd.runc.v2.group in the bundle's config.json to a key
// of its own before it delegates. Everything else (the socket, reuse of a
// running shim, the shim cgroup, OOM score, the task service, Stop, Info) is
// containerd's code, unchanged, but for one addition to Stop (orphans.go):
// the cleanup after a dead shared shim kills all its containers at once; and
// Start returns a running shim's address itself when containerd's manager
// would give up on reaching it too soon (see Start). The alternatives were worse:
//   - re-implementing Start with another key means copying ~100 lines of the
//     manager (socket creation, re-exec, cgroups), which must not be done and
//     would drift from the pinned version;
//   - pointing Start at another working directory with a fake config.json
//     would also change the started shim's working directory (the bundle),
//     which the shim and Stop rely on;
//   - a pod annotation passed through by the CRI plugin (pod_annotations)
//     leaves the grouping to each pod's author; here it is the binary's.
//
// The price of the seam: the annotation is written into the bundle's
// config.json, so the container's OCI spec as runc (and OCI hooks) see it
// carries io.containerd.runc.v2.group=<key>. containerd's stored container
// spec is not changed. A group annotation set by a pod is overwritten.
//
// The key is "shimless-" and a hash of the shim binary's path and the runc
// options containerd passes for the runtime handler (runtime_path and options
// in containerd's config), so handlers that differ in either get their own
// shim; the namespace is already part of the socket address. Two handlers with
// the same binary and the same options share a shim, which is then the same
// shim either would have started.
package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"
)

// GroupAnnotation is the annotation containerd's runc shim groups by first.
const GroupAnnotation = "io.containerd.runc.v2.group"

// KeyPrefix starts every grouping key this shim sets.
const KeyPrefix = "shimless-"

// Manager is containerd's runc shim manager with a fixed grouping key.
type Manager struct {
	shim.Shim
	// Executable is the shim binary's path, part of the key (os.Executable when empty).
	Executable string
	// Bundle is the directory of config.json (the working directory when empty,
	// which is where containerd starts `shim start`).
	Bundle string

	orphans *orphanKiller // for tests; Stop's default otherwise
}

// New wraps inner, e.g. containerd's manager.NewShimManager("io.containerd.runc.v2").
func New(inner shim.Shim) *Manager { return &Manager{Shim: inner} }

// Start sets the group annotation in the bundle's config.json, then lets the
// wrapped manager start a shim, or return the address of the running one.
func (m *Manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (*bootapi.BootstrapResult, error) {
	key, err := m.Key(params)
	if err != nil {
		return nil, err
	}
	bundle := m.Bundle
	if bundle == "" {
		if bundle, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	if err := SetAnnotation(filepath.Join(bundle, "config.json"), GroupAnnotation, key); err != nil {
		return nil, fmt.Errorf("shimless: set %s in the bundle's spec: %w", GroupAnnotation, err)
	}
	// containerd's manager returns the running shim's address only if it
	// can connect to it within 100 ms (shim.CanConnect); otherwise it
	// replaces the socket of the live shim and starts a second one. A node
	// busy enough (a load of 40 on 2 cores while 300 pods start, make bench)
	// misses those 100 ms, and the group splits: two shims, the first one's
	// socket gone. So Start asks first, patiently, and returns the running
	// shim's address itself, as containerd's manager does when it reaches
	// it (protocol ttrpc, version 3).
	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	if address, err := shim.CreateSocketAddress(ctx, socketDir, params.GetContainerdGrpcAddress(), key, false); err == nil && serving(address, servingTimeout) {
		return &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc", Address: address}, nil
	}
	return m.Shim.Start(ctx, params)
}

// servingTimeout is how long Start waits to connect to a running shim.
const servingTimeout = 3 * time.Second

// serving tells whether a shim listens at address: a connection made, or one
// not made within timeout (a shim whose backlog is full, or a node too busy
// to connect in time, is alive), as opposed to no socket or a refused
// connection (a dead shim's socket).
func serving(address string, timeout time.Duration) bool {
	path, ok := socketPath(address)
	if !ok {
		return false
	}
	c, err := net.DialTimeout("unix", path, timeout)
	if err == nil {
		c.Close()
		return true
	}
	var ne net.Error
	return (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EAGAIN)
}

// Stop is the shim's `delete`, which containerd runs for each task of a
// shim that died or that it gives up on. Before containerd's own (runc
// delete --force of the container), the first delete after the shared shim
// died kills every container the shim served (orphans.go): containerd's
// deletes, one per container and all at once, time out at density and leave
// containers running.
func (m *Manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	k := m.orphans
	if k == nil {
		k = &orphanKiller{Kill: cgroupKiller()}
	}
	if k.TaskDir == "" {
		cwd, err := os.Getwd()
		if err != nil {
			return shim.StopStatus{}, err
		}
		// As containerd's Stop: the bundle of id is beside the working directory.
		k.TaskDir = filepath.Dir(cwd)
	}
	if k.Executable == "" {
		k.Executable, _ = os.Executable()
	}
	if n, err := k.cleanUp(id); err != nil {
		log.G(ctx).WithError(err).WithField("killed", n).Warn("shimless: killing the dead shim's containers")
	} else if n > 0 {
		log.G(ctx).WithField("killed", n).Info("shimless: killed the dead shim's containers")
	}
	return m.Shim.Stop(ctx, id)
}

// Key is the grouping key for a shim started with params: the same for every
// container of one runtime handler (binary and runc options).
func (m *Manager) Key(params *bootapi.BootstrapParams) (string, error) {
	exe := m.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return "", err
		}
	}
	h := sha256.New()
	h.Write([]byte(exe))
	h.Write([]byte{0})
	var opts options.Options
	found, err := params.FindExtension(&opts)
	if err != nil {
		return "", fmt.Errorf("shimless: read the runc options: %w", err)
	}
	if found {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&opts)
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	return KeyPrefix + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// SetAnnotation sets annotations[key] = value in the OCI spec file path and
// leaves every other field as it was (re-encoded, keys sorted). The file is
// replaced atomically, keeping its mode.
func SetAnnotation(path, key, value string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if spec == nil {
		return fmt.Errorf("%s: not a JSON object", path)
	}
	annotations := map[string]string{}
	if raw, ok := spec["annotations"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &annotations); err != nil {
			return fmt.Errorf("%s: annotations: %w", path, err)
		}
	}
	if v, ok := annotations[key]; ok && v == value {
		return nil
	}
	annotations[key] = value
	if spec["annotations"], err = json.Marshal(annotations); err != nil {
		return err
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config.json.shimless-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
