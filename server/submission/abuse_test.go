package submission

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// victims are the 500 addresses of a Reply-To that would turn one reply into spam;
// sender.test's MX is the sink.
var victims = func() []string {
	v := make([]string, 500)
	for i := range v {
		v[i] = fmt.Sprintf("victim%d@sender.test", i)
	}
	return v
}()

// TestSpamCannonSubmission: a mail whose Reply-To names 500 addresses gets a reply to
// 10 at most over submission, the 11th RCPT answered 452 4.5.3 naming the setting;
// and the send limit counts recipients, not messages.
func TestSpamCannonSubmission(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			received(t, st, box, "bounce@sender.test", "Ann <"+ann+">", victims...)
			k := newSink(t, sinkOptions{})
			e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port, SendLimit: SendLimit{N: 25, Per: time.Hour}}})
			e.startWorkers()
			c := login(t, e.addr, box, token(box))
			if err := c.Mail(box, nil); err != nil {
				t.Fatal(err)
			}
			for i, v := range victims[:20] {
				err := c.Rcpt(v, nil)
				if i < 10 {
					if err != nil {
						t.Fatalf("RCPT %d: %v", i+1, err)
					}
					continue
				}
				wantCode(t, fmt.Sprintf("RCPT %d", i+1), err, 452, smtp.EnhancedCode{4, 5, 3}, "at most 10 (MAYFLY_MAX_REPLY_RECIPIENTS)")
			}
			// Named again, an accepted recipient is no new one.
			if err := c.Rcpt(strings.ToUpper(victims[0]), nil); err != nil {
				t.Errorf("RCPT of an accepted recipient again: %v", err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			w.Write(letter(box, victims[0], "Re: hi", "to ten"))
			if err := w.Close(); err != nil {
				t.Fatalf("DATA: %v", err)
			}
			m := k.next(t)
			if len(m.to) != 10 || !slices.Equal(m.to, victims[:10]) {
				t.Errorf("the sink got the reply for %d recipients %q, want the first 10", len(m.to), m.to)
			}
			// 10 of 25 counted; 10 more make 20; the next 10 would make 30.
			if err := send(c, box, victims[10:20], letter(box, victims[10], "Re: hi", "ten more")); err != nil {
				t.Fatalf("second reply to 10: %v", err)
			}
			k.next(t)
			err = send(c, box, victims[20:30], letter(box, victims[20], "Re: hi", "ten too many"))
			wantCode(t, "third reply to 10", err, 450, smtp.EnhancedCode{4, 7, 1}, "at most 25 recipients per hour (MAYFLY_SEND_LIMIT)")
			if err := send(c, box, victims[20:25], letter(box, victims[20], "Re: hi", "five more")); err == nil {
				t.Error("the refused reply's recipients were not counted: five more got through")
			}
		})
	}
}

// TestSpamCannonReply: Reply, which the HTTP route calls, refuses a reply to more than
// MaxRecipients addresses rather than send it to them all.
func TestSpamCannonReply(t *testing.T) {
	st := memory(t)
	orig := received(t, st, box, "bounce@sender.test", "Ann <"+ann+">", victims...)
	k := newSink(t, sinkOptions{})
	e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port}})
	e.startWorkers()
	_, err := e.srv.Reply(ctxFor(t), testClient, box, orig.ID, "hi all", "")
	if !errors.Is(err, ErrTooManyRecipients) || !strings.Contains(err.Error(), "MAYFLY_MAX_REPLY_RECIPIENTS") {
		t.Fatalf("Reply to 500: %v, want ErrTooManyRecipients naming the setting", err)
	}
	ten := received(t, st, box, "bounce@sender.test", "Ann <"+ann+">", victims[:10]...)
	if _, err := e.srv.Reply(ctxFor(t), testClient, box, ten.ID, "hi ten", ""); err != nil {
		t.Fatalf("Reply to 10: %v", err)
	}
	if m := k.next(t); len(m.to) != 10 {
		t.Errorf("the sink got a reply to %d, want 10", len(m.to))
	}
	k.none(t)
}

