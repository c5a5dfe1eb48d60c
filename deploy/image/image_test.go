package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	testVersion = "v9.9.9-imagetest"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
	testCreated = "2026-12-07T08:00:00Z"
)

// wantFiles is every entry of the layer, with its type, mode and owner: a file more
// (a shell, a package database, a stray build file) fails the test.
var wantFiles = []string{
	"etc/ dir 755 0:0",
	"etc/group file 644 0:0",
	"etc/passwd file 644 0:0",
	"etc/ssl/ dir 755 0:0",
	"etc/ssl/certs/ dir 755 0:0",
	"etc/ssl/certs/ca-certificates.crt file 644 0:0",
	"tmp/ dir 1777 0:0",
	"usr/ dir 755 0:0",
	"usr/local/ dir 755 0:0",
	"usr/local/bin/ dir 755 0:0",
	"usr/local/bin/mayfly file 755 0:0",
	"usr/share/ dir 755 0:0",
	"usr/share/doc/ dir 755 0:0",
	"usr/share/doc/mayfly/ dir 755 0:0",
	"usr/share/doc/mayfly/LICENSE file 644 0:0",
	"var/ dir 755 0:0",
	"var/lib/ dir 755 0:0",
	"var/lib/mayfly/ dir 700 10001:10001",
}

// buildMayfly builds the binary as deploy/dist.sh does, for this machine's
// architecture (so that it runs here), with a version only this test uses.
func buildMayfly(t *testing.T, dir string) string {
	t.Helper()
	if runtime.GOOS != "linux" || elfMachine[runtime.GOARCH] == 0 {
		t.Skipf("the image is for linux/amd64 and linux/arm64; this is %s/%s: run make lint (beside make test) on either", runtime.GOOS, runtime.GOARCH)
	}
	bin := filepath.Join(dir, "mayfly")
	ldflags := fmt.Sprintf("-s -w -buildid= -X main.buildVersion=%s -X main.buildCommit=%s -X main.buildDate=%s",
		testVersion, testCommit, testCreated)
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, "./cmd/mayfly")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mayfly: %v\n%s", err, out)
	}
	return bin
}

