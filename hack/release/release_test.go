package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var epoch = time.Date(2026, 11, 30, 7, 46, 52, 0, time.UTC)

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"v1.37.1+fileprobe.1": "v1.37.1_fileprobe.1", // kubeadm's KubernetesVersionToImageTag
		"v1.37.1":             "v1.37.1",
	} {
		if got := imageTag(in); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImageReferences(t *testing.T) {
	for repo, valid := range map[string]bool{
		"localhost/kubelet-fileprobe":  true,
		"registry.example:5000/a/b":    true,
		"Uppercase/kubelet-fileprobe":  false,
		"localhost/kubelet fileprobe/": false,
	} {
		ref := imageSpec{Name: "kube-apiserver", Repository: repo, Version: "v1.37.1+fileprobe.1"}.ref()
		_, err := name.NewTag(ref, name.StrictValidation)
		if (err == nil) != valid {
			t.Errorf("%s: valid %v, error %v", ref, valid, err)
		}
	}
}

func tarBytes(t *testing.T, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeTar(&b, entries, epoch.Add(123*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestWriteTarIsReproducible(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(file, []byte("binary"), 0o700); err != nil {
		t.Fatal(err)
	}
	entries := []entry{
		{Name: "kubernetes/server/bin/kubelet", Mode: 0o755, File: file},
		{Name: "kubernetes/LICENSE", Mode: 0o644, Data: []byte("license")},
		{Name: "home/nonroot/", Mode: 0o700, UID: 65532},
	}
	reversed := slices.Clone(entries)
	slices.Reverse(reversed)
	a, b := tarBytes(t, entries), tarBytes(t, reversed)
	if !bytes.Equal(a, b) {
		t.Fatal("the same entries in another order give other bytes")
	}
	// The file's own mode and time on disk do not matter.
	if err := os.Chtimes(file, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, tarBytes(t, entries)) {
		t.Fatal("the file's mtime changed the archive")
	}

	var names []string
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) || h.Format != tar.FormatUSTAR {
			t.Errorf("%s: mtime %s format %s, want %s (whole seconds) USTAR", h.Name, h.ModTime, h.Format, epoch)
		}
		wantOwner := "root"
		if strings.HasPrefix(h.Name, "home/nonroot") {
			wantOwner = "nonroot"
		}
		if h.Uname != wantOwner || h.Gname != wantOwner {
			t.Errorf("%s: owner %s:%s (%d:%d), want %s", h.Name, h.Uname, h.Gname, h.Uid, h.Gid, wantOwner)
		}
		if h.Name == "kubernetes/server/bin/kubelet" && h.Mode != 0o755 {
			t.Errorf("%s: mode %o, want 755", h.Name, h.Mode)
		}
	}
	want := []string{"home/", "home/nonroot/", "kubernetes/", "kubernetes/LICENSE", "kubernetes/server/",
		"kubernetes/server/bin/", "kubernetes/server/bin/kubelet"}
	if !slices.Equal(names, want) {
		t.Errorf("members %q, want %q (sorted, with their directories)", names, want)
	}
}

func TestWriteTarRejectsDuplicates(t *testing.T) {
	var b bytes.Buffer
	err := writeTar(&b, []entry{{Name: "a", Data: []byte("1")}, {Name: "a", Data: []byte("2")}}, epoch)
	if err == nil {
		t.Fatal("no error for a member listed twice")
	}
}

func TestGzipHeaderHasNoNameNorTime(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "x.tar.gz")
	if err := writeTarGz(dest, []entry{{Name: "f", Mode: 0o644, Data: []byte("x")}}, epoch); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 1952: FLG (byte 3) has no FNAME/FCOMMENT/FEXTRA, MTIME (4-7) is 0, OS (9) 255.
	if raw[3] != 0 || !bytes.Equal(raw[4:8], []byte{0, 0, 0, 0}) || raw[9] != 255 {
		t.Errorf("gzip header % x: want flags 0, mtime 0, OS 255", raw[:10])
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		t.Fatal(err)
	}
}

func TestImageArchiveIsReproducibleAndValid(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kube-scheduler")
	if err := os.WriteFile(bin, bytes.Repeat([]byte("not really a binary\n"), 1000), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := imageSpec{Name: "kube-scheduler", Binary: bin, Repository: "example.invalid/fork", Version: "v1.37.1+fileprobe.1",
		Revision: "0123", Source: "https://example.invalid/fork", Created: epoch, Arch: "amd64"}
	var sums [2][32]byte
	for i := range sums {
		dest := filepath.Join(dir, "image"+string(rune('a'+i))+".tar")
		if _, err := writeImageArchive(spec, dest); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dest)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b)
		if i > 0 {
			break
		}
		// Unpack it and read it back as an OCI image layout.
		out := filepath.Join(dir, "layout")
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(out, h.Name)
			if h.Typeflag == tar.TypeDir {
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
				continue
			}
			data, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		idx, err := layout.ImageIndexFromPath(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Index(idx); err != nil {
			t.Fatal(err)
		}
		im, _ := idx.IndexManifest()
		if got := im.Manifests[0].Annotations["io.containerd.image.name"]; got != "example.invalid/fork/kube-scheduler:v1.37.1_fileprobe.1" {
			t.Errorf("io.containerd.image.name %q", got)
		}
		if got := im.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != "v1.37.1_fileprobe.1" {
			t.Errorf("org.opencontainers.image.ref.name %q", got)
		}
		img, _ := idx.Image(im.Manifests[0].Digest)
		cf, _ := img.ConfigFile()
		if !cf.Created.Time.Equal(epoch) || cf.Config.Labels["org.opencontainers.image.version"] != spec.Version ||
			!slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/kube-scheduler"}) {
			t.Errorf("config: created %s labels %v entrypoint %q", cf.Created, cf.Config.Labels, cf.Config.Entrypoint)
		}
		layers, _ := img.Layers()
		if len(layers) != 2 {
			t.Errorf("%d layers, want 2 (base files, binary)", len(layers))
		}
	}
	if sums[0] != sums[1] {
		t.Error("two archives of the same image differ")
	}
}

