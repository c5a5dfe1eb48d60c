package storage_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoProtocolImports keeps storage free of protocol and transport libraries: views
// adapt the store, never the other way round.
func TestNoProtocolImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/mayfly-mail/mayfly/server",
		"github.com/flashmob/", "github.com/emersion/", "github.com/labstack/",
		"github.com/gorilla/", "github.com/redis/", "net/http", "net/smtp", "net/mail",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("storage depends on %s", dep)
			}
		}
	}
}
