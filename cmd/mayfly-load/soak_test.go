package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mayfly-mail/mayfly/server/httpapi"
	"github.com/mayfly-mail/mayfly/server/imapd"
	"github.com/mayfly-mail/mayfly/server/mx"
	"github.com/mayfly-mail/mayfly/server/pop3d"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// mayfly is a real Mayfly in this process, wired as cmd/mayfly wires it on the memory
// store (without verification, submission and the page), on loopback ports.
type mayfly struct {
	smtp, api, imap, pop3 string
}

// leakyStore is a memory store that deletes every nth message a moment after storing
// it: the mail a soak must find lost.
type leakyStore struct {
	*memstore.Store
	n     int
	mu    sync.Mutex
	count int
	wg    sync.WaitGroup
}

func (s *leakyStore) Put(ctx context.Context, msgs ...*storage.Message) error {
	if err := s.Store.Put(ctx, msgs...); err != nil {
		return err
	}
	s.mu.Lock()
	s.count++
	drop := s.count%s.n == 0
	s.mu.Unlock()
	if drop {
		for _, m := range msgs {
			s.wg.Go(func() {
				time.Sleep(200 * time.Millisecond)
				_ = s.Delete(context.Background(), m.Inbox, m.ID)
			})
		}
	}
	return nil
}

