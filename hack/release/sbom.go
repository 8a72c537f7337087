package main

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	spdxjson "github.com/spdx/tools-golang/json"
)

const noAssertion = "NOASSERTION"

type spdxRef = spdx.PackageExternalReference

// release is what every SBOM of one release shares.
type release struct {
	Version  string            // the fork version, v1.37.1+fileprobe.1
	Revision string            // the commit the binaries were built from
	Source   string            // URL of this repository
	Created  time.Time         // SOURCE_DATE_EPOCH: the build date stamped in the binaries
	Pins     map[string]string // module path -> version pinned in the root go.mod
	Module   string            // the root go.mod's module path: this repository's modules are under it

	Containerd string // the containerd the shim is built from (v2.4.2)
}

// shimVersion is what the shim says it is (-v; hack/shimless.sh): containerd's
// version, and ours.
func (r release) shimVersion() string {
	return r.Containerd + "+shimless." + strings.ReplaceAll(r.Version, "+", "-")
}

// own tells whether path is a module of this repository (shimless/).
func (r release) own(path string) bool {
	return r.Module != "" && (path == r.Module || strings.HasPrefix(path, r.Module+"/"))
}

// binary is one of our binaries: its name, digest and Go build information.
type binary struct {
	Name   string
	File   string
	SHA256 string
	Build  *debug.BuildInfo
}

func readBinary(name, file, sha string) (binary, error) {
	bi, err := buildinfo.ReadFile(file)
	if err != nil {
		return binary{}, fmt.Errorf("%s: %w", file, err)
	}
	return binary{Name: name, File: file, SHA256: sha, Build: bi}, nil
}

// setting returns the build setting key of b ("" if absent).
func (b binary) setting(key string) string {
	for _, s := range b.Build.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// module is a Go module compiled into a binary, at the version it is known by.
type module struct {
	Path, Version, Comment string
}

// modules lists the Go modules compiled into b, the main module first.
//
// The kube binaries' build information does not know the versions of the
// modules of the tree they were built from: the main module is
// "k8s.io/kubernetes (devel)" and each staging module "k8s.io/api (devel)"
// (upstream builds in its go.work workspace) or, built as a module,
// "k8s.io/api v0.0.0 => ./staging/src/k8s.io/api". These are mapped to the versions pinned in our
// root go.mod (k8s.io/kubernetes v1.X.Y, staging v0.X.Y), with a comment that
// they carry this fork's patches: they are those upstream versions as patched
// by the fork release r.Version, not the upstream modules of that version.
func (r release) modules(b binary) ([]module, error) {
	var mods []module
	forked := func(path, built string) (module, error) {
		v, ok := r.Pins[path]
		if !ok {
			return module{}, fmt.Errorf("%s: module %s (%s) is not pinned in go.mod", b.Name, path, built)
		}
		return module{Path: path, Version: v, Comment: fmt.Sprintf(
			"%s %s as patched by kubelet-fileprobe %s (this fork's patch series, commit %s); "+
				"the binary's build information says %s", path, v, r.Version, r.Revision, built)}, nil
	}
	main := b.Build.Main
	if r.own(main.Path) && (main.Version == "(devel)" || main.Version == "") {
		// Not upstream's: a module of this repository, at this release.
		mods = append(mods, module{Path: main.Path, Version: r.Version, Comment: fmt.Sprintf(
			"%s of kubelet-fileprobe %s (commit %s); the binary's build information says (devel)", main.Path, r.Version, r.Revision)})
	} else if main.Version == "(devel)" || main.Version == "" {
		m, err := forked(main.Path, main.Path+" (devel)")
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
	} else {
		mods = append(mods, module{Path: main.Path, Version: main.Version})
	}
	for _, d := range b.Build.Deps {
		switch {
		case d.Version == "(devel)": // a staging module of upstream's go.work
			m, err := forked(d.Path, d.Path+" (devel)")
			if err != nil {
				return nil, err
			}
			mods = append(mods, m)
		case d.Replace != nil && d.Replace.Version == "": // a directory of the tree: a staging module
			m, err := forked(d.Path, d.Path+" "+d.Version+" => "+d.Replace.Path)
			if err != nil {
				return nil, err
			}
			mods = append(mods, m)
		case d.Replace != nil:
			mods = append(mods, module{Path: d.Replace.Path, Version: d.Replace.Version,
				Comment: "replaces " + d.Path + " " + d.Version})
		default:
			mods = append(mods, module{Path: d.Path, Version: d.Version})
		}
	}
	return mods, nil
}

// doc accumulates one SPDX document: packages by SPDX identifier (each once),
// and relationships, in the order they are added.
type doc struct {
	r    release
	d    *spdx.Document
	pkgs map[common.ElementID]*spdx.Package
}

// creators names the tools that made the documents: this packager, and the
// SPDX library that wrote them, at the version compiled in.
func creators(r release) []common.Creator {
	c := []common.Creator{
		{CreatorType: "Organization", Creator: "kubelet-fileprobe"},
		{CreatorType: "Tool", Creator: "kubelet-fileprobe-hack-release-" + r.Version},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/spdx/tools-golang" {
				c = append(c, common.Creator{CreatorType: "Tool", Creator: "spdx-tools-golang-" + d.Version})
			}
		}
	}
	return c
}

