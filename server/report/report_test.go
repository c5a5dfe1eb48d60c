package report

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/storage"
)

// Keys are made once: RSA generation is slow.
var keys = sync.OnceValue(func() (k struct{ good, other, small *rsa.PrivateKey }) {
	for _, p := range []struct {
		key  **rsa.PrivateKey
		bits int
	}{{&k.good, 2048}, {&k.other, 2048}, {&k.small, 1024}} {
		var err error
		if *p.key, err = rsa.GenerateKey(rand.Reader, p.bits); err != nil {
			panic(err)
		}
	}
	return k
})

func keyRecord(t testing.TB, k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

// goodZone is the DNS of a well-configured sender, good.test, sending from
// 127.0.0.1 as mail.good.test, record by record so that a test can break one.
func goodZone(t testing.TB) map[string]string {
	return map[string]string{
		"ptr":     "1.0.0.127.in-addr.arpa. 300 IN PTR mail.good.test.",
		"a":       "mail.good.test. 300 IN A 127.0.0.1",
		"mx":      "good.test. 300 IN MX 10 mail.good.test.",
		"spf":     `good.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		"dkim":    "", // filled in by zone: too long for one string
		"dmarc":   `_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"`,
		"mta-sts": `_mta-sts.good.test. 300 IN TXT "v=STSv1; id=20260101"`,
		"tls-rpt": `_smtp._tls.good.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:tls@good.test"`,
		"bimi":    `default._bimi.good.test. 300 IN TXT "v=BIMI1; l=https://good.test/logo.svg"`,
		"soa":     "good.test. 300 IN SOA ns.good.test. hostmaster.good.test. 1 3600 600 86400 30",
	}
}

// zone serves records on loopback, the DKIM key of sel._domainkey.good.test from
// dkimKey (nil: none published).
func zone(t testing.TB, records map[string]string, dkimKey *rsa.PrivateKey) string {
	t.Helper()
	var rrs []dns.RR
	for _, name := range slices.Sorted(maps.Keys(records)) {
		for rec := range strings.SplitSeq(records[name], "\n") {
			if rec == "" {
				continue
			}
			rr, err := dns.NewRR(rec)
			if err != nil {
				t.Fatalf("record %q: %v", rec, err)
			}
			rrs = append(rrs, rr)
		}
	}
	if dkimKey != nil {
		v := keyRecord(t, dkimKey)
		var parts []string
		for len(v) > 255 {
			parts, v = append(parts, v[:255]), v[255:]
		}
		rrs = append(rrs, &dns.TXT{Hdr: dns.RR_Header{Name: "sel._domainkey.good.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: append(parts, v)})
	}
	return dnstest.ZoneServer(t, rrs)
}

// mail is a message of good.test, built from its parts so that a test can spoil one.
type mail struct {
	header map[string]string // field -> value; "" drops the field
	text   string            // "" = no text/plain part
	html   string            // "" = no HTML part
}

func goodMail() mail {
	return mail{
		header: map[string]string{
			"From":                  "Good News <news@good.test>",
			"To":                    "box@mayfly.test",
			"Subject":               "This week at Good",
			"Date":                  "Mon, 07 Dec 2026 08:00:00 +0000",
			"Message-ID":            "<1@good.test>",
			"Precedence":            "bulk",
			"List-Unsubscribe":      "<https://good.test/unsubscribe/abc>, <mailto:unsubscribe@good.test>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
		text: "Hello,\r\nthis week at Good: a new product. Read it at https://good.test/news/1\r\n",
		html: "<p>Hello,</p>\r\n<p>this week at Good: a new product, shown below with words to say what it is.</p>\r\n" +
			"<p>It keeps your mail tidy, your tests quick and your weekends free.</p>\r\n" +
			"<img src=\"https://good.test/p.png\" alt=\"the product\">\r\n<p>Read it <a href=\"https://good.test/news/1\">here</a>.</p>\r\n",
	}
}

// bytes builds the message and signs it with key as sel._domainkey.good.test (nil: unsigned).
func (m mail) bytes(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	var b bytes.Buffer
	var names []string
	for _, k := range slices.Sorted(maps.Keys(m.header)) {
		if m.header[k] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", k, m.header[k])
			names = append(names, k)
		}
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	switch {
	case m.text != "" && m.html != "":
		b.WriteString("Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
			m.text + "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + m.html + "--b--\r\n")
	case m.html != "":
		b.WriteString("Content-Type: text/html; charset=utf-8\r\n\r\n" + m.html)
	default:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n" + m.text)
	}
	if key == nil {
		return b.Bytes()
	}
	var out bytes.Buffer
	if err := dkim.Sign(&out, &b, &dkim.SignOptions{Domain: "good.test", Selector: "sel", Signer: key, HeaderKeys: names}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// stored is the message as server/mx stores it: our own results and trace fields first.
func stored(raw []byte, helo string) *storage.Message {
	head := "Authentication-Results: mx.mayfly.test; spf=pass smtp.mailfrom=news@good.test\r\n" +
		"Received: from " + helo + " ([127.0.0.1])\r\n\tby mx.mayfly.test (Mayfly) with ESMTP id 1; Mon, 07 Dec 2026 08:00:01 +0000\r\n"
	raw = append([]byte(head), raw...)
	return &storage.Message{
		ID: "m1", Inbox: "box@mayfly.test",
		Envelope: storage.Envelope{From: "news@good.test", Recipients: []string{"box@mayfly.test"}, RemoteIP: "127.0.0.1", Helo: helo},
		Raw:      raw, Size: int64(len(raw)),
	}
}

func newReporter(t testing.TB, dnsAddr string, o Options) *Reporter {
	t.Helper()
	res, err := dnsclient.New(dnsclient.Options{Server: dnsAddr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v, err := mailauth.New(mailauth.Options{AuthservID: "mx.mayfly.test", Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	o.Verifier, o.Resolver = v, res
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// lost returns the checks that cost points, by id.
func lost(rep *Report) map[string]float64 {
	out := map[string]float64{}
	for _, c := range rep.Checks {
		if c.Points > 0 {
			out[c.ID] = c.Points
		}
	}
	return out
}

func dump(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "score %v\n", rep.Score)
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "  %-22s %-5s %.1f %s | %s\n", c.ID, c.Status, c.Points, c.Detail, c.Fix)
	}
	return b.String()
}

// TestReport: a well-configured sender scores 10, and each broken record and each
// fault of the content costs exactly the points of its checks in the weights table.
func TestReport(t *testing.T) {
	k := keys()
	big := strings.Repeat("<p>A paragraph of the newsletter, long enough.</p>\r\n", 2200)
	tests := []struct {
		name   string
		zone   func(z map[string]string)
		key    *rsa.PrivateKey // the key published; nil: k.good
		signer *rsa.PrivateKey // the key that signs; nil: k.good
		mail   func(m *mail)
		helo   string
		want   []string // the checks that cost points
		info   []string // checks that must be info
	}{
		{name: "well configured"},
		{name: "no PTR", zone: func(z map[string]string) { delete(z, "ptr") }, want: []string{"rdns"}},
		{name: "PTR name not confirmed", zone: func(z map[string]string) { z["ptr"] = "1.0.0.127.in-addr.arpa. 300 IN PTR other.good.test." }, want: []string{"fcrdns"}},
		{name: "HELO of another host", helo: "unknown.good.test", want: []string{"helo"}},
		// Injected over HTTP (server/mx stores the HELO "HTTP"): no SMTP client to judge,
		// so SPF, DMARC and the host are not scored; DKIM is verified.
		{name: "injected over HTTP", helo: "HTTP", info: []string{"spf", "dmarc", "rdns", "fcrdns", "helo"}},
		{name: "injected unsigned", helo: "HTTP", signer: &rsa.PrivateKey{}, want: []string{"dkim"}},
		{name: "no MX", zone: func(z map[string]string) { delete(z, "mx") }, want: []string{"mx"}},
		{name: "null MX", zone: func(z map[string]string) { z["mx"] = "good.test. 300 IN MX 0 ." }, want: []string{"mx"}},
		{name: "no SPF record", zone: func(z map[string]string) { delete(z, "spf") }, want: []string{"spf-record"}},
		{name: "SPF does not list the host", zone: func(z map[string]string) { z["spf"] = `good.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"` }, want: []string{"spf"}},
		{name: "SPF syntax error", zone: func(z map[string]string) { z["spf"] = `good.test. 300 IN TXT "v=spf1 bogus ip4:127.0.0.1 -all"` }, want: []string{"spf", "spf-record"}},
		// RFC 7208 section 4.6 makes the whole record permerror; mailauth's SPF library
		// stops at the first match, as some receivers do: only the record's check sees it.
		{name: "SPF syntax error past the match", zone: func(z map[string]string) { z["spf"] = `good.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 bogus -all"` }, want: []string{"spf-record"}},
		{name: "SPF +all", zone: func(z map[string]string) { z["spf"] = `good.test. 300 IN TXT "v=spf1 +all"` }, want: []string{"spf-record"}},
		{name: "SPF ?all", zone: func(z map[string]string) { z["spf"] = `good.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 ?all"` }, want: []string{"spf-record"}},
		{name: "SPF over 10 lookups", zone: func(z map[string]string) {
			rec := "v=spf1 ip4:127.0.0.1"
			var incs []string
			for i := range 6 {
				rec += fmt.Sprintf(" include:i%d.good.test", i)
				// each include costs itself and the two of its own record
				incs = append(incs, fmt.Sprintf(`i%d.good.test. 300 IN TXT "v=spf1 a mx -all"`, i))
			}
			z["spf"] = fmt.Sprintf("good.test. 300 IN TXT %q", rec+" -all")
			z["includes"] = strings.Join(incs, "\n")
		}, want: []string{"spf-record"}},
		{name: "SPF 10 lookups", zone: func(z map[string]string) {
			z["spf"] = `good.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 a mx ptr exists:e.good.test include:i.good.test -all"`
			z["includes"] = `i.good.test. 300 IN TXT "v=spf1 a mx a:x.good.test mx:y.good.test include:j.good.test -all"`
		}},
		{name: "no DMARC record", zone: func(z map[string]string) { delete(z, "dmarc") }, want: []string{"dmarc-policy"}},
		{name: "DMARC p=none", zone: func(z map[string]string) { z["dmarc"] = `_dmarc.good.test. 300 IN TXT "v=DMARC1; p=none"` }, want: []string{"dmarc-policy", "bimi"}},
		{name: "DMARC pct=20", zone: func(z map[string]string) { z["dmarc"] = `_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject; pct=20"` }, want: []string{"dmarc-policy"}},
		{name: "no MTA-STS", zone: func(z map[string]string) { delete(z, "mta-sts") }, want: []string{"mta-sts"}},
		{name: "MTA-STS without id", zone: func(z map[string]string) { z["mta-sts"] = `_mta-sts.good.test. 300 IN TXT "v=STSv1"` }, want: []string{"mta-sts"}},
		{name: "no TLS-RPT", zone: func(z map[string]string) { delete(z, "tls-rpt") }, want: []string{"tls-rpt"}},
		{name: "no BIMI", zone: func(z map[string]string) { delete(z, "bimi") }, want: []string{"bimi"}},
		{name: "unsigned", signer: &rsa.PrivateKey{}, want: []string{"dkim"}},
		{name: "DKIM key does not match", signer: k.other, want: []string{"dkim"}},
		{name: "1024-bit DKIM key", key: k.small, signer: k.small, want: []string{"dkim-key"}},
		{name: "SPF and DKIM fail", signer: &rsa.PrivateKey{}, zone: func(z map[string]string) { z["spf"] = `good.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"` }, want: []string{"spf", "dkim", "dmarc"}},
		{name: "HTML only", mail: func(m *mail) { m.text = "" }, want: []string{"text-part"}},
		{name: "HTML too big", mail: func(m *mail) { m.html = big }, want: []string{"html-size"}},
		{name: "images, little text", mail: func(m *mail) {
			m.html = `<p>Look</p><img src="https://good.test/1.png" alt="one"><img src="https://good.test/2.png" alt="two">`
		}, want: []string{"image-ratio"}},
		{name: "image without alt", mail: func(m *mail) { m.html = strings.Replace(m.html, ` alt="the product"`, "", 1) }, want: []string{"image-alt"}},
		{name: "link to an IP", mail: func(m *mail) { m.text += "Or at http://192.0.2.7/news/1\r\n" }, want: []string{"link-ip"}},
		{name: "link through a shortener", mail: func(m *mail) { m.html += `<a href="https://bit.ly/abc">more</a>` }, want: []string{"link-shortener"}},
		{name: "bulk without List-Unsubscribe", mail: func(m *mail) { m.header["List-Unsubscribe"], m.header["List-Unsubscribe-Post"] = "", "" }, want: []string{"list-unsubscribe"}},
		{name: "no one-click unsubscribe", mail: func(m *mail) { m.header["List-Unsubscribe-Post"] = "" }, want: []string{"list-unsubscribe-post"}},
		{name: "one-click without https", mail: func(m *mail) { m.header["List-Unsubscribe"] = "<mailto:unsubscribe@good.test>" }, want: []string{"list-unsubscribe-post"}},
		{name: "not bulk", mail: func(m *mail) {
			m.header["List-Unsubscribe"], m.header["List-Unsubscribe-Post"], m.header["Precedence"] = "", "", ""
		}},
		{name: "no Message-ID", mail: func(m *mail) { m.header["Message-ID"] = "" }, want: []string{"message-id"}},
		{name: "no Date", mail: func(m *mail) { m.header["Date"] = "" }, want: []string{"date"}},
		{name: "bad Date", mail: func(m *mail) { m.header["Date"] = "yesterday" }, want: []string{"date"}},
		{name: "line over 998", mail: func(m *mail) { m.text += strings.Repeat("x", 999) + "\r\n" }, want: []string{"line-length"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := goodZone(t)
			if tt.zone != nil {
				tt.zone(z)
			}
			pub, signer := k.good, k.good
			if tt.key != nil {
				pub = tt.key
			}
			if tt.signer != nil {
				signer = tt.signer
			}
			m := goodMail()
			if tt.mail != nil {
				tt.mail(&m)
			}
			var s crypto.Signer = signer
			if signer.N == nil {
				s = nil
			}
			helo := "mail.good.test"
			if tt.helo != "" {
				helo = tt.helo
			}
			r := newReporter(t, zone(t, z, pub), Options{})
			rep, err := r.Report(context.Background(), stored(m.bytes(t, s), helo))
			if err != nil {
				t.Fatal(err)
			}
			want := 10.0
			for _, id := range tt.want {
				want -= weights[id].points
			}
			got := lost(rep)
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(slices.Values(tt.want))) || rep.Score != roundScore(want) {
				t.Errorf("score %v, lost %v; want %v, lost %v\n%s", rep.Score, got, roundScore(want), tt.want, dump(rep))
			}
			for _, id := range tt.info {
				if c := find(rep, id); c.Status != Info {
					t.Errorf("%s = %+v, want info", id, c)
				}
			}
			for _, c := range rep.Checks {
				if c.unknown() {
					t.Errorf("check %s not known: %s", c.ID, c.Detail)
				}
				if (c.Status == Fail || c.Status == Warn) && c.Fix == "" {
					t.Errorf("check %s (%s) says no fix", c.ID, c.Status)
				}
			}
		})
	}
}

func roundScore(f float64) float64 { return float64(int(f*10+0.5)) / 10 }
