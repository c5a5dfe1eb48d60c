package report

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
)

func TestParseSPF(t *testing.T) {
	tests := []struct {
		name, rec string
		all       string
		lookups   int
		err       bool
	}{
		{name: "minimal", rec: "v=spf1 -all", all: "-"},
		{name: "upper case", rec: "V=SPF1 IP4:192.0.2.1 ~ALL", all: "~"},
		{name: "every lookup", rec: "v=spf1 a mx ptr exists:%{i}.x.test include:a.test redirect=b.test", lookups: 6},
		{name: "cidr", rec: "v=spf1 a/24 mx:m.test/24//64 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all", all: "-", lookups: 2},
		{name: "exp modifier", rec: "v=spf1 -all exp=explain.test", all: "-"},
		{name: "unknown modifier", rec: "v=spf1 foo=bar -all", all: "-"},
		{name: "no all", rec: "v=spf1 ip4:192.0.2.1"},
		{name: "not spf", rec: "v=spf10 -all", err: true},
		{name: "empty", rec: "", err: true},
		{name: "unknown mechanism", rec: "v=spf1 bogus -all", err: true},
		{name: "bad ip4", rec: "v=spf1 ip4:300.1.1.1 -all", err: true},
		{name: "ip6 in ip4", rec: "v=spf1 ip4:2001:db8::1 -all", err: true},
		{name: "prefix too long", rec: "v=spf1 ip4:192.0.2.0/33 -all", err: true},
		{name: "include without domain", rec: "v=spf1 include -all", err: true},
		{name: "all with argument", rec: "v=spf1 all:x.test", err: true},
		{name: "two redirects", rec: "v=spf1 redirect=a.test redirect=b.test", err: true},
		{name: "bad macro", rec: "v=spf1 exists:%{z}.x.test -all", err: true},
		{name: "bad cidr", rec: "v=spf1 a/x -all", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseSPF(tt.rec)
			if (err != nil) != tt.err {
				t.Fatalf("parseSPF(%q) error %v, want error %v", tt.rec, err, tt.err)
			}
			if err == nil && (r.all != tt.all || r.lookups != tt.lookups) {
				t.Errorf("parseSPF(%q) = all %q, %d lookups; want %q, %d", tt.rec, r.all, r.lookups, tt.all, tt.lookups)
			}
		})
	}
}

func FuzzParseSPF(f *testing.F) {
	for _, s := range []string{"v=spf1 -all", "v=spf1 a/24//64 mx:%{d}.x ip6:::1/128 redirect=x.test", "v=spf1 exists:%{ir}.%{v}._spf.%{d2}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseSPF(s)
		if err == nil && r.lookups > maxSPFTerms+1 {
			t.Fatalf("%d lookups from %d terms", r.lookups, len(strings.Fields(s)))
		}
	})
}