// authZone serves what the proof of a correspondent needs: sender.test passes SPF for
// loopback, signed.test publishes the DKIM key "ed", nospf.test and forged.test
// publish nothing; every MX is the sink on loopback.
func authZone(t *testing.T) string {
	return dnstest.ZoneServer(t, []dns.RR{
		rr(t, "test. 60 IN SOA ns.test. admin.test. 1 60 60 60 60"),
		rr(t, "sender.test. 60 IN MX 10 mx.sender.test."),
		rr(t, "other.test. 60 IN MX 10 mx.sender.test."),
		rr(t, "signed.test. 60 IN MX 10 mx.sender.test."),
		rr(t, "mx.sender.test. 60 IN A 127.0.0.1"),
		txt("sender.test", "v=spf1 ip4:127.0.0.1 -all"),
		txt("ed._domainkey.signed.test", dkimRecord(edKey())),
		txt("ed._domainkey.mayfly.test", dkimRecord(edKey())),
	})
}

// receiveVerified puts msg into box as the receiver does with verification on: the
// verdicts of mailauth over real DNS, its Authentication-Results prepended.
func receiveVerified(t *testing.T, st fullStore, dnsAddr, envFrom string, msg []byte) *storage.Message {
	t.Helper()
	v, err := mailauth.New(mailauth.Options{AuthservID: "mail.mayfly.test", DNS: dnsAddr})
	if err != nil {
		t.Fatal(err)
	}
	res := v.Verify(ctxFor(t), mailauth.Input{RemoteIP: net.IPv4(127, 0, 0, 1), Helo: "mx.sender.test", MailFrom: envFrom, Message: msg})
	raw := append(res.Header, msg...)
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m := &storage.Message{
		Inbox: box, Envelope: storage.Envelope{From: envFrom, Recipients: []string{box}, RemoteIP: "127.0.0.1", Helo: "mx.sender.test"},
		From: h.Get("From"), Subject: h.Get("Subject"), Auth: res.Verdicts,
		Received: now, Expires: now.Add(time.Hour), Raw: raw, Size: int64(len(raw)),
	}
	if r := h.Get("Reply-To"); r != "" {
		m.ReplyTo = []string{r}
	}
	if err := st.Put(ctxFor(t), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCorrespondentsNeedProof: with verification on, an address is a correspondent
// only when the mail naming it proved it: the envelope sender that passed SPF, but
// not the unauthenticated From: and Reply-To: of that same mail; a From: with an
// aligned DKIM signature, and its Reply-To:, but not that mail's envelope sender
// without SPF. With verification off, the envelope sender alone.
func TestCorrespondentsNeedProof(t *testing.T) {
	zone := authZone(t)
	st := memory(t)
	spfOnly := receiveVerified(t, st, zone, "bounce@sender.test",
		[]byte("From: Ann <ann@forged.test>\r\nReply-To: victim@other.test\r\nTo: box@mayfly.test\r\nSubject: spf only\r\nMessage-ID: <a@x>\r\n\r\nhi\r\n"))
	if spfOnly.Auth.SPF != "pass" || spfOnly.Auth.FromAligned || spfOnly.Auth.DMARC == "pass" {
		t.Fatalf("the SPF-only mail was judged %+v", spfOnly.Auth)
	}
	var signed bytes.Buffer
	err := dkim.Sign(&signed, strings.NewReader("From: Bob <bob@signed.test>\r\nReply-To: help@other.test\r\nTo: box@mayfly.test\r\nSubject: signed\r\nMessage-ID: <b@x>\r\n\r\nhi\r\n"),
		&dkim.SignOptions{Domain: "signed.test", Selector: "ed", Signer: edKey()})
	if err != nil {
		t.Fatal(err)
	}
	dkimOnly := receiveVerified(t, st, zone, "list@nospf.test", signed.Bytes())
	if dkimOnly.Auth.DKIM != "pass" || !dkimOnly.Auth.FromAligned || dkimOnly.Auth.SPF == "pass" {
		t.Fatalf("the signed mail was judged %+v", dkimOnly.Auth)
	}

	k := newSink(t, sinkOptions{})
	e := newEnv(t, st, setup{opts: Options{DNS: zone, OutboundPort: k.port}})
	c := login(t, e.addr, box, token(box))
	if err := c.Mail(box, nil); err != nil {
		t.Fatal(err)
	}
	for addr, ok := range map[string]bool{
		"bounce@sender.test": true, "ann@forged.test": false, "victim@other.test": false,
		"bob@signed.test": true, "help@other.test": true, "list@nospf.test": false,
	} {
		err := c.Rcpt(addr, nil)
		if ok && err != nil {
			t.Errorf("RCPT %s: %v, want it accepted", addr, err)
		}
		if !ok {
			wantCode(t, "RCPT "+addr, err, 550, smtp.EnhancedCode{5, 7, 1}, "has not written to this inbox")
		}
	}
	if _, err := e.srv.Reply(ctxFor(t), testClient, box, spfOnly.ID, "hi", ""); !errors.Is(err, ErrNotCorrespondent) {
		t.Errorf("Reply to the unproved Reply-To: %v, want ErrNotCorrespondent", err)
	}

	// Verification off: whoever gave the envelope sender, nobody else; the log says so.
	c.Quit() // a transaction left open would hold the shutdown for its timeout
	e.stop()
	var logs syncBuf
	e = newEnv(t, st, setup{opts: Options{DNS: zone, OutboundPort: k.port, Unverified: true}, logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "replies are unverified") {
		t.Errorf("no start-up line says replies are unverified:\n%s", logs.String())
	}
	c = login(t, e.addr, box, token(box))
	if err := c.Mail(box, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("list@nospf.test", nil); err != nil {
		t.Errorf("unverified: RCPT to an envelope sender: %v", err)
	}
	wantCode(t, "unverified: RCPT to a From", c.Rcpt("bob@signed.test", nil), 550, smtp.EnhancedCode{5, 7, 1}, "has not written")
}

// rawSession logs in over a plain socket and runs MAIL, RCPT and DATA with body
// written as it is, the dots and line ends a client library would fix included; it
// returns the reply to the end of DATA.
func rawSession(t *testing.T, addr string, body string) string {
	t.Helper()
	conn := testlib.Dial(t, addr).Conn
	tp := textproto.NewConn(conn)
	step := func(code int, format string, args ...any) {
		t.Helper()
		if format != "" {
			if err := tp.PrintfLine(format, args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, msg, err := tp.ReadResponse(code); err != nil {
			t.Fatalf("%q: %v %s", format, err, msg)
		}
	}
	step(220, "")
	step(250, "EHLO client.test")
	step(235, "AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00"+box+"\x00"+token(box))))
	step(250, "MAIL FROM:<%s>", box)
	step(250, "RCPT TO:<%s>", ann)
	step(354, "DATA")
	if _, err := conn.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	line, err := tp.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// TestBareLineEndsRefused: SMTP smuggling outbound. A submitted body with a bare CR
// or LF ("\r.\r", "\n.\n" ends a message for some receivers, and what follows reads as
// a second one) is refused with 554 5.6.0 and never queued; an API reply with a bare
// CR is refused too.
func TestBareLineEndsRefused(t *testing.T) {
	st := memory(t)
	orig := received(t, st, box, "", "Ann <"+ann+">")
	k := newSink(t, sinkOptions{})
	e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port, SendLimit: SendLimit{N: -1}}})
	e.startWorkers()
	head := "From: <" + box + ">\r\nTo: <" + ann + ">\r\nSubject: hi\r\n\r\n"
	smuggled := "MAIL FROM:<ceo@bank.test>\r\nRCPT TO:<" + ann + ">\r\nDATA\r\nFrom: ceo@bank.test\r\n\r\nwire the money\r\n"
	for name, body := range map[string]string{
		"bare CR":        head + "hello\r.\r" + smuggled + ".\r\n",
		"bare LF":        head + "hello\n.\n" + smuggled + ".\r\n",
		"LF then CRLF":   head + "hello\n.\r\n" + smuggled + ".\r\n",
		"CRLF then LF":   head + "hello\r\n.\n" + smuggled + ".\r\n",
		"bare LF header": "From: <" + box + ">\nTo: <" + ann + ">\r\n\r\nhello\r\n.\r\n",
	} {
		if got := rawSession(t, e.addr, body); !strings.HasPrefix(got, "554 5.6.0 ") {
			t.Errorf("%s: the end of DATA got %q, want 554 5.6.0", name, got)
		}
	}
	if _, err := e.srv.Reply(ctxFor(t), testClient, box, orig.ID, "hello\r.\r"+smuggled, ""); !errors.Is(err, ErrBareLineEnd) {
		t.Errorf("Reply with a bare CR: %v, want ErrBareLineEnd", err)
	}
	// The next message is the first the sink gets: none of the above was queued.
	if got := rawSession(t, e.addr, head+"a clean one\r\n.\r\n"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("a clean message got %q", got)
	}
	if m := k.next(t); !bytes.Contains(m.data, []byte("a clean one")) || bytes.Contains(m.data, []byte("wire the money")) {
		t.Errorf("the sink got:\n%s", m.data)
	}
	k.none(t)
}

// TestSpoofingDisplayName: a From: whose display name holds an address is refused
// with 550 5.7.1, whatever its spelling.
func TestSpoofingDisplayName(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", "Ann <"+ann+">")
	e := newEnv(t, st, setup{opts: Options{SendLimit: SendLimit{N: -1}}})
	c := login(t, e.addr, box, token(box))
	for _, from := range []string{
		`"PayPal <security@paypal.example>" <` + box + `>`,
		`"security@paypal.example" <` + box + `>`,
		`=?utf-8?q?security=40paypal.example?= <` + box + `>`,
		`"security＠paypal.example" <` + box + `>`,
	} {
		msg := "From: " + from + "\r\nTo: <" + ann + ">\r\nSubject: hi\r\n\r\nhi\r\n"
		wantCode(t, from, send(c, box, []string{ann}, []byte(msg)), 550, smtp.EnhancedCode{5, 7, 1}, "holds an address")
	}
	if err := send(c, box, []string{ann}, []byte("From: \"Box Owner\" <"+box+">\r\nTo: <"+ann+">\r\nSubject: hi\r\n\r\nhi\r\n")); err != nil {
		t.Errorf("a plain display name: %v", err)
	}
}

// TestNoPrivateMX: direct delivery to an MX on 127.0.0.1 is refused and bounced,
// naming the setting; with AllowPrivate (every other test) it is delivered; the
// configured relay is the operator's choice and stays allowed on loopback.
func TestNoPrivateMX(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", "Ann <"+ann+">")
	k := newSink(t, sinkOptions{})
	// reply sends a reply with body through e's workers.
	reply := func(e *env, body string) {
		t.Helper()
		e.startWorkers()
		c := login(t, e.addr, box, token(box))
		if err := send(c, box, []string{ann}, letter(box, ann, "Re: hi", body)); err != nil {
			t.Fatal(err)
		}
	}
	// relayed is reply, and requires the sink to get it.
	relayed := func(e *env, body string) {
		t.Helper()
		reply(e, body)
		if m := k.next(t); !bytes.Contains(m.data, []byte(body)) {
			t.Errorf("the sink got:\n%s", m.data)
		}
	}
	e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port, SendLimit: SendLimit{N: -1}}, publicOnly: true})
	reply(e, "to a private MX")
	waitFor(t, "a bounce", func() bool { return len(bounces(t, st, box)) == 1 })
	raw, err := st.Raw(ctxFor(t), box, bounces(t, st, box)[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"127.0.0.1 is not a public address", "MAYFLY_OUTBOUND_ALLOW_PRIVATE", "5.4.4"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("the bounce lacks %q:\n%s", want, raw)
		}
	}
	k.none(t)
	e.stop()

	e = newEnv(t, st, setup{opts: Options{OutboundPort: k.port, SendLimit: SendLimit{N: -1}}})
	relayed(e, "allowed")
	e.stop()

	e = newEnv(t, st, setup{opts: Options{Relay: relayURL(t, k, "", ""), SendLimit: SendLimit{N: -1}}, publicOnly: true})
	relayed(e, "by the relay")
}

