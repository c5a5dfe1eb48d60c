package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The image's health check: 200 is healthy, anything else or no answer is not, and a
// listener on all interfaces (":8025", as the image sets it) is asked on loopback.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	env := func(v string) func(string) (string, bool) {
		return func(k string) (string, bool) { return v, k == "MAYFLY_HTTP_ADDR" }
	}
	ctx := context.Background()

	for _, addr := range []string{":" + port, "0.0.0.0:" + port, "127.0.0.1:" + port} {
		var out strings.Builder
		if err := probe(ctx, nil, env(addr), &out); err != nil {
			t.Errorf("MAYFLY_HTTP_ADDR=%s: %v", addr, err)
		}
		if !strings.Contains(out.String(), "127.0.0.1:"+port+"/healthz: ok") {
			t.Errorf("MAYFLY_HTTP_ADDR=%s: said %q", addr, out.String())
		}
	}
	if err := probe(ctx, []string{"/readyz"}, env(":"+port), io.Discard); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("/readyz answering 503: %v, want the status", err)
	}

	// Nobody listening: a closed port of loopback.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if err := probe(ctx, nil, env(closed), io.Discard); err == nil {
		t.Error("no listener: no error")
	}

	for _, args := range [][]string{{"healthz"}, {"/a", "/b"}} {
		if err := probe(ctx, args, env(":"+port), io.Discard); !errors.As(err, new(usageError)) {
			t.Errorf("probe %q: %v, want a usage error", args, err)
		}
	}
	if err := probe(ctx, nil, env("8025"), io.Discard); !errors.As(err, new(usageError)) {
		t.Errorf("MAYFLY_HTTP_ADDR=8025: %v, want a usage error", err)
	}
}
