// Command release packages the fork's binaries as a release (make release,
// hack/release.sh): the layouts of upstream's release (dl.k8s.io), container
// images of the control plane, checksums and SPDX SBOMs, reproducibly.
//
//	release package -bin DIR -out DIR -version V -revision SHA -created RFC3339 ...
//	release verify  -dir DIR -version V ...
//
// Everything it writes is a function of its inputs: the same binaries and
// flags give the same bytes (no random identifiers, no wall-clock time).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// The binaries we build, and what goes where (upstream's layouts, less the
// binaries we do not build: kube-proxy, kubeadm, kubectl-convert,
// kube-log-runner, apiextensions-apiserver, kube-aggregator, mounter are
// upstream's own, unchanged, from upstream's release of the same version).
var (
	binaries      = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet"}
	imageBinaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	nodeBinaries  = []string{"kubectl", "kubelet"}
)

// shim is containerd-shim-shimless-v2 (shimless/, docs/shimless.md): not a
// Kubernetes binary, so not in upstream's tarballs. It ships beside them, in
// bin/linux/<arch>/ and in a tarball of its own in containerd's release
// layout (bin/<binary>, to unpack into /usr/local).
const shim = "containerd-shim-shimless-v2"

// shimTarball is the name of the shim's tarball.
func (o options) shimTarball() string { return shim + "-linux-" + o.Arch + ".tar.gz" }

type options struct {
	release
	BinDir, Out, Repository, License, Root, Arch string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: release package|verify [flags]")
		os.Exit(2)
	}
	var o options
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	created := fs.String("created", "", "the release time, RFC 3339 (SOURCE_DATE_EPOCH: the binaries' build date)")
	fs.StringVar(&o.BinDir, "bin", "", "directory of the built binaries")
	fs.StringVar(&o.Out, "out", "", "release directory to write (package) or check (verify)")
	fs.StringVar(&o.Version, "version", "", "the fork version, v1.37.1+fileprobe.N")
	fs.StringVar(&o.Revision, "revision", "", "commit of this repository the binaries were built from")
	fs.StringVar(&o.Source, "source", "", "URL of this repository (image label, SBOM namespaces)")
	fs.StringVar(&o.Repository, "image-repository", "", "image repository: images are <repository>/<binary>:<tag>")
	fs.StringVar(&o.License, "license", "", "the license file to ship in the tarballs")
	fs.StringVar(&o.Root, "root", "", "this repository (its go.mod pins the module versions)")
	fs.StringVar(&o.Arch, "arch", "amd64", "GOARCH of the binaries")
	fs.StringVar(&o.Containerd, "containerd", "", "the containerd version "+shim+" is built from (v2.4.2)")
	_ = fs.Parse(os.Args[2:])
	var err error
	if o.Created, err = time.Parse(time.RFC3339, *created); err != nil {
		fail(fmt.Errorf("-created: %w", err))
	}
	if o.Pins, o.Module, err = pins(o.Root); err != nil {
		fail(err)
	}
	switch os.Args[1] {
	case "package":
		err = o.pack()
	case "verify":
		err = o.verify()
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "release:", err)
	os.Exit(1)
}

// pins reads the module versions pinned in root/go.mod, and its module path.
func pins(root string) (map[string]string, string, error) {
	cmd := exec.Command("go", "mod", "edit", "-json")
	cmd.Dir, cmd.Stderr = root, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("go mod edit -json in %s: %w", root, err)
	}
	var gomod struct {
		Module  struct{ Path string }
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &gomod); err != nil {
		return nil, "", err
	}
	m := map[string]string{}
	for _, r := range gomod.Require {
		m[r.Path] = r.Version
	}
	if m["k8s.io/kubernetes"] == "" {
		return nil, "", fmt.Errorf("%s/go.mod pins no k8s.io/kubernetes", root)
	}
	return m, gomod.Module.Path, nil
}

// dl is the directory of the per-binary downloads, as on dl.k8s.io.
func (o options) dl() string { return filepath.Join(o.Out, "bin", "linux", o.Arch) }

