package mailauth

import (
	"context"
	"strings"
	"testing"
)

// BenchmarkVerify measures a Verify whose lookups are all in the cache: the
// cost per message of the checks themselves.
func BenchmarkVerify(b *testing.B) {
	k := testKeys()
	s := newTestDNS(b,
		`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`example.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	)
	publishKey(b, s, "rsa", "example.test", k.rsa)
	v := newVerifier(b, Options{DNS: s.addr})
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 10<<10/80)
	cases := []struct {
		name string
		msg  []byte
	}{
		{"unsigned", message("a@example.test", "s", "hello\r\n")},
		{"rsa-signed-10KiB", sign(b, message("a@example.test", "s", body), "example.test", "rsa", k.rsa)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			in := Input{RemoteIP: loopback, Helo: "client.test", MailFrom: "b@example.test", Message: c.msg}
			if res := v.Verify(context.Background(), in); res.Verdicts.DMARC != Pass {
				b.Fatalf("warm-up: %+v", res.Verdicts)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(c.msg)))
			for b.Loop() {
				v.Verify(context.Background(), in)
			}
		})
	}
}