// newDoc starts the document of the artifact name with content digest sha.
// Its namespace derives from the version and that digest: the same artifact
// always gets the same document, a different one another namespace.
func newDoc(r release, name, sha string) *doc {
	return &doc{r: r, pkgs: map[common.ElementID]*spdx.Package{}, d: &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name + "-" + r.Version,
		DocumentNamespace: fmt.Sprintf("%s/spdx/%s/%s-sha256-%s", strings.TrimSuffix(r.Source, "/"), r.Version, name, sha),
		DocumentComment: "Go modules are those recorded in each binary's build information (debug/buildinfo). " +
			"k8s.io/kubernetes and its staging modules (k8s.io/*), which the build information names (devel) " +
			"(or v0.0.0 => ./staging/src/...) as they are built from the tree, " +
			"are named at the upstream versions pinned in kubelet-fileprobe's go.mod, with this fork's patches " +
			"(kubelet-fileprobe " + r.Version + ") applied: see each package's comment.",
		CreationInfo: &spdx.CreationInfo{Creators: creators(r), Created: r.Created.UTC().Format(time.RFC3339)},
	}}
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func elementID(kind, name string) common.ElementID {
	return common.ElementID("Package-" + kind + "-" + unsafeID.ReplaceAllString(name, "-"))
}

// add adds p unless a package of its identifier is there; two different
// packages of one identifier are a bug.
func (d *doc) add(p *spdx.Package) (common.ElementID, error) {
	if old, ok := d.pkgs[p.PackageSPDXIdentifier]; ok {
		if old.PackageName != p.PackageName || old.PackageVersion != p.PackageVersion {
			return "", fmt.Errorf("SPDX identifier %s of %s %s and %s %s", p.PackageSPDXIdentifier,
				old.PackageName, old.PackageVersion, p.PackageName, p.PackageVersion)
		}
		return p.PackageSPDXIdentifier, nil
	}
	if p.PackageDownloadLocation == "" {
		p.PackageDownloadLocation = noAssertion
	}
	if p.PackageLicenseConcluded == "" {
		p.PackageLicenseConcluded = noAssertion
	}
	if p.PackageLicenseDeclared == "" {
		p.PackageLicenseDeclared = noAssertion
	}
	if p.PackageCopyrightText == "" {
		p.PackageCopyrightText = noAssertion
	}
	d.pkgs[p.PackageSPDXIdentifier] = p
	d.d.Packages = append(d.d.Packages, p)
	return p.PackageSPDXIdentifier, nil
}

func (d *doc) relate(a common.ElementID, rel string, b common.ElementID, comment string) {
	d.d.Relationships = append(d.d.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", string(a)), RefB: common.MakeDocElementID("", string(b)),
		Relationship: rel, RelationshipComment: comment,
	})
}

func (d *doc) describes(id common.ElementID) {
	d.relate("DOCUMENT", "DESCRIBES", id, "")
}

func purl(kind, name, version string) []*spdx.PackageExternalReference {
	v := strings.ReplaceAll(version, "+", "%2B")
	return []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl",
		Locator: "pkg:" + kind + "/" + name + "@" + v}}
}

