package submission

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/storage"
)

// verifyDKIM requires raw to carry one DKIM signature of mayfly.test that verifies
// against the key published in the test zone.
func verifyDKIM(t testing.TB, raw []byte, dnsAddr string) {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: lookupTXT(dnsAddr)})
	if err != nil {
		t.Fatalf("dkim.Verify: %v", err)
	}
	if len(vs) != 1 {
		t.Fatalf("%d DKIM signatures, want 1", len(vs))
	}
	if vs[0].Err != nil || vs[0].Domain != "mayfly.test" {
		t.Fatalf("DKIM signature of %q: %v\n%s", vs[0].Domain, vs[0].Err, raw)
	}
}

// TestDeliver sends a reply through each route a message can take, signed with each
// kind of key, and verifies what the far end got.
func TestDeliver(t *testing.T) {
	tests := []struct {
		name     string
		sink     sinkOptions
		relay    string // "smtp" or "smtps" with credentials; "" = by MX
		key      crypto.Signer
		selector string
		wantTLS  bool
		wantUser string
	}{
		{name: "mx rsa", key: rsaKey()},
		{name: "mx ed25519 starttls", sink: sinkOptions{tls: serverTLS()}, key: edKey(), selector: "ed", wantTLS: true},
		{name: "relay auth", sink: sinkOptions{user: "relay-user", pass: "relay pass"}, relay: "smtp", key: edKey(), selector: "ed", wantUser: "relay-user"},
		{name: "relay starttls auth", sink: sinkOptions{user: "relay-user", pass: "pw", tls: serverTLS()}, relay: "smtp", key: rsaKey(), wantTLS: true, wantUser: "relay-user"},
		{name: "relay smtps", sink: sinkOptions{user: "u", pass: "p", tls: serverTLS(), implicit: true}, relay: "smtps", key: rsaKey(), wantTLS: true, wantUser: "u"},
	}
	for name, open := range stores(t) {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				st := open(t)
				received(t, st, box, "bounce@sender.test", "Ann <"+ann+">")
				k := newSink(t, tt.sink)
				o := Options{DKIM: tt.key, DKIMSelector: tt.selector, OutboundPort: k.port}
				if tt.relay != "" {
					u := relayURL(t, k, tt.sink.user, tt.sink.pass)
					u.Scheme = tt.relay
					o.Relay = u
					o.RelayTLS = clientTLS()
				}
				e := newEnv(t, st, setup{opts: o})
				e.startWorkers()
				c := login(t, e.addr, box, token(box))
				if err := send(c, "box+shop@mayfly.test", []string{"ANN@sender.test"}, letter(box, ann, "Re: hello", "Thanks!")); err != nil {
					t.Fatal(err)
				}
				m := k.next(t)
				if m.from != "box+shop@mayfly.test" || !slices.Equal(m.to, []string{"ANN@sender.test"}) {
					t.Errorf("sink got MAIL FROM %q RCPT TO %q", m.from, m.to)
				}
				if m.tls != tt.wantTLS || m.user != tt.wantUser {
					t.Errorf("sink session TLS %v user %q, want %v %q", m.tls, m.user, tt.wantTLS, tt.wantUser)
				}
				verifyDKIM(t, m.data, e.dns)
				sent := sentCopies(t, st, box)
				if len(sent) != 1 {
					t.Fatalf("%d sent copies, want 1", len(sent))
				}
				raw, err := st.Raw(ctxFor(t), box, sent[0].ID)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(raw, m.data) {
					t.Errorf("the sink got other bytes than the sent copy:\n%s\n---\n%s", m.data, raw)
				}
				waitFor(t, "the delivery to be counted", func() bool {
					return testutil.ToFloat64(e.srv.metrics.delivery.WithLabelValues(deliveryDelivered)) == 1
				})
				if n := testutil.CollectAndCount(e.srv.metrics.latency); n != 1 {
					t.Errorf("latency histogram has %d series, want 1", n)
				}
				e.drained(t, st, k)
			})
		}
	}
}

