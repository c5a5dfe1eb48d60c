package submission

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
)

// TestAuthNeedsTLS: a remote client sees no AUTH and cannot log in until it has TLS,
// by STARTTLS or on the implicit-TLS listener; a client on loopback may log in in the
// clear.
func TestAuthNeedsTLS(t *testing.T) {
	st := memory(t)
	received(t, st, box, "bounce@sender.test", "Ann <"+ann+">")
	e := newEnv(t, st, setup{remote: true})

	c := dial(t, e.addr)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("EHLO before STARTTLS offers AUTH to a remote client")
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Error("EHLO does not offer STARTTLS")
	}
	err := c.Auth(sasl.NewPlainClient("", box, token(box)))
	wantCode(t, "AUTH before STARTTLS", err, 538, smtp.EnhancedCode{5, 7, 11}, "Encryption required")
	wantCode(t, "MAIL without AUTH", c.Mail(box, nil), 530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
	if got := testutil.ToFloat64(e.srv.metrics.logins.WithLabelValues(loginRefusedPlaintext)); got != 1 {
		t.Errorf("refused_plaintext logins = %v, want 1", got)
	}

	for name, dial := range map[string]func() (*smtp.Client, error){
		"starttls": func() (*smtp.Client, error) { return smtp.DialStartTLS(e.addr, clientTLS()) },
		"implicit": func() (*smtp.Client, error) { return smtp.DialTLS(e.tlsAddr, clientTLS()) },
	} {
		t.Run(name, func(t *testing.T) {
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
				t.Errorf("EHLO over TLS offers AUTH %v %q, want PLAIN and LOGIN", ok, mechs)
			}
			if err := c.Auth(sasl.NewPlainClient("", box, token(box))); err != nil {
				t.Fatalf("AUTH over TLS: %v", err)
			}
			if err := send(c, box, []string{ann}, letter(box, ann, "hi", "over TLS")); err != nil {
				t.Fatalf("send over TLS: %v", err)
			}
		})
	}

	// On loopback (the default), AUTH needs no TLS.
	e = newEnv(t, st, setup{})
	c = dial(t, e.addr)
	if ok, _ := c.Extension("AUTH"); !ok {
		t.Error("EHLO on loopback does not offer AUTH")
	}
	if err := c.Auth(sasl.NewPlainClient("", box, token(box))); err != nil {
		t.Fatalf("AUTH on loopback: %v", err)
	}
}

// TestLogin covers who may log in: the inbox's token or the admin key, PLAIN or
// LOGIN, the address with a tag or in capitals, and nobody else.
func TestLogin(t *testing.T) {
	e := newEnv(t, memory(t), setup{})
	tests := []struct {
		name string
		auth sasl.Client
		ok   bool
	}{
		{"plain token", sasl.NewPlainClient("", box, token(box)), true},
		{"plain with authz", sasl.NewPlainClient(box, box, token(box)), true},
		{"plain tag and case", sasl.NewPlainClient("", "Box+Shop@Mayfly.TEST", token(box)), true},
		{"plain admin key", sasl.NewPlainClient("", box, adminKey), true},
		{"login token", sasl.NewLoginClient(box, token(box)), true},
		{"wrong token", sasl.NewPlainClient("", box, token("other@mayfly.test")), false},
		{"empty password", sasl.NewPlainClient("", box, ""), false},
		{"other authz", sasl.NewPlainClient("other@mayfly.test", box, token(box)), false},
		{"foreign domain", sasl.NewPlainClient("", "box@example.org", keys.Tokens.Token("box@example.org")), false},
		{"not an address", sasl.NewPlainClient("", "box", token("box")), false},
		{"login wrong", sasl.NewLoginClient(box, "nope"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, e.addr)
			err := c.Auth(tt.auth)
			if tt.ok {
				if err != nil {
					t.Fatalf("Auth = %v, want success", err)
				}
				return
			}
			wantCode(t, "Auth", err, 535, smtp.EnhancedCode{5, 7, 8}, "")
		})
	}
}

