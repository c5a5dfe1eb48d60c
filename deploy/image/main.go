// Command image assembles the mayfly container image without a container runtime,
// a daemon or a base image: one layer holding the static binary, the CA
// certificates, the mayfly user and the directories it writes to, and the same
// configuration deploy/Dockerfile gives its image. `make image` (deploy/dist.sh)
// runs it on the linux binaries of `make dist`:
//
//	go run . -bin linux/amd64=../../dist/mayfly-linux-amd64 -bin linux/arm64=... \
//	  -version v1.2.3 -commit 0123... -created 2026-12-07T08:00:00Z -out ../../dist
//
// It writes, in -out, mayfly-image-linux-ARCH.tar (a docker-archive of one
// platform, for `docker load` and `podman load`) for each binary, and
// mayfly-image.oci.tar (an OCI image layout holding the multi-platform index, for
// `skopeo copy oci-archive:...` or `crane push` to a registry). Every time stamp is
// -created, so the same binaries give the same digests.
//
// With -rootfs DIR it writes the layer's files into DIR instead: deploy/Dockerfile
// copies that directory into a scratch image, so both builds hold the same files.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the process runs as: numeric, so that Kubernetes' runAsNonRoot can check
// it; the same as deploy/Dockerfile, the compose file and the Kubernetes manifests.
const (
	uid = 10001
	gid = 10001
)

// BinaryPath is where the binary is in the image; the entrypoint.
const BinaryPath = "/usr/local/bin/mayfly"

// Ports are the unprivileged ports every listener is on inside a container (the
// host, compose or a Service maps 25, 587, ... onto them), and the metrics port.
var Ports = []string{"2525", "2587", "2465", "1143", "1993", "1110", "1995", "8025", "9090"}

// Env makes every listener listen on all interfaces of the container (the binary's
// defaults stay on loopback); each can be overridden, or set empty to turn it off.
var Env = []string{
	"PATH=/usr/local/bin",
	"MAYFLY_SMTP_ADDR=:2525",
	"MAYFLY_SUBMISSION_ADDR=:2587",
	"MAYFLY_SUBMISSIONS_ADDR=:2465",
	"MAYFLY_IMAP_ADDR=:1143",
	"MAYFLY_IMAPS_ADDR=:1993",
	"MAYFLY_POP3_ADDR=:1110",
	"MAYFLY_POP3S_ADDR=:1995",
	"MAYFLY_HTTP_ADDR=:8025",
}

// File is one entry of the image's only layer.
type File struct {
	Path     string // relative, no leading slash; directories end in /
	Mode     int64  // permission bits, plus sticky for /tmp
	UID, GID int
	Data     []byte // nil for directories
}

// Contents lists every file and directory of the image, in tar order: nothing else
// is in it (no shell, no package manager).
func Contents(binary, certs, license []byte) []File {
	dir := func(p string, mode int64) File { return File{Path: p, Mode: mode} }
	file := func(p string, mode int64, data []byte) File { return File{Path: p, Mode: mode, Data: data} }
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nmayfly:x:%d:%d:mayfly:/nonexistent:/sbin/nologin\n", uid, gid)
	group := fmt.Sprintf("root:x:0:\nmayfly:x:%d:\n", gid)
	return []File{
		dir("etc/", 0o755),
		file("etc/group", 0o644, []byte(group)),
		file("etc/passwd", 0o644, []byte(passwd)),
		dir("etc/ssl/", 0o755),
		dir("etc/ssl/certs/", 0o755),
		// Where Go's crypto/x509 looks first on Linux: for rediss://, smtps://
		// relays, STARTTLS to remote MX hosts and ACME.
		file("etc/ssl/certs/ca-certificates.crt", 0o644, certs),
		// Inbound SMTP writes its STARTTLS certificate to a temporary directory.
		dir("tmp/", 0o1777),
		dir("usr/", 0o755),
		dir("usr/local/", 0o755),
		dir("usr/local/bin/", 0o755),
		file(strings.TrimPrefix(BinaryPath, "/"), 0o755, binary),
		dir("usr/share/", 0o755),
		dir("usr/share/doc/", 0o755),
		dir("usr/share/doc/mayfly/", 0o755),
		file("usr/share/doc/mayfly/LICENSE", 0o644, license),
		dir("var/", 0o755),
		dir("var/lib/", 0o755),
		// MAYFLY_ACME_DIR's parent (the memory store keeps ACME state there), and a
		// volume's mount point that the user owns.
		{Path: "var/lib/mayfly/", Mode: 0o700, UID: uid, GID: gid},
	}
}

