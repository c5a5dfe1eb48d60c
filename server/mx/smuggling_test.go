package mx

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// rawDial opens a session from the loopback address from (empty: the default) and
// reads the banner, which must have code want: 220, or 421 when refused.
func rawDial(t *testing.T, addr, from string, want int) (net.Conn, *textproto.Reader, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := textproto.NewReader(bufio.NewReader(conn))
	_, msg, err := r.ReadResponse(want)
	if err != nil {
		t.Fatalf("banner from %s: %q, %v; want %d", addr, msg, err, want)
	}
	return conn, r, msg
}

// command writes line and requires a reply of code want.
func command(t *testing.T, conn net.Conn, r *textproto.Reader, line string, want int) string {
	t.Helper()
	if _, err := io.WriteString(conn, line+"\r\n"); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	_, msg, err := r.ReadResponse(want)
	if err != nil {
		t.Fatalf("%s: %q, %v; want %d", line, msg, err, want)
	}
	return msg
}

// TestSmuggling sends a message whose content holds an end of data that is not
// CRLF "." CRLF, followed by a second transaction with a forged sender: exactly one
// message is stored, from the real sender, with the would-be second message in its
// body (SMTP smuggling: a server before us that ends DATA only at CRLF "." CRLF
// relays all of it as one message).
func TestSmuggling(t *testing.T) {
	for name, open := range stores(t) {
		for _, end := range []string{"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r"} {
			t.Run(name+"/"+strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(end), func(t *testing.T) {
				st := open(t)
				conn, r, _ := rawDial(t, start(t, Options{}, st), "", 220)
				command(t, conn, r, "EHLO client.test", 250)
				command(t, conn, r, "MAIL FROM:<alice@sender.test>", 250)
				command(t, conn, r, "RCPT TO:<victim@mayfly.test>", 250)
				command(t, conn, r, "DATA", 354)
				io.WriteString(conn, "From: alice@sender.test\r\nSubject: first\r\n\r\nhello"+end+
					"MAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@mayfly.test>\r\nDATA\r\n"+
					"From: ceo@bank.test\r\nSubject: forged\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n")
				var replies []string
				for {
					code, msg, err := r.ReadResponse(0)
					if err == io.EOF {
						break
					}
					if code == 0 {
						t.Fatalf("after %q: %q, %v", replies, msg, err)
					}
					replies = append(replies, msg)
				}
				if len(replies) != 2 || !strings.Contains(replies[0], "queued") {
					t.Errorf("replies after the content: %q, want one 250 and the 221", replies)
				}
				m, raw := onlyRaw(t, st, "victim@mayfly.test")
				if m.Envelope.From != "alice@sender.test" || !bytes.Contains(raw, []byte("MAIL FROM:<ceo@bank.test>\r\n")) || !bytes.Contains(raw, []byte("\r\nsmuggled\r\n")) {
					t.Errorf("stored from %q:\n%s\nwant alice's message with the smuggled one inside", m.Envelope.From, raw)
				}
			})
		}
	}
}

// TestDataEnd: CRLF "." CRLF ends DATA, and a sloppy client's LF-only lines are
// still taken (as CRLF), with dots unstuffed only at the start of a CRLF line.
func TestDataEnd(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	conn, r, _ := rawDial(t, start(t, Options{}, st), "", 220)
	command(t, conn, r, "HELO client.test", 250)
	command(t, conn, r, "MAIL FROM:<lf@sender.test>", 250)
	command(t, conn, r, "RCPT TO:<lf@mayfly.test>", 250)
	command(t, conn, r, "DATA", 354)
	command(t, conn, r, "From: lf@sender.test\nSubject: lf only\n\nline one\n.not stuffed\r\n..stuffed\nlast\r\n.", 250)
	m, raw := onlyRaw(t, st, "lf@mayfly.test")
	want := "From: lf@sender.test\r\nSubject: lf only\r\n\r\nline one\r\n.not stuffed\r\n.stuffed\r\nlast\r\n"
	if !bytes.HasSuffix(raw, []byte(want)) || m.Subject != "lf only" {
		t.Errorf("stored %q (subject %q), want it to end %q", raw, m.Subject, want)
	}
	command(t, conn, r, "QUIT", 221)
}

