package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// fullStore is what the tests need: the API's view plus Put to deliver mail.
type fullStore interface {
	store
	Put(ctx context.Context, msgs ...*storage.Message) error
	FaultAttempt(ctx context.Context, inbox string, fault int) (int, error) // the receiver's, item 5
}

// stores lists the stores the API tests run on: memory always, Redis when
// MAYFLY_TEST_REDIS_URL is set (make test sets it; under CI its absence fails).
func stores(t testing.TB) map[string]func(t testing.TB) fullStore {
	return testlib.Stores[fullStore](t, testlib.StoreOptions{Name: "http"})
}

// eachEnv runs fn as a subtest on every store, with a server on it and a fresh inbox.
func eachEnv(t *testing.T, opts Options, fn func(t *testing.T, e *env, box createResponse)) {
	testlib.EachStore(t, stores(t), func(t *testing.T, st fullStore) {
		e := newEnv(t, st, opts)
		fn(t, e, e.create(""))
	})
}

const secret = "0123456789abcdef0123456789abcdef"

// env is one API server on a free loopback port and a client for it.
type env struct {
	t     testing.TB
	store fullStore
	srv   *Server
	base  string
	stop  func() // shuts the server down and waits for Serve to return
}

func newEnv(t testing.TB, st fullStore, opts Options) *env {
	t.Helper()
	return newEnvWith(t, st, opts, nil)
}

// newEnvWith is newEnv with a hook that may change the server before it serves.
func newEnvWith(t testing.TB, st fullStore, opts Options, before func(*Server)) *env {
	t.Helper()
	if opts.Domains == nil {
		opts.Domains = []string{"mayfly.test", "other.test"}
	}
	opts.Secret = []byte(secret)
	srv := New(opts, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if before != nil {
		before(srv)
	}
	addr, stop := testlib.Serve(t, srv.Serve)
	return &env{t: t, store: st, srv: srv, base: "http://" + addr, stop: stop}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d %q: %v", r.status, r.body, err)
	}
}

func (e *env) do(method, path, token string, body io.Reader) response {
	e.t.Helper()
	return e.doWith(method, path, token, nil, body)
}

