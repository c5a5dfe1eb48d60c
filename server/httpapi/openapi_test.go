package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/server/webhook"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// loadOpenAPI loads the embedded document. kin-openapi reads "openapi": "3.1.0" and
// validates the document as OpenAPI 3.1 (JSON Schema 2020-12 schemas) on its own.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDoc)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	return doc
}

func newOpenAPIServer(t *testing.T, st store, opts Options) *Server {
	t.Helper()
	opts.Domains = []string{"mayfly.test"}
	opts.Secret = []byte("openapi-test-secret-0123456789")
	return New(opts, st, slog.New(slog.DiscardHandler))
}

func newOpenAPIStore(t *testing.T) *memstore.Store {
	t.Helper()
	st := testlib.Memory(t, memstore.Options{})
	return st
}

func TestOpenAPIValidates(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(t.Context(), openapi3.EnableSchemaPatternValidation(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("servers = %v, want one with the relative URL /", doc.Servers)
	}
	for _, name := range []string{"Summary", "Message", "Attachment", "Envelope", "Auth", "Error", "CreateInboxRequest", "CreatedInbox", "MessageList", "WaitResponse"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("components/schemas has no %s", name)
		}
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Errorf("security scheme bearer = %+v, want HTTP bearer", s)
	}
	if s := doc.Components.SecuritySchemes["token"]; s == nil || s.Value.Type != "apiKey" || s.Value.In != "query" || s.Value.Name != "token" {
		t.Errorf("security scheme token = %+v, want an apiKey in the query named token", s)
	}
}

// openAPIErrors are the error statuses each operation must document: what its handler,
// authorize, the body limit and handleError can answer.
var openAPIErrors = map[string][]int{
	"createInbox":     {400, 408, 413, 429, 500, 503},
	"deleteInbox":     {400, 401, 403, 429, 500, 503},
	"getInbox":        {400, 401, 403, 429, 500, 503},
	"patchInbox":      {400, 401, 403, 408, 413, 429, 500, 503},
	"patchMessage":    {400, 401, 403, 404, 408, 413, 429, 500, 503},
	"listMessages":    {400, 401, 403, 429, 500, 503},
	"getMessage":      {400, 401, 403, 404, 429, 500, 503},
	"deleteMessage":   {400, 401, 403, 404, 429, 500, 503},
	"getRawMessage":   {400, 401, 403, 404, 429, 500, 503},
	"getMessageHTML":  {400, 401, 403, 404, 429, 500, 503},
	"getService":      {429, 500},
	"replyToMessage":  {400, 401, 403, 404, 408, 413, 422, 429, 500, 501, 503},
	"getAttachment":   {400, 401, 403, 404, 429, 500, 503},
	"waitForMessages": {400, 401, 403, 408, 409, 429, 500, 503},
	"watchInbox":      {400, 401, 403, 429, 500, 503},
	"getOpenAPI":      {429, 500},
	"getTOTP":         {400, 408, 413, 429, 500},
	"injectMessage":   {400, 401, 403, 408, 413, 415, 429, 500, 501, 503},
	// The webhooks' routes.
	"createWebhook":         {400, 401, 403, 408, 409, 413, 429, 500, 501, 503},
	"listWebhooks":          {400, 401, 403, 429, 500, 501, 503},
	"getWebhook":            {401, 403, 404, 429, 500, 501, 503},
	"deleteWebhook":         {401, 403, 404, 429, 500, 501, 503},
	"listWebhookDeliveries": {400, 401, 403, 404, 429, 500, 501, 503},
	"testWebhook":           {401, 403, 404, 409, 429, 500, 501, 503},
	"retryWebhookDelivery":  {401, 403, 404, 409, 429, 500, 501, 503},
	// Probes and scrapers are not rate limited.
	"readyz":  {500, 503},
	"healthz": {500},
	"metrics": {500},

	// The event stream answers its errors before it starts.
	"streamInboxEvents": {400, 401, 403, 429, 500, 503},

	// The namespaces (teams).
	"createNamespace":          {400, 401, 403, 408, 409, 413, 429, 500, 503},
	"listNamespaces":           {401, 403, 429, 500, 503},
	"getNamespace":             {401, 403, 404, 429, 500, 503},
	"patchNamespace":           {400, 401, 403, 404, 408, 413, 429, 500, 503},
	"deleteNamespace":          {401, 403, 404, 429, 500, 503},
	"createNamespaceKey":       {400, 401, 403, 404, 408, 413, 429, 500, 503},
	"revokeNamespaceKey":       {401, 403, 404, 429, 500, 503},
	"listNamespaceMessages":    {400, 401, 403, 404, 429, 500, 503},
	"waitForNamespaceMessages": {400, 401, 403, 404, 408, 409, 429, 500, 503},
	"deleteNamespaceInboxes":   {400, 401, 403, 404, 429, 500, 503},
	"listActivity":             {400, 401, 403, 429, 500, 503},

	// The deliverability report: 501 when the server makes none.
	"getMessageReport": {400, 401, 403, 404, 429, 500, 501, 503},
}

