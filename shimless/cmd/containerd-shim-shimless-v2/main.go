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

// containerd-shim-shimless-v2 is containerd's runc v2 shim (the pinned
// containerd module's own packages: same options, same task service) whose
// containers all share one shim process per containerd namespace and runtime
// handler. See package manager for how, and docs/shimless.md.
package main

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task/plugin"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/log"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/containerd/ttrpc"

	shimless "github.com/kubelet-fileprobe/kubelet-fileprobe/shimless/manager"
)

func main() {
	// Every invocation (start, delete, the serving shim) checks the limit;
	// what it starts keeps the limits it was started with unless it had to
	// set them (see RaiseNofile).
	limit, inherited, err := shimless.RaiseNofile(shimless.NofileWant, shimless.NofileMin)
	// Said in the serving shim's log (containerd's log, via the shim's log
	// FIFO), never on stderr: containerd reads `start`'s combined output as
	// its response.
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   "shimless-nofile",
		InitFn: func(ic *plugin.InitContext) (any, error) {
			l := log.G(ic.Context).WithField("RLIMIT_NOFILE", limit)
			switch {
			case err != nil:
				l.WithError(err).Warn("the shared shim cannot hold 1000 pods")
			case inherited:
				l.Warnf("RLIMIT_NOFILE set to hold 1000 pods; runc and the containers inherit it (raise containerd's hard limit to %d or more to keep theirs)", shimless.NofileMin+1)
			default:
				l.Info("RLIMIT_NOFILE holds 1000 pods")
			}
			return nil, nil
		},
	})
	// The serving shim kills what a dead instance of it left behind.
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   "shimless-adopt",
		InitFn: func(ic *plugin.InitContext) (any, error) {
			go func() {
				n, err := shimless.AdoptOrphans()
				l := log.G(ic.Context).WithField("killed", n)
				if err != nil {
					l.WithError(err).Warn("shimless: killing containers of dead instances of the shim")
				} else if n > 0 {
					l.Info("shimless: killed containers of dead instances of the shim")
				}
			}()
			return nil, nil
		},
	})
	// The serving shim runs a bounded number of runc calls at once (see
	// shimless.Limiter): a shim shared by hundreds of pods would otherwise
	// jam its reaper when they are deleted together.
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   "shimless-runc-call-limit",
		InitFn: func(ic *plugin.InitContext) (any, error) {
			return shimless.NewLimiter(shimless.RuncCallLimit), nil
		},
	})
	// The serving shim lists the tasks it serves beside its socket (see
	// shimless.Registry), for the cleanups after its death.
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   "shimless-task-registry",
		InitFn: func(ic *plugin.InitContext) (any, error) {
			l := log.G(ic.Context)
			r, err := shimless.ServingRegistry()
			if err != nil {
				// Serve without: the cleanups still find tasks by bundle.
				l.WithError(err).Warn("shimless: no task registry")
				return nil, fmt.Errorf("no task registry: %w", plugin.ErrSkipPlugin)
			}
			return taskRegistry{r.UnaryServerInterceptor(func(format string, args ...any) { l.Warnf(format, args...) })}, nil
		},
	})
	shim.RunShim(context.Background(), shimless.New(manager.NewShimManager("io.containerd.runc.v2")))
}

// taskRegistry is the registry's interceptor as a shim plugin
// (shim.TTRPCServerUnaryOptioner).
type taskRegistry struct{ intercept ttrpc.UnaryServerInterceptor }

func (r taskRegistry) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor { return r.intercept }