// startMayfly serves a memory store, or a leaky one that deletes every leakEvery-th
// message when leakEvery > 0, until the test ends.
func startMayfly(t *testing.T, leakEvery int) mayfly {
	t.Helper()
	mem := memstore.New(memstore.Options{})
	var st storage.Store = mem
	leaky := &leakyStore{Store: mem, n: leakEvery}
	if leakEvery > 0 {
		st = leaky
	}
	logger := slog.New(slog.DiscardHandler)
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	domains := []string{"soak.test"}
	secret := []byte("soak test secret")
	keys := storage.Keys{Tokens: storage.NewTokens(secret)}
	httpLn, imapLn, pop3Ln, smtpLn := testlib.Listen(t), testlib.Listen(t), testlib.Listen(t), testlib.Listen(t)
	smtpAddr := smtpLn.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	serve := func(name string, f func() error) {
		wg.Go(func() {
			if err := f(); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	mxSrv := mx.New(mx.Options{Hostname: "mx.soak.test", Domains: domains}, st, logger)
	serve("mx", func() error { return mxSrv.Serve(ctx, smtpLn) })
	api := httpapi.New(httpapi.Options{Domains: domains, Hostname: "mx.soak.test", Secret: secret, Registry: registry}, st, logger)
	serve("http", func() error { return api.Serve(ctx, httpLn) })
	imapSrv := imapd.New(imapd.Options{Hostname: "mx.soak.test", Domains: domains, Keys: keys}, st, logger)
	serve("imap", func() error { return imapSrv.Serve(ctx, imapLn, false) })
	pop3Srv := pop3d.New(pop3d.Options{Hostname: "mx.soak.test", Domains: domains, Keys: keys}, st, logger)
	serve("pop3", func() error { return pop3Srv.Serve(ctx, pop3Ln, false) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		leaky.wg.Wait()
		mem.Close()
	})
	return mayfly{smtp: smtpAddr, api: "http://" + httpLn.Addr().String(), imap: imapLn.Addr().String(), pop3: pop3Ln.Addr().String()}
}

func soakTestConfig(m mayfly) SoakConfig {
	return SoakConfig{
		Addr: m.smtp, API: m.api, IMAP: m.imap, POP3: m.pop3,
		Duration: 5 * time.Second, Rate: 40, Inboxes: 10, TTL: 3 * time.Second, Size: 2 << 10,
		// The server keeps its events 10 minutes; counted as 1s, so the test judges memory.
		EventHistory: time.Second,
		// About 70 API requests a second: under the server's default limit per client.
		Conns: 2, PerConn: 1, Readers: 2, ListRate: 15, Waiters: 2,
		IMAPSessions: 1, POP3Sessions: 1, IMAPIdle: 300 * time.Millisecond,
		From: "load@sender.test", EHLO: "mayfly-load", Timeout: 10 * time.Second, SampleEvery: 200 * time.Millisecond,
		// The soak shares this process with the server, so its own goroutines and heap
		// are in the figures: the flatness checks are tested on their own.
		MaxGoroutineGrowth: 1 << 20, MaxHeapGrowth: 1 << 20,
	}
}

func TestSoak(t *testing.T) {
	m := startMayfly(t, 0)
	cfg := soakTestConfig(m)
	rep, err := runSoak(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("runSoak() error = %v", err)
	}
	report := rep.text()
	t.Log("\n" + report)
	if f := rep.Failures(); len(f) > 0 {
		t.Errorf("runSoak() failures %q, want none; report:\n%s", f, report)
	}
	// Seconds at 40/s; a loaded machine may be slower, not lossy.
	if rep.Accepted < 40 || rep.Lost() != 0 || rep.Read != rep.Accepted || rep.WSSeen != rep.Accepted {
		t.Errorf("runSoak() accepted %d, lost %d, read %d, seen %d; want 40 or more, 0 lost, all read and seen; report:\n%s",
			rep.Accepted, rep.Lost(), rep.Read, rep.WSSeen, report)
	}
	// With a 3s ttl, the first seconds' mail expired under load.
	if rep.Expired == 0 {
		t.Errorf("runSoak() saw no expiry event; report:\n%s", report)
	}
	for _, k := range []string{"api listings", "api reads", "api waits", "imap sessions", "pop3 sessions"} {
		if rep.Counts[k] == 0 {
			t.Errorf("runSoak() counted no %s; report:\n%s", k, report)
		}
	}
	for _, k := range []string{"smtp 250", "ws event", "wait return", "api list", "api get", "imap fetch", "pop3 retr"} {
		if rep.Samples[k] == 0 {
			t.Errorf("runSoak() has no %s latency; report:\n%s", k, report)
		}
	}
	if !rep.Goroutines.Measured || !rep.Heap.Checked || !rep.RSS.Checked || rep.Goroutines.Start <= 0 {
		t.Errorf("runSoak() goroutines %+v, heap %+v, RSS %+v: want them measured and checked", rep.Goroutines, rep.Heap, rep.RSS)
	}
	if !strings.Contains(report, "lost 0 (") || !strings.Contains(report, "result        PASS") {
		t.Errorf("report does not say lost 0 and PASS:\n%s", report)
	}
}

func TestSoakFindsLostMail(t *testing.T) {
	m := startMayfly(t, 5)
	cfg := soakTestConfig(m)
	cfg.Duration, cfg.TTL, cfg.IMAPSessions, cfg.POP3Sessions = 2*time.Second, 10*time.Second, 0, 0
	rep, err := runSoak(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("runSoak() error = %v", err)
	}
	// Every fifth message is deleted 200ms after its 250: each is seen deleted over
	// the WebSocket, and missing from the listings that follow.
	if want := rep.Accepted / 5; rep.GoneEarly < want-2 || rep.GoneEarly > want+2 || len(rep.Failures()) == 0 {
		t.Errorf("runSoak() gone early %d of %d accepted, failures %q; want about %d and a failure; report:\n%s",
			rep.GoneEarly, rep.Accepted, rep.Failures(), want, rep.text())
	}
	if rep.Heap.Checked {
		t.Errorf("runSoak() heap %+v: want it not checked, the store filling for a ttl longer than the run", rep.Heap)
	}
}

func TestGrowthOf(t *testing.T) {
	const s = time.Second
	samples := []memSample{
		{at: 0, goroutines: 10}, {at: 1 * s, goroutines: 100}, // warm-up, left out
		{at: 2 * s, goroutines: 50}, {at: 3 * s, goroutines: 52}, {at: 4 * s, goroutines: 51}, {at: 5 * s, goroutines: -1},
		{at: 6 * s, goroutines: 90}, {at: 7 * s, goroutines: 60}, {at: 8 * s, goroutines: 61},
	}
	g := growthOf("goroutines", 1, samples, 2*s, func(m memSample) float64 { return m.goroutines })
	// Six known samples after the warm-up: medians of the first three and the last three.
	if !g.Measured || g.Start != 51 || g.End != 61 || g.Max != 90 || g.Initial != 10 {
		t.Errorf("growthOf() = %+v, want start 51, end 61, max 90, initial 10", g)
	}
	if g := growthOf("goroutines", 1, samples[:5], 2*s, func(m memSample) float64 { return m.goroutines }); g.Measured {
		t.Errorf("growthOf(3 samples) = %+v, want not measured", g)
	}
	g.Checked, g.Limit = true, 60
	if g.OK() {
		t.Errorf("Growth %+v OK, want not: end over limit", g)
	}
	if rep := (SoakReport{Accepted: 1, WSSeen: 1, Goroutines: g}); len(rep.Failures()) != 1 {
		t.Errorf("Failures() = %q, want the goroutines' growth", rep.Failures())
	}
}

func TestParseGauges(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
go_memstats_heap_inuse_bytes 1.2345e+07
go_gc_duration_seconds{quantile="0"} 1e-05
process_resident_memory_bytes 3.3e+07 1700000000000
`
	got, err := parseGauges(strings.NewReader(in), "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "mayfly_store_messages")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"go_goroutines": 42, "go_memstats_heap_inuse_bytes": 12345000, "process_resident_memory_bytes": 33e6, "mayfly_store_messages": -1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("parseGauges()[%s] = %g, want %g", k, got[k], v)
		}
	}
	if _, err := parseGauges(strings.NewReader("go_goroutines many\n"), "go_goroutines"); err == nil {
		t.Errorf("parseGauges(not a number) error = nil, want one")
	}
}

func TestParseSubject(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{in: "mayfly-load 0000000042", want: 42, ok: true},
		{in: "mayfly-load 42"},
		{in: "Re: mayfly-load 0000000042"},
		{in: "mayfly-load -000000042"},
	}
	for _, tt := range tests {
		if got, ok := parseSubject(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("parseSubject(%q) = %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseSoakFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(SoakConfig) bool
		wantErr bool
	}{
		{
			name: "defaults",
			check: func(c SoakConfig) bool {
				return c.Duration == 20*time.Minute && c.Rate == 50 && c.Inboxes == 50 && c.TTL == 2*time.Minute &&
					c.warmUp() == 12*time.Minute && c.IMAP == "127.0.0.1:1143" && c.IMAPSessions == 2
			},
		},
		{
			name: "no imap",
			args: []string{"-imap", "", "-duration", "1m", "-ttl", "30s", "-rate", "10", "-inboxes", "5"},
			check: func(c SoakConfig) bool {
				return c.IMAPSessions == 0 && c.POP3Sessions == 2 && c.warmUp() == 45*time.Second
			},
		},
		{name: "warm-up capped", args: []string{"-duration", "1m", "-ttl", "10m", "-rate", "1"}, check: func(c SoakConfig) bool { return c.warmUp() == 45*time.Second }},
		{name: "a long ttl's warm-up", args: []string{"-duration", "60m", "-ttl", "20m", "-rate", "1"}, check: func(c SoakConfig) bool { return c.warmUp() == 25*time.Minute }},
		{name: "too much per inbox", args: []string{"-rate", "100", "-inboxes", "10"}, wantErr: true},
		{name: "fractional ttl", args: []string{"-ttl", "1500ms"}, wantErr: true},
		{name: "warm-up past the end", args: []string{"-duration", "1m", "-warm-up", "1m"}, wantErr: true},
		{name: "no readers", args: []string{"-readers", "0"}, wantErr: true},
		{name: "bad api", args: []string{"-api", "127.0.0.1:8025"}, wantErr: true},
		{name: "argument", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseSoakFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSoakFlags(%q) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
			if err == nil && !tt.check(cfg) {
				t.Errorf("parseSoakFlags(%q) = %+v, want other values", tt.args, cfg)
			}
		})
	}
}