// TestPolicy refuses what a throwaway address may not send, and says why.
func TestPolicy(t *testing.T) {
	eachStore(t, func(t *testing.T, st fullStore) {
		received(t, st, box, "bounce@sender.test", "Ann <"+ann+">", "Help <help@sender.test>")
		e := newEnv(t, st, setup{opts: Options{SendLimit: SendLimit{N: -1}}})

		c := login(t, e.addr, box, token(box))
		wantCode(t, "MAIL FROM another inbox", c.Mail("other@mayfly.test", nil), 553, smtp.EnhancedCode{5, 7, 1}, "is not box@mayfly.test")
		wantCode(t, "MAIL FROM a stranger", c.Mail(eve, nil), 553, smtp.EnhancedCode{5, 7, 1}, "")
		wantCode(t, "MAIL FROM <>", c.Mail("", nil), 553, smtp.EnhancedCode{5, 7, 1}, "")

		if err := c.Mail("Box+Shop@mayfly.test", nil); err != nil {
			t.Fatalf("MAIL FROM a tag form: %v", err)
		}
		err := c.Rcpt(eve, nil)
		wantCode(t, "RCPT TO a stranger", err, 550, smtp.EnhancedCode{5, 7, 1}, eve+" has not written to this inbox; a throwaway address may only reply")
		// Every correspondent: envelope sender, From, Reply-To; any case.
		for _, r := range []string{"bounce@sender.test", "ANN@Sender.Test", "help@sender.test"} {
			if err := c.Rcpt(r, nil); err != nil {
				t.Fatalf("RCPT TO correspondent %s: %v", r, err)
			}
		}
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name string
			msg  string
			code int
			enh  smtp.EnhancedCode
			want string
		}{
			{"from another address", "From: <eve@elsewhere.test>\r\nTo: <ann@sender.test>\r\n\r\nhi\r\n", 550, smtp.EnhancedCode{5, 7, 1}, "eve@elsewhere.test is not box@mayfly.test"},
			{"from another inbox of ours", "From: other@mayfly.test\r\n\r\nhi\r\n", 550, smtp.EnhancedCode{5, 7, 1}, "is not box@mayfly.test"},
			{"two from addresses", "From: box@mayfly.test, ann@sender.test\r\n\r\nhi\r\n", 550, smtp.EnhancedCode{5, 7, 1}, "alone"},
			{"two from fields", "From: box@mayfly.test\r\nFrom: box@mayfly.test\r\n\r\nhi\r\n", 550, smtp.EnhancedCode{5, 7, 1}, "one From"},
			{"no from", "Subject: hi\r\n\r\nhi\r\n", 550, smtp.EnhancedCode{5, 7, 1}, "one From"},
			{"sender of another", "From: box@mayfly.test\r\nSender: eve@elsewhere.test\r\n\r\nhi\r\n", 550, smtp.EnhancedCode{5, 7, 1}, "Sender"},
			{"broken header", "From box@mayfly.test\r\nbroken\r\n\r\nhi\r\n", 554, smtp.EnhancedCode{5, 6, 0}, "header"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := send(c, box, []string{ann}, []byte(tt.msg))
				wantCode(t, "DATA", err, tt.code, tt.enh, tt.want)
			})
		}
		if n := len(sentCopies(t, st, box)); n != 0 {
			t.Errorf("%d sent copies of refused messages", n)
		}
		if got := testutil.ToFloat64(e.srv.metrics.messages.WithLabelValues("smtp", resultNotCorrespondent)); got != 1 {
			t.Errorf("not_correspondent = %v, want 1", got)
		}
	})
}

// TestSendLimit: the N+1st message of a window gets 450 4.7.1.
func TestSendLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, st fullStore) {
		received(t, st, box, "bounce@sender.test", ann)
		e := newEnv(t, st, setup{opts: Options{SendLimit: SendLimit{N: 2, Per: time.Hour}}})
		c := login(t, e.addr, box, token(box))
		for i := range 2 {
			if err := send(c, box, []string{ann}, letter(box, ann, "hi", "one of two")); err != nil {
				t.Fatalf("message %d: %v", i+1, err)
			}
		}
		err := send(c, box, []string{ann}, letter(box, ann, "hi", "one too many"))
		wantCode(t, "third message", err, 450, smtp.EnhancedCode{4, 7, 1}, "may send to at most 2 recipients per hour (MAYFLY_SEND_LIMIT)")
		if n := len(sentCopies(t, st, box)); n != 2 {
			t.Errorf("%d sent copies, want 2", n)
		}
	})
}

