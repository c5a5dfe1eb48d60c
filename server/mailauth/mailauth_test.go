package mailauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
)

var loopback = net.ParseIP("127.0.0.1")

// Keys are made once: RSA 2048 generation is slow.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsaOther *rsa.PrivateKey
	ed            ed25519.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// publishKey puts the DKIM key record of signer at selector._domainkey.domain.
func publishKey(t testing.TB, s *testDNS, selector, domain string, signer crypto.Signer) {
	t.Helper()
	var rec string
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		rec = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		rec = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	s.txt(selector+"._domainkey."+domain, 300, rec)
}

func message(from, subject, body string) []byte {
	return []byte("From: " + from + "\r\nTo: box@mayfly.test\r\nSubject: " + subject +
		"\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@x.test>\r\n\r\n" + body)
}

func sign(t testing.TB, msg []byte, domain, selector string, signer crypto.Signer) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: selector, Signer: signer,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func newVerifier(t testing.TB, o Options) *Verifier {
	t.Helper()
	if o.AuthservID == "" {
		o.AuthservID = "mx.mayfly.test"
	}
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSPF(t *testing.T) {
	s := newTestDNS(t,
		`pass.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
		`fail.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`soft.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 ~all"`,
		`neutral.test. 300 IN TXT "v=spf1 ?all"`,
		`include.test. 300 IN TXT "v=spf1 include:pass.test -all"`,
		`redirect.test. 300 IN TXT "v=spf1 redirect=pass.test"`,
		`mx.test. 300 IN TXT "v=spf1 mx -all"`,
		`mx.test. 300 IN MX 10 mail.mx.test.`,
		`mail.mx.test. 300 IN A 127.0.0.1`,
		`a6.test. 300 IN TXT "v=spf1 a -all"`,
		`a6.test. 300 IN AAAA 2001:db8::1`,
		`loop.test. 300 IN TXT "v=spf1 include:loop.test -all"`,
		`two.test. 300 IN TXT "v=spf1 -all"`,
		`two.test. 300 IN TXT "v=spf1 +all"`,
		`norecord.test. 300 IN A 127.0.0.1`,
		`helo.pass.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`helo.fail.test. 300 IN TXT "v=spf1 -all"`,
	)
	// Eleven mechanisms that each cost a lookup: one over RFC 7208 section 4.6.4.
	many := "v=spf1"
	for i := range 11 {
		h := "h" + string(rune('a'+i)) + ".many.test."
		s.add(t, h+" 300 IN A 192.0.2.1")
		many += " a:" + h
	}
	s.txt("many.test", 300, many+" -all")

	v := newVerifier(t, Options{DNS: s.addr})
	tests := []struct {
		name           string
		ip             string
		helo, mailFrom string
		want           string
	}{
		{"pass ip4", "127.0.0.1", "client.test", "a@pass.test", Pass},
		{"fail -all", "127.0.0.1", "client.test", "a@fail.test", Fail},
		{"softfail ~all", "127.0.0.1", "client.test", "a@soft.test", SoftFail},
		{"neutral ?all", "127.0.0.1", "client.test", "a@neutral.test", Neutral},
		{"include", "127.0.0.1", "client.test", "a@include.test", Pass},
		{"redirect", "127.0.0.1", "client.test", "a@redirect.test", Pass},
		{"redirect fails elsewhere", "192.0.2.9", "client.test", "a@redirect.test", Fail},
		{"mx", "127.0.0.1", "client.test", "a@mx.test", Pass},
		{"a over ipv6", "2001:db8::1", "client.test", "a@a6.test", Pass},
		{"include loop", "127.0.0.1", "client.test", "a@loop.test", PermError},
		{"more than 10 lookups", "127.0.0.1", "client.test", "a@many.test", PermError},
		{"two records", "127.0.0.1", "client.test", "a@two.test", PermError},
		{"no record", "127.0.0.1", "client.test", "a@norecord.test", None},
		{"no domain", "127.0.0.1", "client.test", "a@nxdomain.test", None},
		{"bounce checks HELO pass", "127.0.0.1", "helo.pass.test", "", Pass},
		{"bounce checks HELO fail", "127.0.0.1", "helo.fail.test", "", Fail},
		{"bounce written <>", "127.0.0.1", "helo.fail.test", "<>", Fail},
		{"bounce with IP literal HELO", "127.0.0.1", "[127.0.0.1]", "", None},
		{"case-insensitive domain", "127.0.0.1", "client.test", "a@PASS.Test", Pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := v.Verify(context.Background(), Input{RemoteIP: net.ParseIP(tt.ip), Helo: tt.helo, MailFrom: tt.mailFrom, Message: message("a@x.test", "hi", "body\r\n")})
			if res.Verdicts.SPF != tt.want {
				t.Errorf("spf = %q, want %q\n%s", res.Verdicts.SPF, tt.want, res.Header)
			}
		})
	}
}

func TestSPFTempError(t *testing.T) {
	v := newVerifier(t, Options{DNS: silentDNS(t), QueryTimeout: 100 * time.Millisecond, Budget: 3 * time.Second})
	res := v.Verify(context.Background(), Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "a@pass.test", Message: message("a@x.test", "hi", "body\r\n")})
	want := storage.AuthResults{SPF: TempError, DKIM: None, DMARC: TempError}
	if res.Verdicts != want {
		t.Errorf("verdicts = %+v, want %+v", res.Verdicts, want)
	}
}

func TestDKIM(t *testing.T) {
	k := testKeys()
	s := newTestDNS(t)
	publishKey(t, s, "rsa", "mail.example.test", k.rsa)
	publishKey(t, s, "ed", "example.test", k.ed)
	v := newVerifier(t, Options{DNS: s.addr})

	msg := message("Alice <alice@example.test>", "hello", "Hello.\r\n")
	rsaSigned := sign(t, msg, "mail.example.test", "rsa", k.rsa)
	edSigned := sign(t, msg, "example.test", "ed", k.ed)
	wrongKey := sign(t, msg, "mail.example.test", "rsa", k.rsaOther)
	twoSigs := sign(t, wrongKey, "example.test", "ed", k.ed) // bad RSA under a good Ed25519
	type sig struct{ domain, selector, result string }
	tests := []struct {
		name string
		msg  []byte
		want string
		sigs []sig
	}{
		{"rsa pass", rsaSigned, Pass, []sig{{"mail.example.test", "rsa", Pass}}},
		{"ed25519 pass", edSigned, Pass, []sig{{"example.test", "ed", Pass}}},
		{"body changed", bytes.Replace(rsaSigned, []byte("Hello."), []byte("Hullo."), 1), Fail, []sig{{"mail.example.test", "rsa", Fail}}},
		{"signed header changed", bytes.Replace(edSigned, []byte("Subject: hello"), []byte("Subject: hallo"), 1), Fail, []sig{{"example.test", "ed", Fail}}},
		{"unsigned", msg, None, nil},
		{"one good one bad", twoSigs, Pass, []sig{{"example.test", "ed", Pass}, {"mail.example.test", "rsa", Fail}}},
		{"no key published", sign(t, msg, "example.test", "missing", k.ed), PermError, []sig{{"example.test", "missing", PermError}}},
		{"garbled signature field", append([]byte("DKIM-Signature: v=1; garbage\r\n"), msg...), PermError, []sig{{"", "", PermError}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := v.Verify(context.Background(), Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "a@example.test", Message: tt.msg})
			if res.Verdicts.DKIM != tt.want {
				t.Errorf("dkim = %q, want %q\n%s", res.Verdicts.DKIM, tt.want, res.Header)
			}
			_, results := parseHeader(t, res.Header)
			var got []sig
			for _, r := range results {
				if g, ok := r.(*authres.DKIMResult); ok && g.Value != authres.ResultNone {
					got = append(got, sig{domain: g.Domain, result: string(g.Value)})
				}
			}
			if len(got) != len(tt.sigs) {
				t.Fatalf("dkim results %+v, want %+v\n%s", got, tt.sigs, res.Header)
			}
			for i := range got {
				if got[i].domain != tt.sigs[i].domain || got[i].result != tt.sigs[i].result {
					t.Errorf("signature %d = %+v, want %+v", i, got[i], tt.sigs[i])
				}
				if tt.sigs[i].selector != "" && !bytes.Contains(res.Header, []byte("header.s="+tt.sigs[i].selector)) {
					t.Errorf("header lacks header.s=%s:\n%s", tt.sigs[i].selector, res.Header)
				}
			}
		})
	}
}

// TestDKIMRFC8463 verifies the example of RFC 8463 Appendix A: one message
// signed with Ed25519 and RSA, against the keys of A.2, served over DNS.
func TestDKIMRFC8463(t *testing.T) {
	msg, err := os.ReadFile("testdata/rfc8463-a3.eml")
	if err != nil {
		t.Fatal(err)
	}
	zone, err := os.ReadFile("testdata/rfc8463-a2.zone")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestDNS(t)
	zp := dns.NewZoneParser(bytes.NewReader(zone), "", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		s.addRR(rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, Options{DNS: s.addr})
	res := v.Verify(context.Background(), Input{RemoteIP: loopback, Helo: "football.example.com", MailFrom: "joe@football.example.com", Message: msg})
	if res.Verdicts.DKIM != Pass {
		t.Errorf("dkim = %q, want pass\n%s", res.Verdicts.DKIM, res.Header)
	}
	_, results := parseHeader(t, res.Header)
	var values []authres.ResultValue
	for _, r := range results {
		if d, ok := r.(*authres.DKIMResult); ok {
			values = append(values, d.Value)
		}
	}
	// Both the Ed25519 (first) and the 1024-bit RSA signature verify.
	if len(values) != 2 || values[0] != authres.ResultPass || values[1] != authres.ResultPass {
		t.Errorf("dkim results %v, want [pass pass]\n%s", values, res.Header)
	}
}

func TestDMARC(t *testing.T) {
	k := testKeys()
	s := newTestDNS(t,
		`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine; pct=50"`,
		`example.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`other.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.strict.test. 300 IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"`,
		`bounce.strict.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.orgonly.test. 300 IN TXT "v=DMARC1; p=none"`,
		`orgonly.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.bad.test. 300 IN TXT "v=DMARC1; p=bogus"`,
	)
	s.fail("_dmarc.broken.test")
	publishKey(t, s, "rsa", "mail.example.test", k.rsa)
	publishKey(t, s, "rsa", "mail.strict.test", k.rsa)
	v := newVerifier(t, Options{DNS: s.addr})

	tests := []struct {
		name        string
		mailFrom    string
		msg         []byte
		want        string
		wantApplied string // policy.dmarc in the header
	}{
		{"pass by SPF alignment", "b@example.test", message("a@example.test", "s", "x\r\n"), Pass, "reject"},
		{"pass by relaxed DKIM alignment", "b@other.test",
			sign(t, message("a@example.test", "s", "x\r\n"), "mail.example.test", "rsa", k.rsa), Pass, "reject"},
		{"strict alignment fails", "b@bounce.strict.test",
			sign(t, message("a@strict.test", "s", "x\r\n"), "mail.strict.test", "rsa", k.rsa), Fail, "reject"},
		{"fail with p=reject", "b@other.test", message("a@example.test", "s", "x\r\n"), Fail, "reject"},
		{"subdomain gets sp", "b@other.test", message("a@sub.example.test", "s", "x\r\n"), Fail, "quarantine"},
		{"organizational domain fallback", "b@orgonly.test", message("a@a.b.orgonly.test", "s", "x\r\n"), Pass, "none"},
		{"no record", "b@other.test", message("a@nopolicy.test", "s", "x\r\n"), None, ""},
		{"dns trouble", "b@other.test", message("a@broken.test", "s", "x\r\n"), TempError, ""},
		{"malformed record", "b@other.test", message("a@bad.test", "s", "x\r\n"), PermError, ""},
		{"two From fields", "b@example.test", append([]byte("From: c@example.test\r\n"), message("a@example.test", "s", "x\r\n")...), PermError, ""},
		{"two From addresses", "b@example.test", message("a@example.test, c@example.test", "s", "x\r\n"), PermError, ""},
		{"no From", "b@example.test", []byte("Subject: s\r\n\r\nx\r\n"), None, ""},
		{"folded From with encoded name", "b@example.test", message("=?windows-1252?Q?J=F6rg?=\r\n <a@Example.Test>", "s", "x\r\n"), Pass, "reject"},
		{"From name in a charset nobody knows", "b@example.test", message("=?x-nobody?Q?J=F6rg?= <a@example.test>", "s", "x\r\n"), Pass, "reject"},
		// mailparse's rule: the header ends at a line that is no field, so the From
		// after it is body text that no view shows as the sender.
		{"From after a line that is no field", "b@example.test", []byte("Subject: s\r\nno field here\r\nFrom: a@example.test\r\n\r\nx\r\n"), None, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := v.Verify(context.Background(), Input{RemoteIP: loopback, Helo: "client.test", MailFrom: tt.mailFrom, Message: tt.msg})
			if res.Verdicts.DMARC != tt.want {
				t.Errorf("dmarc = %q, want %q\n%s", res.Verdicts.DMARC, tt.want, res.Header)
			}
			if tt.wantApplied != "" && !bytes.Contains(res.Header, []byte("policy.dmarc="+tt.wantApplied)) {
				t.Errorf("header lacks policy.dmarc=%s:\n%s", tt.wantApplied, res.Header)
			}
		})
	}
}

