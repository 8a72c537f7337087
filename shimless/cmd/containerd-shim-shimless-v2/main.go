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
	"os"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task/plugin"
	"github.com/containerd/containerd/v2/pkg/shim"

	shimless "github.com/kubelet-fileprobe/kubelet-fileprobe/shimless/manager"
)

func main() {
	// Every invocation (start, delete, the serving shim) raises the limit;
	// the serving shim is started by `start` and inherits it.
	if _, err := shimless.RaiseNofile(shimless.NofileWant, shimless.NofileMin); err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-shimless-v2: warning: %v\n", err)
	}
	shim.RunShim(context.Background(), shimless.New(manager.NewShimManager("io.containerd.runc.v2")))
}