// TestConnectionsPerIP: the 21st connection from one address is refused, naming the
// setting, while another address connects; a closed connection frees its slot.
func TestConnectionsPerIP(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	reg := prometheus.NewRegistry()
	addr := start(t, Options{Options: limit.Options{Metrics: reg}}, st)
	var conns []net.Conn
	for range 20 {
		conn, _, _ := rawDial(t, addr, "127.0.0.1", 220)
		conns = append(conns, conn)
	}
	_, r, msg := rawDial(t, addr, "127.0.0.1", 421)
	if !strings.HasPrefix(msg, "4.7.0 ") || !strings.Contains(msg, "MAYFLY_MAX_CONNECTIONS_PER_IP") {
		t.Errorf("21st connection refused with %q, want 4.7.0 naming MAYFLY_MAX_CONNECTIONS_PER_IP", msg)
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Errorf("refused connection left open: %v", err)
	}
	rawDial(t, addr, "127.0.0.2", 220)
	if n := rejected(t, reg, rejectConnections); n != 1 {
		t.Errorf("mayfly_smtp_rejected_total{reason=connections} = %v, want 1", n)
	}

	conns[0].Close()
	testlib.WaitGreeting(t, addr, "220 ")
}

// TestStalledSession: a NOOP/RSET loop is cut with 421 after MaxStalledCommands, while
// another client delivers; a DATA starts the count again.
func TestStalledSession(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	addr := start(t, Options{}, st)

	loop, r, _ := rawDial(t, addr, "", 220)
	for i := range 50 {
		if i == 25 {
			c := dial(t, addr)
			if err := c.SendMail("s@sender.test", []string{"other@mayfly.test"}, strings.NewReader("Subject: meanwhile\r\n\r\nx\r\n")); err != nil {
				t.Fatalf("delivery beside the loop: %v", err)
			}
		}
		command(t, loop, r, []string{"NOOP", "RSET", "HELP", "VRFY x", "EHLO again.test"}[i%5], 2) // any 2xx
	}
	msg := command(t, loop, r, "NOOP", 421)
	if !strings.HasPrefix(msg, "4.7.0 ") || !strings.Contains(msg, "MAYFLY_SMTP_MAX_STALLED_COMMANDS") {
		t.Errorf("51st stalled command answered %q, want 4.7.0 naming MAYFLY_SMTP_MAX_STALLED_COMMANDS", msg)
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Errorf("stalled session left open: %v", err)
	}
	only(t, st, "other@mayfly.test")

	// A message makes progress: its recipients, a hundred of them, do not count.
	busy, r, _ := rawDial(t, addr, "", 220)
	for range 45 {
		command(t, busy, r, "NOOP", 2)
	}
	command(t, busy, r, "MAIL FROM:<s@sender.test>", 250)
	for i := range 100 {
		command(t, busy, r, fmt.Sprintf("RCPT TO:<r%d@mayfly.test>", i), 250)
	}
	command(t, busy, r, "DATA", 354)
	command(t, busy, r, "Subject: many\r\n\r\nx\r\n.", 250)
	for range 50 {
		command(t, busy, r, "NOOP", 2)
	}
	command(t, busy, r, "QUIT", 221)

	// A transaction that never reaches DATA is no progress: MAIL, RCPT and RSET in a
	// loop held a session for ever, as an accepted MAIL restarted the count.
	mail, r, _ := rawDial(t, addr, "", 220)
	for i := range 25 {
		command(t, mail, r, "MAIL FROM:<s@sender.test>", 250)
		command(t, mail, r, "RCPT TO:<loop@mayfly.test>", 250)
		if i < 24 {
			command(t, mail, r, "RSET", 250)
		}
	}
	command(t, mail, r, "RSET", 250)
	command(t, mail, r, "MAIL FROM:<s@sender.test>", 421)
}

// gateStore holds each Put until released, so that a test sees sessions at the end of
// DATA with their message in memory.
type gateStore struct {
	noFaults
	entered, release chan struct{}
}

