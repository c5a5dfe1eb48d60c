package httpapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/report"
	"github.com/mayfly-mail/mayfly/storage"
)

func newReporter(t *testing.T, records ...string) *report.Reporter {
	t.Helper()
	var rrs []dns.RR
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	res, err := dnsclient.New(dnsclient.Options{Server: dnstest.ZoneServer(t, rrs), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v, err := mailauth.New(mailauth.Options{AuthservID: "mx.mayfly.test", Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.New(report.Options{Verifier: v, Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReportRoute: GET .../messages/{id}/report answers the report of a stored
// message (its envelope from the store), with the inbox's token only, on every store.
func TestReportRoute(t *testing.T) {
	rep := newReporter(t,
		"1.0.0.127.in-addr.arpa. 300 IN PTR mail.good.test.",
		"mail.good.test. 300 IN A 127.0.0.1",
		"good.test. 300 IN MX 10 mail.good.test.",
		`good.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`_mta-sts.good.test. 300 IN TXT "v=STSv1; id=1"`,
		`_smtp._tls.good.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:tls@good.test"`,
		`default._bimi.good.test. 300 IN TXT "v=BIMI1; l=https://good.test/l.svg"`,
	)
	eachEnv(t, Options{Reporter: rep}, func(t *testing.T, e *env, box createResponse) {
		raw := "From: News <news@good.test>\r\nTo: " + box.Address + "\r\nSubject: hi\r\nDate: Mon, 07 Dec 2026 08:00:00 +0000\r\nMessage-ID: <1@good.test>\r\n\r\nHello.\r\n"
		now := time.Now()
		m := &storage.Message{
			Inbox: box.Address, Subject: "hi", Received: now, Expires: now.Add(time.Hour), Raw: []byte(raw), Size: int64(len(raw)),
			Envelope: storage.Envelope{From: "news@good.test", Recipients: []string{box.Address}, RemoteIP: "127.0.0.1", Helo: "mail.good.test"},
		}
		if err := e.store.Put(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		path := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID + "/report"
		r := e.do("GET", path, box.Token, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET report: %d %s", r.status, r.body)
		}
		var got report.Report
		r.json(t, &got)
		// Unsigned: DKIM is the one thing missing, and costs its points.
		byID := map[string]report.Check{}
		lost := 0.0
		for _, c := range got.Checks {
			byID[c.ID] = c
			lost += c.Points
		}
		if got.Score != 8.5 || byID["dkim"].Status != report.Fail || byID["dkim"].Points != 1.5 || lost != 1.5 {
			t.Errorf("score %v, dkim %+v, %v points lost; want 8.5, dkim fail 1.5\n%s", got.Score, byID["dkim"], lost, r.body)
		}
		for _, id := range []string{"spf", "dmarc", "rdns", "fcrdns", "helo", "mx", "spf-record", "dmarc-policy", "mta-sts", "tls-rpt", "bimi", "text-part", "message-id", "date"} {
			if byID[id].Status != report.Pass || byID[id].Category == "" || byID[id].Detail == "" {
				t.Errorf("%s = %+v, want pass", id, byID[id])
			}
		}
		if c := byID["rspamd"]; c.Status != report.Info {
			t.Errorf("rspamd = %+v, want not run", c)
		}
		if again := e.do("GET", path, box.Token, nil); string(again.body) != string(r.body) {
			t.Errorf("second report differs:\n%s\n%s", r.body, again.body)
		}
		// A report is no read: burn-after-read leaves the message.
		if r := e.patch("/api/v1/inboxes/"+box.Address, box.Token, `{"burn_after_read": true}`); r.status != http.StatusOK {
			t.Fatalf("PATCH burn_after_read: %d %s", r.status, r.body)
		}
		e.do("GET", path, box.Token, nil)
		if r := e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+m.ID, box.Token, nil); r.status != http.StatusOK {
			t.Errorf("after the report under burn-after-read, GET message = %d", r.status)
		}
		if r := e.do("GET", path, "", nil); r.status != http.StatusUnauthorized {
			t.Errorf("without token: %d, want 401", r.status)
		}
		if r := e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/nosuch/report", box.Token, nil); r.status != http.StatusNotFound {
			t.Errorf("no such message: %d, want 404", r.status)
		}
	})
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		m := e.deliver(box.Address, "Subject: x\r\n\r\nx\r\n")
		if r := e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+m.ID+"/report", box.Token, nil); r.status != http.StatusNotImplemented {
			t.Errorf("without a reporter: %d %s, want 501", r.status, r.body)
		}
	})
}
