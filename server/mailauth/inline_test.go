package mailauth

import (
	"context"
	"net"
	rtmetrics "runtime/metrics"
	"testing"
	"time"
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

// TestUnsignedOutcomeMemo: the outcome of unsigned mail is reused for a second for mail
// of the same client, sender and From domain (no DNS query, the same verdicts and
// field), never for mail that differs in any of them, never when a check was
// temperror, and not once its lifetime is over. The records have TTL 0, so the
// resolver's cache answers nothing: every query counted is a check that ran.
func TestUnsignedOutcomeMemo(t *testing.T) {
	s := newTestDNS(t,
		`_dmarc.example.test. 0 IN TXT "v=DMARC1; p=reject"`,
		`example.test. 0 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`flaky.test. 0 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	)
	v := newVerifier(t, Options{DNS: s.addr})
	in := Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "b@example.test", Message: message("a@example.test", "s", "hello\r\n")}
	verify := func(in Input) Result {
		t.Helper()
		return v.Verify(context.Background(), in)
	}
	first := verify(in)
	if first.Verdicts.SPF != Pass || first.Verdicts.DMARC != Pass {
		t.Fatalf("verdicts = %+v, want SPF and DMARC pass", first.Verdicts)
	}
	queries := s.total()
	again := verify(in)
	if s.total() != queries || again.Verdicts != first.Verdicts || string(again.Header) != string(first.Header) {
		t.Errorf("the same mail again: %d more queries, %+v; want none, %+v", s.total()-queries, again.Verdicts, first.Verdicts)
	}

	other := in
	other.RemoteIP = net.ParseIP("192.0.2.1")
	if got := verify(other); got.Verdicts.SPF != Fail || got.Verdicts.DMARC != Fail {
		t.Errorf("from another client: %+v, want SPF and DMARC fail", got.Verdicts)
	}
	other = in
	other.MailFrom = "b@nospf.test"
	if got := verify(other); got.Verdicts.SPF != None {
		t.Errorf("another sender: %+v, want SPF none", got.Verdicts)
	}
	other = in
	other.Message = message("a@nodmarc.test", "s", "hello\r\n")
	if got := verify(other); got.Verdicts.DMARC != None {
		t.Errorf("another From domain: %+v, want DMARC none", got.Verdicts)
	}

	flaky := in
	flaky.MailFrom = "b@flaky.test"
	s.fail("flaky.test")
	kept := len(v.unsigned.m)
	if got := verify(flaky); got.Verdicts.SPF != TempError {
		t.Fatalf("SERVFAIL: SPF %s, want temperror", got.Verdicts.SPF)
	}
	if len(v.unsigned.m) != kept {
		t.Error("an outcome with a temperror was kept for reuse")
	}

	v.unsigned.lifetime = time.Nanosecond
	queries = s.total()
	verify(in)
	if s.total() == queries {
		t.Error("past its lifetime the outcome was reused: no query")
	}
}