// TestDeliverDomains groups recipients by domain, falls back to the domain's address
// without MX, and bounces those whose domain takes no mail, all in one bounce.
func TestDeliverDomains(t *testing.T) {
	st := memory(t)
	received(t, st, box, "x@amx.test", "Ann <"+ann+">", "Other <bob@other.test>, Null <n@nullmx.test>, Nobody <x@nosuch.test>")
	k := newSink(t, sinkOptions{})
	e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port}})
	e.startWorkers()
	c := login(t, e.addr, box, token(box))
	rcpts := []string{ann, "bob@other.test", "x@amx.test", "n@nullmx.test", "x@nosuch.test"}
	if err := send(c, box, rcpts, letter(box, ann, "all", "to everyone")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		m := k.next(t)
		got = append(got, strings.Join(m.to, ","))
	}
	sort.Strings(got)
	if want := []string{"ann@sender.test", "bob@other.test", "x@amx.test"}; !slices.Equal(got, want) {
		t.Errorf("sessions carried %q, want %q", got, want)
	}
	report := readReport(t, st, e.oneBounce(t, st))
	k.none(t)
	for _, want := range []string{
		"Final-Recipient: rfc822; n@nullmx.test", "Status: 5.1.10", "Diagnostic-Code: smtp; 556 5.1.10 nullmx.test accepts no mail (null MX)",
		"Final-Recipient: rfc822; x@nosuch.test", "Status: 5.1.2",
	} {
		if !strings.Contains(report.status, want) {
			t.Errorf("delivery status lacks %q:\n%s", want, report.status)
		}
	}
	if strings.Contains(report.status, "ann@sender.test") {
		t.Errorf("delivery status names a delivered recipient:\n%s", report.status)
	}
	if got := testutil.ToFloat64(e.srv.metrics.delivery.WithLabelValues(deliveryBounced)); got != 2 {
		t.Errorf("bounced = %v, want 2", got)
	}
}

// TestDeliverRetry: a sink that answers 451 and then 250 gets the message once, and
// the job is done.
func TestDeliverRetry(t *testing.T) {
	eachStore(t, func(t *testing.T, st fullStore) {
		received(t, st, box, "", ann)
		k := newSink(t, sinkOptions{dataReplies: []*smtp.SMTPError{{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}}})
		e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port}})
		e.startWorkers()
		c := login(t, e.addr, box, token(box))
		if err := send(c, box, []string{ann}, letter(box, ann, "retry", "again")); err != nil {
			t.Fatal(err)
		}
		k.next(t)
		waitFor(t, "the delivery to be counted", func() bool {
			return testutil.ToFloat64(e.srv.metrics.delivery.WithLabelValues(deliveryDelivered)) == 1
		})
		e.drained(t, st, k)
		if got := testutil.ToFloat64(e.srv.metrics.delivery.WithLabelValues(deliveryDeferred)); got != 1 {
			t.Errorf("deferred = %v, want 1", got)
		}
		if n := len(bounces(t, st, box)); n != 0 {
			t.Errorf("%d bounces, want none", n)
		}
	})
}

// report is a bounce taken apart.
type report struct {
	human, status, headers string
}

// readReport checks that m is a delivery status notification (RFC 3464) and returns
// its parts.
func readReport(t testing.TB, st fullStore, m storage.Message) report {
	t.Helper()
	if m.Envelope.From != "" || m.Sent {
		t.Errorf("bounce envelope sender %q, Sent %v; want empty, false", m.Envelope.From, m.Sent)
	}
	raw, err := st.Raw(ctxFor(t), m.Inbox, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("bounce does not parse: %v\n%s", err, raw)
	}
	if from := msg.Header.Get("From"); from != "Mail Delivery System <MAILER-DAEMON@mayfly.test>" {
		t.Errorf("bounce From %q", from)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("bounce Content-Type %q %v", mt, params)
	}
	types, parts := readParts(t, msg.Body, params["boundary"])
	if len(parts) != 3 || !strings.HasPrefix(types[0], "text/plain") || types[1] != "message/delivery-status" || types[2] != "text/rfc822-headers" {
		t.Fatalf("bounce parts %q", types)
	}
	return report{human: parts[0], status: parts[1], headers: parts[2]}
}

// drained stops the workers and requires the queue empty and nothing more at k.
func (e *env) drained(t testing.TB, q storage.Queue, k *sink) {
	t.Helper()
	e.stopWorkers()
	queueEmpty(t, q)
	k.none(t)
}

// oneBounce waits for a bounce in box, stops the workers, requires the queue empty
// and the bounce alone, and returns it.
func (e *env) oneBounce(t testing.TB, st fullStore) storage.Message {
	t.Helper()
	waitFor(t, "a bounce", func() bool { return len(bounces(t, st, box)) > 0 })
	e.stopWorkers()
	queueEmpty(t, st)
	bs := bounces(t, st, box)
	if len(bs) != 1 {
		t.Fatalf("%d bounces, want 1", len(bs))
	}
	return bs[0]
}

// readParts returns the Content-Type and the decoded body of each part of a multipart
// body.
func readParts(t testing.TB, body io.Reader, boundary string) (types, parts []string) {
	t.Helper()
	mr := multipart.NewReader(body, boundary)
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return types, parts
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, string(b))
		types = append(types, p.Header.Get("Content-Type"))
	}
}