func (o options) pack() error {
	if o.License == "" || o.Version == "" || o.Revision == "" || o.Repository == "" || o.Source == "" || o.Containerd == "" {
		return fmt.Errorf("-license, -version, -revision, -image-repository, -source and -containerd are required")
	}
	if err := os.MkdirAll(o.dl(), 0o755); err != nil {
		return err
	}
	// Each binary is read once here (copied and hashed in one pass).
	bins := map[string]binary{}
	for _, name := range append(slices.Clone(binaries), shim) {
		dest := filepath.Join(o.dl(), name)
		sha, err := copyFile(filepath.Join(o.BinDir, name), dest, 0o755)
		if err != nil {
			return err
		}
		b, err := readBinary(name, dest, sha)
		if err != nil {
			return err
		}
		if goos, goarch := b.setting("GOOS"), b.setting("GOARCH"); goos != "linux" || goarch != o.Arch {
			return fmt.Errorf("%s is built for %s/%s, not linux/%s", name, goos, goarch, o.Arch)
		}
		// The images have no C library: their binaries must be static, as
		// upstream builds them (CGO_ENABLED=0; the kubelet alone uses cgo).
		if slices.Contains(imageBinaries, name) && b.setting("CGO_ENABLED") != "0" {
			return fmt.Errorf("%s is built with CGO_ENABLED=%q: it would not run on the image's base, which has no libc",
				name, b.setting("CGO_ENABLED"))
		}
		// As containerd's own shim: it must run on any node, whatever its libc.
		if name == shim && b.setting("CGO_ENABLED") != "0" {
			return fmt.Errorf("%s is built with CGO_ENABLED=%q, not static as containerd's shims", name, b.setting("CGO_ENABLED"))
		}
		bins[name] = b
		if err := o.checksum(dest, sha); err != nil {
			return err
		}
		if err := o.sbom(dest, name, sha, func(d *doc) (common.ElementID, error) { return d.addBinary(b) }); err != nil {
			return err
		}
	}

	// An IMAGE_REPOSITORY that makes no valid reference fails here, not in
	// whatever imports the images.
	for _, n := range imageBinaries {
		ref := imageSpec{Name: n, Repository: o.Repository, Version: o.Version}.ref()
		if _, err := name.NewTag(ref, name.StrictValidation); err != nil {
			return fmt.Errorf("image reference %s: %w", ref, err)
		}
	}

	// The images, then the tarballs (the server tarball holds the images),
	// each on a core of its own.
	type image struct{ tar, tag, sha, digest string }
	images := map[string]image{}
	var mu sync.Mutex
	err := parallel(imageBinaries, func(name string) error {
		spec := imageSpec{Name: name, Binary: bins[name].File, Repository: o.Repository, Version: o.Version,
			Revision: o.Revision, Source: o.Source, Created: o.Created, Arch: o.Arch}
		tar := filepath.Join(o.dl(), name+".tar")
		digest, err := writeImageArchive(spec, tar)
		if err != nil {
			return err
		}
		tag := filepath.Join(o.dl(), name+".docker_tag")
		if err := os.WriteFile(tag, []byte(imageTag(o.Version)+"\n"), 0o644); err != nil {
			return err
		}
		sha, err := o.hashAndChecksum(tar)
		if err != nil {
			return err
		}
		mu.Lock()
		images[name] = image{tar: tar, tag: tag, sha: sha, digest: digest.Hex}
		mu.Unlock()
		return o.sbom(tar, name+".tar", sha, func(d *doc) (common.ElementID, error) {
			return o.addImage(d, spec, sha, digest.Hex, bins[name])
		})
	})
	if err != nil {
		return err
	}

	license := entry{Name: "kubernetes/LICENSE", Mode: 0o644, File: o.License}
	server := []entry{license}
	for _, name := range binaries {
		server = append(server, entry{Name: "kubernetes/server/bin/" + name, Mode: 0o755, File: bins[name].File})
	}
	for _, name := range imageBinaries {
		server = append(server,
			entry{Name: "kubernetes/server/bin/" + name + ".tar", Mode: 0o644, File: images[name].tar},
			entry{Name: "kubernetes/server/bin/" + name + ".docker_tag", Mode: 0o644, File: images[name].tag})
	}
	node := []entry{license}
	for _, name := range nodeBinaries {
		node = append(node, entry{Name: "kubernetes/node/bin/" + name, Mode: 0o755, File: bins[name].File})
	}
	tarballs := map[string][]entry{
		"kubernetes-server-linux-" + o.Arch + ".tar.gz": server,
		"kubernetes-node-linux-" + o.Arch + ".tar.gz":   node,
		o.shimTarball(): {
			{Name: "LICENSE", Mode: 0o644, File: o.License},
			{Name: "bin/" + shim, Mode: 0o755, File: bins[shim].File},
		},
	}
	comments := map[string]string{
		o.shimTarball(): "containerd's release layout (bin/), with " + shim + " of kubelet-fileprobe",
	}
	err = parallel(sortedKeys(tarballs), func(file string) error {
		dest := filepath.Join(o.Out, file)
		if err := writeTarGz(dest, tarballs[file], o.Created); err != nil {
			return err
		}
		sha, err := o.hashAndChecksum(dest)
		if err != nil {
			return err
		}
		return o.sbom(dest, file, sha, func(d *doc) (common.ElementID, error) {
			comment, ok := comments[file]
			if !ok {
				comment = "upstream's " + file + " layout, with the binaries of kubelet-fileprobe"
			}
			id, err := d.addArtifact(artifact{Kind: "archive", Name: file, Version: o.Version, SHA256: sha,
				Purpose: "ARCHIVE", Comment: comment})
			if err != nil {
				return "", err
			}
			for _, e := range tarballs[file] {
				name := filepath.Base(e.Name)
				switch {
				case bins[name].File != "":
					bid, err := d.addBinary(bins[name])
					if err != nil {
						return "", err
					}
					d.relate(id, "CONTAINS", bid, e.Name)
				case strings.HasSuffix(name, ".tar"):
					n := strings.TrimSuffix(name, ".tar")
					spec := imageSpec{Name: n, Repository: o.Repository, Version: o.Version}
					iid, err := o.addImage(d, spec, images[n].sha, images[n].digest, bins[n])
					if err != nil {
						return "", err
					}
					d.relate(id, "CONTAINS", iid, e.Name)
				}
			}
			return id, nil
		})
	})
	if err != nil {
		return err
	}
	return o.sums()
}

