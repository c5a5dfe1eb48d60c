package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/storage"
)

// The inbox lifecycle over HTTP (issue 17 item 6, and the API side of item 5's faults),
// on both stores.

func (e *env) inbox(box createResponse) inboxJSON {
	e.t.Helper()
	r := e.do("GET", "/api/v1/inboxes/"+box.Address, box.Token, nil)
	if r.status != 200 {
		e.t.Fatalf("GET inbox: %d %s", r.status, r.body)
	}
	var in inboxJSON
	r.json(e.t, &in)
	return in
}

func (e *env) patch(path, token, body string) response {
	e.t.Helper()
	return e.do("PATCH", path, token, strings.NewReader(body))
}

func TestInboxLifecycle(t *testing.T) {
	eachEnv(t, Options{MaxTTL: 48 * time.Hour}, func(t *testing.T, e *env, _ createResponse) {
		ctx := context.Background()
		local := fmt.Sprintf("life-%d", time.Now().UnixNano())
		box := e.create(`{"local": "` + local + `", "burn_after_read": false, "faults": [{"stage": "rcpt", "code": 451, "message": "4.7.1 greylisted", "times": 2}, {"stage": "data", "delay": 1.5}]}`)
		if len(box.Faults) != 2 || box.Faults[0].Code != 451 || box.Faults[0].Message != "4.7.1 greylisted" || box.Faults[1].Delay != "1.5s" || box.Faults[1].Remaining != nil {
			t.Errorf("create answer faults = %+v", box.Faults)
		}
		base := "/api/v1/inboxes/" + box.Address
		in := e.inbox(box)
		if in.Address != box.Address || in.TTL != "1h0m0s" || in.ExpiresIn != 3600 || in.ExpiresAt != nil || in.BurnAfterRead ||
			in.Messages != 0 || in.Unread != 0 || len(in.Faults) != 2 || in.Faults[0].Attempts != 0 || in.Faults[0].Remaining == nil || *in.Faults[0].Remaining != 2 {
			t.Errorf("GET new inbox = %+v", in)
		}
		// The receiver counts attempts (item 5); GET shows them.
		if _, err := e.store.FaultAttempt(ctx, box.Address, 0); err != nil {
			t.Fatal(err)
		}
		if in := e.inbox(box); in.Faults[0].Attempts != 1 || *in.Faults[0].Remaining != 1 || in.Faults[1].Attempts != 0 {
			t.Errorf("GET after one attempt: faults %+v", in.Faults)
		}

		// Creating the chosen inbox again with only a ttl keeps its faults and counts.
		again := e.create(`{"local": "` + local + `", "ttl": "30m"}`)
		if again.TTL != "30m0s" || len(again.Faults) != 2 || again.Faults[0].Attempts != 1 {
			t.Errorf("create again with a ttl = %+v; want the faults kept", again)
		}

		old := e.deliver(box.Address, "Subject: first\r\n\r\nhi\r\n")
		newer := e.deliver(box.Address, "Subject: second\r\n\r\nhi\r\n")
		if r := e.patch(base+"/messages/"+old.ID, box.Token, `{"seen": true}`); r.status != 200 {
			t.Fatalf("PATCH seen: %d %s", r.status, r.body)
		}
		in = e.inbox(box)
		if in.Messages != 2 || in.Unread != 1 || in.ExpiresAt == nil || in.ExpiresAt.Sub(newer.Expires).Abs() > time.Millisecond {
			t.Errorf("GET with mail = %+v; want 2 messages, 1 unread, expiring at %v", in, newer.Expires)
		}

		// Extend: the mail already there lives longer.
		r := e.patch(base, box.Token, `{"ttl": "36h", "burn_after_read": true}`)
		if r.status != 200 {
			t.Fatalf("PATCH ttl: %d %s", r.status, r.body)
		}
		r.json(t, &in)
		want := newer.Received.Add(36 * time.Hour)
		if in.TTL != "36h0m0s" || in.ExpiresIn != 36*3600 || !in.BurnAfterRead || len(in.Faults) != 2 || in.Faults[0].Attempts != 1 ||
			in.ExpiresAt == nil || in.ExpiresAt.Sub(want).Abs() > time.Millisecond {
			t.Errorf("PATCH ttl 36h = %+v; want expires_at %v, burn on, faults and counts kept", in, want)
		}
		var list struct{ Messages []summaryJSON }
		e.do("GET", base+"/messages", box.Token, nil).json(t, &list)
		for _, m := range list.Messages {
			if m.ExpiresAt.Sub(m.ReceivedAt.Add(36*time.Hour)).Abs() > time.Millisecond {
				t.Errorf("listed %s expires at %v, want 36h after it came (%v)", m.Subject, m.ExpiresAt, m.ReceivedAt)
			}
		}
		if m, err := e.store.Get(ctx, box.Address, old.ID); err != nil || m.Expires.Sub(old.Received.Add(36*time.Hour)).Abs() > time.Millisecond {
			t.Errorf("stored message after PATCH ttl: %+v, %v; want it to expire 36h after it came", m, err)
		}

		// Shorten, clear the faults, and back to the default.
		r = e.patch(base, box.Token, `{"ttl": 600, "faults": []}`)
		r.json(t, &in)
		if r.status != 200 || in.TTL != "10m0s" || len(in.Faults) != 0 || in.Faults == nil || !in.BurnAfterRead {
			t.Errorf("PATCH ttl 600, faults [] = %d %s", r.status, r.body)
		}
		r = e.patch(base, box.Token, `{"ttl": null}`)
		r.json(t, &in)
		if r.status != 200 || in.TTL != "1h0m0s" {
			t.Errorf("PATCH ttl null = %d %s; want the default", r.status, r.body)
		}
		if m, err := e.store.Get(ctx, box.Address, old.ID); err != nil || m.Expires.Sub(old.Received.Add(10*time.Minute)).Abs() > time.Millisecond {
			t.Errorf("stored message after ttl null: %+v, %v; want it kept at its 10m expiry", m, err)
		}

		for _, tt := range []struct{ name, body, field string }{
			{"over max ttl", `{"ttl": "49h"}`, "ttl"},
			{"bad ttl", `{"ttl": "soon"}`, "ttl"},
			{"unknown field", `{"tll": "2h"}`, "tll"},
			{"burn not a bool", `{"burn_after_read": "yes"}`, "burn_after_read"},
			{"bad fault", `{"faults": [{"stage": "rcpt", "code": 250}]}`, "faults[0].code"},
			{"not an object", `[]`, "body"},
			{"empty", ``, "body"},
			{"two objects", `{} {}`, "body"},
		} {
			r := e.patch(base, box.Token, tt.body)
			wantError(t, r, 400)
			if !strings.Contains(string(r.body), tt.field) {
				t.Errorf("PATCH %s: %s; want the message to name %s", tt.name, r.body, tt.field)
			}
		}
		if r := e.patch(base, "", `{"ttl": "2h"}`); r.status != 401 {
			t.Errorf("PATCH without a token = %d, want 401", r.status)
		}
		if r := e.do("GET", base, "", nil); r.status != 401 {
			t.Errorf("GET without a token = %d, want 401", r.status)
		}
	})
}

