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

package pod

import (
	api "k8s.io/kubernetes/pkg/apis/core"
)

// fileProbeInUse reports whether any probe of any container of podSpec has a
// file handler. An object that already uses file probes may keep them when the
// FileContainerProbe feature gate is off (PodValidationOptions.AllowFileProbe).
func fileProbeInUse(podSpec *api.PodSpec) bool {
	if podSpec == nil {
		return false
	}
	inUse := false
	VisitContainers(podSpec, AllContainers, func(c *api.Container, _ ContainerType) bool {
		for _, p := range []*api.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p != nil && p.File != nil {
				inUse = true
				return false
			}
		}
		return true
	})
	return inUse
}