// addImage adds the image (its OCI archive, of digest sha) and its binary.
// manifest is the image's manifest digest, if known.
func (o options) addImage(d *doc, spec imageSpec, sha, manifest string, b binary) (common.ElementID, error) {
	a := artifact{Kind: "image", Name: spec.Repository + "/" + spec.Name, Version: imageTag(spec.Version), SHA256: sha,
		Purpose: "CONTAINER",
		Comment: "OCI archive of the image " + spec.ref() + ": a base layer of /etc/passwd, /etc/group, /etc/nsswitch.conf, " +
			"/root, /home/nonroot and /tmp, and the static binary at /usr/local/bin/" + spec.Name}
	if manifest != "" {
		a.Purl = []*spdxRef{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: fmt.Sprintf(
			"pkg:oci/%s@sha256%%3A%s?arch=%s&repository_url=%s&tag=%s", spec.Name, manifest, o.Arch,
			spec.Repository+"/"+spec.Name, imageTag(spec.Version))}}
	}
	id, err := d.addArtifact(a)
	if err != nil {
		return "", err
	}
	bid, err := d.addBinary(b)
	if err != nil {
		return "", err
	}
	d.relate(id, "CONTAINS", bid, "/usr/local/bin/"+spec.Name)
	return id, nil
}

// sbom writes file.spdx.json, the SBOM of file (whose name in the release is
// name), describing what add adds.
func (o options) sbom(file, name, sha string, add func(*doc) (common.ElementID, error)) error {
	d := newDoc(o.release, name, sha)
	id, err := add(d)
	if err != nil {
		return err
	}
	d.describes(id)
	return writeFile(file+".spdx.json", d.write)
}

// checksum writes file.sha256: the hex digest alone, as dl.k8s.io's are.
func (o options) checksum(file, sha string) error {
	return os.WriteFile(file+".sha256", []byte(sha), 0o644)
}

func (o options) hashAndChecksum(file string) (string, error) {
	sha, err := hashFile(file)
	if err != nil {
		return "", err
	}
	return sha, o.checksum(file, sha)
}

// sums writes SHA256SUMS: every other file of the release, in sha256sum's
// format, sorted by path.
func (o options) sums() error {
	var files []string
	err := filepath.WalkDir(o.Out, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && p != filepath.Join(o.Out, "SHA256SUMS") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		sha, err := hashFile(f)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(o.Out, f)
		fmt.Fprintf(&b, "%s  %s\n", sha, filepath.ToSlash(rel))
	}
	return os.WriteFile(filepath.Join(o.Out, "SHA256SUMS"), []byte(b.String()), 0o644)
}

func hashFile(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFile copies src to dest (mode) and returns its SHA-256, in one read.
func copyFile(src, dest string, mode os.FileMode) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	h := sha256.New()
	if err := writeFile(dest, func(w io.Writer) error {
		_, err := io.Copy(io.MultiWriter(w, h), in)
		return err
	}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), os.Chmod(dest, mode)
}

// parallel runs f for each item, as many at once as there are CPUs, and
// returns the first error.
func parallel(items []string, f func(string) error) error {
	sem := make(chan struct{}, runtime.NumCPU())
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = f(it)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
