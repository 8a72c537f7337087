package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// imagePath is the PATH of upstream's images (distroless): kubeadm's static
// Pod manifests say `command: [kube-apiserver, ...]`, found through it.
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// imageTag is the tag of the images of version: upstream's build
// (build/lib/release.sh) and kubeadm (KubernetesVersionToImageTag) replace
// the "+" of build metadata, which a tag may not hold, with "_":
// v1.37.1+fileprobe.1 -> v1.37.1_fileprobe.1.
func imageTag(version string) string {
	return strings.ReplaceAll(version, "+", "_")
}

// baseFiles is the image's first layer, the same in every image (so a node
// stores it once): the users and groups of distroless (root, nonroot 65532,
// nobody), their homes, a world-writable sticky /tmp, and an nsswitch.conf
// that makes Go's resolver read /etc/hosts before DNS, as glibc would.
func baseFiles() []entry {
	return []entry{
		{Name: "etc/", Mode: 0o755},
		{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnonroot:x:65532:\nnogroup:x:65534:\n")},
		{Name: "etc/nsswitch.conf", Mode: 0o644, Data: []byte("hosts: files dns\n")},
		{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")},
		{Name: "home/", Mode: 0o755},
		{Name: "home/nonroot/", Mode: 0o700, UID: 65532},
		{Name: "root/", Mode: 0o700},
		{Name: "tmp/", Mode: 0o1777},
	}
}

// imageSpec describes one image to build.
type imageSpec struct {
	Name       string // the binary, also the image's last path component
	Binary     string // the binary on disk
	Repository string // IMAGE_REPOSITORY: <repository>/<name>:<tag>
	Version    string // the fork version (labels; the tag derives from it)
	Revision   string // the commit the binaries were built from
	Source     string // URL of this repository
	Created    time.Time
	Arch       string
}

func (s imageSpec) ref() string { return s.Repository + "/" + s.Name + ":" + imageTag(s.Version) }

// layer writes entries as a gzipped tar into dir and returns it as a layer.
// The layer's bytes are a function of the entries and the time alone.
func layer(dir, name string, entries []entry, mtime time.Time) (v1.Layer, error) {
	file := filepath.Join(dir, name+".tar.gz")
	if err := writeTarGz(file, entries, mtime); err != nil {
		return nil, err
	}
	// A gzipped file is taken as the compressed layer, as is (no recompression).
	return tarball.LayerFromFile(file, tarball.WithMediaType(types.OCILayer))
}

// buildImage builds the image of spec: the base files, then the binary at
// /usr/local/bin/<name>, as upstream's images have it (there on top of
// go-runner and distroless).
func buildImage(spec imageSpec, scratch string) (v1.Image, error) {
	base, err := layer(scratch, "base", baseFiles(), spec.Created)
	if err != nil {
		return nil, err
	}
	bin, err := layer(scratch, spec.Name, []entry{
		{Name: "usr/local/bin/" + spec.Name, Mode: 0o755, File: spec.Binary},
	}, spec.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: spec.Created.UTC()}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "kubelet-fileprobe hack/release: /etc/passwd, /etc/group (root, nonroot 65532), /tmp",
		}},
		mutate.Addendum{Layer: bin, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "kubelet-fileprobe hack/release: COPY " + spec.Name + " /usr/local/bin/" + spec.Name,
		}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", spec.Arch, created
	cf.Config = v1.Config{
		Env:        []string{imagePath},
		Entrypoint: []string{"/usr/local/bin/" + spec.Name},
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.title":       spec.Name,
			"org.opencontainers.image.description": spec.Name + " of kubelet-fileprobe (Kubernetes with the file probe handler)",
			"org.opencontainers.image.version":     spec.Version,
			"org.opencontainers.image.revision":    spec.Revision,
			"org.opencontainers.image.source":      spec.Source,
			"org.opencontainers.image.created":     spec.Created.UTC().Format(time.RFC3339),
			"org.opencontainers.image.licenses":    "Apache-2.0",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// writeImageArchive builds spec's image and writes it to dest as an OCI
// archive: an OCI image layout (oci-layout, index.json, blobs/sha256/...) in
// a reproducible tar, its one manifest annotated with the full reference
// (io.containerd.image.name, what `ctr images import` names the image) and
// the tag (org.opencontainers.image.ref.name, what skopeo's oci-archive:
// and the OCI spec read). It returns the manifest's digest.
func writeImageArchive(spec imageSpec, dest string) (v1.Hash, error) {
	scratch, err := os.MkdirTemp(filepath.Dir(dest), ".image-"+spec.Name+"-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(scratch)
	img, err := buildImage(spec, scratch)
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	dir := filepath.Join(scratch, "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.AppendImage(img,
		layout.WithPlatform(v1.Platform{OS: "linux", Architecture: spec.Arch}),
		layout.WithAnnotations(map[string]string{
			"io.containerd.image.name":          spec.ref(),
			"org.opencontainers.image.ref.name": imageTag(spec.Version),
		})); err != nil {
		return v1.Hash{}, err
	}
	entries, err := dirEntries(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	return digest, writeFile(dest, func(w io.Writer) error { return writeTar(w, entries, spec.Created) })
}

// dirEntries lists the regular files under dir as tar entries (0644, root);
// writeTar adds their directories.
func dirEntries(dir string) ([]entry, error) {
	var entries []entry
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		entries = append(entries, entry{Name: filepath.ToSlash(rel), Mode: 0o644, File: p})
		return nil
	})
	return entries, err
}
