package main

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// entry is one member of a tar archive. Directories end in "/" and have no
// content; a regular file's content comes from File (a path on disk) or Data.
type entry struct {
	Name string
	Mode int64
	UID  int // the owner; the group is the same number (0 root, 65532 nonroot)
	File string
	Data []byte
}

func (e entry) isDir() bool { return strings.HasSuffix(e.Name, "/") }

// owners names the numeric owners we use, as distroless names them.
var owners = map[int]string{0: "root", 65532: "nonroot"}

// withParents returns entries plus an entry (0755, root) for each parent
// directory that is not listed, so that extracting the archive never creates a
// directory with the extractor's umask and time.
func withParents(entries []entry) []entry {
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Name] = true
	}
	out := append([]entry(nil), entries...)
	for _, e := range entries {
		for d := path.Dir(strings.TrimSuffix(e.Name, "/")); d != "." && d != "/"; d = path.Dir(d) {
			if !have[d+"/"] {
				have[d+"/"] = true
				out = append(out, entry{Name: d + "/", Mode: 0o755})
			}
		}
	}
	return out
}

// writeTar writes entries as a reproducible tar: sorted by name (byte order),
// every member with the same modification time mtime, numeric and named owner
// fixed, USTAR format (no PAX records carrying access times or the like).
// The same entries and mtime always give the same bytes.
func writeTar(w io.Writer, entries []entry, mtime time.Time) error {
	sorted := withParents(entries)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	tw := tar.NewWriter(w)
	for i, e := range sorted {
		if i > 0 && sorted[i-1].Name == e.Name {
			return fmt.Errorf("tar: %s listed twice", e.Name)
		}
		name, ok := owners[e.UID]
		if !ok {
			return fmt.Errorf("tar: %s: no name for owner %d", e.Name, e.UID)
		}
		h := &tar.Header{
			Name:    e.Name,
			Mode:    e.Mode,
			Uid:     e.UID,
			Gid:     e.UID,
			Uname:   name,
			Gname:   name,
			ModTime: mtime.UTC().Truncate(time.Second),
			Format:  tar.FormatUSTAR,
		}
		var content io.Reader
		switch {
		case e.isDir():
			h.Typeflag = tar.TypeDir
		case e.File != "":
			f, err := os.Open(e.File)
			if err != nil {
				return err
			}
			defer f.Close() // few files per archive; closed when the archive is done
			st, err := f.Stat()
			if err != nil {
				return err
			}
			h.Typeflag, h.Size, content = tar.TypeReg, st.Size(), f
		default:
			h.Typeflag, h.Size, content = tar.TypeReg, int64(len(e.Data)), strings.NewReader(string(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar: %s: %w", e.Name, err)
		}
		if content != nil {
			if n, err := io.Copy(tw, content); err != nil {
				return fmt.Errorf("tar: %s: %w", e.Name, err)
			} else if n != h.Size {
				return fmt.Errorf("tar: %s changed while archived", e.Name)
			}
		}
	}
	return tw.Close()
}

// newGzipWriter returns a gzip writer whose header carries no file name, no
// modification time (0) and the "unknown" OS byte, so the compressed bytes
// depend on the content alone (and on the compressor's version, pinned in
// go.sum). The compressor is klauspost/compress (already a dependency of
// go-containerregistry): at the default level it is about 3 times as fast as
// compress/gzip for 3% more bytes, which keeps packaging cheap in CI.
func newGzipWriter(w io.Writer) *gzip.Writer {
	zw, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression) // the level is valid
	// klauspost's writer stores the zero time.Time as a garbage MTIME
	// (uint32 of its Unix time): the epoch is stored as 0, "no time".
	zw.Header = gzip.Header{OS: 255, ModTime: time.Unix(0, 0)}
	return zw
}

// writeTarGz writes entries as a reproducible .tar.gz file at dest.
func writeTarGz(dest string, entries []entry, mtime time.Time) error {
	return writeFile(dest, func(w io.Writer) error {
		zw := newGzipWriter(w)
		if err := writeTar(zw, entries, mtime); err != nil {
			return err
		}
		return zw.Close()
	})
}

// writeFile writes dest through a temporary file in its directory, so that an
// interrupted run never leaves a truncated artifact under its final name.
func writeFile(dest string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(path.Dir(dest), ".tmp-"+path.Base(dest)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", dest, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), dest)
}