// TestSize: SIZE is advertised, and a larger message gets 552 5.3.4, whether declared
// or not.
func TestSize(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	e := newEnv(t, st, setup{opts: Options{MaxMessageSize: 1000}})
	c := login(t, e.addr, box, token(box))
	if ok, size := c.Extension("SIZE"); !ok || size != "1000" {
		t.Errorf("SIZE = %v %q, want 1000", ok, size)
	}
	big := letter(box, ann, "big", strings.Repeat(strings.Repeat("x", 98)+"\r\n", 20))
	err := c.Mail(box, &smtp.MailOptions{Size: int64(len(big))})
	wantCode(t, "MAIL SIZE=2000", err, 552, smtp.EnhancedCode{5, 3, 4}, "")
	err = send(c, box, []string{ann}, big)
	wantCode(t, "DATA of 2000 bytes", err, 552, smtp.EnhancedCode{5, 3, 4}, "")
	// The session goes on.
	if err := send(c, box, []string{ann}, letter(box, ann, "small", "fits")); err != nil {
		t.Fatalf("a small message after a big one: %v", err)
	}
}

// TestSentCopy: an accepted message is stored with the inbox's mail as sent, signed,
// with the Date and Message-ID it lacked, without its Bcc, and queued.
func TestSentCopy(t *testing.T) {
	eachStore(t, func(t *testing.T, st fullStore) {
		received(t, st, box, "bounce@sender.test", ann)
		e := newEnv(t, st, setup{opts: Options{DKIM: rsaKey()}})
		c := login(t, e.addr, box, token(box))
		msg := "From: Box <box+news@mayfly.test>\nTo: Ann <ann@sender.test>\nBcc: bounce@sender.test\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n\nhello\n"
		if err := send(c, "box+news@mayfly.test", []string{ann, "bounce@sender.test"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		sent := sentCopies(t, st, box)
		if len(sent) != 1 {
			t.Fatalf("%d sent copies, want 1", len(sent))
		}
		m := sent[0]
		if m.From != "Box <box+news@mayfly.test>" || len(m.To) != 1 || m.To[0] != "Ann <ann@sender.test>" || m.Subject != "Grüße" || m.Tag != "news" {
			t.Errorf("sent copy From %q To %q Subject %q Tag %q", m.From, m.To, m.Subject, m.Tag)
		}
		if m.Envelope.From != "box+news@mayfly.test" || strings.Join(m.Envelope.Recipients, ",") != ann+",bounce@sender.test" {
			t.Errorf("sent copy envelope %+v", m.Envelope)
		}
		if m.Date.IsZero() || m.Received.IsZero() || !m.Expires.After(m.Received) {
			t.Errorf("sent copy Date %v Received %v Expires %v", m.Date, m.Received, m.Expires)
		}
		raw, err := st.Raw(ctxFor(t), box, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(raw)) != m.Size {
			t.Errorf("Size %d, raw %d bytes", m.Size, len(raw))
		}
		for _, want := range []string{"DKIM-Signature: ", "\r\nDate: ", "\r\nMessage-ID: <", "@mayfly.test>\r\n", "\r\n\r\nhello\r\n"} {
			if !bytes.Contains(raw, []byte(want)) {
				t.Errorf("sent copy lacks %q:\n%s", want, raw)
			}
		}
		if bytes.Contains(raw, []byte("Bcc:")) || bytes.Contains(raw, []byte("\n\n")) {
			t.Errorf("sent copy kept Bcc or a bare LF:\n%s", raw)
		}

		job, err := st.Next(ctxFor(t), "test", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if job.Inbox != box || job.From != "box+news@mayfly.test" || len(job.To) != 2 || !bytes.Equal(job.Raw, raw) || !job.Expires.Equal(m.Expires) {
			t.Errorf("job %+v, want the sent copy's bytes and expiry", job)
		}
	})
}

// sentCopies returns the sent messages of inbox.
func sentCopies(t testing.TB, st fullStore, inbox string) []storage.Message {
	t.Helper()
	var out []storage.Message
	for _, m := range list(t, st, inbox) {
		if m.Sent {
			out = append(out, m)
		}
	}
	return out
}

// TestShutdown: at shutdown an idle session is closed at once, and one in a
// transaction gets to finish it: its 250, then the connection closes.
func TestShutdown(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	e := newEnv(t, st, setup{})
	idle := login(t, e.addr, box, token(box))
	busy := login(t, e.addr, box, token(box))
	if err := busy.Mail(box, nil); err != nil {
		t.Fatal(err)
	}
	if err := busy.Rcpt(ann, nil); err != nil {
		t.Fatal(err)
	}
	w, err := busy.Data()
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		e.stop()
	}()
	// The idle session goes first; the busy one still has its DATA to finish.
	waitFor(t, "the idle session to be closed", func() bool { return idle.Noop() != nil })
	select {
	case <-stopped:
		t.Fatal("the server stopped with a transaction in flight")
	default:
	}
	if _, err := w.Write(letter(box, ann, "late", "in flight")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA in flight at shutdown: %v, want 250", err)
	}
	<-stopped
	if err := busy.Noop(); err == nil {
		t.Error("the session is still open after its transaction")
	}
	if n := len(sentCopies(t, st, box)); n != 1 {
		t.Errorf("%d sent copies, want the one in flight", n)
	}
}

// TestMaxConnections turns the connection over the limit away with 421.
func TestMaxConnections(t *testing.T) {
	e := newEnv(t, memory(t), setup{opts: Options{Options: limit.Options{MaxConnections: 1}}})
	dial(t, e.addr)
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 100)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 4.7.0 ") {
		t.Errorf("connection over the limit got %q, want 421", buf[:n])
	}
	if got := testutil.ToFloat64(e.srv.metrics.full); got != 1 {
		t.Errorf("refused = %v, want 1", got)
	}
}

