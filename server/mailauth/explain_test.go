package mailauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// TestExplain checks the details behind the verdicts: each signature's algorithm
// and key size from DNS, and the DMARC record's policy and alignment.
func TestExplain(t *testing.T) {
	k := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestDNS(t,
		`example.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
		`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine; pct=50"`,
	)
	publishKey(t, s, "big", "example.test", k.rsa)
	publishKey(t, s, "small", "example.test", small)
	publishKey(t, s, "ed", "other.test", k.ed)
	v := newVerifier(t, Options{DNS: s.addr})

	msg := message("Alice <alice@example.test>", "hello", "Hello.\r\n")
	msg = sign(t, msg, "example.test", "big", k.rsa)
	msg = sign(t, msg, "example.test", "small", small)
	msg = sign(t, msg, "other.test", "ed", k.ed)
	d := v.Explain(context.Background(), Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "a@example.test", Message: msg})

	if d.SPF.Verdict != Pass || d.SPF.Domain != "example.test" {
		t.Errorf("SPF = %+v, want pass for example.test", d.SPF)
	}
	want := []DKIMSignature{
		{Domain: "other.test", Selector: "ed", Algorithm: "ed25519-sha256", KeyType: "ed25519", KeyBits: 256, Verdict: Pass},
		{Domain: "example.test", Selector: "small", Algorithm: "rsa-sha256", KeyType: "rsa", KeyBits: 1024, Verdict: Pass, Aligned: true},
		{Domain: "example.test", Selector: "big", Algorithm: "rsa-sha256", KeyType: "rsa", KeyBits: 2048, Verdict: Pass, Aligned: true},
	}
	if len(d.DKIM) != len(want) {
		t.Fatalf("DKIM = %+v, want %+v", d.DKIM, want)
	}
	for i := range want {
		if d.DKIM[i] != want[i] {
			t.Errorf("DKIM[%d] = %+v, want %+v", i, d.DKIM[i], want[i])
		}
	}
	wantDMARC := DMARCDetails{Verdict: Pass, Reason: "SPF aligned", FromDomain: "example.test", Record: true,
		Policy: "reject", Subdomain: "quarantine", Applied: "reject", Percent: 50, SPFAligned: true, DKIMAligned: true}
	if d.DMARC != wantDMARC {
		t.Errorf("DMARC = %+v, want %+v", d.DMARC, wantDMARC)
	}
}

func TestKeySize(t *testing.T) {
	tests := []struct {
		name, record, kind string
		bits               int
	}{
		{"empty", "", "rsa", 0},
		{"revoked", "v=DKIM1; p=", "rsa", 0},
		{"not base64", "v=DKIM1; p=@@@", "rsa", 0},
		{"ed25519 wrong length", "k=ed25519; p=AAAA", "ed25519", 0},
		{"unknown type", "k=dsa; p=AAAA", "dsa", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if kind, bits := keySize(tt.record); kind != tt.kind || bits != tt.bits {
				t.Errorf("keySize(%q) = %q, %d, want %q, %d", tt.record, kind, bits, tt.kind, tt.bits)
			}
		})
	}
}
