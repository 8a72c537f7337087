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

package file

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"k8s.io/kubernetes/pkg/probe"
)

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

// statxMask asks statx(2) for what a probe needs: the file type and mtime.
const statxMask = unix.STATX_TYPE | unix.STATX_MTIME

// statx examines the NUL-terminated path relative to dirfd without following
// a symbolic link in its last component, and without allocating.
func statx(dirfd int, path []byte, st *unix.Statx_t) error {
	for attempt := 0; ; attempt++ {
		_, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])),
			uintptr(unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT), statxMask, uintptr(unsafe.Pointer(st)), 0)
		if errno == unix.EINTR && attempt < maxOpenRetries {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// stat returns the file type bits and the modification time of the target's
// file, or why it could not be examined (resolved is false when the path
// could not be resolved, true when the file was found but not examined).
func (t *Target) stat(pods *PodsDir) (mode uint32, mtime time.Time, resolved bool, err error) {
	if t.direct {
		var st unix.Statx_t
		if err := statx(pods.fd, t.rel, &st); err != nil {
			return 0, time.Time{}, false, err
		}
		if st.Mask&statxMask != statxMask {
			return 0, time.Time{}, true, fmt.Errorf("statx did not return the type and modification time (mask %#x)", st.Mask)
		}
		return uint32(st.Mode), time.Unix(st.Mtime.Sec, int64(st.Mtime.Nsec)), true, nil
	}
	fd, err := openat2(pods.fd, t.rel, &resolveHow)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	unix.Close(fd)
	if err != nil {
		return 0, time.Time{}, true, err
	}
	return st.Mode, time.Unix(st.Mtim.Unix()), true, nil
}

// Probe checks the target's file beneath pods: Success when it is a regular
// file modified at most validity before now (or at most FutureTolerance after
// it), Failure with a message a human can act on otherwise. It never follows a
// symbolic link, never opens the file for reading, and never returns Success
// for something it could not check. On success the output is empty and
// nothing is allocated.
func Probe(pods *PodsDir, t *Target, validity time.Duration, now time.Time) (probe.Result, string, error) {
	mode, mtime, resolved, err := t.stat(pods)
	if err != nil {
		if errno, ok := err.(unix.Errno); ok && !resolved {
			return probe.Failure, t.describeOpenError(pods, errno), nil
		}
		return probe.Unknown, "", fmt.Errorf("stat of file probe %s: %w", t.display, err)
	}
	if mode&unix.S_IFMT != unix.S_IFREG {
		return probe.Failure, fmt.Sprintf("file %s is %s, not a regular file", t.display, describeType(mode)), nil
	}
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