// doWith is do with extra request headers.
func (e *env) doWith(method, path, token string, h http.Header, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if h != nil {
		req.Header = h.Clone()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (e *env) create(body string) createResponse {
	e.t.Helper()
	r := e.do("POST", "/api/v1/inboxes", "", strings.NewReader(body))
	if r.status != http.StatusCreated {
		e.t.Fatalf("create %s: %d %s", body, r.status, r.body)
	}
	var out createResponse
	r.json(e.t, &out)
	return out
}

// deliver puts a message into inbox as the receiver would.
func (e *env) deliver(inbox, raw string) *storage.Message {
	e.t.Helper()
	now := time.Now()
	m := &storage.Message{
		Inbox: inbox, Subject: headerValue(raw, "Subject"), From: headerValue(raw, "From"),
		Received: now, Expires: now.Add(time.Hour), Raw: []byte(raw),
		Auth: storage.AuthResults{SPF: "pass", DKIM: "none", DMARC: "none"},
	}
	if err := e.store.Put(context.Background(), m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// readDelivered delivers raw to box and reads the message back as the API shows it;
// path is the message's.
func (e *env) readDelivered(t testing.TB, box createResponse, raw string) (path string, msg messageJSON) {
	t.Helper()
	m := e.deliver(box.Address, raw)
	path = "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID
	e.do("GET", path, box.Token, nil).json(t, &msg)
	return path, msg
}

func headerValue(raw, name string) string {
	for _, line := range strings.Split(raw, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return v
		}
	}
	return ""
}

const signup = "From: Shop <noreply@shop.test>\r\nTo: x@mayfly.test\r\nSubject: Your verification code\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
	"<p>Your verification code is <b>482917</b>.</p><p><a href=\"https://shop.test/confirm?u=1&amp;t=abc\">Confirm</a></p>\r\n" +
	"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../../terms.pdf\"\r\n\r\n%PDF-1.4\r\n--b--\r\n"

func wantError(t *testing.T, r response, status int) {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if r.status != status || json.Unmarshal(r.body, &body) != nil || body.Error.Code == "" || body.Error.Message == "" {
		t.Errorf("got %d %s, want %d with {\"error\": {\"code\", \"message\"}}", r.status, r.body, status)
	}
}

func TestQAFlowAndReads(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open(t), Options{})
			in := e.create("")
			if !strings.HasSuffix(in.Address, "@mayfly.test") || len(in.Token) != 22 || in.ExpiresIn != 3600 {
				t.Fatalf("create = %+v", in)
			}
			// The wait starts before the mail exists.
			waited := make(chan response, 1)
			go func() {
				waited <- e.do("GET", "/api/v1/inboxes/"+in.Address+"/wait?timeout=10s&subject=verification", in.Token, nil)
			}()
			waitForWaiters(t, e.srv, 1)
			e.deliver(in.Address, strings.Replace(signup, "x@mayfly.test", in.Address, 1))
			r := <-waited
			var got struct{ Messages []messageJSON }
			r.json(t, &got)
			if r.status != 200 || len(got.Messages) != 1 {
				t.Fatalf("wait = %d %s", r.status, r.body)
			}
			m := got.Messages[0]
			if len(m.Codes) != 1 || m.Codes[0] != "482917" {
				t.Errorf("codes = %q, want [482917]", m.Codes)
			}
			if len(m.Links) != 1 || m.Links[0] != "https://shop.test/confirm?u=1&t=abc" {
				t.Errorf("links = %q", m.Links)
			}
			if len(m.Attachments) != 1 || m.Attachments[0].Filename != "terms.pdf" || m.Attachments[0].ContentType != "application/pdf" {
				t.Errorf("attachments = %+v", m.Attachments)
			}
			if m.Auth.SPF != "pass" || !strings.Contains(m.HTML, "482917") {
				t.Errorf("auth %+v, html %q", m.Auth, m.HTML)
			}

			// The same message through the other routes.
			var list struct {
				Messages []summaryJSON
				Next     *uint32
			}
			e.do("GET", "/api/v1/inboxes/"+in.Address+"/messages", in.Token, nil).json(t, &list)
			if len(list.Messages) != 1 || list.Messages[0].ID != m.ID || list.Messages[0].Subject != "Your verification code" || list.Next != nil {
				t.Errorf("list = %+v", list)
			}
			raw := e.do("GET", "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID+"/raw?token="+in.Token, "", nil)
			if raw.status != 200 || raw.header.Get("Content-Type") != "message/rfc822" || !bytes.Contains(raw.body, []byte("482917")) ||
				raw.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("raw = %d %v", raw.status, raw.header)
			}
			att := e.do("GET", "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID+"/attachments/0", in.Token, nil)
			if att.status != 200 || string(att.body) != "%PDF-1.4" || att.header.Get("Content-Type") != "application/pdf" ||
				att.header.Get("Content-Disposition") != `attachment; filename=terms.pdf` || att.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("attachment = %d %v %q", att.status, att.header, att.body)
			}
			wantError(t, e.do("GET", "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID+"/attachments/1", in.Token, nil), 404)
			if r := e.do("DELETE", "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID, in.Token, nil); r.status != 204 {
				t.Errorf("delete = %d %s", r.status, r.body)
			}
			wantError(t, e.do("GET", "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID, in.Token, nil), 404)
		})
	}
}

// waitForWaiters polls the waiters gauge until n waits are open: the event a test
// needs before it delivers mail "after the wait started".
func waitForWaiters(t *testing.T, s *Server, n int) { waitForGauge(t, s.metrics.waiters, n, "waiters") }

func TestErrors(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open(t), Options{})
			in := e.create(`{"local": "errors"}`)
			other := e.create(`{"local": "someone-else"}`)
			base := "/api/v1/inboxes/" + in.Address
			tests := []struct {
				name, method, path, token, body string
				status                          int
			}{
				{"no token", "GET", base + "/messages", "", "", 401},
				{"wrong token", "GET", base + "/messages", other.Token, "", 403},
				{"token of nothing", "GET", base + "/messages", "nonsense", "", 403},
				{"no such message", "GET", base + "/messages/0000000000000000", in.Token, "", 404},
				{"no such raw", "GET", base + "/messages/0000000000000000/raw", in.Token, "", 404},
				{"delete nothing", "DELETE", base + "/messages/0000000000000000", in.Token, "", 404},
				{"foreign domain", "GET", "/api/v1/inboxes/a@elsewhere.test/messages", in.Token, "", 400},
				{"not an address", "GET", "/api/v1/inboxes/nobody/messages", in.Token, "", 400},
				{"bad limit", "GET", base + "/messages?limit=lots", in.Token, "", 400},
				{"bad attachment index", "GET", base + "/messages/x/attachments/-1", in.Token, "", 400},
				{"bad wait timeout", "GET", base + "/wait?timeout=1h", in.Token, "", 400},
				{"bad wait since", "GET", base + "/wait?since=yesterday", in.Token, "", 400},
				{"bad wait count", "GET", base + "/wait?count=0", in.Token, "", 400},
				{"wait times out", "GET", base + "/wait?timeout=200ms", in.Token, "", 408},
				{"bad json", "POST", "/api/v1/inboxes", "", "{", 400},
				{"unknown field", "POST", "/api/v1/inboxes", "", `{"name": "x"}`, 400},
				{"foreign domain asked", "POST", "/api/v1/inboxes", "", `{"domain": "gmail.com"}`, 400},
				{"bad local", "POST", "/api/v1/inboxes", "", `{"local": "a b"}`, 400},
				{"plus in local", "POST", "/api/v1/inboxes", "", `{"local": "a+b"}`, 400},
				{"random-shaped local", "POST", "/api/v1/inboxes", "", `{"local": "calm-otter-x7k2m3qp4d"}`, 400},
				{"dot at end", "POST", "/api/v1/inboxes", "", `{"local": "a."}`, 400},
				{"long local", "POST", "/api/v1/inboxes", "", `{"local": "` + strings.Repeat("a", 65) + `"}`, 400},
				{"ttl over max", "POST", "/api/v1/inboxes", "", `{"ttl": "48h"}`, 400},
				{"ttl not a duration", "POST", "/api/v1/inboxes", "", `{"ttl": "soon"}`, 400},
				{"body too large", "POST", "/api/v1/inboxes", "", `{"local": "` + strings.Repeat("a", 100<<10) + `"}`, 413},
				{"no route", "GET", "/api/v1/nothing", "", "", 404},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					wantError(t, e.do(tt.method, tt.path, tt.token, strings.NewReader(tt.body)), tt.status)
				})
			}
		})
	}
}

