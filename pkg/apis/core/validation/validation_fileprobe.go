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

package validation

import (
	"fmt"
	"sort"
	"strings"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/apis/core"
)

const (
	// fileProbeMaxSegmentBytes is the longest segment (the volume name, a
	// directory or the file name) of a file probe path: NAME_MAX on Linux.
	fileProbeMaxSegmentBytes = 255
	// fileProbeNodePathMax is PATH_MAX on Linux: the longest path that
	// statx(2) and openat2(2) accept, including its terminating NUL.
	fileProbeNodePathMax = 4096
	// fileProbeMaxPodUIDBytes is the longest pod UID: a UUID, as the apiserver
	// assigns (static pods have shorter ones, hashes of 32 hex digits).
	fileProbeMaxPodUIDBytes = 36
	// fileProbeKubeletPrefixBytes is the longest prefix the kubelet puts in
	// front of the path, less its leading '/', to resolve it relative to its
	// pods directory (pkg/probe/file NewTarget):
	// <pod UID>/volumes/kubernetes.io~empty-dir/, 36 + 33 = 69 bytes.
	fileProbeKubeletPrefixBytes = fileProbeMaxPodUIDBytes + len("/volumes/kubernetes.io~empty-dir/")
	// fileProbeMaxPathBytes is the longest file probe path accepted: the
	// kubelet passes prefix + path[1:] + NUL to the kernel, which must fit
	// PATH_MAX on every node:
	//   69 + (len(path) - 1) + 1 <= 4096, that is len(path) <= 4096 - 69 = 4027.
	fileProbeMaxPathBytes = fileProbeNodePathMax - fileProbeKubeletPrefixBytes
	// fileProbeMinValidity and fileProbeMaxValidity bound FileAction.Validity, in seconds.
	fileProbeMinValidity = 1
	fileProbeMaxValidity = 86400
)

// validateContainerFileProbes validates the file handlers of a container's
// probes. It runs where upstream validates probes (regular containers and
// restartable init containers), beside validateHandler, because a file probe
// also needs the pod's volumes: the first segment of its path names one of the
// pod's emptyDir volumes.
//
// File probes are Linux-only: the kubelet checks the file with statx(2) and
// openat2(2). On a pod with spec.os.name windows the handler is forbidden, like
// upstream's other Linux-only fields (validateWindows), and its path is not
// checked any further, as upstream does for pod-level resources there.
func validateContainerFileProbes(ctr *core.Container, os *core.PodOS, volumes map[string]core.VolumeSource, fldPath *field.Path, opts PodValidationOptions) field.ErrorList {
	var allErrs field.ErrorList
	for _, p := range []struct {
		probe *core.Probe
		name  string
	}{
		{ctr.LivenessProbe, "livenessProbe"},
		{ctr.ReadinessProbe, "readinessProbe"},
		{ctr.StartupProbe, "startupProbe"},
	} {
		if p.probe == nil || p.probe.File == nil {
			continue
		}
		filePath := fldPath.Child(p.name, "file")
		if !opts.AllowFileProbe {
			allErrs = append(allErrs, field.Forbidden(filePath, "may not be set when the FileContainerProbe feature gate is disabled"))
			continue
		}
		if os != nil && os.Name == core.Windows {
			allErrs = append(allErrs, field.Forbidden(filePath, "cannot be set for a windows pod"))
			continue
		}
		allErrs = append(allErrs, validateFileAction(p.probe.File, volumes, filePath)...)
	}
	return allErrs
}

// validateFileAction validates a file probe handler against the pod's volumes.
func validateFileAction(file *core.FileAction, volumes map[string]core.VolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	allErrs = append(allErrs, validateFileProbePath(file.Path, volumes, fldPath.Child("path"))...)
	switch {
	case file.Validity == 0:
		allErrs = append(allErrs, field.Required(fldPath.Child("validity"), "seconds, "+utilvalidation.InclusiveRangeError(fileProbeMinValidity, fileProbeMaxValidity)))
	case file.Validity < fileProbeMinValidity || file.Validity > fileProbeMaxValidity:
		allErrs = append(allErrs, field.Invalid(fldPath.Child("validity"), file.Validity, "seconds, "+utilvalidation.InclusiveRangeError(fileProbeMinValidity, fileProbeMaxValidity)))
	}
	return allErrs
}

