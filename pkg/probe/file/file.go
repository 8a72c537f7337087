//go:build linux

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
// The container controls everything inside the volume, so the file is
// resolved with openat2(2) beneath the kubelet's pods directory with
// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS: no symbolic link is ever followed,
// in any component of the path including the last one (a symbolic link that
// stays inside the volume is refused too, which keeps the rule simple to state
// and to check), and the resolution cannot leave the directory even through a
// rename race. The file is opened with O_PATH, which never opens it for
// reading: a FIFO, a socket or a device is never opened and cannot block; it
// is only fstat'ed. Every file that is not a regular file is a Failure. A hard
// link is the same inode as its target and is allowed: it cannot point out of
// the volume's filesystem, and its modification time is the target's.
package file

import (
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"k8s.io/kubernetes/pkg/probe"
)

// FutureTolerance is how far in the future a file's modification time may be
// and still count as "just modified": it absorbs small host clock steps and
// timestamp granularity, so that they do not flap every probe on the node. A
// modification time further in the future is a Failure: a `touch -d` into the
// future or a clock stepped back can never keep a probe passing.
const FutureTolerance = 5 * time.Second

// emptyDirPluginDir is where the kubelet keeps a pod's emptyDir volumes, below
// <pods dir>/<pod UID>/volumes/ (the escaped name of the kubernetes.io/empty-dir plugin).
const emptyDirPluginDir = "kubernetes.io~empty-dir"

// PodsDir is an open handle on the kubelet's pods directory (<root dir>/pods),
// beneath which every file probe is resolved. One is shared by all probes.
type PodsDir struct {
	fd int
}

// OpenPodsDir opens dir, the kubelet's pods directory, for resolving probes beneath it.
func OpenPodsDir(dir string) (*PodsDir, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &PodsDir{fd: fd}, nil
}

// Close releases the handle.
func (d *PodsDir) Close() error {
	return unix.Close(d.fd)
}

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
	}, nil
}

// String returns the probe's path as the user wrote it.
func (t *Target) String() string {
	return t.display
}

// resolveHow resolves beneath the pods directory and follows no symbolic link.
var resolveHow = unix.OpenHow{
	Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
}

// maxOpenRetries bounds the retries of openat2 after EINTR or EAGAIN, so that
// a container renaming files in a tight loop cannot keep the kubelet spinning.
const maxOpenRetries = 16

// openat2 opens the NUL-terminated path beneath dirfd without allocating.
func openat2(dirfd int, path []byte, how *unix.OpenHow) (int, error) {
	for attempt := 0; ; attempt++ {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT2, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])),
			uintptr(unsafe.Pointer(how)), unsafe.Sizeof(*how), 0, 0)
		if (errno == unix.EINTR || errno == unix.EAGAIN) && attempt < maxOpenRetries {
			// EAGAIN: a rename raced with RESOLVE_BENEATH's check; retry.
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(fd), nil
	}
}

// Probe checks the target's file beneath pods: Success when it is a regular
// file modified at most validity before now (or at most FutureTolerance after
// it), Failure with a message a human can act on otherwise. It never follows a
// symbolic link, never opens the file for reading, and never returns Success
// for something it could not check. On success the output is empty and
// nothing is allocated.
func Probe(pods *PodsDir, t *Target, validity time.Duration, now time.Time) (probe.Result, string, error) {
	fd, err := openat2(pods.fd, t.rel, &resolveHow)
	if err != nil {
		return probe.Failure, t.describeOpenError(pods, err.(unix.Errno)), nil
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	unix.Close(fd)
	if err != nil {
		return probe.Unknown, "", fmt.Errorf("fstat of file probe %s: %w", t.display, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return probe.Failure, fmt.Sprintf("file %s is %s, not a regular file", t.display, describeType(st.Mode)), nil
	}
	mtime := time.Unix(st.Mtim.Unix())
	age := now.Sub(mtime)
	switch {
	case age > validity:
		return probe.Failure, fmt.Sprintf("file %s last modified %s ago (validity %s)", t.display, age.Truncate(time.Second), validity), nil
	case age < -FutureTolerance:
		return probe.Failure, fmt.Sprintf("file %s last modified %s in the future (more than %s ahead of the node's clock)", t.display, (-age).Truncate(time.Second), FutureTolerance), nil
	}
	return probe.Success, "", nil
}

// describeOpenError explains why the file could not be resolved.
func (t *Target) describeOpenError(pods *PodsDir, errno unix.Errno) string {
	switch errno {
	case unix.ENOENT:
		fd, err := openat2(pods.fd, t.volumeRel, &resolveHow)
		if err != nil {
			return fmt.Sprintf("file %s: emptyDir volume %q is not set up on the node", t.display, t.volume)
		}
		unix.Close(fd)
		return fmt.Sprintf("file %s does not exist", t.display)
	case unix.ELOOP:
		return fmt.Sprintf("file %s: the path goes through a symbolic link, which file probes never follow", t.display)
	case unix.EXDEV:
		return fmt.Sprintf("file %s: the path leaves the volume", t.display)
	case unix.ENOTDIR:
		return fmt.Sprintf("file %s: a component of the path is not a directory", t.display)
	case unix.EACCES, unix.EPERM:
		return fmt.Sprintf("file %s: permission denied", t.display)
	case unix.ENAMETOOLONG:
		return fmt.Sprintf("file %s: path too long", t.display)
	case unix.EAGAIN, unix.EINTR:
		return fmt.Sprintf("file %s: the path kept changing while it was resolved (renames in the volume)", t.display)
	case unix.ENOSYS:
		return fmt.Sprintf("file %s: this kernel has no openat2(2) (Linux 5.6 or later is required for file probes)", t.display)
	}
	return fmt.Sprintf("file %s: %v", t.display, errno)
}

// describeType names a non-regular file type.
func describeType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link (file probes never follow symbolic links)"
	case unix.S_IFIFO:
		return "a named pipe (FIFO)"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	}
	return fmt.Sprintf("of type %#o", mode&unix.S_IFMT)
}