type downStore struct{ fullStore }

func (downStore) List(context.Context, string, storage.Page) ([]storage.Message, error) {
	return nil, fmt.Errorf("list: %w", storage.ErrUnavailable)
}
func (downStore) Ping(context.Context) error { return fmt.Errorf("ping: %w", storage.ErrUnavailable) }

func TestStoreDownIs503(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, downStore{st}, Options{})
	in := e.create("")
	wantError(t, e.do("GET", "/api/v1/inboxes/"+in.Address+"/messages", in.Token, nil), 503)
	wantError(t, e.do("GET", "/readyz", "", nil), 503)
	if r := e.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz = %d while the store is down, want 200: the process is alive", r.status)
	}
}

func TestPublicAndAdminKey(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	public := newEnv(t, st, Options{Public: true})
	if r := public.do("GET", "/api/v1/inboxes/anyone@mayfly.test/messages", "", nil); r.status != 200 {
		t.Errorf("public mode without a token = %d %s, want 200", r.status, r.body)
	}
	admin := newEnv(t, st, Options{APIKey: "admin-key-123456"})
	if r := admin.do("GET", "/api/v1/inboxes/anyone@mayfly.test/messages", "admin-key-123456", nil); r.status != 200 {
		t.Errorf("admin key = %d %s, want 200", r.status, r.body)
	}
	wantError(t, admin.do("GET", "/api/v1/inboxes/anyone@mayfly.test/messages", "admin-key-12345", nil), 403)
	wantError(t, admin.do("GET", "/api/v1/inboxes/anyone@mayfly.test/messages", "", nil), 401)
}

func TestCreateInbox(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, st, Options{MaxTTL: 48 * time.Hour})
	seen := map[string]bool{}
	for range 20 {
		in := e.create("")
		local, domain, _ := strings.Cut(in.Address, "@")
		parts := strings.Split(local, "-")
		if domain != "mayfly.test" || len(parts) != 3 || len(parts[2]) != suffixLen || seen[in.Address] {
			t.Errorf("random address %q", in.Address)
		}
		seen[in.Address] = true
	}
	chosen := e.create(`{"local": "QA.Team_1", "domain": "Other.Test", "ttl": "90m"}`)
	if chosen.Address != "qa.team_1@other.test" || chosen.ExpiresIn != 5400 || chosen.TTL != "1h30m0s" {
		t.Errorf("chosen = %+v", chosen)
	}
	if mb, err := st.Settings(context.Background(), chosen.Address); err != nil || mb.TTL != 90*time.Minute {
		t.Errorf("the store's TTL of the chosen inbox = %v, %v; want 90m", mb.TTL, err)
	}
	if tok := storage.NewTokens([]byte(secret)).Token(chosen.Address); tok != chosen.Token {
		t.Errorf("token = %q, want the HMAC of the address %q", chosen.Token, tok)
	}
	if in := e.create(`{"ttl": 120}`); in.ExpiresIn != 120 {
		t.Errorf("ttl in seconds = %+v", in)
	}
	if again := e.create(`{"local": "qa.team_1", "domain": "other.test"}`); again.ExpiresIn != 5400 {
		t.Errorf("the chosen inbox again, without ttl = %+v, want its ttl of 90m still reported", again)
	}
	// Browsers escape "@"; any case of "Bearer" is the scheme.
	resp := request(t, "GET", e.base+"/api/v1/inboxes/qa.team_1%40other.test/messages", "Authorization", "bearer "+chosen.Token)
	if resp.StatusCode != 200 {
		t.Errorf("escaped address with a lower-case bearer = %d, want 200", resp.StatusCode)
	}
}

