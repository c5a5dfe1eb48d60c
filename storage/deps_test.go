package storage_test

import (
	"os/exec"
	"slices"
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

const module = "github.com/mayfly-mail/mayfly/"

// views are the protocols' packages: each may use the store, the shared limits and
// listener layer, the login gate, the one message parser and the outbound network
// guard, and no other view.
var views = []string{"storage", "server/limit", "server/gate", "server/mailparse", "server/netguard"}

// mayImport is which of this module's packages each package under server/ and
// storage/ may import (not counting its tests). A package missing here fails the test:
// a new package gets a row saying where it sits.
var mayImport = map[string][]string{
	"storage":                    nil,
	"storage/memstore":           {"storage"},
	"storage/redisstore":         {"storage"},
	"storage/storetest":          {"storage"},
	"storage/storetest/redisrig": {"storage/storetest"}, // make test's shared Cluster and Sentinel
	"storage/storemetrics":       {"storage", "storage/memstore"},

	"server/limit":            nil,
	"server/mailparse":        nil,
	"server/netguard":         nil,
	"server/dnsclient":        nil,
	"server/dkimkey":          nil,
	"server/mailauth/dnstest": nil, // test helpers
	"server/gate":             {"storage", "server/limit"},
	"server/mailauth":         {"storage", "server/mailparse", "server/dnsclient"},
	"server/certs":            {"storage"},
	"server/dnssetup":         {"server/dkimkey", "server/dnsclient"},
	"server/inboxtoken":       {"storage", "storage/redisstore"},
	"server/cli":              nil, // talks to the server over HTTP only
	"server/mcpd":             nil, // its tools are requests to the API's http.Handler
	// the deliverability report: mailauth's own verdict details (never a second
	// SPF/DKIM), the one DNS client, the one MIME reader and the API's link finder
	"server/report": {"storage", "server/mailauth", "server/dnsclient", "server/mailparse", "server/httpapi/parse"},

	// test helpers: the stores under test and the one certificate maker
	"server/testlib": {"storage", "storage/memstore", "storage/redisstore", "storage/storetest", "server/certs"},

	"server/imapd":         views,
	"server/pop3d":         views,
	"server/httpapi":       append(slices.Clone(views), "server/httpapi/parse", "server/report"), // report: computed, not a view
	"server/httpapi/parse": {"server/mailparse"},
	"server/mx":            append(slices.Clone(views), "server/mailauth"),
	"server/submission":    append(slices.Clone(views), "server/dnsclient"),
	"server/webhook":       views,
}

// knownExceptions are imports the table forbids that are still there. Each names its
// issue; a row whose import is gone fails the test, so that it is dropped.
var knownExceptions = map[string][]string{}

// TestServerImports checks every package under server/ and storage/ against mayImport:
// imports point one way, cmd -> server/* -> storage, and no view imports another.
func TestServerImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"server/...", module+"storage/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		seen[pkg] = true
		allowed, ok := mayImport[pkg]
		if !ok {
			t.Errorf("%s is not in mayImport: add a row saying which packages it may import", pkg)
			continue
		}
		used := map[string]bool{}
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			used[dep] = true
			if !slices.Contains(allowed, dep) && !slices.Contains(knownExceptions[pkg], dep) {
				t.Errorf("%s imports %s; mayImport allows %v", pkg, dep, allowed)
			}
		}
		for _, dep := range knownExceptions[pkg] {
			if !used[dep] {
				t.Errorf("%s no longer imports %s: drop it from knownExceptions", pkg, dep)
			}
		}
	}
	for pkg := range mayImport {
		if !seen[pkg] {
			t.Errorf("mayImport has a row for %s, which is gone", pkg)
		}
	}
}