// TestInboxUnknown: GET of an inbox nobody created shows the defaults and makes nothing.
func TestInboxUnknown(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		in := e.inbox(box)
		if in.TTL != "1h0m0s" || in.ExpiresAt != nil || in.BurnAfterRead || in.Faults == nil || len(in.Faults) != 0 || in.Messages != 0 {
			t.Errorf("GET of a random inbox = %+v; want the defaults", in)
		}
		var raw map[string]any
		e.do("GET", "/api/v1/inboxes/"+box.Address, box.Token, nil).json(t, &raw)
		if v, ok := raw["expires_at"]; !ok || v != nil {
			t.Errorf("expires_at of an empty inbox = %v (present %v), want null", v, ok)
		}
	})
}

func TestCreateFaultsValidation(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, _ createResponse) {
		ten := strings.TrimSuffix(strings.Repeat(`{"stage": "mail", "code": 421}, `, 10), ", ")
		good := []string{
			`{"faults": [{"stage": "connect", "code": 0, "delay": "5m"}]}`,
			`{"faults": [{"stage": "rcpt", "code": 599, "times": 1000, "message": "` + strings.Repeat("x", 200) + `"}]}`,
			`{"faults": [{"stage": "data", "code": 400, "delay": 0.5}]}`,
			`{"faults": [` + ten + `]}`,
			`{"faults": []}`,
			`{"faults": null, "burn_after_read": true}`,
		}
		for _, body := range good {
			if r := e.do("POST", "/api/v1/inboxes", "", strings.NewReader(body)); r.status != 201 {
				t.Errorf("create %.80s = %d %s, want 201", body, r.status, r.body)
			}
		}
		bad := []struct{ body, field string }{
			{`{"faults": [{"stage": "helo", "code": 451}]}`, "faults[0].stage"},
			{`{"faults": [{"code": 451}]}`, "faults[0].stage"},
			{`{"faults": [{"stage": "rcpt", "code": 451}, {"stage": "rcpt", "code": 399}]}`, "faults[1].code"},
			{`{"faults": [{"stage": "rcpt", "code": 600}]}`, "faults[0].code"},
			{`{"faults": [{"stage": "rcpt", "code": 0}]}`, "needs a delay"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "message": "a\r\n250 ok"}]}`, "faults[0].message"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "message": "caf\u00e9"}]}`, "faults[0].message"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "message": "` + strings.Repeat("x", 201) + `"}]}`, "faults[0].message"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "times": -1}]}`, "faults[0].times"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "times": 1001}]}`, "faults[0].times"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "delay": "5m1s"}]}`, "faults[0].delay"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "delay": -1}]}`, "faults[0].delay"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "delay": "later"}]}`, "faults[0].delay"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "delay": 1e300}]}`, "faults[0].delay"},
			{`{"faults": [{"stage": "rcpt", "code": 451, "why": "x"}]}`, "why"},
			{`{"faults": [` + ten + `, {"stage": "mail", "code": 421}]}`, "at most 10"},
			{`{"faults": {"stage": "rcpt"}}`, "faults"},
			{`{"burn_after_read": "yes"}`, "burn_after_read"},
		}
		for _, tt := range bad {
			r := e.do("POST", "/api/v1/inboxes", "", strings.NewReader(tt.body))
			wantError(t, r, 400)
			if !strings.Contains(string(r.body), tt.field) {
				t.Errorf("create %.80s: %s; want the message to name %s", tt.body, r.body, tt.field)
			}
		}
	})
}

func TestPatchMessageFlags(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		ctx := context.Background()
		m := e.deliver(box.Address, "Subject: flags\r\n\r\nhi\r\n")
		path := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID
		events, err := e.store.Subscribe(ctx, box.Address)
		if err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			body  string
			want  storage.Flags
			names string
		}{
			{`{"seen": true, "flagged": true}`, storage.FlagSeen | storage.FlagFlagged, `\Seen \Flagged`},
			{`{"answered": true, "deleted": true, "seen": false}`, storage.FlagFlagged | storage.FlagAnswered | storage.FlagDeleted, `\Answered \Flagged \Deleted`},
			{`{}`, storage.FlagFlagged | storage.FlagAnswered | storage.FlagDeleted, `\Answered \Flagged \Deleted`},
			{`{"flagged": false, "answered": false, "deleted": false}`, 0, ``},
		}
		for _, s := range steps {
			r := e.patch(path, box.Token, s.body)
			var out flagsAnswer
			r.json(t, &out)
			if r.status != 200 || strings.Join(out.Flags, " ") != s.names || out.Seen != (s.want&storage.FlagSeen != 0) || out.Burned || out.ID != m.ID || out.Subject != "flags" {
				t.Errorf("PATCH %s = %d %s; want flags %q", s.body, r.status, r.body, s.names)
			}
			if got, err := e.store.Get(ctx, box.Address, m.ID); err != nil || got.Flags != s.want {
				t.Errorf("stored flags after PATCH %s = %+v, %v; want %b", s.body, got, err, s.want)
			}
		}
		// IMAP's IDLE is fed by the store's events: the first change reached them.
		select {
		case ev := <-events:
			if ev.Type != storage.EventFlags || ev.Flags != storage.FlagSeen|storage.FlagFlagged {
				t.Errorf("first event %+v, want the flags set", ev)
			}
		case <-time.After(10 * time.Second):
			t.Error("no flags event")
		}
		wantError(t, e.patch("/api/v1/inboxes/"+box.Address+"/messages/0000000000000000", box.Token, `{"seen": true}`), 404)
		for _, body := range []string{`{"seen": 1}`, `{"unread": true}`, `["seen"]`, `null`} {
			wantError(t, e.patch(path, box.Token, body), 400)
		}
		if r := e.patch(path, "", `{"seen": true}`); r.status != 401 {
			t.Errorf("PATCH without a token = %d, want 401", r.status)
		}
	})
}

// TestBurnAfterReadHTTP: in a burn-after-read inbox, reading a message in full or
// marking it seen deletes it; listings, waits and other flags do not.
func TestBurnAfterReadHTTP(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, _ createResponse) {
		ctx := context.Background()
		box := e.create(`{"burn_after_read": true}`)
		if !box.BurnAfterRead {
			t.Errorf("create answer %+v, want burn_after_read", box)
		}
		base := "/api/v1/inboxes/" + box.Address
		byGet := e.deliver(box.Address, signup)
		byRaw := e.deliver(box.Address, "Subject: raw\r\n\r\nsecret\r\n")
		byPatch := e.deliver(box.Address, "Subject: patch\r\n\r\nsecret\r\n")

		// Listings and waits do not read.
		var list struct{ Messages []summaryJSON }
		e.do("GET", base+"/messages", box.Token, nil).json(t, &list)
		if r := e.do("GET", base+"/wait?timeout=5s&count=3", box.Token, nil); r.status != 200 {
			t.Fatalf("wait: %d %s", r.status, r.body)
		}
		if in := e.inbox(box); in.Messages != 3 || !in.BurnAfterRead {
			t.Fatalf("after a listing and a wait: %+v; want 3 messages", in)
		}

		var msg messageJSON
		r := e.do("GET", base+"/messages/"+byGet.ID, box.Token, nil)
		r.json(t, &msg)
		if r.status != 200 || !strings.Contains(msg.HTML, "482917") || len(msg.Codes) == 0 {
			t.Errorf("first GET = %d, codes %v; want the whole message", r.status, msg.Codes)
		}
		wantError(t, e.do("GET", base+"/messages/"+byGet.ID, box.Token, nil), 404)
		if _, err := e.store.Get(ctx, box.Address, byGet.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("store after GET: %v, want it burned", err)
		}

		r = e.do("GET", base+"/messages/"+byRaw.ID+"/raw", box.Token, nil)
		if r.status != 200 || !strings.Contains(string(r.body), "secret") {
			t.Errorf("first raw = %d %q", r.status, r.body)
		}
		wantError(t, e.do("GET", base+"/messages/"+byRaw.ID+"/raw", box.Token, nil), 404)

		// Other flags keep it; seen burns it.
		var out flagsAnswer
		e.patch(base+"/messages/"+byPatch.ID, box.Token, `{"flagged": true}`).json(t, &out)
		if out.Burned || len(out.Flags) != 1 {
			t.Errorf("PATCH flagged in a burn inbox = %+v; want it kept", out)
		}
		r = e.patch(base+"/messages/"+byPatch.ID, box.Token, `{"seen": true}`)
		r.json(t, &out)
		if r.status != 200 || !out.Burned || !out.Seen || out.Subject != "patch" {
			t.Errorf("PATCH seen in a burn inbox = %d %s; want burned", r.status, r.body)
		}
		if in := e.inbox(box); in.Messages != 0 || in.ExpiresAt != nil {
			t.Errorf("inbox after three reads = %+v; want it empty", in)
		}
		if got := testutil.ToFloat64(e.srv.metrics.burned); got != 3 {
			t.Errorf("mayfly_http_burned_total = %v, want 3", got)
		}

		// Turned off, reads keep the mail.
		if r := e.patch(base, box.Token, `{"burn_after_read": false}`); r.status != 200 {
			t.Fatalf("PATCH burn off: %d %s", r.status, r.body)
		}
		kept := e.deliver(box.Address, "Subject: kept\r\n\r\nhi\r\n")
		for range 2 {
			if r := e.do("GET", base+"/messages/"+kept.ID, box.Token, nil); r.status != 200 {
				t.Errorf("GET with burn off = %d, want 200 twice", r.status)
			}
		}
		var payload json.RawMessage
		e.patch(base+"/messages/"+kept.ID, box.Token, `{"seen": true}`).json(t, &payload)
		if strings.Contains(string(payload), `"burned":true`) {
			t.Errorf("PATCH seen with burn off = %s", payload)
		}
	})
}