func TestManyWaitersAllWake(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open(t), Options{})
			in := e.create("")
			const n = 20
			var wg sync.WaitGroup
			results := make(chan int, n)
			for range n {
				wg.Go(func() {
					results <- e.do("GET", "/api/v1/inboxes/"+in.Address+"/wait?timeout=10s", in.Token, nil).status
				})
			}
			waitForWaiters(t, e.srv, n)
			e.deliver(in.Address, "Subject: hello\r\n\r\nbody\r\n")
			wg.Wait()
			close(results)
			for status := range results {
				if status != 200 {
					t.Errorf("a waiter got %d, want 200", status)
				}
			}
		})
	}
}

func TestWaitFilters(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, st, Options{})
	in := e.create("")
	first := e.deliver(in.Address, "From: Alice <alice@a.test>\r\nSubject: Welcome\r\n\r\nhi\r\n")
	second := e.deliver(in.Address, "From: Bob <bob@b.test>\r\nSubject: Your CODE\r\n\r\nhi\r\n")
	e.deliver(in.Address, "From: Carol <carol@c.test>\r\nSubject: Newsletter\r\n\r\nhi\r\n")
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"Welcome"}},
		{"from=BOB", []string{"Your CODE"}},
		{"subject=code", []string{"Your CODE"}},
		{"count=3", []string{"Welcome", "Your CODE", "Newsletter"}},
		{"since=" + first.ID, []string{"Your CODE"}},
		{"since=" + second.ID + "&count=1", []string{"Newsletter"}},
		{"spf=pass&from=carol", []string{"Newsletter"}},
		{"since=" + first.Received.Add(-time.Second).Format(time.RFC3339Nano), []string{"Welcome"}},
	}
	for _, tt := range tests {
		r := e.do("GET", "/api/v1/inboxes/"+in.Address+"/wait?timeout=1s&"+tt.query, in.Token, nil)
		var got struct{ Messages []messageJSON }
		r.json(t, &got)
		var subjects []string
		for _, m := range got.Messages {
			subjects = append(subjects, m.Subject)
		}
		if fmt.Sprint(subjects) != fmt.Sprint(tt.want) {
			t.Errorf("wait?%s = %d %q, want %q", tt.query, r.status, subjects, tt.want)
		}
	}
	wantError(t, e.do("GET", "/api/v1/inboxes/"+in.Address+"/wait?timeout=300ms&dkim=pass", in.Token, nil), 408)
}

// request sends method to url with no body and the header's name and value pairs, and
// returns the response with its body closed.
func request(t *testing.T, method, url string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// fromOrigin sends method to url as a page at origin does, asking as a preflight for
// reqMethod.
func fromOrigin(t *testing.T, method, url, origin, reqMethod string) *http.Response {
	t.Helper()
	return request(t, method, url, "Origin", origin, "Access-Control-Request-Method", reqMethod)
}

func TestCORS(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, st, Options{CORSOrigins: []string{"https://tests.example"}})
	resp := fromOrigin(t, "OPTIONS", e.base+"/api/v1/inboxes", "https://tests.example", "POST")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://tests.example" {
		t.Errorf("preflight from an allowed origin: Allow-Origin %q", got)
	}
	resp = fromOrigin(t, "OPTIONS", e.base+"/api/v1/inboxes", "https://evil.example", "POST")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("preflight from another origin: Allow-Origin %q, want none", got)
	}
}

// TestWaitAtShutdownIs503: a wait cut short by SIGTERM is answered 503, so the client
// asks another node, and is not logged as the server's error.
// A negative wait cut short must not answer 204 either: that would pass the test.
func TestWaitAtShutdownIs503(t *testing.T) {
	for _, query := range []string{"", "&expect=none"} {
		t.Run("wait"+query, func(t *testing.T) { waitAtShutdown(t, query) })
	}
}

func waitAtShutdown(t *testing.T, query string) {
	st := testlib.Memory(t, memstore.Options{})
	srv := New(Options{Domains: []string{"mayfly.test"}, Secret: []byte(secret)}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	e := &env{t: t, store: st, srv: srv, base: "http://" + ln.Addr().String()}
	in := e.create("")
	answer := make(chan response, 1)
	go func() { answer <- e.do("GET", "/api/v1/inboxes/"+in.Address+"/wait?timeout=60s"+query, in.Token, nil) }()
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(srv.metrics.waiters) != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the wait never started")
		}
		time.Sleep(5 * time.Millisecond) // polling a gauge, with a deadline
	}
	cancel()
	r := <-answer
	var body struct{ Error struct{ Code string } }
	r.json(t, &body)
	if r.status != http.StatusServiceUnavailable || body.Error.Code != "unavailable" {
		t.Errorf("wait at shutdown: %d %s, want 503 unavailable", r.status, r.body)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