// TestSharedSendLimits: two servers on one Redis share the per-inbox, per-client and
// service-wide counts, so spreading replies over nodes, or over inboxes, gains nothing.
func TestSharedSendLimits(t *testing.T) {
	url := redisURL(t)
	prefix := redisPrefix()
	stA, stB := redisStore(t, url, prefix), redisStore(t, url, prefix)
	other := "other@mayfly.test"
	received(t, stA, box, "bounce@sender.test", "Ann <"+ann+">", victims[:10]...)
	received(t, stA, other, "bounce@sender.test", "Ann <"+ann+">", victims[:10]...)
	k := newSink(t, sinkOptions{})
	newNode := func(st fullStore, o Options) *env {
		o.OutboundPort = k.port
		return newEnv(t, st, setup{opts: o})
	}

	// The inbox's count: 6 on node A, then 6 on node B is over 10.
	a := newNode(stA, Options{SendLimit: SendLimit{N: 10, Per: time.Hour}, ClientSendLimit: SendLimit{N: -1}, OutboundRate: SendLimit{N: -1}})
	b := newNode(stB, Options{SendLimit: SendLimit{N: 10, Per: time.Hour}, ClientSendLimit: SendLimit{N: -1}, OutboundRate: SendLimit{N: -1}})
	if err := send(login(t, a.addr, box, token(box)), box, victims[:6], letter(box, victims[0], "hi", "six")); err != nil {
		t.Fatalf("node A: %v", err)
	}
	wantCode(t, "node B, same inbox", send(login(t, b.addr, box, token(box)), box, victims[:6], letter(box, victims[0], "hi", "six more")),
		450, smtp.EnhancedCode{4, 7, 1}, "MAYFLY_SEND_LIMIT")
	a.stop()
	b.stop()

	// The client's count, over two inboxes and two nodes.
	a = newNode(stA, Options{SendLimit: SendLimit{N: -1}, ClientSendLimit: SendLimit{N: 10, Per: time.Hour}, OutboundRate: SendLimit{N: -1}})
	b = newNode(stB, Options{SendLimit: SendLimit{N: -1}, ClientSendLimit: SendLimit{N: 10, Per: time.Hour}, OutboundRate: SendLimit{N: -1}})
	if err := send(login(t, a.addr, box, token(box)), box, victims[:6], letter(box, victims[0], "hi", "six")); err != nil {
		t.Fatalf("node A: %v", err)
	}
	wantCode(t, "node B, another inbox, same client", send(login(t, b.addr, other, token(other)), other, victims[:6], letter(other, victims[0], "hi", "six more")),
		450, smtp.EnhancedCode{4, 7, 1}, "your address may send to at most 10 recipients per hour (MAYFLY_CLIENT_SEND_LIMIT)")
	// Another client (over the API, from elsewhere) is not held to this one's count.
	orig := list(t, stA, other)[0]
	if _, err := b.srv.Reply(ctxFor(t), testClient, other, orig.ID, "from elsewhere", ""); err != nil {
		t.Errorf("another client's reply: %v", err)
	}
	a.stop()
	b.stop()

	// The service's count, over clients and nodes.
	a = newNode(stA, Options{SendLimit: SendLimit{N: -1}, ClientSendLimit: SendLimit{N: -1}, OutboundRate: SendLimit{N: 10, Per: time.Hour}})
	b = newNode(stB, Options{SendLimit: SendLimit{N: -1}, ClientSendLimit: SendLimit{N: -1}, OutboundRate: SendLimit{N: 10, Per: time.Hour}})
	if err := send(login(t, a.addr, box, token(box)), box, victims[:6], letter(box, victims[0], "hi", "six")); err != nil {
		t.Fatalf("node A: %v", err)
	}
	_, err := b.srv.Reply(ctxFor(t), testClient, other, orig.ID, "from elsewhere", "")
	if !errors.Is(err, ErrSendLimit) || !strings.Contains(err.Error(), "MAYFLY_OUTBOUND_RATE") {
		t.Errorf("node B, another client: %v, want the service's limit", err)
	}
}

