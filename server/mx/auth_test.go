package mx

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// TestAuthenticationEndToEnd sends a DKIM-signed message over SMTP from 127.0.0.1 for a
// domain whose test zone allows it, and then the same message with its body changed.
func TestAuthenticationEndToEnd(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	// The envelope sender's domain passes SPF but is not aligned with From, so DMARC
	// rests on DKIM alone and a broken signature must fail it.
	v := shopVerifier(t, "k=rsa; p="+base64.StdEncoding.EncodeToString(pub))
	st := testlib.Memory(t, memstore.Options{})
	srv := start(t, Options{Verifier: v}, st)

	signed := signedReceipt(t, key)
	// Someone upstream forged a result in our name: it must not survive.
	forged := "Authentication-Results: MX.Mayfly.Test; dkim=pass header.d=shop.test\r\n" + signed.String()
	tampered := strings.Replace(signed.String(), "Thank you", "Thank YOU", 1)

	for _, tt := range []struct {
		name, inbox, body string
		want              [3]string
	}{
		{"signed", "good@mayfly.test", forged, [3]string{"pass", "pass", "pass"}},
		{"body changed after signing", "bad@mayfly.test", tampered, [3]string{"pass", "fail", "fail"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := dial(t, srv).SendMail("bounces@bounces.test", []string{tt.inbox}, strings.NewReader(tt.body)); err != nil {
				t.Fatal(err)
			}
			m := only(t, st, tt.inbox)
			if got := [3]string{m.Auth.SPF, m.Auth.DKIM, m.Auth.DMARC}; got != tt.want {
				t.Errorf("spf, dkim, dmarc = %q, want %q", got, tt.want)
			}
			raw, _ := st.Raw(t.Context(), m.Inbox, m.ID)
			if !bytes.HasPrefix(raw, []byte("Authentication-Results: mx.mayfly.test;")) {
				t.Errorf("stored message does not start with our Authentication-Results:\n%.300s", raw)
			}
			if n := bytes.Count(bytes.ToLower(raw), []byte("authentication-results: mx.mayfly.test;")); n != 1 {
				t.Errorf("%d Authentication-Results fields claim our authserv-id, want only ours", n)
			}
			if !bytes.Contains(raw, []byte("\r\nReceived: from client.test ([127.0.0.1])")) {
				t.Errorf("no trace header after our results:\n%.400s", raw)
			}
		})
	}
}

// shopVerifier checks mail against a test zone in which bounces.test passes SPF from
// loopback, shop.test publishes the DKIM key dkimKey ("k=... p=...") under the
// selector s1, and shop.test's DMARC policy is reject.
func shopVerifier(t *testing.T, dkimKey string) *mailauth.Verifier {
	t.Helper()
	addr := dnstest.TXTServer(t, map[string]string{
		"bounces.test.":            "v=spf1 ip4:127.0.0.0/8 -all",
		"s1._domainkey.shop.test.": "v=DKIM1; " + dkimKey,
		"_dmarc.shop.test.":        "v=DMARC1; p=reject",
	})
	v, err := mailauth.New(mailauth.Options{AuthservID: "mx.mayfly.test", DNS: addr, QueryTimeout: time.Second, Budget: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signedReceipt is shop.test's receipt to buyer@mayfly.test, signed by key under the
// selector s1.
func signedReceipt(t *testing.T, key crypto.Signer) *bytes.Buffer {
	t.Helper()
	const mail = "From: Shop <noreply@shop.test>\r\nTo: buyer@mayfly.test\r\nSubject: Your receipt\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@shop.test>\r\n\r\nThank you for your order.\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(mail), &dkim.SignOptions{Domain: "shop.test", Selector: "s1", Signer: key}); err != nil {
		t.Fatal(err)
	}
	return &signed
}