// parseHeader checks that h is one folded Authentication-Results field with our
// authserv-id and parses it with go-msgauth's parser.
func parseHeader(t testing.TB, h []byte) (string, []authres.Result) {
	t.Helper()
	name, value, ok := strings.Cut(string(h), ":")
	if !ok || name != "Authentication-Results" || !strings.HasSuffix(value, "\r\n") {
		t.Fatalf("not a header field: %q", h)
	}
	for _, line := range strings.Split(strings.TrimSuffix(value, "\r\n"), "\r\n")[1:] {
		if !strings.HasPrefix(line, "\t") {
			t.Fatalf("continuation line not folded: %q", line)
		}
	}
	id, results, err := authres.Parse(unfold([]byte(value)))
	if err != nil {
		t.Fatalf("authres.Parse: %v\n%s", err, h)
	}
	return id, results
}

func TestHeader(t *testing.T) {
	k := testKeys()
	s := newTestDNS(t, `_dmarc.example.test. 300 IN TXT "v=DMARC1; p=quarantine; pct=25"`, `example.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`)
	publishKey(t, s, "ed", "example.test", k.ed)
	v := newVerifier(t, Options{DNS: s.addr, AuthservID: "mx.mayfly.test"})
	msg := sign(t, message("a@example.test", "s", "x\r\n"), "example.test", "ed", k.ed)
	msg = sign(t, msg, "example.test", "missing", k.ed)

	t.Run("mail from", func(t *testing.T) {
		res := v.Verify(context.Background(), Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "b@example.test", Message: msg})
		t.Logf("%s", res.Header)
		id, results := parseHeader(t, res.Header)
		if id != "mx.mayfly.test" {
			t.Errorf("authserv-id = %q", id)
		}
		if len(results) != 4 {
			t.Fatalf("%d results, want spf, 2 dkim, dmarc:\n%s", len(results), res.Header)
		}
		if r, ok := results[0].(*authres.SPFResult); !ok || r.Value != authres.ResultPass || r.From != "b@example.test" {
			t.Errorf("spf result %+v", results[0])
		}
		if r, ok := results[1].(*authres.DKIMResult); !ok || r.Value != authres.ResultPermError || r.Domain != "example.test" {
			t.Errorf("first dkim result %+v", results[1])
		}
		if r, ok := results[2].(*authres.DKIMResult); !ok || r.Value != authres.ResultPass || r.Domain != "example.test" {
			t.Errorf("second dkim result %+v", results[2])
		}
		if r, ok := results[3].(*authres.DMARCResult); !ok || r.Value != authres.ResultPass || r.From != "example.test" {
			t.Errorf("dmarc result %+v", results[3])
		}
		for _, want := range []string{"header.s=missing", "header.s=ed", "header.b=", "policy.dmarc=quarantine", "(p=quarantine pct=25)"} {
			if !bytes.Contains(res.Header, []byte(want)) {
				t.Errorf("header lacks %q:\n%s", want, res.Header)
			}
		}
	})
	t.Run("bounce", func(t *testing.T) {
		res := v.Verify(context.Background(), Input{RemoteIP: loopback, Helo: "example.test", Message: message("a@example.test", "s", "x\r\n")})
		_, results := parseHeader(t, res.Header)
		if r, ok := results[0].(*authres.SPFResult); !ok || r.Value != authres.ResultPass || r.Helo != "example.test" || r.From != "" {
			t.Errorf("spf result %+v\n%s", results[0], res.Header)
		}
		if r, ok := results[1].(*authres.DKIMResult); !ok || r.Value != authres.ResultNone {
			t.Errorf("dkim result %+v", results[1])
		}
	})
}