// Meta is what the configuration says about the build.
type Meta struct {
	Version string    // the tag, or (devel)
	Commit  string    // the full revision
	Created time.Time // the commit's time: every time stamp in the image
}

// Labels are the OCI annotations the configuration carries.
func Labels(m Meta) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "mayfly",
		"org.opencontainers.image.description": "Disposable inboxes: SMTP, IMAP, POP3, a web UI and an API",
		"org.opencontainers.image.source":      "https://github.com/mayfly-mail/mayfly",
		"org.opencontainers.image.licenses":    "MIT",
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Commit,
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
	}
}

// Config is the image's run configuration, the Dockerfile's ENV, EXPOSE, USER,
// WORKDIR, HEALTHCHECK, STOPSIGNAL, ENTRYPOINT and CMD.
func Config(m Meta) v1.Config {
	ports := map[string]struct{}{}
	for _, p := range Ports {
		ports[p+"/tcp"] = struct{}{}
	}
	return v1.Config{
		Env:          slices.Clone(Env),
		ExposedPorts: ports,
		User:         fmt.Sprintf("%d:%d", uid, gid),
		WorkingDir:   "/tmp",
		// Liveness: the process serves HTTP. Readiness (the store answers) is /readyz,
		// which load balancers check; a node whose Redis is away should leave the
		// rotation, not restart.
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", BinaryPath, "probe", "/healthz"},
			Interval:    10 * time.Second,
			Timeout:     3 * time.Second,
			StartPeriod: 10 * time.Second,
			Retries:     3,
		},
		// SIGTERM: stop accepting, let sessions in flight finish (MAYFLY_SHUTDOWN_TIMEOUT).
		StopSignal: "SIGTERM",
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"serve"},
		Labels:     Labels(m),
	}
}

// LayerTar is the layer: the files in the given order, owned by root unless said
// otherwise, every time stamp at mtime, no user or group names.
func LayerTar(files []File, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.Path,
			Mode:    f.Mode,
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: mtime,
			// Whole seconds, no names, short paths: nothing needs a PAX header.
			Format: tar.FormatUSTAR,
		}
		if strings.HasSuffix(f.Path, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Image is the image of one platform.
func Image(platform v1.Platform, files []File, m Meta) (v1.Image, error) {
	layerTar, err := LayerTar(files, m.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: platform.Architecture,
		Variant:      platform.Variant,
		OS:           platform.OS,
		Created:      v1.Time{Time: m.Created},
		Config:       Config(m),
		// Docker's load refuses any other type; Append adds the layer's diff ID.
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: m.Created},
			CreatedBy: "deploy/image: mayfly " + m.Version,
		},
	})
}

// elfMachine is the machine each supported architecture's binary must be built for:
// a binary of the wrong one would only fail when the container starts.
var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkBinary refuses a binary that is not a static Linux executable of arch.
func checkBinary(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: not a Linux executable: %w", path, err)
	}
	defer f.Close()
	want, ok := elfMachine[arch]
	if !ok {
		return fmt.Errorf("%s: unsupported architecture %q", path, arch)
	}
	if f.Machine != want {
		return fmt.Errorf("%s: built for %s, not %s", path, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			// The image has no dynamic loader and no libc.
			return fmt.Errorf("%s: dynamically linked: build with CGO_ENABLED=0", path)
		}
	}
	return nil
}

type bins []string