// validateFileProbePath checks that p reads /<emptyDir volume>/<file in it>,
// and that the kubelet can resolve it on any node: every segment fits NAME_MAX
// and the path, behind the kubelet's prefix, fits PATH_MAX. Only the syntax is
// checked here; the kubelet resolves the path inside the volume without
// following any symbolic link.
func validateFileProbePath(p string, volumes map[string]core.VolumeSource, fldPath *field.Path) field.ErrorList {
	const form = "/<emptyDir volume name>/<file in the volume>"
	switch {
	case p == "":
		return field.ErrorList{field.Required(fldPath, "must be "+form)}
	case len(p) > fileProbeMaxPathBytes:
		err := field.TooLong(fldPath, "" /*unused*/, fileProbeMaxPathBytes)
		err.Detail += fmt.Sprintf(" (the node's PATH_MAX of %d bytes, including the terminating NUL, less the kubelet's prefix <pod UID>/volumes/kubernetes.io~empty-dir/ of up to %d bytes)", fileProbeNodePathMax, fileProbeKubeletPrefixBytes)
		return field.ErrorList{err}
	case strings.IndexByte(p, 0) >= 0:
		return field.ErrorList{field.Invalid(fldPath, p, "must not contain NUL bytes")}
	case !strings.HasPrefix(p, "/"):
		return field.ErrorList{field.Invalid(fldPath, p, "must be an absolute path of the form "+form)}
	case strings.HasSuffix(p, "/"):
		return field.ErrorList{field.Invalid(fldPath, p, "must not end with '/'")}
	}
	segments := strings.Split(p[1:], "/")
	for i, s := range segments {
		switch {
		case s == "":
			return field.ErrorList{field.Invalid(fldPath, p, "must not contain empty segments ('//')")}
		case s == "." || s == "..":
			return field.ErrorList{field.Invalid(fldPath, p, "must not contain '.' or '..' segments")}
		case len(s) > fileProbeMaxSegmentBytes:
			return field.ErrorList{field.Invalid(fldPath, p, fmt.Sprintf("segment %d (%s) is %d bytes long: each segment must be at most %d bytes (NAME_MAX)", i+1, quoteSegmentStart(s), len(s), fileProbeMaxSegmentBytes))}
		}
	}
	if len(segments) < 2 {
		return field.ErrorList{field.Invalid(fldPath, p, "must name a file inside an emptyDir volume: "+form)}
	}
	volume := segments[0]
	source, found := volumes[volume]
	switch {
	case !found:
		return field.ErrorList{field.Invalid(fldPath, p, fmt.Sprintf("must start with the name of an emptyDir volume of this pod, and there is no volume %q (%s)", volume, describeEmptyDirVolumes(volumes)))}
	case source.EmptyDir == nil:
		return field.ErrorList{field.Invalid(fldPath, p, fmt.Sprintf("volume %q is not an emptyDir volume: file probes read only emptyDir volumes (%s)", volume, describeEmptyDirVolumes(volumes)))}
	}
	return nil
}

// quoteSegmentStart quotes the start of a path segment too long to be quoted
// whole in an error message (the whole path is in the error's value).
func quoteSegmentStart(s string) string {
	const show = 32
	if len(s) <= show {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...", s[:show])
}

// describeEmptyDirVolumes lists the emptyDir volumes of a pod for an error message.
func describeEmptyDirVolumes(volumes map[string]core.VolumeSource) string {
	var names []string
	for name, source := range volumes {
		if source.EmptyDir != nil {
			names = append(names, fmt.Sprintf("%q", name))
		}
	}
	if len(names) == 0 {
		return "the pod has no emptyDir volumes"
	}
	sort.Strings(names)
	return "emptyDir volumes: " + strings.Join(names, ", ")
}