func TestBudget(t *testing.T) {
	k := testKeys()
	addr := silentDNS(t)
	v := newVerifier(t, Options{DNS: addr, QueryTimeout: time.Second, Budget: 300 * time.Millisecond})
	msg := sign(t, message("a@example.test", "s", "x\r\n"), "example.test", "ed", k.ed)
	baseline := runtime.NumGoroutine()
	done := make(chan Result, 1)
	go func() {
		done <- v.Verify(context.Background(), Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "b@example.test", Message: msg})
	}()
	select {
	case res := <-done:
		want := storage.AuthResults{SPF: TempError, DKIM: TempError, DMARC: TempError}
		if res.Verdicts != want {
			t.Errorf("verdicts = %+v, want %+v\n%s", res.Verdicts, want, res.Header)
		}
		parseHeader(t, res.Header)
	case <-time.After(5 * time.Second):
		t.Fatal("Verify did not return within its budget against a silent server")
	}
	// The DKIM check still reads the message when the budget runs out: the receiver must
	// not reuse its buffer. (Above, SPF's own lookup holds this goroutine until the
	// budget ends too, and the DKIM check may have given up just as fast.) Injected mail
	// has no SPF to wait for: Verify waits for DKIM alone.
	res := v.Verify(context.Background(), Input{RemoteIP: loopback, Message: msg, Injected: true})
	if !res.Pending {
		t.Error("Pending = false after the budget ran out with the DKIM key lookup in flight, want true")
	}
	// The queries it left behind end with their own timeout (1s).
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, %d before Verify", runtime.NumGoroutine(), baseline)
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling a count, not synchronizing
	}
}