func (b *bins) String() string     { return strings.Join(*b, ",") }
func (b *bins) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("image", flag.ContinueOnError)
	var binaries bins
	fl.Var(&binaries, "bin", "`os/arch=path` of a static mayfly binary; repeat for each platform")
	certs := fl.String("certs", "/etc/ssl/certs/ca-certificates.crt", "CA certificate bundle (PEM) to put in the image")
	license := fl.String("license", "LICENSE", "the license file")
	version := fl.String("version", "(devel)", "the version the labels and the tag name")
	commit := fl.String("commit", "", "the commit the binaries were built from")
	created := fl.String("created", "", "the commit's time (RFC 3339): every time stamp in the image")
	repo := fl.String("repository", "mayfly", "the image's name in the docker-archives")
	out := fl.String("out", "", "directory to write the image tarballs to")
	rootfs := fl.String("rootfs", "", "write the files of the (single) -bin's image into this directory instead")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if len(binaries) == 0 || (*out == "") == (*rootfs == "") {
		return errors.New("want -bin and one of -out or -rootfs")
	}
	meta := Meta{Version: *version, Commit: *commit}
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			return fmt.Errorf("-created: %w", err)
		}
		meta.Created = t.UTC()
	} else if *out != "" {
		return errors.New("-created is required with -out: without it the image would not be reproducible")
	}
	certData, err := os.ReadFile(*certs)
	if err != nil {
		return fmt.Errorf("%w (install Debian's ca-certificates, or give -certs)", err)
	}
	licenseData, err := os.ReadFile(*license)
	if err != nil {
		return err
	}

	type target struct {
		platform v1.Platform
		path     string
	}
	var targets []target
	for _, b := range binaries {
		plat, path, ok := strings.Cut(b, "=")
		os_, arch, ok2 := strings.Cut(plat, "/")
		if !ok || !ok2 || os_ != "linux" {
			return fmt.Errorf("-bin %q: want linux/ARCH=PATH", b)
		}
		if err := checkBinary(path, arch); err != nil {
			return err
		}
		targets = append(targets, target{v1.Platform{OS: os_, Architecture: arch}, path})
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].platform.Architecture < targets[j].platform.Architecture })

	if *rootfs != "" {
		if len(targets) != 1 {
			return errors.New("-rootfs takes one -bin")
		}
		bin, err := os.ReadFile(targets[0].path)
		if err != nil {
			return err
		}
		return writeRootfs(*rootfs, Contents(bin, certData, licenseData))
	}

	tag, err := name.NewTag(*repo+":"+tagOf(*version), name.WeakValidation)
	if err != nil {
		return err
	}
	var adds []mutate.IndexAddendum
	for _, t := range targets {
		bin, err := os.ReadFile(t.path)
		if err != nil {
			return err
		}
		img, err := Image(t.platform, Contents(bin, certData, licenseData), meta)
		if err != nil {
			return err
		}
		file := filepath.Join(*out, "mayfly-image-linux-"+t.platform.Architecture+".tar")
		if err := tarball.WriteToFile(file, tag, img); err != nil {
			return err
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s %s\n", file, tag, digest)
		plat := t.platform
		adds = append(adds, mutate.IndexAddendum{Add: notArtifact{img}, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	index := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	file := filepath.Join(*out, "mayfly-image.oci.tar")
	if err := writeLayoutTar(file, index, tag, meta.Created); err != nil {
		return err
	}
	digest, err := index.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s %s\n", file, tag, digest)
	return nil
}

// containerdName is the tag as containerd (and so Docker's containerd store) writes
// it: docker.io, not go-containerregistry's index.docker.io.
func containerdName(tag name.Tag) string {
	if tag.RegistryStr() == name.DefaultRegistry {
		return "docker.io/" + tag.RepositoryStr() + ":" + tag.TagStr()
	}
	return tag.Name()
}

// notArtifact is an image whose index entry has no artifactType: go-containerregistry
// would set the configuration's media type there, which the image spec keeps for
// artifacts, and a tool may take the image for one.
type notArtifact struct{ v1.Image }

func (notArtifact) ArtifactType() (string, error) { return "", nil }

// tagOf makes a version a tag: (devel) is not one.
func tagOf(version string) string {
	if version == "" || strings.ContainsAny(version, "()") {
		return "devel"
	}
	return strings.ReplaceAll(version, "+", "_")
}

// writeRootfs writes the files with their modes and owners (as root; as another
// user the owners stay the caller's).
func writeRootfs(dir string, files []File) error {
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if strings.HasSuffix(f.Path, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		} else if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return err
		}
		mode := fs.FileMode(f.Mode & 0o777)
		if f.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(p, f.UID, f.GID); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeLayoutTar writes the index as an OCI image layout, in one tar file whose
// entries are in a fixed order with fixed times. index.json names the index by the
// tag, as `docker load` (25 and later) and `podman load` read it.
func writeLayoutTar(file string, index v1.ImageIndex, tag name.Tag, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "mayfly-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	err = p.AppendIndex(index, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          containerdName(tag),
	}))
	if err != nil {
		return err
	}
	var names []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			rel += "/"
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, n := range names {
		h := &tar.Header{Name: n, Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		var data []byte
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		} else if data, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(n))); err != nil {
			break
		}
		h.Size = int64(len(data))
		if err = tw.WriteHeader(h); err != nil {
			break
		}
		if _, err = tw.Write(data); err != nil {
			break
		}
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