// addBinary adds b with every Go module compiled into it, and the Go
// standard library, and returns b's identifier.
func (d *doc) addBinary(b binary) (common.ElementID, error) {
	id := elementID("binary", b.Name)
	if _, ok := d.pkgs[id]; ok {
		return id, nil
	}
	var tags []string
	for _, k := range []string{"GOOS", "GOARCH", "CGO_ENABLED", "-trimpath", "-tags"} {
		if v := b.setting(k); v != "" {
			tags = append(tags, k+"="+v)
		}
	}
	version, builtBy := d.r.Version, "upstream's make WHAT=cmd/"+b.Name
	if d.r.own(b.Build.Main.Path) {
		version, builtBy = d.r.shimVersion(), "hack/shimless.sh (make shimless)"
	}
	if _, err := d.add(&spdx.Package{
		PackageName: b.Name, PackageSPDXIdentifier: id, PackageVersion: version, PackageFileName: b.Name,
		PackageSupplier:        &common.Supplier{SupplierType: "Organization", Supplier: "kubelet-fileprobe"},
		PackageChecksums:       []common.Checksum{{Algorithm: common.SHA256, Value: b.SHA256}},
		PackageLicenseDeclared: "Apache-2.0",
		PrimaryPackagePurpose:  "APPLICATION",
		PackageComment: fmt.Sprintf("%s built by %s from kubelet-fileprobe commit %s with %s (%s)",
			b.Build.Path, builtBy, d.r.Revision, b.Build.GoVersion, strings.Join(tags, " ")),
	}); err != nil {
		return "", err
	}
	mods, err := d.r.modules(b)
	if err != nil {
		return "", err
	}
	for _, m := range mods {
		p := &spdx.Package{
			PackageName: m.Path, PackageSPDXIdentifier: elementID("go-module", m.Path+"-"+m.Version),
			PackageVersion: m.Version, PackageComment: m.Comment, PrimaryPackagePurpose: "LIBRARY",
			PackageExternalReferences: purl("golang", m.Path, m.Version),
		}
		if strings.HasPrefix(m.Path, "k8s.io/") && m.Comment != "" {
			p.PackageLicenseDeclared = "Apache-2.0"
		}
		mid, err := d.add(p)
		if err != nil {
			return "", err
		}
		d.relate(id, "CONTAINS", mid, "")
	}
	goVersion := strings.TrimPrefix(b.Build.GoVersion, "go")
	sid, err := d.add(&spdx.Package{
		PackageName: "stdlib", PackageSPDXIdentifier: elementID("go-module", "stdlib-"+goVersion),
		PackageVersion: b.Build.GoVersion, PrimaryPackagePurpose: "LIBRARY",
		PackageComment:            "the Go standard library and runtime of the toolchain that built the binary",
		PackageExternalReferences: purl("golang", "stdlib", goVersion),
		PackageLicenseDeclared:    "BSD-3-Clause",
	})
	if err != nil {
		return "", err
	}
	d.relate(id, "CONTAINS", sid, "")
	return id, nil
}

// artifact is a file of the release that holds binaries: a tarball or an image.
type artifact struct {
	Kind    string // "archive" or "image"
	Name    string // its file name (an image: its repository, name:tag in Version)
	Version string
	SHA256  string
	Purpose string // SPDX primary package purpose
	Comment string
	Purl    []*spdx.PackageExternalReference
}

func (d *doc) addArtifact(a artifact) (common.ElementID, error) {
	return d.add(&spdx.Package{
		PackageName: a.Name, PackageSPDXIdentifier: elementID(a.Kind, a.Name), PackageVersion: a.Version,
		PackageSupplier:           &common.Supplier{SupplierType: "Organization", Supplier: "kubelet-fileprobe"},
		PackageChecksums:          []common.Checksum{{Algorithm: common.SHA256, Value: a.SHA256}},
		PrimaryPackagePurpose:     a.Purpose,
		PackageComment:            a.Comment,
		PackageExternalReferences: a.Purl,
	})
}

func (d *doc) write(w io.Writer) error {
	// Relationships in a stable order (the order of adding is stable too,
	// but sorting makes the documents easy to compare by eye).
	sort.SliceStable(d.d.Relationships, func(i, j int) bool {
		a, b := d.d.Relationships[i], d.d.Relationships[j]
		if a.RefA.ElementRefID != b.RefA.ElementRefID {
			return a.RefA.ElementRefID == "DOCUMENT" || (b.RefA.ElementRefID != "DOCUMENT" && a.RefA.ElementRefID < b.RefA.ElementRefID)
		}
		return a.RefB.ElementRefID < b.RefB.ElementRefID
	})
	return spdxjson.Write(d.d, w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false))
}
