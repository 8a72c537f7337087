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

// Package file implements the file probe: it checks how recently a file in one
// of a pod's emptyDir volumes was modified, on the node, with no call into the
// container runtime.
//
// The container controls everything inside the volume, so no symbolic link
// is ever followed, in any component of the path including the last one (a
// symbolic link that stays inside the volume is refused too, which keeps the
// rule simple to state and to check), and no rename race can take the
// resolution out of the volume. The directories above the volume
// (<pods dir>/<pod UID>/volumes/kubernetes.io~empty-dir/<volume>) are the
// kubelet's own; only what is inside the volume is the container's:
//
//   - a file directly in the volume (/<volume>/<file>, the usual case) is
//     examined with one statx(2) relative to the pods directory with
//     AT_SYMLINK_NOFOLLOW: the file name is the only component the container
//     controls, and it is looked up, never followed;
//   - a file deeper in the volume (/<volume>/<dir>/.../<file>) is resolved
//     with openat2(2) beneath the pods directory with RESOLVE_BENEATH and
//     RESOLVE_NO_SYMLINKS, and opened with O_PATH, then fstat'ed.
//
// Neither opens the file for reading: a FIFO, a socket or a device is never
// opened and cannot block. Every file that is not a regular file is a
// Failure. A hard link is the same inode as its target and is allowed: it
// cannot point out of the volume's filesystem, and its modification time is
// the target's.
//
// File probes need Linux 5.6 or later (openat2). On other platforms every
// probe errors, and never succeeds.
package file

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/kubernetes/pkg/probe"
)

// FutureTolerance is how far in the future a file's modification time may be
// and still count as "just modified": it absorbs small host clock steps and
// timestamp granularity, so that they do not flap every probe on the node. A
// modification time further in the future is a Failure: a `touch -d` into the
// future or a clock stepped back can never keep a probe passing.
const FutureTolerance = 5 * time.Second

// Check is what a probe judges its file by.
type Check struct {
	// Validity is how long after its last modification the file is fresh.
	Validity time.Duration
	// Now is the node's current time.
	Now time.Time
	// Started is when the probed container instance started; the zero time
	// means no instance (the file alone is judged). The file is judged
	// against that instance: a modification before it started (by a
	// previous instance of the container, an init container or another
	// container) is not its heartbeat. Container start times in pod
	// statuses have a resolution of one second, so Started is truncated to
	// the second and a modification within the second it started counts.
	Started time.Time
	// GraceFromStart is set for liveness probes: a modification before the
	// instance started counts as made when it started, so that a new
	// instance gets Validity from its start to write its first heartbeat
	// (neither killed at once nor kept alive by its predecessor). When it is
	// not set (readiness, startup), such a modification is a Failure.
	GraceFromStart bool
}

// judge decides on a regular file modified at mtime.
func (c *Check) judge(t *Target, mtime time.Time) (probe.Result, string, error) {
	age := c.Now.Sub(mtime)
	if !c.Started.IsZero() {
		started := c.Started.Truncate(time.Second)
		if mtime.Before(started) {
			since := c.Now.Sub(started)
			if !c.GraceFromStart {
				return probe.Failure, fmt.Sprintf("file %s last modified %s ago, before the container started %s ago",
					t.display, age.Truncate(time.Second), since.Truncate(time.Second)), nil
			}
			if since > c.Validity {
				return probe.Failure, fmt.Sprintf("file %s last modified %s ago, before the container started %s ago (validity %s)",
					t.display, age.Truncate(time.Second), since.Truncate(time.Second), c.Validity), nil
			}
			return probe.Success, "", nil
		}
	}
	switch {
	case age > c.Validity:
		return probe.Failure, fmt.Sprintf("file %s last modified %s ago (validity %s)", t.display, age.Truncate(time.Second), c.Validity), nil
	case age < -FutureTolerance:
		return probe.Failure, fmt.Sprintf("file %s last modified %s in the future (more than %s ahead of the node's clock)", t.display, (-age).Truncate(time.Second), FutureTolerance), nil
	}
	return probe.Success, "", nil
}

// emptyDirPluginDir is where the kubelet keeps a pod's emptyDir volumes, below
// <pods dir>/<pod UID>/volumes/ (the escaped name of the kubernetes.io/empty-dir plugin).
const emptyDirPluginDir = "kubernetes.io~empty-dir"

// Target is one probed file: the probe's path (/<volume>/<file>) resolved to a
// path relative to the pods directory. A probe worker makes it once and
// reuses it for every probe, so that a probe allocates nothing.
type Target struct {
	// display is the probe's path as the user wrote it, for messages.
	display string
	// rel is <pod UID>/volumes/kubernetes.io~empty-dir/<volume>/<file>,
	// NUL-terminated for the system call.
	rel []byte
	// volumeRel is the same up to the volume directory, NUL-terminated.
	volumeRel []byte
	volume    string
	// direct is set when the file is directly in the volume directory
	// (/<volume>/<file>): then the only path component the container
	// controls is the last one.
	direct bool
	// volumeDir and name are the volume directory relative to the pods
	// directory, and the file's name in it, when direct.
	volumeDir, name string
}

// NewTarget checks a probe path of the form /<volume>/<file> (the apiserver
// already validated it; the kubelet checks again because it must never rely
// on that) and returns the target for the pod with the given UID.
func NewTarget(podUID, path string) (*Target, error) {
	if podUID == "" || strings.ContainsAny(podUID, "/\x00") || podUID == "." || podUID == ".." {
		return nil, fmt.Errorf("invalid pod UID %q", podUID)
	}
	if !strings.HasPrefix(path, "/") || strings.IndexByte(path, 0) >= 0 {
		return nil, fmt.Errorf("file probe path %q is not of the form /<emptyDir volume>/<file>", path)
	}
	segments := strings.Split(path[1:], "/")
	if len(segments) < 2 {
		return nil, fmt.Errorf("file probe path %q is not of the form /<emptyDir volume>/<file>", path)
	}
	for _, s := range segments {
		if s == "" || s == "." || s == ".." {
			return nil, fmt.Errorf("file probe path %q has an empty, '.' or '..' segment", path)
		}
	}
	volumeRel := podUID + "/volumes/" + emptyDirPluginDir + "/" + segments[0]
	return &Target{
		display:   path,
		rel:       append([]byte(volumeRel+"/"+strings.Join(segments[1:], "/")), 0),
		volumeRel: append([]byte(volumeRel), 0),
		volume:    segments[0],
		direct:    len(segments) == 2,
		volumeDir: volumeRel,
		name:      segments[len(segments)-1],
	}, nil
}

// WatchPath returns the directory to watch for changes of the target's file,
// relative to the pods directory, and the file's name in it. It returns ok
// false for a file below a directory of the volume: that directory belongs
// to the container, which could make it anything, so it is not watched.
func (t *Target) WatchPath() (dir, name string, ok bool) {
	if !t.direct {
		return "", "", false
	}
	return t.volumeDir, t.name, true
}

// String returns the probe's path as the user wrote it.
func (t *Target) String() string {
	return t.display
}
