package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"
)

// verify checks a release directory written by pack: the archives are
// reproducible tars, the images are valid OCI image layouts (go-containerregistry's
// validate, what `crane validate` runs: every blob's digest and size, the
// config's diff IDs against the layers), shaped as upstream's, and the SBOMs
// are valid SPDX that describe the artifact next to them.
func (o options) verify() error {
	var errs []error
	check := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			fmt.Printf("FAIL: %s: %v\n", what, err)
		} else {
			fmt.Printf("ok:   %s\n", what)
		}
	}
	for _, name := range imageBinaries {
		check("image "+name+".tar is a valid OCI archive shaped like upstream's", o.verifyImage(name))
	}
	server := []string{"kubernetes/", "kubernetes/LICENSE", "kubernetes/server/", "kubernetes/server/bin/"}
	for _, name := range binaries {
		server = append(server, "kubernetes/server/bin/"+name)
	}
	for _, name := range imageBinaries {
		server = append(server, "kubernetes/server/bin/"+name+".tar", "kubernetes/server/bin/"+name+".docker_tag")
	}
	node := []string{"kubernetes/", "kubernetes/LICENSE", "kubernetes/node/", "kubernetes/node/bin/"}
	for _, name := range nodeBinaries {
		node = append(node, "kubernetes/node/bin/"+name)
	}
	check("kubernetes-server-linux-"+o.Arch+".tar.gz: upstream's layout, reproducible tar and gzip header",
		o.verifyTarball("kubernetes-server-linux-"+o.Arch+".tar.gz", server))
	check("kubernetes-node-linux-"+o.Arch+".tar.gz: upstream's layout, reproducible tar and gzip header",
		o.verifyTarball("kubernetes-node-linux-"+o.Arch+".tar.gz", node))
	check(o.shimTarball()+": containerd's layout, reproducible tar and gzip header",
		o.verifyTarball(o.shimTarball(), []string{"LICENSE", "bin/", "bin/" + shim}))
	sboms, _ := filepath.Glob(filepath.Join(o.Out, "*.spdx.json"))
	more, _ := filepath.Glob(filepath.Join(o.dl(), "*.spdx.json"))
	sboms = append(sboms, more...)
	// The binaries and the shim, the images, the three tarballs.
	if want := len(binaries) + 1 + len(imageBinaries) + 3; len(sboms) != want {
		check("SBOMs", fmt.Errorf("%d SBOMs, want %d", len(sboms), want))
	}
	for _, s := range sboms {
		rel, _ := filepath.Rel(o.Out, s)
		check("SBOM "+rel+" is SPDX 2.3 and describes its artifact", o.verifySBOM(s))
	}
	return errors.Join(errs...)
}

func (o options) verifyImage(name string) error {
	archive := filepath.Join(o.dl(), name+".tar")
	dir, err := os.MkdirTemp("", "verify-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := o.readTar(f, func(h *tar.Header, r io.Reader) error {
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			return os.MkdirAll(p, 0o755)
		}
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, r)
		return err
	}); err != nil {
		return err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return err
	}
	if err := validate.Index(idx); err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) != 1 {
		return fmt.Errorf("%d manifests, want 1", len(im.Manifests))
	}
	spec := imageSpec{Name: name, Repository: o.Repository, Version: o.Version}
	desc := im.Manifests[0]
	if got := desc.Annotations["io.containerd.image.name"]; got != spec.ref() {
		return fmt.Errorf("io.containerd.image.name %q, want %q", got, spec.ref())
	}
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != imageTag(o.Version) {
		return fmt.Errorf("org.opencontainers.image.ref.name %q, want %q", got, imageTag(o.Version))
	}
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != o.Arch {
		return fmt.Errorf("platform %v, want linux/%s", desc.Platform, o.Arch)
	}
	tag, err := os.ReadFile(filepath.Join(o.dl(), name+".docker_tag"))
	if err != nil || string(tag) != imageTag(o.Version)+"\n" {
		return fmt.Errorf("%s.docker_tag: %q (%v), want %q", name, tag, err, imageTag(o.Version))
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/" + name}) || !slices.Contains(c.Env, imagePath) {
		return fmt.Errorf("entrypoint %q env %q", c.Entrypoint, c.Env)
	}
	for k, want := range map[string]string{"version": o.Version, "revision": o.Revision, "source": o.Source} {
		if got := c.Labels["org.opencontainers.image."+k]; got != want {
			return fmt.Errorf("label org.opencontainers.image.%s %q, want %q", k, got, want)
		}
	}
	if !cf.Created.Time.Equal(o.Created) {
		return fmt.Errorf("created %s, want %s", cf.Created.Time, o.Created)
	}
	// The file system a container sees.
	binSHA, err := hashFile(filepath.Join(o.dl(), name))
	if err != nil {
		return err
	}
	want := map[string]string{
		"usr/local/bin/" + name: "0755 sha256:" + binSHA,
		"tmp":                   "1777",
		"home/nonroot":          "0700 65532",
		"etc/passwd":            "0644 nonroot:x:65532:65532:",
		"etc/group":             "0644 nonroot:x:65532:",
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		member := strings.TrimSuffix(h.Name, "/")
		w, ok := want[member]
		if !ok {
			continue
		}
		delete(want, member)
		mode, rest, _ := strings.Cut(w, " ")
		if got := fmt.Sprintf("%04o", h.Mode&0o7777); got != mode {
			return fmt.Errorf("/%s: mode %s, want %s", member, got, mode)
		}
		switch {
		case strings.HasPrefix(rest, "sha256:"):
			hh := sha256.New()
			if _, err := io.Copy(hh, tr); err != nil {
				return err
			}
			if got := "sha256:" + hex.EncodeToString(hh.Sum(nil)); got != rest {
				return fmt.Errorf("/%s is not bin/linux/%s/%s", h.Name, o.Arch, name)
			}
		case rest == "65532":
			if h.Uid != 65532 || h.Gid != 65532 {
				return fmt.Errorf("/%s: owner %d:%d, want 65532:65532", h.Name, h.Uid, h.Gid)
			}
		case rest != "":
			b, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), rest) {
				return fmt.Errorf("/%s has no %q", h.Name, rest)
			}
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("the image lacks %v", sortedKeys(want))
	}
	return nil
}

