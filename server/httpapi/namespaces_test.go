package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
)

const adminKey = "admin-key-for-namespaces-0123456789"

// eachNamespaceEnv runs fn on every store with a server that has the admin key.
func eachNamespaceEnv(t *testing.T, fn func(t *testing.T, e *env)) {
	testlib.EachStore(t, stores(t), func(t *testing.T, st fullStore) {
		fn(t, newEnv(t, st, Options{APIKey: adminKey}))
	})
}

// createNS creates a namespace with the admin key and returns its answer.
func (e *env) createNS(body string) namespaceJSON {
	e.t.Helper()
	r := e.do("POST", "/api/v1/namespaces", adminKey, strings.NewReader(body))
	if r.status != http.StatusCreated {
		e.t.Fatalf("create namespace %s: %d %s", body, r.status, r.body)
	}
	var ns namespaceJSON
	r.json(e.t, &ns)
	return ns
}

func TestNamespaceAdminRoutes(t *testing.T) {
	eachNamespaceEnv(t, func(t *testing.T, e *env) {
		ns := e.createNS(`{"name": "ci", "ttl": "2h", "max_inboxes": 5, "max_bytes": 1000000, "send_limit": "20/h"}`)
		if !strings.HasPrefix(ns.Key, "mfk_") || ns.KeyID == "" || len(ns.Keys) != 1 || ns.Keys[0].ID != ns.KeyID || ns.TTL != "2h0m0s" || ns.MaxInboxes != 5 || ns.SendLimit != "20/h" {
			t.Fatalf("created %+v", ns)
		}
		key := ns.Key
		for _, tt := range []struct {
			name, method, path, token, body string
			status                          int
		}{
			{"taken", "POST", "/api/v1/namespaces", adminKey, `{"name": "ci"}`, 409},
			{"bad name", "POST", "/api/v1/namespaces", adminKey, `{"name": "c.i"}`, 400},
			{"bad ttl", "POST", "/api/v1/namespaces", adminKey, `{"name": "x", "ttl": "100h"}`, 400},
			{"bad send limit", "POST", "/api/v1/namespaces", adminKey, `{"name": "x", "send_limit": "lots"}`, 400},
			{"create without key", "POST", "/api/v1/namespaces", "", `{"name": "x"}`, 401},
			{"create with a namespace key", "POST", "/api/v1/namespaces", key, `{"name": "x"}`, 403},
			{"list with a namespace key", "GET", "/api/v1/namespaces", key, "", 403},
			{"activity with a namespace key", "GET", "/api/v1/activity", key, "", 403},
			{"patch with a namespace key", "PATCH", "/api/v1/namespaces/ci", key, `{"max_inboxes": 0}`, 403},
			{"delete with a namespace key", "DELETE", "/api/v1/namespaces/ci", key, "", 403},
			{"rotate with a namespace key", "POST", "/api/v1/namespaces/ci/keys", key, "", 403},
			{"get unknown", "GET", "/api/v1/namespaces/nope", adminKey, "", 404},
			{"get other with a key", "GET", "/api/v1/namespaces/nope", key, "", 403},
			{"get without key", "GET", "/api/v1/namespaces/ci", "", "", 401},
			{"revoke unknown", "DELETE", "/api/v1/namespaces/ci/keys/k_nope", adminKey, "", 404},
		} {
			t.Run(tt.name, func(t *testing.T) {
				wantError(t, e.do(tt.method, tt.path, tt.token, strings.NewReader(tt.body)), tt.status)
			})
		}

		var got namespaceJSON
		if r := e.do("GET", "/api/v1/namespaces/ci", key, nil); r.status != 200 {
			t.Fatalf("get with its key: %d %s", r.status, r.body)
		} else {
			r.json(t, &got)
		}
		if got.Key != "" || len(got.Keys) != 1 || got.Keys[0].LastUsedAt == nil {
			t.Errorf("get = %+v; want no key shown and the key's last use", got)
		}
		r := e.do("PATCH", "/api/v1/namespaces/ci", adminKey, strings.NewReader(`{"ttl": "30m", "max_bytes": 0}`))
		r.json(t, &got)
		if r.status != 200 || got.TTL != "30m0s" || got.MaxBytes != 0 || got.MaxInboxes != 5 {
			t.Errorf("patch = %d %+v", r.status, got)
		}
		e.createNS(`{"name": "b"}`)
		var list struct{ Namespaces []namespaceJSON }
		e.do("GET", "/api/v1/namespaces", adminKey, nil).json(t, &list)
		if len(list.Namespaces) != 2 || list.Namespaces[0].Name != "b" || list.Namespaces[1].Name != "ci" {
			t.Errorf("list = %+v, want b, ci", list)
		}

		// Rotation: the new key opens, the old one no more.
		r = e.do("POST", "/api/v1/namespaces/ci/keys", adminKey, strings.NewReader(`{"replace": "`+ns.KeyID+`"}`))
		var k keyJSON
		r.json(t, &k)
		if r.status != 201 || !strings.HasPrefix(k.Key, "mfk_") || k.ID == ns.KeyID {
			t.Fatalf("rotate = %d %s", r.status, r.body)
		}
		wantError(t, e.do("GET", "/api/v1/namespaces/ci", key, nil), 403)
		if r := e.do("GET", "/api/v1/namespaces/ci", k.Key, nil); r.status != 200 {
			t.Errorf("get with the new key = %d %s", r.status, r.body)
		}
		if r := e.do("DELETE", "/api/v1/namespaces/ci/keys/"+k.ID, adminKey, nil); r.status != 204 {
			t.Errorf("revoke = %d %s", r.status, r.body)
		}
		wantError(t, e.do("GET", "/api/v1/namespaces/ci", k.Key, nil), 403)

		if err := e.store.AddActivity(t.Context(), storage.Activity{Time: time.Now(), Kind: "refused", Namespace: "ci", Address: "ci.x@mayfly.test", Code: 552, Reason: "max_bytes"}); err != nil {
			t.Fatal(err)
		}
		var act struct{ Activity []storage.Activity }
		if r := e.do("GET", "/api/v1/activity?namespace=ci&limit=5", adminKey, nil); r.status != 200 {
			t.Fatalf("activity = %d %s", r.status, r.body)
		} else {
			r.json(t, &act)
		}
		if len(act.Activity) != 1 || act.Activity[0].Reason != "max_bytes" {
			t.Errorf("activity = %+v", act)
		}

		if r := e.do("DELETE", "/api/v1/namespaces/ci", adminKey, nil); r.status != 204 {
			t.Errorf("delete = %d %s", r.status, r.body)
		}
		wantError(t, e.do("GET", "/api/v1/namespaces/ci", adminKey, nil), 404)
	})
}
