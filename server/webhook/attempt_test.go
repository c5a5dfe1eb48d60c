package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// TestAttempt makes attempts at a real HTTP server on loopback: the headers and
// signature of Standard Webhooks, an answer kept to its first KiB, redirects not
// followed, a timeout, and loopback refused without AllowPrivate.
func TestAttempt(t *testing.T) {
	got := make(chan *http.Request, 10)
	bodies := make(chan string, 10)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- string(b)
		w.Write([]byte(strings.Repeat("é", 1000)))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // so the server watches the connection, and sees the client go
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	s := New(Options{AllowPrivate: true, Timeout: 200 * time.Millisecond}, nil, discard())
	w := &storage.Webhook{ID: "wh_1", Secret: newSecret()}
	d := &storage.Delivery{ID: "msg_1", Payload: []byte(`{"type":"webhook.test"}`)}
	now := time.Now()

	w.URL = srv.URL + "/ok"
	a := s.attempt(context.Background(), w, d, now)
	if a.Status != 200 || a.Error != "" || len(a.Response) > maxExcerpt || !strings.HasPrefix(a.Response, "éé") {
		t.Errorf("attempt = %d %q, response %d bytes, want 200 and at most %d bytes", a.Status, a.Error, len(a.Response), maxExcerpt)
	}
	r := <-got
	body := <-bodies
	h := r.Header
	if h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "Mayfly" || h.Get("webhook-id") != "msg_1" || body != string(d.Payload) {
		t.Errorf("request headers %v body %q", h, body)
	}
	if err := Verify(w.Secret, h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature"), []byte(body), time.Now(), time.Minute); err != nil {
		t.Errorf("Verify = %v", err)
	}

	w.URL = srv.URL + "/redirect"
	if a := s.attempt(context.Background(), w, d, now); a.Status != http.StatusFound {
		t.Errorf("attempt at a redirect = %d %q, want 302 (not followed)", a.Status, a.Error)
	}
	if len(got) != 0 {
		t.Error("the redirect was followed")
	}

	w.URL = srv.URL + "/slow"
	if a := s.attempt(context.Background(), w, d, now); a.Status != 0 || !strings.Contains(a.Error, "no answer within") {
		t.Errorf("attempt at a slow server = %d %q, want no answer within the timeout", a.Status, a.Error)
	}

	guarded := New(Options{}, nil, discard())
	w.URL = srv.URL + "/ok"
	if a := guarded.attempt(context.Background(), w, d, now); a.Status != 0 || !strings.Contains(a.Error, "MAYFLY_OUTBOUND_ALLOW_PRIVATE") {
		t.Errorf("attempt at loopback without AllowPrivate = %d %q, want refused, naming the setting", a.Status, a.Error)
	}
	if len(got) != 0 {
		t.Error("the guarded client reached loopback")
	}
}