func TestImage(t *testing.T) {
	tmp := t.TempDir()
	bin := buildMayfly(t, tmp)
	arch := runtime.GOARCH
	certs := "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(certs); err != nil {
		// Any PEM will do for the test: what matters is that it lands where Go looks.
		certs = filepath.Join(tmp, "certs.pem")
		if err := os.WriteFile(certs, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Twice, into two directories: the same binary must give the same bytes.
	var outs [2]string
	for i := range outs {
		outs[i] = filepath.Join(tmp, fmt.Sprint("out", i))
		if err := os.Mkdir(outs[i], 0o755); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		err := run([]string{"-bin", "linux/" + arch + "=" + bin, "-certs", certs, "-license", "../../LICENSE",
			"-version", testVersion, "-commit", testCommit, "-created", testCreated, "-out", outs[i]}, &log)
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		t.Logf("build %d:\n%s", i, log.String())
	}
	archive := "mayfly-image-linux-" + arch + ".tar"
	for _, f := range []string{archive, "mayfly-image.oci.tar"} {
		a, b := sha256File(t, filepath.Join(outs[0], f)), sha256File(t, filepath.Join(outs[1], f))
		if a != b {
			t.Errorf("%s: two builds differ (%s, %s): not reproducible", f, a, b)
		}
	}
	entries, _ := os.ReadDir(outs[0])
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if want := []string{archive, "mayfly-image.oci.tar"}; !slices.Equal(got, want) {
		t.Errorf("wrote %q, want %q", got, want)
	}

	// The docker-archive, as `docker load` reads it.
	tag, _ := name.NewTag("mayfly:"+testVersion, name.WeakValidation)
	img, err := tarball.ImageFromPath(filepath.Join(outs[0], archive), &tag)
	if err != nil {
		t.Fatalf("docker-archive: %v", err)
	}
	checkConfig(t, img, arch)
	files, binary := layerFiles(t, img)
	if !slices.Equal(files, wantFiles) {
		t.Errorf("the image holds\n  %s\nwant\n  %s", strings.Join(files, "\n  "), strings.Join(wantFiles, "\n  "))
	}
	checkBinaryRuns(t, tmp, binary)

	// The OCI layout: index.json names one index by the tag, and the index's manifest
	// for this platform is the docker-archive's image.
	layoutDir := filepath.Join(tmp, "layout")
	untar(t, filepath.Join(outs[0], "mayfly-image.oci.tar"), layoutDir)
	top, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatalf("OCI layout: %v", err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topManifest.Manifests); n != 1 {
		t.Fatalf("index.json lists %d entries, want 1", n)
	}
	ann := topManifest.Manifests[0].Annotations
	if ref := ann["org.opencontainers.image.ref.name"]; ref != testVersion {
		t.Errorf("index.json: ref.name %q, want %q", ref, testVersion)
	}
	if ref := ann["io.containerd.image.name"]; ref != "docker.io/library/mayfly:"+testVersion {
		t.Errorf("index.json: io.containerd.image.name %q, want docker.io/library/mayfly:%s", ref, testVersion)
	}
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) == 1 && im.Manifests[0].ArtifactType != "" {
		t.Errorf("the index's entry has artifactType %q: an image is no artifact", im.Manifests[0].ArtifactType)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform == nil ||
		im.Manifests[0].Platform.OS != "linux" || im.Manifests[0].Platform.Architecture != arch {
		t.Fatalf("the index lists %+v, want one linux/%s manifest", im.Manifests, arch)
	}
	// A docker-archive has no manifest of its own (docker load makes one), but it keeps
	// the configuration as it was: the same bytes, so the same digest.
	ociImg, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	gotConfig, _ := ociImg.ConfigName()
	wantConfig, _ := img.ConfigName()
	if gotConfig != wantConfig {
		t.Errorf("the layout's linux/%s configuration is %s, the docker-archive's %s", arch, gotConfig, wantConfig)
	}

	// -rootfs, which deploy/Dockerfile copies into its scratch image, lays out the same files.
	rootfs := filepath.Join(tmp, "rootfs")
	if err := run([]string{"-bin", "linux/" + arch + "=" + bin, "-certs", certs, "-license", "../../LICENSE", "-rootfs", rootfs}, io.Discard); err != nil {
		t.Fatalf("-rootfs: %v", err)
	}
	if got := dirFiles(t, rootfs); !slices.Equal(got, wantFiles) {
		t.Errorf("-rootfs wrote\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(wantFiles, "\n  "))
	}
}

func checkConfig(t *testing.T, img v1.Image, arch string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.RootFS.Type != "layers" {
		t.Errorf("rootfs type %q, want layers (docker load refuses others)", cf.RootFS.Type)
	}
	if cf.OS != "linux" || cf.Architecture != arch {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, arch)
	}
	if got := cf.Created.UTC().Format(time.RFC3339); got != testCreated {
		t.Errorf("created %s, want the commit's time %s", got, testCreated)
	}
	c := cf.Config
	if c.User != "10001:10001" {
		t.Errorf("user %q, want 10001:10001", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/mayfly"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q, want [/usr/local/bin/mayfly] [serve]", c.Entrypoint, c.Cmd)
	}
	if c.WorkingDir != "/tmp" || c.StopSignal != "SIGTERM" {
		t.Errorf("workdir %q stopsignal %q, want /tmp and SIGTERM", c.WorkingDir, c.StopSignal)
	}
	ports := slices.Sorted(maps.Keys(c.ExposedPorts))
	if want := []string{"1110/tcp", "1143/tcp", "1993/tcp", "1995/tcp", "2465/tcp", "2525/tcp", "2587/tcp", "8025/tcp", "9090/tcp"}; !slices.Equal(ports, want) {
		t.Errorf("exposed ports %q, want %q", ports, want)
	}
	if !slices.Contains(c.Env, "MAYFLY_HTTP_ADDR=:8025") || !slices.Contains(c.Env, "MAYFLY_SMTP_ADDR=:2525") {
		t.Errorf("env %q: want the listeners on all interfaces", c.Env)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, []string{"CMD", "/usr/local/bin/mayfly", "probe", "/healthz"}) {
		t.Errorf("healthcheck %+v, want mayfly probe /healthz", c.Healthcheck)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":    "mayfly",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": testCommit,
		"org.opencontainers.image.created":  testCreated,
		"org.opencontainers.image.source":   "https://github.com/mayfly-mail/mayfly",
		"org.opencontainers.image.licenses": "MIT",
	}
	for k, v := range wantLabels {
		if c.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, c.Labels[k], v)
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 || len(cf.RootFS.DiffIDs) != 1 || len(cf.History) != 1 {
		t.Errorf("%d layers, %d diff IDs, %d history entries: want one of each", len(layers), len(cf.RootFS.DiffIDs), len(cf.History))
	}
}

// layerFiles lists the image's layer as wantFiles does, and returns the binary.
func layerFiles(t *testing.T, img v1.Image) ([]string, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		t.Fatalf("layers: %v", err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var files []string
	var binary []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kind := "file"
		switch h.Typeflag {
		case tar.TypeDir:
			kind = "dir"
		case tar.TypeReg:
		default:
			kind = fmt.Sprintf("type%c", h.Typeflag)
		}
		if !h.ModTime.Equal(mustTime(testCreated)) {
			t.Errorf("%s: mtime %s, want %s", h.Name, h.ModTime, testCreated)
		}
		files = append(files, fmt.Sprintf("%s %s %o %d:%d", h.Name, kind, h.Mode, h.Uid, h.Gid))
		if h.Name == "etc/passwd" {
			data, _ := io.ReadAll(tr)
			if !bytes.Contains(data, []byte("\nmayfly:x:10001:10001:")) {
				t.Errorf("etc/passwd has no mayfly user 10001:\n%s", data)
			}
		}
		if h.Name == "usr/local/bin/mayfly" {
			binary, _ = io.ReadAll(tr)
		}
	}
	return files, binary
}

// checkBinaryRuns runs the binary taken out of the image: it says the version it was
// built with.
func checkBinaryRuns(t *testing.T, dir string, binary []byte) {
	t.Helper()
	path := filepath.Join(dir, "from-image")
	if err := os.WriteFile(path, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("mayfly version from the image: %v\n%s", err, out)
	}
	want := fmt.Sprintf("mayfly %s (commit %s, built %s)\n", testVersion, testCommit[:12], testCreated)
	if string(out) != want {
		t.Errorf("mayfly version from the image says %q, want %q", out, want)
	}
}

func dirFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		kind := "file"
		if d.IsDir() {
			rel, kind = rel+"/", "dir"
		}
		mode := info.Mode().Perm()
		if info.Mode()&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		owner := "0:0"
		if rel == "var/lib/mayfly/" {
			owner = "10001:10001"
		}
		if os.Geteuid() == 0 {
			owner = ownerOf(info)
		}
		files = append(files, fmt.Sprintf("%s %s %o %s", filepath.ToSlash(rel), kind, mode, owner))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReader(f))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("%s: entry %q leaves the directory", file, h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

func mustTime(s string) time.Time {
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return tm
}

func ownerOf(info fs.FileInfo) string {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return "?"
	}
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}