// openAPIDataStatuses are the 4xx answers that carry data, not an Error: a negative
// wait's 409 shows the mail that should not have come, as a wait's 200 does.
var openAPIDataStatuses = map[string]bool{"waitForMessages 409": true, "waitForNamespaceMessages 409": true}

func TestOpenAPIOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	seen := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" || op.Summary == "" || op.Description == "" {
				t.Errorf("%s: want an operationId, a summary and a description", name)
				continue
			}
			if seen[op.OperationID] {
				t.Errorf("%s: operationId %q used twice", name, op.OperationID)
			}
			seen[op.OperationID] = true
			want, ok := openAPIErrors[op.OperationID]
			if !ok {
				t.Errorf("%s: operation %q has no expected error statuses in this test", name, op.OperationID)
			}
			for _, status := range want {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s: status %d not documented", name, status)
				}
			}
			for code, r := range op.Responses.Map() {
				status, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("%s: response %q: want a status", name, code)
					continue
				}
				if mt := r.Value.Content.Get("application/json"); status >= 400 && mt != nil && mt.Schema.Ref != "#/components/schemas/Error" &&
					!openAPIDataStatuses[op.OperationID+" "+code] {
					t.Errorf("%s: JSON response %d is not the Error schema", name, status)
				}
			}
			inbox := strings.HasPrefix(path, "/api/v1/inboxes/{address}")
			if secured := op.Security != nil && len(*op.Security) == 2; secured != inbox {
				t.Errorf("%s: security %v; want bearer or token exactly on the inbox routes", name, op.Security)
			}
		}
	}
	for id := range openAPIErrors {
		if !seen[id] {
			t.Errorf("operation %q is not documented", id)
		}
	}
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPICoversRoutes checks that the document and the server's router agree: every
// route registered is documented with its method, and every documented one registered.
func TestOpenAPICoversRoutes(t *testing.T) {
	// CORS on, so that whatever routes it might add are seen too.
	s := newOpenAPIServer(t, newOpenAPIStore(t), Options{CORSOrigins: []string{"https://tests.example"}})
	registered := map[string]bool{}
	for _, r := range s.echo.Routes() {
		// echo's own catch-all routes (a group with middleware adds them), and preflight.
		if r.Method == echo.RouteNotFound || r.Method == http.MethodOptions {
			continue
		}
		if strings.Contains(r.Path, "*") {
			t.Errorf("route %s %s: a wildcard the document cannot describe", r.Method, r.Path)
			continue
		}
		registered[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, item := range loadOpenAPI(t).Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for _, r := range sortedKeys(registered) {
		if !documented[r] {
			t.Errorf("route %s is registered but not in openapi.json", r)
		}
	}
	for _, r := range sortedKeys(documented) {
		if !registered[r] {
			t.Errorf("route %s is in openapi.json but not registered", r)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestOpenAPIServed(t *testing.T) {
	s := newOpenAPIServer(t, newOpenAPIStore(t), Options{})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/openapi.json = %d %q, want 200 application/json", rec.Code, rec.Header().Get("Content-Type"))
	}
	onDisk, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Body.Bytes(), onDisk) {
		t.Errorf("GET /api/openapi.json served %d bytes that differ from openapi.json (%d bytes)", rec.Body.Len(), len(onDisk))
	}
}

// openAPIMail has a code, a link and an attachment, so every field of a message shows.
const openAPIMail = "From: Shop <noreply@shop.test>\r\nTo: box@mayfly.test\r\nSubject: Your verification code\r\n" +
	"Date: Sun, 01 Jun 2025 14:03:07 +0200\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour code is 482917: https://shop.test/confirm?t=abc\r\n" +
	"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
	"<p>Your code is <b>482917</b>.</p><p><a href=\"https://shop.test/confirm?t=abc\">Confirm</a></p>\r\n" +
	"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"terms.pdf\"\r\n\r\n%PDF-1.4\r\n--b--\r\n"

// fakeReplier stands for the submission server: it refuses on cue and otherwise
// returns a sent copy.
type fakeReplier struct{ st *memstore.Store }

func (r fakeReplier) Reply(ctx context.Context, _ netip.Addr, inbox, id, text, html string) (*storage.Message, error) {
	switch text {
	case "refuse":
		return nil, Refusal(http.StatusForbidden, "not_correspondent", "shop@example.test has not written to this inbox")
	case "limit":
		return nil, Refusal(http.StatusTooManyRequests, "send_limit", "this inbox may send 20 messages per 1h0m0s")
	}
	now := time.Now()
	m := &storage.Message{Inbox: inbox, Sent: true, From: inbox, To: []string{"noreply@shop.test"}, Subject: "Re: x",
		Received: now, Expires: now.Add(time.Hour), Raw: []byte("Subject: Re: x\r\n\r\n" + text + "\r\n")}
	return m, r.st.Put(ctx, m)
}

// openAPIDownStore is a store whose backing service is gone.
type openAPIDownStore struct{ *memstore.Store }

func (openAPIDownStore) List(context.Context, string, storage.Page) ([]storage.Message, error) {
	return nil, fmt.Errorf("list: %w", storage.ErrUnavailable)
}

func (openAPIDownStore) Ping(context.Context) error {
	return fmt.Errorf("ping: %w", storage.ErrUnavailable)
}

// TestOpenAPIResponsesMatch checks what the server answers, successes and errors, against
// the schemas, headers and statuses the document gives for the route.
func TestOpenAPIResponsesMatch(t *testing.T) {
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	st := newOpenAPIStore(t)
	s := newOpenAPIServer(t, st, Options{})
	down := newOpenAPIServer(t, openAPIDownStore{st}, Options{})
	replies := newOpenAPIServer(t, st, Options{Replier: fakeReplier{st}})
	svc := newOpenAPIServer(t, st, Options{Domains: []string{"mayfly.test", "other.test"}, MaxMessageSize: 10 << 20, MailClients: []Endpoint{
		{Protocol: "IMAP", Host: "mail.mayfly.test", Port: 143, Security: "STARTTLS"},
		{Protocol: "POP3", Host: "mail.mayfly.test", Port: 995, Security: "TLS"},
	}})
	// Every request of httptest comes from 192.0.2.1, which has used up its creations,
	// and box its requests, on one server, and its wrong tokens on another.
	box := "box@mayfly.test"
	client := netip.MustParseAddr("192.0.2.1")
	admin := newOpenAPIServer(t, st, Options{APIKey: "admin-key-123456"})
	rated := newOpenAPIServer(t, st, Options{RequestRate: limit.Rate{N: 1, Per: time.Hour}, CreateRate: limit.Rate{N: 1, Per: time.Hour}})
	rated.creates.Allow(client)
	rated.requests.Allow(rateKey{inbox: box})
	rated.requests.Allow(rateKey{client: limit.KeyIP(client)})
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 1, Per: time.Hour})
	failures.Allow(client)
	throttled := newOpenAPIServer(t, st, Options{LoginFailures: failures})
	doc := loadOpenAPI(t)

	token := s.tokens.Token(box)
	now := time.Now()
	m := &storage.Message{
		Inbox: box, Tag: "signup",
		Envelope:       storage.Envelope{From: "bounce@shop.test", Recipients: []string{"box+signup@mayfly.test"}, RemoteIP: "192.0.2.10", Helo: "mail.shop.test"},
		From:           "Shop <noreply@shop.test>",
		To:             []string{box},
		Subject:        "Your verification code",
		Date:           time.Date(2025, 6, 1, 14, 3, 7, 0, time.FixedZone("", 2*3600)),
		HasAttachments: true,
		Received:       now, Expires: now.Add(time.Hour),
		Auth: storage.AuthResults{SPF: "pass", DKIM: "none", DMARC: "none"},
		Raw:  []byte(openAPIMail),
	}
	second := &storage.Message{
		Inbox: box, Received: now.Add(time.Second), Expires: now.Add(time.Hour), Raw: []byte("Subject: second\r\n\r\nhi\r\n"),
	}
	if err := st.Put(t.Context(), m, second); err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/inboxes/" + box
	msg := base + "/messages/" + m.ID

	const adminKey = "admin-key-123456"
	hooks := webhook.New(webhook.Options{}, st, slog.New(slog.DiscardHandler))
	hooked := newOpenAPIServer(t, st, Options{APIKey: adminKey, Webhooks: hooks})
	wh := &storage.Webhook{URL: "https://hooks.example.com/in", Events: []string{"message.received"}, Inbox: box}
	if err := hooks.Create(t.Context(), wh); err != nil {
		t.Fatal(err)
	}
	tested, err := hooks.Test(t.Context(), wh.ID)
	if err != nil {
		t.Fatal(err)
	}
	gone := &storage.Webhook{URL: "https://hooks.example.com/in", Events: []string{"message.received"}, Inbox: box, Disabled: "failing for days"}
	if err := hooks.Create(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	gone.Disabled = "every delivery failed for 5 days"
	if err := st.PutWebhook(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	hook := "/api/v1/webhooks/" + wh.ID

	tests := []struct {
		name, method, target, route, token, body string
		srv                                      *Server
		status                                   int
	}{
		{"create random", "POST", "/api/v1/inboxes", "/api/v1/inboxes", "", "", s, 201},
		{"create chosen", "POST", "/api/v1/inboxes", "/api/v1/inboxes", "", `{"local": "Chosen", "domain": "mayfly.test", "ttl": "30m"}`, s, 201},
		{"create ttl in seconds", "POST", "/api/v1/inboxes", "/api/v1/inboxes", "", `{"ttl": 1800}`, s, 201},
		{"create bad json", "POST", "/api/v1/inboxes", "/api/v1/inboxes", "", `{`, s, 400},
		{"create too large", "POST", "/api/v1/inboxes", "/api/v1/inboxes", "", `{"local": "` + strings.Repeat("a", 70<<10) + `"}`, s, 413},
		{"list", "GET", base + "/messages", "/api/v1/inboxes/{address}/messages", token, "", s, 200},
		{"list page", "GET", base + "/messages?limit=1", "/api/v1/inboxes/{address}/messages", token, "", s, 200},
		{"list query token", "GET", base + "/messages?token=" + token, "/api/v1/inboxes/{address}/messages", "", "", s, 200},
		{"list no token", "GET", base + "/messages", "/api/v1/inboxes/{address}/messages", "", "", s, 401},
		{"list wrong token", "GET", base + "/messages", "/api/v1/inboxes/{address}/messages", "AAAAAAAAAAAAAAAAAAAAAA", "", s, 403},
		{"list foreign domain", "GET", "/api/v1/inboxes/a@elsewhere.test/messages", "/api/v1/inboxes/{address}/messages", token, "", s, 400},
		{"list bad limit", "GET", base + "/messages?limit=lots", "/api/v1/inboxes/{address}/messages", token, "", s, 400},
		{"list store down", "GET", base + "/messages", "/api/v1/inboxes/{address}/messages", token, "", down, 503},
		{"message", "GET", msg, "/api/v1/inboxes/{address}/messages/{id}", token, "", s, 200},
		{"no message", "GET", base + "/messages/0000000000000000", "/api/v1/inboxes/{address}/messages/{id}", token, "", s, 404},
		{"html", "GET", msg + "/html", "/api/v1/inboxes/{address}/messages/{id}/html", token, "", s, 200},
		{"html with images", "GET", msg + "/html?images=1&token=" + token, "/api/v1/inboxes/{address}/messages/{id}/html", "", "", s, 200},
		{"no html", "GET", base + "/messages/" + second.ID + "/html", "/api/v1/inboxes/{address}/messages/{id}/html", token, "", s, 404},
		{"reply", "POST", msg + "/reply", "/api/v1/inboxes/{address}/messages/{id}/reply", token, `{"text": "Thanks"}`, replies, 202},
		{"reply refused", "POST", msg + "/reply", "/api/v1/inboxes/{address}/messages/{id}/reply", token, `{"text": "refuse"}`, replies, 403},
		{"reply over limit", "POST", msg + "/reply", "/api/v1/inboxes/{address}/messages/{id}/reply", token, `{"text": "limit"}`, replies, 429},
		{"reply empty", "POST", msg + "/reply", "/api/v1/inboxes/{address}/messages/{id}/reply", token, `{"text": " "}`, replies, 400},
		{"reply unknown field", "POST", msg + "/reply", "/api/v1/inboxes/{address}/messages/{id}/reply", token, `{"body": "x"}`, replies, 400},
		{"reply not offered", "POST", msg + "/reply", "/api/v1/inboxes/{address}/messages/{id}/reply", token, `{"text": "Thanks"}`, s, 501},
		{"service", "GET", "/api/v1/service", "/api/v1/service", "", "", svc, 200},
		{"totp", "POST", "/api/v1/totp", "/api/v1/totp", "", `{"otpauth_url": "otpauth://totp/Shop:a@mayfly.test?secret=JBSWY3DPEHPK3PXP&digits=8", "algorithm": "sha256", "time": "2005-03-18T01:58:29Z"}`, s, 200},
		{"totp bad secret", "POST", "/api/v1/totp", "/api/v1/totp", "", `{"secret": "1"}`, s, 400},
		{"totp rate limited", "POST", "/api/v1/totp", "/api/v1/totp", "", `{"secret": "JBSWY3DPEHPK3PXP"}`, rated, 429},
		{"create webhook", "POST", "/api/v1/webhooks", "/api/v1/webhooks", token, `{"url": "https://ci.example.com/hook", "events": ["message.received"], "inbox": "` + box + `", "filters": {"from": "shop.test", "dkim": "pass"}}`, hooked, 201},
		{"create global webhook", "POST", "/api/v1/webhooks", "/api/v1/webhooks", adminKey, `{"url": "https://ci.example.com/hook", "events": ["message.deleted", "message.expired"]}`, hooked, 201},
		{"create global webhook with a token", "POST", "/api/v1/webhooks", "/api/v1/webhooks", token, `{"url": "https://ci.example.com/hook", "events": ["message.deleted"]}`, hooked, 403},
		{"create webhook without a token", "POST", "/api/v1/webhooks", "/api/v1/webhooks", "", `{"url": "https://ci.example.com/hook", "events": ["message.deleted"], "inbox": "` + box + `"}`, hooked, 401},
		{"create webhook to loopback", "POST", "/api/v1/webhooks", "/api/v1/webhooks", token, `{"url": "http://127.0.0.1:8080/", "events": ["message.received"], "inbox": "` + box + `"}`, hooked, 400},
		{"create webhook bad event", "POST", "/api/v1/webhooks", "/api/v1/webhooks", token, `{"url": "https://ci.example.com/hook", "events": ["message.read"], "inbox": "` + box + `"}`, hooked, 400},
		{"create webhook unknown field", "POST", "/api/v1/webhooks", "/api/v1/webhooks", token, `{"uri": "https://ci.example.com/hook"}`, hooked, 400},
		{"create webhook not offered", "POST", "/api/v1/webhooks", "/api/v1/webhooks", token, `{"url": "https://ci.example.com/hook", "events": ["message.received"], "inbox": "` + box + `"}`, s, 501},
		{"list webhooks of an inbox", "GET", "/api/v1/webhooks?inbox=" + box, "/api/v1/webhooks", token, "", hooked, 200},
		{"list every webhook", "GET", "/api/v1/webhooks", "/api/v1/webhooks", adminKey, "", hooked, 200},
		{"list every webhook with a token", "GET", "/api/v1/webhooks", "/api/v1/webhooks", token, "", hooked, 403},
		{"get webhook", "GET", hook, "/api/v1/webhooks/{id}", token, "", hooked, 200},
		{"get no webhook", "GET", "/api/v1/webhooks/wh_none", "/api/v1/webhooks/{id}", token, "", hooked, 404},
		{"get webhook wrong token", "GET", hook, "/api/v1/webhooks/{id}", "AAAAAAAAAAAAAAAAAAAAAA", "", hooked, 403},
		{"deliveries", "GET", hook + "/deliveries", "/api/v1/webhooks/{id}/deliveries", token, "", hooked, 200},
		{"deliveries bad limit", "GET", hook + "/deliveries?limit=x", "/api/v1/webhooks/{id}/deliveries", token, "", hooked, 400},
		{"test webhook", "POST", hook + "/test", "/api/v1/webhooks/{id}/test", token, "", hooked, 202},
		{"test disabled webhook", "POST", "/api/v1/webhooks/" + gone.ID + "/test", "/api/v1/webhooks/{id}/test", adminKey, "", hooked, 409},
		{"retry delivery", "POST", hook + "/deliveries/" + tested.ID + "/retry", "/api/v1/webhooks/{id}/deliveries/{delivery}/retry", token, "", hooked, 202},
		{"retry no delivery", "POST", hook + "/deliveries/msg_none/retry", "/api/v1/webhooks/{id}/deliveries/{delivery}/retry", token, "", hooked, 404},
		{"delete webhook", "DELETE", hook, "/api/v1/webhooks/{id}", adminKey, "", hooked, 204},
		{"delete webhook again", "DELETE", hook, "/api/v1/webhooks/{id}", adminKey, "", hooked, 404},
		{"raw", "GET", msg + "/raw", "/api/v1/inboxes/{address}/messages/{id}/raw", token, "", s, 200},
		{"attachment", "GET", msg + "/attachments/0", "/api/v1/inboxes/{address}/messages/{id}/attachments/{index}", token, "", s, 200},
		{"no attachment", "GET", msg + "/attachments/7", "/api/v1/inboxes/{address}/messages/{id}/attachments/{index}", token, "", s, 404},
		{"bad attachment index", "GET", msg + "/attachments/x", "/api/v1/inboxes/{address}/messages/{id}/attachments/{index}", token, "", s, 400},
		{"wait", "GET", base + "/wait?timeout=5s&subject=CODE&count=1", "/api/v1/inboxes/{address}/wait", token, "", s, 200},
		{"wait since", "GET", base + "/wait?timeout=5s&since=" + m.ID, "/api/v1/inboxes/{address}/wait", token, "", s, 200},
		{"wait times out", "GET", base + "/wait?timeout=50ms&subject=nothing", "/api/v1/inboxes/{address}/wait", token, "", s, 408},
		{"wait bad count", "GET", base + "/wait?count=0", "/api/v1/inboxes/{address}/wait", token, "", s, 400},
		{"wait content filters", "GET", base + "/wait?timeout=5s&body=code&has=code,link&link=confirm", "/api/v1/inboxes/{address}/wait", token, "", s, 200},
		{"wait expect none", "GET", base + "/wait?timeout=50ms&expect=none&subject=nothing", "/api/v1/inboxes/{address}/wait", token, "", s, 204},
		{"wait expect none matched", "GET", base + "/wait?timeout=5s&expect=none&subject=CODE", "/api/v1/inboxes/{address}/wait", token, "", s, 409},
		{"wait bad expect", "GET", base + "/wait?expect=some", "/api/v1/inboxes/{address}/wait", token, "", s, 400},
		{"create rate limited", "POST", "/api/v1/inboxes", "/api/v1/inboxes", "", "", rated, 429},
		{"list rate limited", "GET", base + "/messages", "/api/v1/inboxes/{address}/messages", token, "", rated, 429},
		{"list after wrong tokens", "GET", base + "/messages", "/api/v1/inboxes/{address}/messages", token, "", throttled, 429},
		{"healthz", "GET", "/healthz", "/healthz", "", "", s, 200},
		{"readyz", "GET", "/readyz", "/readyz", "", "", s, 200},
		{"not ready", "GET", "/readyz", "/readyz", "", "", down, 503},
		{"metrics", "GET", "/metrics", "/metrics", "admin-key-123456", "", admin, 200},
		{"metrics refused", "GET", "/metrics", "/metrics", "", "", s, 403},
		{"openapi", "GET", "/api/openapi.json", "/api/openapi.json", "", "", s, 200},
		{"create with faults", "POST", "/api/v1/inboxes", "/api/v1/inboxes", "", `{"local": "faulty", "burn_after_read": true, "faults": [{"stage": "rcpt", "code": 451, "times": 1}, {"stage": "data", "delay": "2s"}]}`, s, 201},
		{"create bad fault", "POST", "/api/v1/inboxes", "/api/v1/inboxes", "", `{"faults": [{"stage": "helo", "code": 451}]}`, s, 400},
		{"events no token", "GET", base + "/events", "/api/v1/inboxes/{address}/events", "", "", s, 401},
		{"events bad last id", "GET", base + "/events?last_event_id=" + strings.Repeat("9", 200), "/api/v1/inboxes/{address}/events", token, "", s, 400},
		{"inbox", "GET", base, "/api/v1/inboxes/{address}", token, "", s, 200},
		{"inbox no token", "GET", base, "/api/v1/inboxes/{address}", "", "", s, 401},
		{"patch inbox", "PATCH", base, "/api/v1/inboxes/{address}", token, `{"ttl": "2h", "burn_after_read": false, "faults": [{"stage": "rcpt", "code": 451, "message": "4.7.1 greylisted", "times": 1}]}`, s, 200},
		{"patch inbox back to defaults", "PATCH", base, "/api/v1/inboxes/{address}", token, `{"ttl": null, "faults": null}`, s, 200},
		{"patch inbox unknown field", "PATCH", base, "/api/v1/inboxes/{address}", token, `{"tll": "2h"}`, s, 400},
		{"patch inbox store down", "PATCH", base, "/api/v1/inboxes/{address}", token, `{}`, down, 503},
		{"patch message", "PATCH", msg, "/api/v1/inboxes/{address}/messages/{id}", token, `{"seen": true, "flagged": true}`, s, 200},
		{"patch message bad flag", "PATCH", msg, "/api/v1/inboxes/{address}/messages/{id}", token, `{"seen": "yes"}`, s, 400},
		{"patch no message", "PATCH", base + "/messages/0000000000000000", "/api/v1/inboxes/{address}/messages/{id}", token, `{"seen": true}`, s, 404},
		{"delete message", "DELETE", msg, "/api/v1/inboxes/{address}/messages/{id}", token, "", s, 204},
		{"delete it again", "DELETE", msg, "/api/v1/inboxes/{address}/messages/{id}", token, "", s, 404},
		{"delete inbox", "DELETE", base, "/api/v1/inboxes/{address}", token, "", s, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			tt.srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.target, rec.Code, rec.Body, tt.status)
			}
			item := doc.Paths.Find(tt.route)
			if item == nil || item.GetOperation(tt.method) == nil {
				t.Fatalf("openapi.json has no %s %s", tt.method, tt.route)
			}
			input := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{
					Request: req,
					Route:   &routers.Route{Spec: doc, Path: tt.route, PathItem: item, Method: tt.method, Operation: item.GetOperation(tt.method)},
				},
				Status:  rec.Code,
				Header:  rec.Header(),
				Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
				Options: &openapi3filter.Options{IncludeResponseStatus: true},
			}
			if err := openapi3filter.ValidateResponse(t.Context(), input); err != nil {
				t.Errorf("%s %s = %d %s\ndoes not match openapi.json: %v", tt.method, tt.target, rec.Code, rec.Body, err)
			}
			// The schemas allow more fields than they name; a field served must be named too.
			mt := item.GetOperation(tt.method).Responses.Status(rec.Code).Value.Content["application/json"]
			if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && mt != nil && tt.route != "/api/openapi.json" {
				var body any
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatalf("%s %s: %v", tt.method, tt.target, err)
				}
				for _, field := range undocumented(mt.Schema.Value, body, "") {
					t.Errorf("%s %s: field %s is served but not in openapi.json", tt.method, tt.target, field)
				}
			}
		})
	}
}

// undocumented returns the paths of the object fields in v that schema does not name.
func undocumented(schema *openapi3.Schema, v any, path string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		props := properties(schema)
		for k, fv := range v {
			if p, ok := props[k]; ok {
				out = append(out, undocumented(p, fv, path+"."+k)...)
			} else {
				out = append(out, path+"."+k)
			}
		}
	case []any:
		if schema.Items != nil {
			for i, e := range v {
				out = append(out, undocumented(schema.Items.Value, e, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return out
}

// properties returns the properties schema names, its allOf parts' included.
func properties(schema *openapi3.Schema) map[string]*openapi3.Schema {
	props := map[string]*openapi3.Schema{}
	for k, p := range schema.Properties {
		props[k] = p.Value
	}
	for _, part := range schema.AllOf {
		maps.Copy(props, properties(part.Value))
	}
	return props
}
