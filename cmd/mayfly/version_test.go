package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
		{Key: "vcs.time", Value: "2026-12-07T08:00:00Z"}, {Key: "vcs.modified", Value: "false"}}
	for _, c := range []struct {
		name     string
		main     string
		settings []debug.BuildSetting
		x        [3]string // -X version, commit, date
		want     string
	}{
		{"no vcs", "", nil, [3]string{}, "(devel)"},
		{"devel with vcs", "(devel)", vcs, [3]string{}, "(devel) (commit 0123456789ab, built 2026-12-07T08:00:00Z)"},
		{"dirty", "(devel)", append(vcs[:3:3], debug.BuildSetting{Key: "vcs.modified", Value: "true"}), [3]string{},
			"(devel) (commit 0123456789ab+dirty, built 2026-12-07T08:00:00Z)"},
		{"module tag", "v1.2.3", nil, [3]string{}, "v1.2.3"},
		{"ldflags win", "(devel)", vcs, [3]string{"v2.0.0", "fedcba9876543210", "2027-01-01T00:00:00Z"},
			"v2.0.0 (commit fedcba987654, built 2027-01-01T00:00:00Z)"},
		{"ldflags version only", "(devel)", vcs, [3]string{"v2.0.0", "", ""},
			"v2.0.0 (commit 0123456789ab, built 2026-12-07T08:00:00Z)"},
	} {
		info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/mayfly-mail/mayfly", Version: c.main}, Settings: c.settings}
		if got := fromBuildInfo(info).override(c.x[0], c.x[1], c.x[2]).String(); got != c.want {
			t.Errorf("%s: version = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestVersionBinary builds the command as a release does and as a developer does, and
// reads what `mayfly version` prints: the -X values, or the commit the tree is at.
func TestVersionBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice: runs without -short, as make test does")
	}
	goTool := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	dir := t.TempDir()
	build := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		bin := filepath.Join(dir, name)
		cmd := exec.Command(goTool, append(append([]string{"build", "-o", bin}, args...), ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}

	t.Run("ldflags", func(t *testing.T) {
		// make dist adds -trimpath and -s -w; left out here so the build reuses the compiled packages.
		got := build(t, "release", "-buildvcs=false", "-ldflags",
			"-X main.buildVersion=v9.8.7 -X main.buildCommit=0123456789abcdef0123456789abcdef01234567 -X main.buildDate=2026-01-02T03:04:05Z")
		if want := "mayfly v9.8.7 (commit 0123456789ab, built 2026-01-02T03:04:05Z)"; got != want {
			t.Errorf("release build says %q, want %q", got, want)
		}
	})

	t.Run("buildinfo", func(t *testing.T) {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Skipf("no git work tree for the build-info path (%v): make test in a clone runs it", err)
		}
		// Go stamps the commit only where .git is a directory, not in a `git worktree`
		// checkout, whose .git is a file (the build's -buildvcs=true then stamps nothing).
		if fi, err := os.Stat("../../.git"); err != nil || !fi.IsDir() {
			t.Skip("a git worktree checkout, where go build records no VCS info: make test in a clone runs it")
		}
		got := build(t, "devel", "-buildvcs=true")
		// The version is (devel), or since Go 1.24 a pseudo-version made of the commit.
		if want := " (commit " + string(head[:12]); !strings.HasPrefix(got, "mayfly ") || !strings.Contains(got, want) || !strings.Contains(got, ", built 20") {
			t.Errorf("work-tree build says %q, want it to name %q and the commit's date", got, want)
		}
	})
}
