package testlib

import (
	"os"
	"path/filepath"
	"testing"
)

// CopyFiles copies the named files of dir src into dir dst, keeping their relative
// paths: a module of docs/examples copied aside, so that what a test generates in it
// never lands in the source tree.
func CopyFiles(t testing.TB, src, dst string, names ...string) {
	t.Helper()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
