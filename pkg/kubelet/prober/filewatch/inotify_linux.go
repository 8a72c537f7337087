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

package filewatch

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// inotify is an inotify instance. Its descriptor is non-blocking and
// wrapped in an *os.File, so that a read waits in Go's network poller
// (no thread blocked in read(2)) and close wakes it up.
type inotify struct {
	f *os.File
}

func newInotify() (instance, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	return &inotify{f: os.NewFile(uintptr(fd), "inotify")}, nil
}

// control runs fn with the descriptor, which stays open meanwhile even if
// the instance is closed concurrently.
func (i *inotify) control(fn func(fd int) error) error {
	raw, err := i.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (i *inotify) addWatch(path string, mask uint32) (int32, error) {
	var wd int
	err := i.control(func(fd int) (err error) {
		wd, err = unix.InotifyAddWatch(fd, path, mask)
		return err
	})
	return int32(wd), err
}

func (i *inotify) rmWatch(wd int32) error {
	return i.control(func(fd int) error {
		_, err := unix.InotifyRmWatch(fd, uint32(wd))
		return err
	})
}

func (i *inotify) read(buf []byte) (int, error) { return i.f.Read(buf) }

func (i *inotify) close() error { return i.f.Close() }