func TestParseRspamd(t *testing.T) {
	tests := []struct {
		name string
		body string
		err  bool
	}{
		{name: "answer", body: `{"is_skipped":false,"score":1.5,"required_score":15,"action":"no action","symbols":{"B":{"name":"B","score":1,"description":"b"},"A":{"name":"A","score":1,"options":["x"]},"C":{"score":-0.5}}}`},
		{name: "not json", body: "<html>", err: true},
		{name: "no score", body: `{"action":"no action"}`, err: true},
		{name: "skipped", body: `{"is_skipped":true,"score":0,"action":"no action"}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := parseRspamd([]byte(tt.body))
			if (err != nil) != tt.err {
				t.Fatalf("parseRspamd(%q) error %v, want error %v", tt.body, err, tt.err)
			}
			if err != nil {
				return
			}
			var names []string
			for _, s := range res.Symbols {
				names = append(names, s.Name)
			}
			if got := strings.Join(names, ","); got != "A,B,C" {
				t.Errorf("symbols in order %s, want A,B,C (by points, then name)", got)
			}
		})
	}
}

func FuzzParseRspamd(f *testing.F) {
	f.Add([]byte(`{"score":1,"required_score":15,"action":"no action","symbols":{"A":{"score":1,"options":["\xff"]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := parseRspamd(b)
		if err == nil && len(res.Symbols) > maxSymbols {
			t.Fatalf("%d symbols", len(res.Symbols))
		}
	})
}

// TestBudget: DNS that never answers costs the report its budget, not more, and the
// checks that waited say they are not known rather than failing the sender; such a
// report is not cached.
func TestBudget(t *testing.T) {
	k := keys()
	addr := dnstest.Serve(t, false, func(w dns.ResponseWriter, r *dns.Msg) {}) // never answers
	r := newReporter(t, addr, Options{Budget: 300 * time.Millisecond})
	msg := stored(goodMail().bytes(t, k.good), "mail.good.test")
	start := time.Now()
	rep, err := r.Report(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	// mailauth's own budget (5s) bounds the authentication checks; the report's the rest.
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("report took %s", d)
	}
	for _, id := range []string{"rdns", "mx", "spf-record", "mta-sts"} {
		if c := find(rep, id); c.Status != Info || !c.unknown() {
			t.Errorf("%s = %+v, want not known", id, c)
		}
	}
	for _, c := range rep.Checks {
		if c.Category == Domain || c.Category == Host {
			if c.Points != 0 {
				t.Errorf("%s costs %v though DNS did not answer", c.ID, c.Points)
			}
		}
	}
	if r.cached(msg.Inbox+"\x00"+msg.ID) != nil {
		t.Error("an incomplete report was cached")
	}
}

// TestCache: a report is computed once and kept; the cache holds CacheSize reports.
func TestCache(t *testing.T) {
	k := keys()
	var queries atomic.Int64
	rrs := zoneRRs(t)
	addr := dnstest.Serve(t, false, func(w dns.ResponseWriter, req *dns.Msg) {
		queries.Add(1)
		w.WriteMsg(rrs(req))
	})
	r := newReporter(t, addr, Options{CacheSize: 2})
	raw := goodMail().bytes(t, k.good)
	first, err := r.Report(context.Background(), stored(raw, "mail.good.test"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Score != 10 {
		t.Fatalf("score %v\n%s", first.Score, dump(first))
	}
	asked := queries.Load()
	again, _ := r.Report(context.Background(), stored(raw, "mail.good.test"))
	if again != first || queries.Load() != asked {
		t.Errorf("the second report was computed again (%d DNS queries more)", queries.Load()-asked)
	}
	for _, id := range []string{"m2", "m3"} {
		m := stored(raw, "mail.good.test")
		m.ID = id
		r.Report(context.Background(), m)
	}
	if r.cached("box@mayfly.test\x00m1") != nil || r.lru.Len() != 2 {
		t.Errorf("cache holds %d reports, m1 still there: %v", r.lru.Len(), r.cached("box@mayfly.test\x00m1") != nil)
	}

	// A byte bound of about one report keeps one.
	r = newReporter(t, addr, Options{CacheBytes: first.size() + 10})
	for _, id := range []string{"m1", "m2", "m3"} {
		m := stored(raw, "mail.good.test")
		m.ID = id
		r.Report(context.Background(), m)
	}
	if r.lru.Len() != 1 || r.bytes > first.size()+10 || r.Cached("box@mayfly.test", "m3") == nil {
		t.Errorf("cache of %d bytes holds %d reports, %d bytes", first.size()+10, r.lru.Len(), r.bytes)
	}
}

// zoneRRs answers from goodZone, as dnstest.ZoneServer does, for a handler that
// also counts.
func zoneRRs(t *testing.T) func(*dns.Msg) *dns.Msg {
	addr := zone(t, goodZone(t), keys().good)
	c := new(dns.Client)
	return func(req *dns.Msg) *dns.Msg {
		resp, _, err := c.Exchange(req, addr)
		if err != nil {
			m := new(dns.Msg).SetReply(req)
			m.Rcode = dns.RcodeServerFailure
			return m
		}
		return resp
	}
}
