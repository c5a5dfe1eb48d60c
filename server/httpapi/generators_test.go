package httpapi

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// generators is the directory with the pinned code generators: a Go module whose go.mod
// has oapi-codegen as a tool, and an npm package with openapi-typescript and tsc.
var generators = filepath.Join("..", "..", "docs", "examples", "openapi")

// needGenerators skips unless openapi-typescript is installed, which .ci/with-services
// does (npm ci) before setting MAYFLY_REQUIRE_CLIENTS=1, under which its absence fails.
func needGenerators(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(generators, "node_modules", "openapi-typescript", "package.json")); err == nil {
		return
	}
	why := "openapi-typescript not installed (npm ci --prefix docs/examples/openapi)"
	if os.Getenv("MAYFLY_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("%s, and MAYFLY_REQUIRE_CLIENTS=1", why)
	}
	t.Skipf("%s; make test installs it (MAYFLY_REQUIRE_CLIENTS=1 makes this a failure)", why)
}

// TestOpenAPIGenerators checks that openapi.json makes working clients with the two
// generators people reach for: oapi-codegen's Go client must build, pass go vet and
// talk to a real server, and openapi-typescript's types must type-check with tsc.
// Both run in a copy of docs/examples/openapi, at the versions its go.mod and
// package-lock.json pin.
func TestOpenAPIGenerators(t *testing.T) {
	needGenerators(t)
	doc, err := filepath.Abs("openapi.json")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("oapi-codegen", func(t *testing.T) {
		dir := t.TempDir()
		testlib.CopyFiles(t, generators, dir, "go.mod", "go.sum", "oapi-codegen.yaml", "mayflyapi/doc.go", "mayflyapi/client_test.go")
		// The copy is a module of its own: no workspace, and whatever flags the caller set
		// for the main module do not apply to it.
		env := []string{"GOWORK=off", "GOFLAGS=-mod=readonly"}
		if out := testlib.RunIn(t, filepath.Join(dir, "mayflyapi"), env, "go", "tool", "oapi-codegen", "-config", "../oapi-codegen.yaml", doc); strings.TrimSpace(out) != "" {
			t.Errorf("oapi-codegen said something:\n%s", out)
		}
		gen, err := os.ReadFile(filepath.Join(dir, "mayflyapi", "mayfly.gen.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"func NewClientWithResponses(", "type Message struct", "type CreatedInbox struct", "type TOTPResponse struct"} {
			if !bytes.Contains(gen, []byte(want)) {
				t.Errorf("mayfly.gen.go has no %q", want)
			}
		}
		testlib.RunIn(t, dir, env, "go", "vet", "./...")

		st := memstore.New(memstore.Options{})
		t.Cleanup(func() { st.Close() })
		e := newEnv(t, st, Options{})
		out := testlib.RunIn(t, dir, append(env, "MAYFLY_URL="+e.base), "go", "test", "-count=1", "-v", "-run", "TestClient", "./mayflyapi")
		if !strings.Contains(out, "--- PASS: TestClient") {
			t.Errorf("the generated client's test did not pass:\n%s", out)
		}
	})

	t.Run("openapi-typescript", func(t *testing.T) {
		dir := t.TempDir()
		testlib.CopyFiles(t, generators, dir, "check.ts", "tsconfig.json")
		bin, err := filepath.Abs(filepath.Join(generators, "node_modules", ".bin"))
		if err != nil {
			t.Fatal(err)
		}
		out := testlib.RunIn(t, dir, nil, filepath.Join(bin, "openapi-typescript"), doc, "-o", "mayfly.d.ts")
		// It warns, on stderr and with exit status 0, about what it does not understand.
		if strings.Contains(strings.ToLower(out), "warn") || strings.Contains(strings.ToLower(out), "error") {
			t.Errorf("openapi-typescript warned:\n%s", out)
		}
		types, err := os.ReadFile(filepath.Join(dir, "mayfly.d.ts"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Message: {", "Summary: {", "CreatedInbox: {", "TOTPResponse: {", `"/api/v1/inboxes/{address}/wait": {`} {
			if !bytes.Contains(types, []byte(want)) {
				t.Errorf("mayfly.d.ts has no %q", want)
			}
		}
		testlib.RunIn(t, dir, nil, filepath.Join(bin, "tsc"), "-p", ".")
	})
}

// TestOpenAPITTLSchema checks that the ttl of CreateInboxRequest, written as a oneOf the
// generators understand, still describes what parseTTL accepts: a duration, seconds, null.
func TestOpenAPITTLSchema(t *testing.T) {
	schema := loadOpenAPI(t).Components.Schemas["CreateInboxRequest"].Value
	for _, tt := range []struct {
		ttl  any
		want bool
	}{{"30m", true}, {1800.0, true}, {1.5, true}, {nil, true}, {true, false}, {[]any{"30m"}, false}} {
		err := schema.VisitJSON(map[string]any{"ttl": tt.ttl})
		if (err == nil) != tt.want {
			t.Errorf("CreateInboxRequest.VisitJSON({ttl: %#v}) = %v, want valid %v", tt.ttl, err, tt.want)
		}
	}
}
