package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// examples is docs/examples: one sign-up application and the same test of it in
// Playwright, pytest and Go.
var examples = filepath.Join("..", "..", "docs", "examples")

// TestExamples runs the three sign-up tests of docs/examples, as their README says, against
// a real server and the sign-up app: Playwright on Debian's Chromium, Debian's pytest, and
// Go with the client oapi-codegen generates. make test installs what they need
// (.ci/with-services) and sets MAYFLY_REQUIRE_CLIENTS=1, so a missing one fails there.
func TestExamples(t *testing.T) {
	n := startNode(t)
	app := startSignupApp(t, n.smtp)
	env := []string{"MAYFLY_URL=http://" + n.http, "SIGNUP_URL=http://" + app}

	t.Run("playwright", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(examples, "playwright")
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@playwright", "test", "package.json")); err != nil {
			missingClient(t, "@playwright/test not installed (npm ci --prefix docs/examples/playwright)")
		}
		needClient(t, "/usr/bin/chromium")
		out := testlib.RunIn(t, dir, env, filepath.Join("node_modules", ".bin", "playwright"), "test", "--output", t.TempDir())
		if !strings.Contains(out, "1 passed") {
			t.Errorf("playwright did not pass its test:\n%s", out)
		}
	})
	t.Run("pytest", func(t *testing.T) {
		t.Parallel()
		pytest := needClient(t, "pytest-3") // Debian's python3-pytest, not a pyenv's python
		out := testlib.RunIn(t, filepath.Join(examples, "pytest"), env, pytest, "-q", "-p", "no:cacheprovider")
		if !strings.Contains(out, "1 passed") {
			t.Errorf("pytest did not pass its test:\n%s", out)
		}
	})
	t.Run("go", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		testlib.CopyFiles(t, filepath.Join(examples, "openapi"), dir, "go.mod", "go.sum", "oapi-codegen.yaml", "mayflyapi/doc.go", "mayflyapi/signup_test.go")
		doc, err := filepath.Abs(filepath.Join("..", "..", "server", "httpapi", "openapi.json"))
		if err != nil {
			t.Fatal(err)
		}
		// A module of its own: no workspace, and none of the caller's flags.
		goEnv := append(env, "GOWORK=off", "GOFLAGS=-mod=readonly")
		testlib.RunIn(t, filepath.Join(dir, "mayflyapi"), goEnv, "go", "tool", "oapi-codegen", "-config", "../oapi-codegen.yaml", doc)
		out := testlib.RunIn(t, dir, goEnv, "go", "test", "-count=1", "-v", "-run", "TestSignup", "./mayflyapi")
		if !strings.Contains(out, "--- PASS: TestSignup") {
			t.Errorf("the Go example did not pass:\n%s", out)
		}
	})
}

// startSignupApp builds docs/examples/signup and runs it on a free port, mailing through
// smtpAddr, until the test ends; it returns the app's address once it answers.
func startSignupApp(t *testing.T, smtpAddr string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "signup")
	if out, err := exec.Command("go", "build", "-o", bin, "./"+filepath.Join(examples, "signup")).CombinedOutput(); err != nil {
		t.Fatalf("go build signup: %v\n%s", err, out)
	}
	addr := testlib.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "SIGNUP_ADDR="+addr, "SIGNUP_SMTP="+smtpAddr)
	log := &testlib.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sign-up app did not listen on %s within 10s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a port, with a deadline
	}
	if resp, err := http.Get("http://" + addr + "/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / of the sign-up app: %v %v", resp, err)
	}
	return addr
}
