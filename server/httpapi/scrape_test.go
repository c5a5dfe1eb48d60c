package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// TestMetricsOperatorOnly: on the API's listener /metrics is the operator's, who is on
// loopback or holds the admin key; the rest of the internet learns nothing from it.
func TestMetricsOperatorOnly(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	const key = "admin-key-123456"
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 3, Per: time.Hour})
	// 127.0.0.2 is a trusted proxy, so its X-Forwarded-For says who the client is; the
	// test's own connections come from 127.0.0.1, a loopback peer that is not one.
	e := newEnv(t, st, Options{APIKey: key, LoginFailures: failures, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	remote := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	tests := []struct {
		name   string
		token  string
		header http.Header
		status int
	}{
		{"loopback client", "", nil, http.StatusOK},
		{"internet client", "", remote, http.StatusForbidden},
		{"internet client with an inbox token", "not-the-key", remote, http.StatusForbidden},
		{"internet client with the admin key", key, remote, http.StatusOK},
		{"internet client with the admin key as a parameter", "", remote, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/metrics"
			if strings.HasSuffix(tt.name, "parameter") {
				path += "?token=" + key
			}
			r := e.getWith(path, tt.token, tt.header)
			if r.status != tt.status {
				t.Fatalf("GET %s = %d %s, want %d", path, r.status, r.body, tt.status)
			}
			if r.status == http.StatusOK && !strings.Contains(string(r.body), "mayfly_http_auth_failures_total") {
				t.Errorf("GET %s answered 200 without the metrics: %.200s", path, r.body)
			}
			if r.status == http.StatusForbidden && !strings.Contains(string(r.body), "MAYFLY_METRICS_ADDR") {
				t.Errorf("refusal %s does not say how to serve metrics elsewhere", r.body)
			}
		})
	}
	// Guessing the admin key through /metrics costs the same failures as anywhere else.
	guesser := http.Header{"X-Forwarded-For": {"203.0.113.10"}}
	for i := range 3 {
		if r := e.getWith("/metrics", "guess-"+string(rune('a'+i)), guesser); r.status != http.StatusForbidden {
			t.Fatalf("guess %d = %d, want 403", i, r.status)
		}
	}
	if r := e.getWith("/metrics", key, guesser); r.status != http.StatusTooManyRequests {
		t.Errorf("the right key after 3 wrong ones = %d %s, want 429 too_many_failures", r.status, r.body)
	}
}

// TestMetricsLocalProxy: a reverse proxy on the same host that is not configured as a
// trusted proxy connects from loopback, but forwards for someone else.
func TestMetricsLocalProxy(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, st, Options{})
	for _, h := range []http.Header{
		{"X-Forwarded-For": {"203.0.113.9"}},
		{"Forwarded": {"for=203.0.113.9"}},
		{"X-Real-Ip": {"203.0.113.9"}},
	} {
		if r := e.getWith("/metrics", "", h); r.status != http.StatusForbidden {
			t.Errorf("/metrics through a local proxy (%v) = %d, want 403", h, r.status)
		}
	}
	if r := e.getWith("/metrics", "", nil); r.status != http.StatusOK {
		t.Errorf("/metrics from loopback = %d %s, want 200", r.status, r.body)
	}
}

// TestMetricsServer: with MAYFLY_METRICS_ADDR the metrics have a listener of their own
// and the API's has none.
func TestMetricsServer(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	reg := prometheus.NewRegistry()
	e := newEnv(t, st, Options{Registry: reg, MetricsAddr: "127.0.0.1:1"})
	if r := e.getWith("/metrics", "", nil); r.status != http.StatusNotFound {
		t.Errorf("/metrics on the API listener = %d, want 404 with a metrics listener of their own", r.status)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	m := NewMetricsServer(ln.Addr().String(), reg, time.Second, slog.New(slog.DiscardHandler))
	go func() { done <- m.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "mayfly_http_auth_failures_total") {
		t.Errorf("metrics listener = %d %.200s, want the API's metrics", resp.StatusCode, body)
	}
	cancel()
	testlib.Returned(t, done, 10*time.Second, "Serve of the metrics listener after its context ended")
}