// readTar reads a tar and checks that it is reproducible: sorted members,
// all of time o.Created, owned by root (or nonroot), USTAR.
func (o options) readTar(r io.Reader, each func(*tar.Header, io.Reader) error) error {
	tr := tar.NewReader(r)
	prev := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if h.Name <= prev {
			return fmt.Errorf("%s after %s: not sorted", h.Name, prev)
		}
		prev = h.Name
		if !h.ModTime.Equal(o.Created) || h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" ||
			h.Format != tar.FormatUSTAR {
			return fmt.Errorf("%s: mtime %s owner %d:%d (%s:%s) format %s, want %s 0:0 (root:root) USTAR",
				h.Name, h.ModTime.UTC(), h.Uid, h.Gid, h.Uname, h.Gname, h.Format, o.Created)
		}
		if err := each(h, tr); err != nil {
			return err
		}
	}
}

func (o options) verifyTarball(file string, want []string) error {
	f, err := os.Open(filepath.Join(o.Out, file))
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	if zr.Name != "" || !zr.ModTime.IsZero() || zr.OS != 255 {
		return fmt.Errorf("gzip header: name %q mtime %s OS %d, want none, 0 and 255", zr.Name, zr.ModTime, zr.OS)
	}
	var got []string
	if err := o.readTar(zr, func(h *tar.Header, r io.Reader) error {
		got = append(got, h.Name)
		base := filepath.Base(h.Name)
		if h.Typeflag != tar.TypeReg || (!slices.Contains(binaries, base) && base != shim) {
			return nil
		}
		if h.Mode != 0o755 {
			return fmt.Errorf("%s: mode %o, want 0755", h.Name, h.Mode)
		}
		hh := sha256.New()
		if _, err := io.Copy(hh, r); err != nil {
			return err
		}
		sha, err := hashFile(filepath.Join(o.dl(), base))
		if err != nil {
			return err
		}
		if hex.EncodeToString(hh.Sum(nil)) != sha {
			return fmt.Errorf("%s is not bin/linux/%s/%s", h.Name, o.Arch, base)
		}
		return nil
	}); err != nil {
		return err
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("members %q, want %q", got, want)
	}
	return nil
}

func (o options) verifySBOM(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	d, err := spdxjson.Read(f)
	if err != nil {
		return err
	}
	if err := spdxlib.ValidateDocument(d); err != nil {
		return err
	}
	if d.SPDXVersion != "SPDX-2.3" || d.CreationInfo.Created != o.Created.UTC().Format("2006-01-02T15:04:05Z") {
		return fmt.Errorf("version %s created %s", d.SPDXVersion, d.CreationInfo.Created)
	}
	described, err := spdxlib.GetDescribedPackageIDs(d)
	if err != nil {
		return err
	}
	sha, err := hashFile(strings.TrimSuffix(file, ".spdx.json"))
	if err != nil {
		return err
	}
	found := map[string]string{}
	for _, p := range d.Packages {
		found[p.PackageName] = p.PackageVersion
		if p.PackageVersion == "(devel)" || p.PackageVersion == "v0.0.0" {
			return fmt.Errorf("package %s at %s: the build information's version, not the pinned one", p.PackageName, p.PackageVersion)
		}
		if len(described) == 1 && p.PackageSPDXIdentifier == described[0] &&
			(len(p.PackageChecksums) != 1 || p.PackageChecksums[0].Value != sha) {
			return fmt.Errorf("the described package %s has checksums %v, the file sha256 %s", p.PackageName, p.PackageChecksums, sha)
		}
	}
	if len(described) != 1 {
		return fmt.Errorf("describes %d packages, want 1", len(described))
	}
	if strings.HasPrefix(filepath.Base(file), shim) {
		// The shim is containerd's shim, and no Kubernetes.
		if found[shim] != o.shimVersion() || found["github.com/containerd/containerd/v2"] != o.Containerd {
			return fmt.Errorf("%s at %q and containerd at %q, want %s and %s", shim, found[shim],
				found["github.com/containerd/containerd/v2"], o.shimVersion(), o.Containerd)
		}
		if v, ok := found["k8s.io/kubernetes"]; ok {
			return fmt.Errorf("the shim's SBOM lists k8s.io/kubernetes %s", v)
		}
		return nil
	}
	for _, m := range []string{"k8s.io/kubernetes", "k8s.io/apimachinery", "k8s.io/component-base"} {
		if found[m] != o.Pins[m] {
			return fmt.Errorf("%s at %q, want the pinned %s", m, found[m], o.Pins[m])
		}
	}
	return nil
}