// TestNew refuses options that cannot work.
func TestNew(t *testing.T) {
	st := memory(t)
	logger := testLogger(t)
	base := Options{Domains: []string{"mayfly.test"}, Keys: keys}
	tests := []struct {
		name   string
		change func(*Options)
	}{
		{"no keys", func(o *Options) { o.Keys = storage.Keys{} }},
		{"no domains", func(o *Options) { o.Domains = nil }},
		{"bad relay scheme", func(o *Options) { o.Relay = mustURL(t, "http://relay.test") }},
		{"relay with a path", func(o *Options) { o.Relay = mustURL(t, "smtp://relay.test/x") }},
		{"relay with a bad port", func(o *Options) { o.Relay = mustURL(t, "smtp://relay.test:0") }},
		{"send limit without a window", func(o *Options) { o.SendLimit = SendLimit{N: 3} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.change(&o)
			if _, err := New(o, st, st, logger); err == nil {
				t.Errorf("New accepted %s", tt.name)
			}
		})
	}
	if _, err := New(base, st, nil, logger); err == nil {
		t.Error("New accepted no queue")
	}
	srv, err := New(base, st, st, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background(), ln, true); err == nil {
		t.Error("Serve with implicit TLS and no certificate succeeded")
	}
	srv.opts.TLSAddr = "127.0.0.1:0"
	if err := srv.Run(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Run with a TLS address and no certificate = %v", err)
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestBDAT: a message sent in CHUNKING's BDAT (RFC 3030), which go-smtp offers and
// hands to Data from a goroutine of its own, goes the same way as one sent with DATA.
func TestBDAT(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	e := newEnv(t, st, setup{})
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tc := textproto.NewConn(conn)
	expect := func(code int) string {
		t.Helper()
		_, msg, err := tc.ReadResponse(code)
		if err != nil {
			t.Fatalf("want %d: %v", code, err)
		}
		return msg
	}
	cmd := func(code int, line string) string {
		t.Helper()
		if err := tc.PrintfLine("%s", line); err != nil {
			t.Fatal(err)
		}
		return expect(code)
	}
	expect(220)
	if ehlo := cmd(250, "EHLO client.test"); !strings.Contains(ehlo, "CHUNKING") {
		t.Fatalf("EHLO offers no CHUNKING: %q", ehlo)
	}
	cmd(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+box+"\x00"+token(box))))
	cmd(250, "MAIL FROM:<"+box+">")
	cmd(250, "RCPT TO:<"+ann+">")
	msg := letter(box, ann, "chunked", "in two chunks")
	half := len(msg) / 2
	fmt.Fprintf(conn, "BDAT %d\r\n%s", half, msg[:half])
	expect(250)
	fmt.Fprintf(conn, "BDAT %d LAST\r\n%s", len(msg)-half, msg[half:])
	expect(250)
	if n := len(sentCopies(t, st, box)); n != 1 {
		t.Errorf("%d sent copies, want 1", n)
	}
}

// TestRunStops: Run returns nil when its context ends, even at once, before go-smtp
// has registered its listeners.
func TestRunStops(t *testing.T) {
	st := memory(t)
	srv, err := New(Options{Domains: []string{"mayfly.test"}, Keys: keys, TLS: serverTLS(), Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", DNS: testZone(t)}, st, st, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	testlib.Returned(t, done, 30*time.Second, "Run after its context ended")
}
