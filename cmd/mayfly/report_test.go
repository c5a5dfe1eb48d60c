package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
)

// TestReportEndToEnd sends a well-configured sender's mail over real SMTP (from
// 127.0.0.1, HELO mail.good.test, DKIM-signed with a 2048-bit key) to a node whose DNS
// is a test zone, on both stores: the REST report scores it 10, and the MCP tool and
// the CLI give the same report.
func TestReportEndToEnd(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	for _, r := range []string{
		"1.0.0.127.in-addr.arpa. 300 IN PTR mail.good.test.",
		"mail.good.test. 300 IN A 127.0.0.1",
		"good.test. 300 IN MX 10 mail.good.test.",
		`good.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`_mta-sts.good.test. 300 IN TXT "v=STSv1; id=1"`,
		`_smtp._tls.good.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:tls@good.test"`,
		`default._bimi.good.test. 300 IN TXT "v=BIMI1; l=https://good.test/l.svg"`,
	} {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	rec := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	rrs = append(rrs, &dns.TXT{Hdr: dns.RR_Header{Name: "sel._domainkey.good.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: []string{rec[:200], rec[200:]}})
	zone := dnstest.ZoneServer(t, rrs)

	for name, extra := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, append([]string{"-dns", zone}, extra...)...)
			in := createInbox(t, n.http, "")
			msg := "From: Good <news@good.test>\r\nTo: " + in.Address + "\r\nSubject: Welcome\r\nDate: Mon, 07 Dec 2026 08:00:00 +0000\r\nMessage-ID: <w1@good.test>\r\n\r\nWelcome to Good.\r\n"
			var signed bytes.Buffer
			if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "good.test", Selector: "sel", Signer: key,
				HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}}); err != nil {
				t.Fatal(err)
			}
			c, err := smtp.Dial(n.smtp)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Hello("mail.good.test"); err != nil {
				t.Fatal(err)
			}
			if err := c.Mail("news@good.test"); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt(in.Address); err != nil {
				t.Fatal(err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			w.Write(signed.Bytes())
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			c.Quit()

			base := "http://" + n.http + "/api/v1/inboxes/" + in.Address
			var waited struct{ Messages []struct{ ID string } }
			getReportJSON(t, base+"/wait?timeout=10s", in.Token, &waited)
			if len(waited.Messages) != 1 {
				t.Fatalf("wait = %+v", waited)
			}
			id := waited.Messages[0].ID
			var rest json.RawMessage
			getReportJSON(t, base+"/messages/"+id+"/report", in.Token, &rest)
			var rep struct {
				Score  float64
				Checks []struct{ ID, Status, Detail string }
			}
			json.Unmarshal(rest, &rep)
			if rep.Score != 10 {
				t.Errorf("score %v, want 10:\n%s", rep.Score, rest)
			}
			for _, c := range rep.Checks {
				if c.Status != "pass" && c.ID != "rspamd" && c.ID != "list-unsubscribe" && c.ID != "list-unsubscribe-post" &&
					c.ID != "html-size" && c.ID != "image-ratio" && c.ID != "image-alt" {
					t.Errorf("%s %s: %s", c.ID, c.Status, c.Detail)
				}
			}

			agent := newMCPClient(t, n.http, "", nil)
			var viaMCP json.RawMessage
			if text, isErr := agent.call("get_report", map[string]any{"address": in.Address, "token": in.Token, "id": id}, &viaMCP); isErr || !strings.Contains(text, "score 10/10") {
				t.Errorf("get_report = %q, %t", text, isErr)
			}
			if !sameJSON(t, rest, viaMCP) {
				t.Errorf("MCP report differs:\n%s\n%s", rest, viaMCP)
			}

			var out, errOut bytes.Buffer
			if err := command(context.Background(), []string{"report", in.Address, id, "--json", "--url", "http://" + n.http, "--token", in.Token}, &out, &errOut); err != nil {
				t.Fatalf("mayfly report: %v %s", err, errOut.String())
			}
			if !sameJSON(t, rest, out.Bytes()) {
				t.Errorf("CLI report differs:\n%s\n%s", rest, out.String())
			}
			out.Reset()
			if err := command(context.Background(), []string{"report", in.Address, id, "--url", "http://" + n.http, "--token", in.Token}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "score 10/10\n") {
				t.Errorf("mayfly report = %q, %v", out.String(), err)
			}
		})
	}
}

func getReportJSON(t *testing.T, url, token string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// sameJSON compares two JSON documents as values.
func sameJSON(t *testing.T, a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}
