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
	"errors"
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

// Probe checks the target's file beneath pods against c: Success when it is a
// regular file modified at most c.Validity before c.Now (or at most
// FutureTolerance after it) by the container instance c describes, Failure
// with a message a human can act on when the file is why, and Unknown with an
// error when the check itself could not be done (the node's fault, never the
// container's: out of file descriptors or memory, a kernel without openat2, a
// seccomp filter around the kubelet, the volume not set up). It never follows
// a symbolic link, never opens the file for reading, and never returns
// Success for something it could not check. On success the output is empty
// and nothing is allocated.
func Probe(pods *PodsDir, t *Target, c Check) (probe.Result, string, error) {
	mode, mtime, resolved, err := t.stat(pods)
	if err != nil {
		if errno, ok := err.(unix.Errno); ok && !resolved {
			if msg, containers := t.describeOpenError(pods, errno); containers {
				return probe.Failure, msg, nil
			}
			return probe.Unknown, "", &Error{Path: t.display, Op: "resolve", Errno: errno, Detail: t.explainNodeError(errno)}
		}
		var errno unix.Errno
		errors.As(err, &errno)
		return probe.Unknown, "", &Error{Path: t.display, Op: "stat", Errno: errno, Detail: err.Error()}
	}
	if mode&unix.S_IFMT != unix.S_IFREG {
		return probe.Failure, fmt.Sprintf("file %s is %s, not a regular file", t.display, describeType(mode)), nil
	}
	return c.judge(t, mtime)
}

// describeOpenError explains why the file could not be resolved, when the
// reason is the container's (it controls everything inside the volume):
// containers is false for an error that is the node's.
func (t *Target) describeOpenError(pods *PodsDir, errno unix.Errno) (msg string, containers bool) {
	switch errno {
	case unix.ENOENT:
		fd, err := openat2(pods.fd, t.volumeRel, &resolveHow)
		if err != nil {
			// The kubelet sets the volume up before it starts the
			// container, and a container cannot remove its volume's
			// root: a missing volume is the node's.
			return "", false
		}
		unix.Close(fd)
		return fmt.Sprintf("file %s does not exist", t.display), true
	case unix.ELOOP:
		return fmt.Sprintf("file %s: the path goes through a symbolic link, which file probes never follow", t.display), true
	case unix.EXDEV:
		return fmt.Sprintf("file %s: the path leaves the volume", t.display), true
	case unix.ENOTDIR:
		return fmt.Sprintf("file %s: a component of the path is not a directory", t.display), true
	case unix.EACCES:
		// The volume's permissions are the container's: it can make a
		// directory of its volume unreadable to a kubelet without
		// CAP_DAC_READ_SEARCH.
		return fmt.Sprintf("file %s: permission denied", t.display), true
	case unix.ENAMETOOLONG:
		return fmt.Sprintf("file %s: path too long", t.display), true
	}
	// EPERM (a seccomp filter or LSM around the kubelet), EMFILE, ENFILE,
	// ENOMEM, ENOSYS (no openat2), EINTR/EAGAIN after retries, EIO, and
	// anything else: the node's.
	return "", false
}

// explainNodeError says what an error that is the node's means.
func (t *Target) explainNodeError(errno unix.Errno) string {
	switch errno {
	case unix.ENOENT:
		return fmt.Sprintf("emptyDir volume %q is not set up on the node", t.volume)
	case unix.ENOSYS:
		return "this kernel has no openat2(2) (Linux 5.6 or later is required for file probes)"
	case unix.EPERM:
		return "the kubelet is not permitted to resolve the path (a seccomp filter or security module around the kubelet)"
	case unix.EMFILE, unix.ENFILE:
		return "the kubelet is out of file descriptors"
	case unix.EAGAIN, unix.EINTR:
		return "the path kept changing while it was resolved"
	}
	return errno.Error()
}

// Error is a file probe that could not be run for a reason that is the
// node's, not the container's: the kubelet discards its result (Unknown).
type Error struct {
	// Path is the probe's path as the user wrote it.
	Path string
	// Op is what failed: "resolve" or "stat".
	Op string
	// Errno is the system error, or 0.
	Errno unix.Errno
	// Detail explains it.
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("file probe %s not run: %s failed: %s", e.Path, e.Op, e.Detail)
}

// Unwrap returns the errno, so that errors.Is(err, unix.EMFILE) works.
func (e *Error) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// ErrnoName is the symbolic name of the error's errno (EMFILE), or "".
func (e *Error) ErrnoName() string {
	if e.Errno == 0 {
		return ""
	}
	return unix.ErrnoName(e.Errno)
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

// CheckSupport reports whether the kubelet can run file probes on this node:
// openat2(2) must exist (Linux 5.6 or later) and be permitted (a seccomp
// filter around a containerised kubelet may refuse it with EPERM or ENOSYS),
// and so must statx(2). It resolves "." beneath the root directory the way a
// probe resolves its file.
func CheckSupport() error {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(root)
	fd, err := openat2(root, []byte(".\x00"), &resolveHow)
	if err != nil {
		if err == unix.ENOSYS {
			return fmt.Errorf("openat2(2) is not available (Linux 5.6 or later is required for file probes, or a seccomp filter around the kubelet refuses it): %w", err)
		}
		return fmt.Errorf("openat2(2) failed (a seccomp filter or security module around the kubelet may refuse it): %w", err)
	}
	unix.Close(fd)
	var st unix.Statx_t
	if err := statx(root, []byte(".\x00"), &st); err != nil {
		return fmt.Errorf("statx(2) failed (Linux 4.11 or later is required for file probes, or a seccomp filter around the kubelet refuses it): %w", err)
	}
	return nil
}
