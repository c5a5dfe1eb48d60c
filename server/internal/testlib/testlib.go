// Package testlib holds what the servers' tests share: one place for the checks that
// every package's tests would otherwise write again.
package testlib

import (
	"os"
	"os/exec"
	"testing"
)

// Curl returns the path of curl, a client nobody here wrote, or skips the test; under
// MAYFLY_REQUIRE_CURL=1, as make test sets, a missing curl fails it instead.
func Curl(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("MAYFLY_REQUIRE_CURL") == "1" {
			t.Fatal("curl is not installed, and MAYFLY_REQUIRE_CURL=1 says the curl tests must run")
		}
		t.Skip("curl is not installed: apt-get install curl, or run make test, which installs it (MAYFLY_REQUIRE_CURL=1 makes this a failure)")
	}
	return path
}