func TestContextCancel(t *testing.T) {
	v := newVerifier(t, Options{DNS: silentDNS(t), QueryTimeout: time.Second, Budget: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := v.Verify(ctx, Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "b@example.test", Message: message("a@example.test", "s", "x\r\n")})
	if res.Verdicts.SPF != TempError || res.Verdicts.DMARC != TempError {
		t.Errorf("verdicts = %+v, want temperror", res.Verdicts)
	}
}

func TestCache(t *testing.T) {
	k := testKeys()
	s := newTestDNS(t,
		`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`example.test. 1 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	)
	publishKey(t, s, "ed", "example.test", k.ed)
	reg := prometheus.NewRegistry()
	clock := testlib.NewClock(time.Unix(1_800_000_000, 0))
	res, err := dnsclient.New(dnsclient.Options{Server: s.addr, Metrics: reg, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, Options{Resolver: res, Metrics: reg})
	in := Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "b@example.test",
		Message: sign(t, message("a@example.test", "s", "x\r\n"), "example.test", "ed", k.ed)}

	first := v.Verify(context.Background(), in)
	if first.Verdicts != (storage.AuthResults{SPF: Pass, DKIM: Pass, DMARC: Pass, FromAligned: true}) {
		t.Fatalf("verdicts = %+v\n%s", first.Verdicts, first.Header)
	}
	sent := s.total()

	t.Run("second message sends no query", func(t *testing.T) {
		again := v.Verify(context.Background(), in)
		if got := s.total(); got != sent {
			t.Errorf("%d queries after the second Verify, want %d", got, sent)
		}
		if again.Verdicts != first.Verdicts {
			t.Errorf("verdicts changed: %+v", again.Verdicts)
		}
		if n := testlib.Metric(t, reg, "mayfly_dns_cache_hits_total", "type", "TXT"); n < 3 {
			t.Errorf("cache hits = %v", n)
		}
	})
	t.Run("negative answer cached", func(t *testing.T) {
		ctx := context.Background()
		for range 2 {
			if _, err := v.res.LookupTXT(ctx, "nothing.example.test"); err == nil {
				t.Fatal("no error for a missing name")
			}
		}
		if n := s.count("nothing.example.test", dns.TypeTXT); n != 1 {
			t.Errorf("%d queries for a cached NXDOMAIN, want 1", n)
		}
		clock.Add(31 * time.Second) // past the SOA minimum of 30
		v.res.LookupTXT(ctx, "nothing.example.test")
		if n := s.count("nothing.example.test", dns.TypeTXT); n != 2 {
			t.Errorf("%d queries after the negative TTL, want 2", n)
		}
	})
	t.Run("TTL expiry refetches", func(t *testing.T) {
		before := s.count("example.test", dns.TypeTXT)
		clock.Add(2 * time.Second) // the SPF record's TTL is 1s
		v.Verify(context.Background(), in)
		if n := s.count("example.test", dns.TypeTXT); n != before+1 {
			t.Errorf("%d queries for the expired record, want %d", n, before+1)
		}
		if n := s.count("ed._domainkey.example.test", dns.TypeTXT); n != 1 {
			t.Errorf("%d queries for the key whose TTL has not expired, want 1", n)
		}
	})
	// The cache's bound is tested in server/dnsclient, where its size can be seen.
	if n := testutil.ToFloat64(v.metrics.results.WithLabelValues("dmarc", "pass")); n != 3 {
		t.Errorf("dmarc pass counter = %v, want 3", n)
	}
}

func TestResolver(t *testing.T) {
	s := newTestDNS(t, `servfail.test. 300 IN TXT "x"`)
	long := strings.Repeat("a", 1500)
	s.txt("big.test", 300, long)
	s.truncateUDP("big.test")
	s.fail("servfail.test")
	v := newVerifier(t, Options{DNS: s.addr})
	ctx := context.Background()

	t.Run("truncated answer retried over TCP", func(t *testing.T) {
		txts, err := v.res.LookupTXT(ctx, "big.test")
		if err != nil || len(txts) != 1 || txts[0] != long {
			t.Fatalf("LookupTXT = %d records, %v", len(txts), err)
		}
	})
	t.Run("SERVFAIL is temporary", func(t *testing.T) {
		_, err := v.res.LookupTXT(ctx, "servfail.test")
		var de *net.DNSError
		if !errorsAs(err, &de) || !de.Temporary() || de.IsNotFound {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("NODATA is not found", func(t *testing.T) {
		s.add(t, "onlya.test. 300 IN A 127.0.0.1")
		_, err := v.res.LookupTXT(ctx, "onlya.test")
		var de *net.DNSError
		if !errorsAs(err, &de) || !de.IsNotFound {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("concurrent lookups share one query", func(t *testing.T) {
		s.add(t, `shared.test. 300 IN TXT "v=spf1 -all"`)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := v.res.LookupTXT(ctx, "shared.test"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := s.count("shared.test", dns.TypeTXT); n != 1 {
			t.Errorf("%d queries, want 1", n)
		}
	})
	t.Run("invalid name never sent", func(t *testing.T) {
		before := s.total()
		_, err := v.res.LookupTXT(ctx, "bad..name")
		var de *net.DNSError
		if !errorsAs(err, &de) || !de.IsNotFound || s.total() != before {
			t.Fatalf("err = %#v, queries %d -> %d", err, before, s.total())
		}
	})
	t.Run("MX and PTR", func(t *testing.T) {
		s.add(t, "m.test. 300 IN MX 20 b.m.test.")
		s.add(t, "m.test. 300 IN MX 10 a.m.test.")
		s.add(t, "1.0.0.127.in-addr.arpa. 300 IN PTR host.test.")
		mxs, err := v.res.LookupMX(ctx, "m.test")
		if err != nil || len(mxs) != 2 || mxs[0].Host != "a.m.test." {
			t.Errorf("LookupMX = %v, %v", mxs, err)
		}
		names, err := v.res.LookupAddr(ctx, "127.0.0.1")
		if err != nil || len(names) != 1 || names[0] != "host.test." {
			t.Errorf("LookupAddr = %v, %v", names, err)
		}
	})
}

// TestFromAligned: From: counts as vouched for when SPF or DKIM passed for a domain of
// its organization, with or without a DMARC record; a pass for another organization's
// domain, or a bounce's HELO, does not vouch for it.
func TestFromAligned(t *testing.T) {
	k := testKeys()
	s := newTestDNS(t,
		`sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`bounces.sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`other.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`helo.sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	)
	publishKey(t, s, "ed", "mail.sender.test", k.ed)
	publishKey(t, s, "ed", "other.test", k.ed)
	v := newVerifier(t, Options{DNS: s.addr})
	tests := []struct {
		name, mailFrom, from string
		signer               string // d= of a signature, if any
		want                 bool
	}{
		{"spf same domain", "b@sender.test", "a@sender.test", "", true},
		{"spf subdomain", "b@bounces.sender.test", "a@sender.test", "", true},
		{"spf other organization", "b@other.test", "a@sender.test", "", false},
		{"dkim subdomain, spf none", "b@nospf.test", "a@sender.test", "mail.sender.test", true},
		{"dkim other organization", "b@nospf.test", "a@sender.test", "other.test", false},
		{"bounce", "", "a@sender.test", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := message(tt.from, "hi", "body\r\n")
			if tt.signer != "" {
				msg = sign(t, msg, tt.signer, "ed", k.ed)
			}
			res := v.Verify(context.Background(), Input{RemoteIP: loopback, Helo: "helo.sender.test", MailFrom: tt.mailFrom, Message: msg})
			if res.Verdicts.FromAligned != tt.want {
				t.Errorf("FromAligned = %v, want %v: %+v\n%s", res.Verdicts.FromAligned, tt.want, res.Verdicts, res.Header)
			}
			if res.Verdicts.DMARC != None {
				t.Errorf("DMARC = %q, want none: no domain here publishes a record", res.Verdicts.DMARC)
			}
		})
	}
}