func (g *gateStore) Put(ctx context.Context, msgs ...*storage.Message) error {
	g.entered <- struct{}{}
	<-g.release
	return nil
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestDataMemory: a session waiting on the store write holds its message of S bytes
// about once (the copy with our headers that is stored), not in a buffer grown by
// doubling beside that copy; and once the sessions are over, nothing of their
// messages stays.
func TestDataMemory(t *testing.T) {
	const sessions, size = 6, 2<<20 + 100<<10
	st := &gateStore{entered: make(chan struct{}), release: make(chan struct{})}
	addr := start(t, Options{MaxMessageSize: 4 << 20, RecipientRate: limit.Rate{N: -1}}, st)
	body := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("z", 78)+"\r\n", size/80) + ".\r\n"
	type session struct {
		conn net.Conn
		r    *textproto.Reader
	}
	var ss []session
	for range sessions {
		conn, r, _ := rawDial(t, addr, "", 220)
		command(t, conn, r, "HELO client.test", 250)
		command(t, conn, r, "MAIL FROM:<s@sender.test>", 250)
		command(t, conn, r, "RCPT TO:<big@mayfly.test>", 250)
		command(t, conn, r, "DATA", 354)
		ss = append(ss, session{conn, r})
	}
	base := heapAlloc()
	for _, s := range ss {
		go io.WriteString(s.conn, body) // the reply is read below
	}
	for range sessions {
		select {
		case <-st.entered:
		case <-time.After(30 * time.Second):
			t.Fatal("sessions did not reach the store")
		}
	}
	per := (heapAlloc() - base) / sessions
	runtime.KeepAlive(body) // counted in base: it must not be freed before
	close(st.release)
	for _, s := range ss {
		if _, msg, err := s.r.ReadResponse(250); err != nil {
			t.Fatalf("end of DATA: %q, %v", msg, err)
		}
		command(t, s.conn, s.r, "QUIT", 221)
	}
	if max := int64(size) * 5 / 4; per > max {
		t.Errorf("a session at the end of DATA of %d bytes holds %d bytes, want at most %d", size, per, max)
	}
	t.Logf("per session at the end of DATA: %.1f MiB for a %.1f MiB message", float64(per)/(1<<20), float64(size)/(1<<20))
	// The server closes its side after QUIT; the pool takes the envelopes back then.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := heapAlloc() - base
		if left < size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held after the sessions ended, want under %d", left, size)
		}
		time.Sleep(20 * time.Millisecond) // polling for the sessions to close, with a deadline
	}
}

// TestProxyHeader: behind a trusted load balancer the client is the one its PROXY
// header names, for the trace header, SPF and the per-client limits.
func TestProxyHeader(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	addr := start(t, Options{Options: limit.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, MaxConnectionsPerIP: 1}}, st)
	conn := testlib.Proxied(t, addr, "203.0.113.7", 25)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := textproto.NewReader(bufio.NewReader(conn))
	if _, msg, err := r.ReadResponse(220); err != nil {
		t.Fatalf("banner: %q, %v", msg, err)
	}
	// The proxy's own address is not the client's: another client through it connects.
	other := testlib.Proxied(t, addr, "203.0.113.8", 25)
	other.SetDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := textproto.NewReader(bufio.NewReader(other)).ReadResponse(220); err != nil {
		t.Fatalf("second client through the proxy: %q, %v", msg, err)
	}
	command(t, conn, r, "HELO client.test", 250)
	command(t, conn, r, "MAIL FROM:<s@sender.test>", 250)
	command(t, conn, r, "RCPT TO:<proxied@mayfly.test>", 250)
	command(t, conn, r, "DATA", 354)
	command(t, conn, r, "Subject: proxied\r\n\r\nx\r\n.", 250)
	if m := only(t, st, "proxied@mayfly.test"); m.Envelope.RemoteIP != "203.0.113.7" {
		t.Errorf("RemoteIP = %q, want the client the PROXY header names", m.Envelope.RemoteIP)
	}
}
