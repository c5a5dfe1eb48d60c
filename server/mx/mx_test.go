package mx

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

func testLogger(t testing.TB) *slog.Logger { return slog.New(slog.DiscardHandler) }

// start runs a receiver on a free loopback port until the test ends.
func start(t testing.TB, opts Options, st store) string {
	t.Helper()
	if opts.Hostname == "" {
		opts.Hostname = "mx.mayfly.test"
	}
	if opts.Domains == nil {
		opts.Domains = []string{"mayfly.test", "Other.Example"}
	}
	srv := New(opts, st, testLogger(t))
	addr, _ := testlib.Serve(t, srv.Serve)
	// Connections wait in the listener's backlog until go-guerrilla accepts them.
	return addr
}

func dial(t *testing.T, addr string) *smtp.Client { return testlib.DialSMTP(t, addr) }

func wantCode(t *testing.T, what string, err error, code int, enhanced smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enhanced {
		t.Errorf("%s: %v, want %d %v", what, err, code, enhanced)
	}
}

func send(c *smtp.Client, body string) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	return w.Close()
}

const multipartMail = testlib.MultipartMail

func TestReceive(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		addr := start(t, Options{TTL: 30 * time.Minute, MaxMessageSize: 64 << 10}, st)
		c := dial(t, addr)
		if err := c.Mail("sender@sender.test", nil); err != nil {
			t.Fatal(err)
		}
		for _, rcpt := range []string{"a@mayfly.test", "B+News@Mayfly.TEST", "c@other.example", "A@MAYFLY.test"} {
			if err := c.Rcpt(rcpt, nil); err != nil {
				t.Fatalf("Rcpt(%q): %v", rcpt, err)
			}
		}
		wantCode(t, "Rcpt on a foreign domain", c.Rcpt("x@foreign.test", nil), 550, smtp.EnhancedCode{5, 7, 1})
		wantCode(t, "Rcpt on a subdomain", c.Rcpt("x@sub.mayfly.test", nil), 550, smtp.EnhancedCode{5, 7, 1})
		before := time.Now()
		if err := send(c, multipartMail); err != nil {
			t.Fatalf("DATA: %v", err)
		}
		ctx := t.Context()

		a := only(t, st, "a@mayfly.test")
		b := only(t, st, "b@mayfly.test")
		other := only(t, st, "c@other.example")
		if !slices.Equal(a.Envelope.Recipients, []string{"a@mayfly.test", "A@MAYFLY.test"}) {
			t.Errorf("a's envelope recipients = %q, want both spellings", a.Envelope.Recipients)
		}
		if b.Tag != "News" || !slices.Equal(b.Envelope.Recipients, []string{"B+News@Mayfly.TEST"}) {
			t.Errorf("b: tag %q, recipients %q; want tag News", b.Tag, b.Envelope.Recipients)
		}
		if other.Tag != "" {
			t.Errorf("c's tag = %q, want none", other.Tag)
		}
		for _, m := range []*storage.Message{a, b, other} {
			if m.Envelope.From != "sender@sender.test" || m.Envelope.RemoteIP != "127.0.0.1" || m.Envelope.Helo != "client.test" {
				t.Errorf("%s: envelope %+v", m.Inbox, m.Envelope)
			}
			if m.Subject != "Café au lait" || m.From != "Zoé <zoe@sender.test>" || !m.HasAttachments {
				t.Errorf("%s: subject %q, from %q, attachments %v", m.Inbox, m.Subject, m.From, m.HasAttachments)
			}
			if !slices.Equal(m.To, []string{"a@mayfly.test", "Bee <b+news@mayfly.test>"}) {
				t.Errorf("%s: To %q", m.Inbox, m.To)
			}
			if want := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
				t.Errorf("%s: Date %v, want %v", m.Inbox, m.Date, want)
			}
			if m.Received.Before(before.Add(-time.Second)) || m.Expires.Sub(m.Received) < 30*time.Minute-time.Millisecond || m.Expires.Sub(m.Received) > 30*time.Minute+time.Millisecond {
				t.Errorf("%s: received %v, expires %v; want a 30m lifetime", m.Inbox, m.Received, m.Expires)
			}
			raw, err := st.Raw(ctx, m.Inbox, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(raw, []byte(multipartMail)) {
				t.Errorf("%s: stored bytes do not end with the message as sent:\n%s", m.Inbox, raw)
			}
			trace := string(raw[:len(raw)-len(multipartMail)])
			if !strings.HasPrefix(trace, "Received: from client.test ([127.0.0.1])\r\n\tby mx.mayfly.test (Mayfly) with ESMTP id ") ||
				strings.Contains(trace, "for <") || strings.Count(trace, "\r\n") != 2 {
				t.Errorf("%s: trace header %q", m.Inbox, trace)
			}
			if m.Size != int64(len(raw)) {
				t.Errorf("%s: Size %d, want %d", m.Inbox, m.Size, len(raw))
			}
		}

		// An oversized message on the same connection is refused and not stored.
		if err := c.Mail("sender@sender.test", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("a@mayfly.test", nil); err != nil {
			t.Fatal(err)
		}
		big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("z", 78)+"\r\n", 1000)
		wantCode(t, "DATA over the limit", send(c, big), 552, smtp.EnhancedCode{5, 3, 4})
		only(t, st, "a@mayfly.test")
	})
}