func TestModulesMapsTheTreeToThePins(t *testing.T) {
	r := release{Version: "v1.37.1+fileprobe.1", Revision: "0123", Pins: map[string]string{
		"k8s.io/kubernetes": "v1.37.1", "k8s.io/api": "v0.37.1", "k8s.io/apimachinery": "v0.37.1"}}
	b := binary{Name: "kube-scheduler", Build: &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "k8s.io/kubernetes", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: "github.com/spf13/cobra", Version: "v1.10.0"},
			{Path: "k8s.io/api", Version: "(devel)"},
			{Path: "k8s.io/apimachinery", Version: "v0.0.0", Replace: &debug.Module{Path: "./staging/src/k8s.io/apimachinery"}},
			{Path: "example.com/old", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/new", Version: "v1.0.1"}},
		},
	}}
	mods, err := r.modules(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mods {
		got = append(got, m.Path+"@"+m.Version)
		if strings.HasPrefix(m.Path, "k8s.io/") && !strings.Contains(m.Comment, "patched by kubelet-fileprobe v1.37.1+fileprobe.1") {
			t.Errorf("%s: comment %q does not say it carries the fork's patches", m.Path, m.Comment)
		}
	}
	want := []string{"k8s.io/kubernetes@v1.37.1", "github.com/spf13/cobra@v1.10.0", "k8s.io/api@v0.37.1",
		"k8s.io/apimachinery@v0.37.1", "example.com/new@v1.0.1"}
	if !slices.Equal(got, want) {
		t.Errorf("modules %q, want %q", got, want)
	}
	b.Build.Deps = append(b.Build.Deps, &debug.Module{Path: "k8s.io/unpinned", Version: "(devel)"})
	if _, err := r.modules(b); err == nil {
		t.Error("no error for a module of the tree that go.mod does not pin")
	}
}

func TestSBOMIsDeterministic(t *testing.T) {
	r := release{Version: "v1.37.1+fileprobe.1", Revision: "0123", Source: "https://example.invalid/fork", Created: epoch,
		Pins: map[string]string{"k8s.io/kubernetes": "v1.37.1"}}
	b := binary{Name: "kubectl", SHA256: strings.Repeat("ab", 32), Build: &debug.BuildInfo{GoVersion: "go1.26.8",
		Main: debug.Module{Path: "k8s.io/kubernetes", Version: "(devel)"}}}
	a := binarySBOM(t, r, b)
	if a != binarySBOM(t, r, b) {
		t.Fatal("two SBOMs of the same binary differ")
	}
	for _, want := range []string{`"created": "2026-11-30T07:46:52Z"`,
		`"documentNamespace": "https://example.invalid/fork/spdx/v1.37.1+fileprobe.1/kubectl-sha256-abab`,
		`"versionInfo": "v1.37.1"`, `"referenceLocator": "pkg:golang/stdlib@1.26.8"`} {
		if !strings.Contains(a, want) {
			t.Errorf("the SBOM has no %s", want)
		}
	}
}

func TestModulesOfTheShim(t *testing.T) {
	r := release{Version: "v1.37.2+fileprobe.1", Revision: "0123", Containerd: "v2.4.2",
		Module: "github.com/kubelet-fileprobe/kubelet-fileprobe", Pins: map[string]string{"k8s.io/kubernetes": "v1.37.2"}}
	b := binary{Name: shim, SHA256: strings.Repeat("cd", 32), Build: &debug.BuildInfo{GoVersion: "go1.26.10",
		Main: debug.Module{Path: "github.com/kubelet-fileprobe/kubelet-fileprobe/shimless", Version: "(devel)"},
		Deps: []*debug.Module{{Path: "github.com/containerd/containerd/v2", Version: "v2.4.2"}}}}
	mods, err := r.modules(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 2 || mods[0].Version != "v1.37.2+fileprobe.1" || mods[1].Path != "github.com/containerd/containerd/v2" || mods[1].Version != "v2.4.2" {
		t.Errorf("modules %+v: want the shimless module at the release's version, then containerd v2.4.2", mods)
	}
	sbom := binarySBOM(t, r, b)
	for _, want := range []string{`"versionInfo": "v2.4.2+shimless.v1.37.2-fileprobe.1"`, "built by hack/shimless.sh"} {
		if !strings.Contains(sbom, want) {
			t.Errorf("the shim's SBOM has no %s", want)
		}
	}
	// A module of another repository at (devel) is still an error.
	b.Build.Main.Path = "github.com/kubelet-fileprobe/kubelet-fileprobe-other"
	if _, err := r.modules(b); err == nil {
		t.Error("no error for a (devel) main module that is neither pinned nor this repository's")
	}
}

// binarySBOM is the SBOM the release writes for b alone.
func binarySBOM(t *testing.T, r release, b binary) string {
	t.Helper()
	d := newDoc(r, b.Name, b.SHA256)
	id, err := d.addBinary(b)
	if err != nil {
		t.Fatal(err)
	}
	d.describes(id)
	var out bytes.Buffer
	if err := d.write(&out); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
