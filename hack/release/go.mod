// The release packager (hack/release.sh, make release): a module of its own so
// that its dependencies (go-containerregistry for the images, spdx/tools-golang
// for the SBOMs) stay out of the root go.mod, which only pins upstream.
module github.com/kubelet-fileprobe/kubelet-fileprobe/hack/release

go 1.25.0

require (
	github.com/google/go-containerregistry v0.22.1
	github.com/klauspost/compress v1.19.2
	github.com/spdx/tools-golang v0.5.7
)

require (
	github.com/anchore/go-struct-converter v0.1.0 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