// redisURL is the test Redis, or a skip (a failure where Redis is required).
func redisURL(t *testing.T) string {
	url := storetest.RedisURL(t)
	if url == "" {
		t.Skip("no Redis: set MAYFLY_TEST_REDIS_URL")
	}
	return url
}

type syncBuf = testlib.SyncBuffer

// TestClientSendLimitByPrefix: the per-client count takes an IPv6 client by its /64,
// as every per-client limit does, and an IPv4 client by its address.
func TestClientSendLimitByPrefix(t *testing.T) {
	st := memory(t)
	orig := received(t, st, box, "bounce@sender.test", "Ann <"+ann+">", victims[:5]...)
	e := newEnv(t, st, setup{opts: Options{SendLimit: SendLimit{N: -1}, ClientSendLimit: SendLimit{N: 10, Per: time.Hour}}})
	reply := func(client string) error {
		_, err := e.srv.Reply(ctxFor(t), netip.MustParseAddr(client), box, orig.ID, "hi", "")
		return err
	}
	for _, c := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if err := reply(c); err != nil {
			t.Fatalf("reply to 5 from %s: %v", c, err)
		}
	}
	if err := reply("2001:db8:1:2::77"); !errors.Is(err, ErrSendLimit) || !strings.Contains(err.Error(), "MAYFLY_CLIENT_SEND_LIMIT") {
		t.Errorf("a third reply to 5 from the same /64: %v, want the client's limit", err)
	}
	if err := reply("2001:db8:1:3::1"); err != nil {
		t.Errorf("another /64: %v", err)
	}
	if err := reply("192.0.2.1"); err != nil {
		t.Errorf("an IPv4 client: %v", err)
	}
	if err := reply("192.0.2.2"); err != nil {
		t.Errorf("another IPv4 client: %v", err)
	}
}
