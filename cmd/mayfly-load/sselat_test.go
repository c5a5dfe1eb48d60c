package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/httpapi"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/mx"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// startOpenMayfly serves the receiver and the API on a memory store with the
// per-client limits off, as the benchmarks' servers run, until the test ends.
func startOpenMayfly(t *testing.T) (smtpAddr, api string) {
	t.Helper()
	st := testlib.Memory(t, memstore.Options{})
	logger := slog.New(slog.DiscardHandler)
	off := limit.Rate{N: -1, Per: time.Second}
	httpLn, smtpLn := testlib.Listen(t), testlib.Listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	mxSrv := mx.New(mx.Options{Hostname: "mx.load.test", Domains: []string{"load.test"}, RecipientRate: off, ReceiveRate: off}, st, logger)
	wg.Go(func() { mxSrv.Serve(ctx, smtpLn) })
	apiSrv := httpapi.New(httpapi.Options{Domains: []string{"load.test"}, Secret: []byte("load test secret"), RequestRate: off, MaxConnectionsPerIP: -1}, st, logger)
	wg.Go(func() { apiSrv.Serve(ctx, httpLn) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return smtpLn.Addr().String(), "http://" + httpLn.Addr().String()
}

func latencyConfig(smtpAddr string) Config {
	return Config{Addr: smtpAddr, N: 20, Size: 2 << 10, Conns: 2, IdleSockets: 5, From: "load@sender.test", EHLO: "mayfly-load", Timeout: 10 * time.Second}
}

func TestSSELatency(t *testing.T) {
	smtpAddr, api := startOpenMayfly(t)
	cfg := latencyConfig(smtpAddr)
	cfg.SSEAPI = api
	out, err := runSSELatency(t.Context(), cfg)
	if err != nil {
		t.Fatalf("runSSELatency: %v\n%s", err, out)
	}
	for _, want := range []string{"250 to SSE message.received over 20 messages", "5 idle streams", "reference, same run: 250 to WebSocket event over 20 messages"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// fakeWebhooks stands for the webhook routes and dispatcher of issue 18 in front of a
// Mayfly without them: POST /api/v1/webhooks subscribes, and each message.received of
// the inbox's event stream is POSTed to every subscriber, signed as Standard Webhooks
// says; the rest goes to the Mayfly. badKey signs with a wrong key.
func fakeWebhooks(t *testing.T, api string, badKey bool) string {
	t.Helper()
	target, _ := url.Parse(api)
	proxy := httputil.NewSingleHostReverseProxy(target)
	key := []byte("0123456789abcdef0123456789abcdef")
	ctx := t.Context()
	var mu sync.Mutex
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/webhooks" {
			proxy.ServeHTTP(w, r)
			return
		}
		var sub struct{ URL, Inbox string }
		json.NewDecoder(r.Body).Decode(&sub)
		events, err := openSSE(ctx, api, sub.Inbox, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		go func() {
			for ev := range events {
				if ev.name != "message.received" {
					continue
				}
				body := []byte(`{"type":"message.received","data":` + ev.data + `}`)
				mu.Lock()
				n++
				id := "msg_" + strconv.Itoa(n)
				mu.Unlock()
				ts := strconv.FormatInt(time.Now().Unix(), 10)
				signKey := key
				if badKey {
					signKey = []byte("wrong")
				}
				mac := hmac.New(sha256.New, signKey)
				fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
				req, _ := http.NewRequestWithContext(ctx, "POST", sub.URL, strings.NewReader(string(body)))
				req.Header.Set("webhook-id", id)
				req.Header.Set("webhook-timestamp", ts)
				req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"id": "wh_1", "secret": "whsec_" + base64.StdEncoding.EncodeToString(key)})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWebhookBench(t *testing.T) {
	smtpAddr, api := startOpenMayfly(t)
	cfg := latencyConfig(smtpAddr)
	cfg.N, cfg.Subscribers, cfg.Rate, cfg.Duration = 5, 3, 200, time.Second
	cfg.WebhookAPI = fakeWebhooks(t, api, false)
	out, err := runWebhookBench(t.Context(), cfg)
	if err != nil {
		t.Fatalf("runWebhookBench: %v\n%s", err, out)
	}
	for _, want := range []string{"250 to webhook POST over 5 messages of 2048 bytes to 3 subscribers", "200 of 200 messages accepted", "600 of 600 deliveries (3 subscribers), 0 lost", "deliveries/s", "0 bad signatures"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	cfg.Rate = 0
	cfg.WebhookAPI = fakeWebhooks(t, api, true)
	if out, err := runWebhookBench(t.Context(), cfg); err == nil || !strings.Contains(out, "15 bad signatures") {
		t.Errorf("deliveries signed with another key: %v\n%s; want 15 bad signatures", err, out)
	}

	// A Mayfly without the webhook routes says so.
	none := httptest.NewServer(http.NotFoundHandler())
	defer none.Close()
	if _, err := subscribe(t.Context(), http.DefaultClient, none.URL, "token", "box@load.test", "http://127.0.0.1:1/"); !errors.Is(err, errNoWebhooks) {
		t.Errorf("against a Mayfly without webhooks: %v, want errNoWebhooks", err)
	}
}
