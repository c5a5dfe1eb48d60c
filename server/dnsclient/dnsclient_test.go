package dnsclient

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// countingServer answers every TXT question with one record on a loopback UDP port,
// dropping the first drop questions unanswered, and counts the questions it got.
func countingServer(t *testing.T, drop int32) (addr string, questions *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	questions = new(atomic.Int32)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if questions.Add(1) <= drop {
			return // lost
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: []string{"v=spf1 -all"}}}
		w.WriteMsg(m) //nolint:errcheck
	})}
	go srv.ActivateAndServe() //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), questions
}

func TestCacheBounded(t *testing.T) {
	addr, _ := countingServer(t, 0)
	r, err := New(Options{Server: addr})
	if err != nil {
		t.Fatal(err)
	}
	r.max = 5
	for i := range 20 {
		if _, err := r.LookupTXT(context.Background(), string(rune('a'+i))+".size.test"); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	n := len(r.cache)
	r.mu.Unlock()
	if n > 5 {
		t.Errorf("cache holds %d entries, bound 5", n)
	}
}

// TestNoCache: `mayfly dns -check` asks the server every time, to see what is
// published now.
func TestNoCache(t *testing.T) {
	for _, tt := range []struct {
		name    string
		noCache bool
		want    int32
	}{{"cached", false, 1}, {"no cache", true, 2}} {
		t.Run(tt.name, func(t *testing.T) {
			addr, questions := countingServer(t, 0)
			r, err := New(Options{Server: addr, NoCache: tt.noCache})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := r.LookupTXT(context.Background(), "example.test"); err != nil {
					t.Fatal(err)
				}
			}
			if got := questions.Load(); got != tt.want {
				t.Errorf("%d questions for two lookups, want %d", got, tt.want)
			}
		})
	}
}

// TestRounds: with two rounds, one lost datagram is asked again; with one, it fails.
func TestRounds(t *testing.T) {
	for _, tt := range []struct {
		rounds int
		ok     bool
	}{{1, false}, {2, true}} {
		addr, _ := countingServer(t, 1)
		r, err := New(Options{Server: addr, Rounds: tt.rounds, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.LookupTXT(context.Background(), "example.test")
		if (err == nil) != tt.ok {
			t.Errorf("rounds %d: LookupTXT = %v, want ok %v", tt.rounds, err, tt.ok)
		}
	}
}