// TestDeliverBounce: a sink answering 550 makes one bounce in the inbox, which says
// who, why, and what was sent; the bounce's sender is no correspondent.
func TestDeliverBounce(t *testing.T) {
	eachStore(t, func(t *testing.T, st fullStore) {
		received(t, st, box, "", ann)
		k := newSink(t, sinkOptions{rcptReply: map[string]*smtp.SMTPError{ann: {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}}})
		e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port}})
		e.startWorkers()
		c := login(t, e.addr, box, token(box))
		if err := send(c, box, []string{ann}, letter(box, ann, "Hello Ann", "are you there?")); err != nil {
			t.Fatal(err)
		}
		r := readReport(t, st, e.oneBounce(t, st))
		for _, want := range []string{
			"Reporting-MTA: dns; mail.mayfly.test", "Final-Recipient: rfc822; ann@sender.test", "Action: failed",
			"Status: 5.1.1", "Remote-MTA: dns; mx.sender.test", "Diagnostic-Code: smtp; 550 5.1.1 no such user here",
		} {
			if !strings.Contains(r.status, want) {
				t.Errorf("delivery status lacks %q:\n%s", want, r.status)
			}
		}
		if !strings.Contains(r.human, "<ann@sender.test>: host mx.sender.test said: 550 5.1.1 no such user here") {
			t.Errorf("human part:\n%s", r.human)
		}
		if !strings.Contains(r.headers, "Subject: Hello Ann") || strings.Contains(r.headers, "are you there") {
			t.Errorf("returned header:\n%s", r.headers)
		}
		// Replying to the bounce goes nowhere.
		c = login(t, e.addr, box, token(box))
		if err := c.Mail(box, nil); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "RCPT TO our MAILER-DAEMON", c.Rcpt("MAILER-DAEMON@mayfly.test", nil), 550, smtp.EnhancedCode{5, 7, 1}, "has not written")
	})
}

// TestDeliverExpiry: a recipient deferred until the message expires is bounced with
// the last reason it was deferred.
func TestDeliverExpiry(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	always451 := make([]*smtp.SMTPError, 1000)
	for i := range always451 {
		always451[i] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	}
	k := newSink(t, sinkOptions{dataReplies: always451})
	e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port, TTL: 2 * time.Second, Backoff: 50 * time.Millisecond}})
	e.startWorkers()
	c := login(t, e.addr, box, token(box))
	if err := send(c, box, []string{ann}, letter(box, ann, "full", "still?")); err != nil {
		t.Fatal(err)
	}
	var b storage.Message
	waitFor(t, "a bounce", func() bool {
		bs := bounces(t, st, box)
		if len(bs) > 0 {
			b = bs[0]
		}
		return len(bs) > 0
	})
	r := readReport(t, st, b)
	for _, want := range []string{"Status: 5.4.7", "Diagnostic-Code: smtp; 451 4.2.2 mailbox full"} {
		if !strings.Contains(r.status, want) {
			t.Errorf("delivery status lacks %q:\n%s", want, r.status)
		}
	}
	e.stopWorkers()
	queueEmpty(t, st)
	if got := testutil.ToFloat64(e.srv.metrics.delivery.WithLabelValues(deliveryBounced)); got != 1 {
		t.Errorf("bounced = %v, want 1", got)
	}
}

// TestRoute resolves the hosts of a domain through the test zone.
func TestRoute(t *testing.T) {
	st := memory(t)
	srv, err := New(Options{Domains: []string{"mayfly.test"}, Keys: keys, DNS: testZone(t)}, st, st, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		domain string
		hosts  []string
		kind   outcomeKind
		status string
	}{
		{"sender.test", []string{"mx.sender.test"}, 0, ""},
		{"Sender.Test.", []string{"mx.sender.test"}, 0, ""},
		{"amx.test", []string{"amx.test"}, 0, ""},
		{"nullmx.test", nil, permanent, "5.1.10"},
		{"nosuch.test", nil, permanent, "5.1.2"},
	}
	for _, tt := range tests {
		hosts, fail := srv.route(context.Background(), tt.domain)
		if !slices.Equal(hosts, tt.hosts) {
			t.Errorf("route(%q) = %q, want %q", tt.domain, hosts, tt.hosts)
		}
		if (fail == nil) != (tt.kind == 0) || fail != nil && (fail.kind != tt.kind || fail.status != tt.status) {
			t.Errorf("route(%q) failure = %+v, want kind %d status %q", tt.domain, fail, tt.kind, tt.status)
		}
	}
}

// TestBackoff doubles from Backoff up to an hour.
func TestBackoff(t *testing.T) {
	s := &Server{opts: Options{Backoff: time.Minute}}
	for _, tt := range []struct {
		attempts int
		want     time.Duration
	}{{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {7, time.Hour}, {100, time.Hour}} {
		if got := s.backoff(tt.attempts); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.attempts, got, tt.want)
		}
	}
}