// only returns the one message of inbox, failing unless there is exactly one.
func only(t *testing.T, st storage.Store, inbox string) *storage.Message {
	t.Helper()
	list, err := st.List(t.Context(), inbox, storage.Page{})
	if err != nil || len(list) != 1 {
		t.Fatalf("List(%s) = %d messages, %v; want 1", inbox, len(list), err)
	}
	return &list[0]
}

// onlyRaw is only's message and the bytes the store keeps of it.
func onlyRaw(t *testing.T, st storage.Store, inbox string) (*storage.Message, []byte) {
	t.Helper()
	m := only(t, st, inbox)
	raw, err := st.Raw(t.Context(), m.Inbox, m.ID)
	if err != nil {
		t.Fatalf("Raw(%s): %v", m.ID, err)
	}
	return m, raw
}

func TestOneRecipientNamedInTrace(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	c := dial(t, start(t, Options{}, st))
	if err := c.SendMail("", []string{"solo+x@mayfly.test"}, strings.NewReader("Subject: bounce\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	m, raw := onlyRaw(t, st, "solo@mayfly.test")
	if !bytes.Contains(raw, []byte("\r\n\tfor <solo+x@mayfly.test>; ")) {
		t.Errorf("trace of a single-recipient message has no for clause:\n%s", raw)
	}
	if m.Envelope.From != "" {
		t.Errorf("envelope sender of a bounce = %q, want empty", m.Envelope.From)
	}
}

func TestLimits(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	addr := start(t, Options{MaxMessageSize: 4096, MaxRecipients: 3}, st)

	c := dial(t, addr)
	if ok, size := c.Extension("SIZE"); !ok || size != "4096" {
		t.Errorf("EHLO SIZE = %v %q, want 4096", ok, size)
	}
	for _, ext := range []string{"PIPELINING", "ENHANCEDSTATUSCODES"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO does not offer %s", ext)
		}
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered without a certificate")
	}
	if err := c.Mail("s@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Rcpt(fmt.Sprintf("r%d@mayfly.test", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, "fourth Rcpt", c.Rcpt("r4@mayfly.test", nil), 452, smtp.EnhancedCode{4, 5, 3})
	if err := send(c, "Subject: fits\r\n\r\n"+strings.Repeat("x", 1000)+"\r\n"); err != nil {
		t.Fatalf("DATA within the limit: %v", err)
	}

	big := dial(t, addr)
	if err := big.Mail("s@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := big.Rcpt("big@mayfly.test", nil); err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("y", 70) + "\r\n"
	wantCode(t, "DATA over the limit", send(big, "Subject: too big\r\n\r\n"+strings.Repeat(line, 100)), 552, smtp.EnhancedCode{5, 3, 4})
	if list, _ := st.List(t.Context(), "big@mayfly.test", storage.Page{}); len(list) != 0 {
		t.Errorf("an oversized message was stored")
	}
	for i := range 3 {
		only(t, st, fmt.Sprintf("r%d@mayfly.test", i))
	}
}

type failingStore struct{ noFaults }

func (failingStore) Put(context.Context, ...*storage.Message) error {
	return fmt.Errorf("put: %w", storage.ErrUnavailable)
}

func TestStoreFailureIs451(t *testing.T) {
	c := dial(t, start(t, Options{}, failingStore{}))
	err := c.SendMail("s@sender.test", []string{"a@mayfly.test"}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	wantCode(t, "DATA with the store down", err, 451, smtp.EnhancedCode{4, 3, 0})
}

func TestStartTLS(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	addr := start(t, Options{TLS: testlib.ServerTLS()}, st)
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("connection not encrypted after STARTTLS")
	}
	if err := c.SendMail("s@sender.test", []string{"tls@mayfly.test"}, strings.NewReader("Subject: secret\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	_, raw := onlyRaw(t, st, "tls@mayfly.test")
	if !bytes.Contains(raw, []byte(" with ESMTPS id ")) {
		t.Errorf("trace header does not say ESMTPS:\n%s", raw)
	}
}

// TestRedisGoneIs451 closes a real Redis store under a running receiver: the sender
// must be told to retry, and the store must hold nothing of the message.
func TestRedisGoneIs451(t *testing.T) {
	open, ok := stores(t)["redis"]
	if !ok {
		t.Skip("set MAYFLY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run it (make test does)")
	}
	st := open(t)
	c := dial(t, start(t, Options{}, st))
	st.Close()
	err := c.SendMail("s@sender.test", []string{"a@mayfly.test", "b@mayfly.test"}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	wantCode(t, "DATA with Redis gone", err, 451, smtp.EnhancedCode{4, 3, 0})
}

type panickingStore struct{ noFaults }

func (panickingStore) Put(context.Context, ...*storage.Message) error { panic("broken invariant") }

func TestPanicIs451NotACrash(t *testing.T) {
	addr := start(t, Options{}, panickingStore{})
	err := dial(t, addr).SendMail("s@sender.test", []string{"a@mayfly.test"}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	wantCode(t, "DATA when delivery panics", err, 451, smtp.EnhancedCode{4, 3, 0})
	// The process is still up and serving.
	err = dial(t, addr).SendMail("s@sender.test", []string{"a@mayfly.test"}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	wantCode(t, "a second session", err, 451, smtp.EnhancedCode{4, 3, 0})
}

// TestHostileClients sends what broken or malicious clients send; each gets an error
// reply or a closed connection, and the receiver goes on serving.
func TestHostileClients(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	addr := start(t, Options{Timeout: 2 * time.Second}, st)
	tests := []struct {
		name  string
		input string
		want  string // a reply code the server must send
	}{
		{"line too long", "EHLO x\r\n" + strings.Repeat("A", 5000) + "\r\n", "554 "},
		{"unknown commands", "EHLO x\r\nFOO\r\nBAR\r\nBAZ\r\nQUX\r\nQUUX\r\n", "554 "},
		{"data before rcpt", "EHLO x\r\nDATA\r\n", "503 "},
		{"bad address", "EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@@mayfly.test>\r\n", "501 "},
		{"binary junk", "\x00\xff\xfe\r\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n", "554 "},
		{"nested mail", "EHLO x\r\nMAIL FROM:<a@x.test>\r\nMAIL FROM:<b@x.test>\r\n", "503 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, tt.input); err != nil {
				t.Fatal(err)
			}
			if cw, ok := conn.(*net.TCPConn); ok {
				cw.CloseWrite()
			}
			replies, _ := io.ReadAll(conn)
			if !bytes.Contains(replies, []byte("\r\n"+tt.want)) {
				t.Errorf("replies to %q:\n%s\nwant a %q", tt.input, replies, tt.want)
			}
		})
	}
	// Still serving.
	if err := dial(t, addr).SendMail("s@sender.test", []string{"after@mayfly.test"}, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatalf("after the hostile clients: %v", err)
	}
}

var freeAddr = testlib.FreePort
