package mailauth

import (
	"context"
	rtmetrics "runtime/metrics"
	"testing"
)

// goroutinesCreated is how many goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []rtmetrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// TestVerifyCachedInline: an unsigned message whose sender's SPF and DMARC records are
// in the DNS cache, as most are under load, is verified in the caller's goroutine; a
// goroutine for SPF and one for DMARC cost the receiver more than the checks did. The
// verdicts are those the concurrent checks give.
func TestVerifyCachedInline(t *testing.T) {
	s := newTestDNS(t,
		`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`example.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	)
	v := newVerifier(t, Options{DNS: s.addr})
	in := Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "b@example.test", Message: message("a@example.test", "s", "hello\r\n")}
	first := v.Verify(context.Background(), in) // fills the cache
	const n = 20
	before := goroutinesCreated()
	for range n {
		if res := v.Verify(context.Background(), in); res.Verdicts != first.Verdicts || string(res.Header) != string(first.Header) {
			t.Fatalf("Verify from the cache = %+v\n%s\nwant %+v\n%s", res.Verdicts, res.Header, first.Verdicts, first.Header)
		}
	}
	if created := goroutinesCreated() - before; created >= n/4 {
		t.Errorf("%d Verify calls answered from the cache started %d goroutines, want none", n, created)
	}
	if first.Verdicts.SPF != Pass || first.Verdicts.DMARC != Pass {
		t.Errorf("verdicts = %+v, want SPF and DMARC pass", first.Verdicts)
	}
}
