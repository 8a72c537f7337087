//go:build !linux

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

package file

import (
	"errors"

	"k8s.io/kubernetes/pkg/probe"
)

// errUnsupported is returned on every platform but Linux: the probe relies on
// openat2(2) to resolve the file safely, and on nothing weaker.
var errUnsupported = errors.New("file probes are supported on Linux nodes only")

// PodsDir is an open handle on the kubelet's pods directory; it cannot be
// opened on this platform.
type PodsDir struct{}

// OpenPodsDir fails on this platform.
func OpenPodsDir(dir string) (*PodsDir, error) {
	return nil, errUnsupported
}

// Close does nothing.
func (d *PodsDir) Close() error {
	return nil
}

// Probe never succeeds on this platform.
func Probe(pods *PodsDir, t *Target, c Check) (probe.Result, string, error) {
	return probe.Unknown, "", errUnsupported
}

// CheckSupport fails on this platform.
func CheckSupport() error {
	return errUnsupported
}
