package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// untilClosed reads what the server says until it closes the connection, for at most
// wait, and returns the lines and how long that took. A connection still open at the
// end fails the test.
func untilClosed(t *testing.T, c net.Conn, br *bufio.Reader, wait time.Duration) ([]string, time.Duration) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(wait))
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if l != "" {
			lines = append(lines, strings.TrimSpace(l))
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("connection not closed by the server within %v: %v (read %q)", wait, err, lines)
		}
		return lines, time.Since(start)
	}
}

// isReset says whether err is the server closing with our data unread.
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

func hasLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func refused(srv *testServer, reason string) float64 {
	return testutil.ToFloat64(srv.metrics.refused.WithLabelValues(reason))
}

func TestMaxConnectionsPerIP(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, false, func(o *Options, s *Server) {
		o.MaxConnectionsPerIP = 3
		s.perIP = limit.NewConns(o.MaxConnectionsPerIP)
	})
	// The same server's IMAPS listener shares the per-client count.
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, tlsLn, true) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve(IMAPS) = %v", err)
		}
	})

	inbox, token := newInbox()
	put(t, st, inbox, "a", nil)
	working := loginRaw(t, srv.addr, inbox, token)
	working.ok("SELECT INBOX")
	idle := dialRaw(t, srv.addr)
	secure, err := tls.Dial("tcp", tlsLn.Addr().String(), clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { secure.Close() })
	secure.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := bufio.NewReader(secure).ReadString('\n'); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("IMAPS greeting = %q, %v", l, err)
	}

	over, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	lines, _ := untilClosed(t, over, bufio.NewReader(over), 10*time.Second)
	if len(lines) != 1 || lines[0] != "* BYE too many connections from your address" {
		t.Errorf("connection over the limit read %q, want one BYE too many connections from your address", lines)
	}
	// Over IMAPS the refusal is the connection closing, before any handshake.
	overTLS, err := net.Dial("tcp", tlsLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer overTLS.Close()
	if lines, _ := untilClosed(t, overTLS, bufio.NewReader(overTLS), 10*time.Second); len(lines) != 0 {
		t.Errorf("IMAPS connection over the limit read %q, want nothing", lines)
	}

	if untagged := working.ok("FETCH 1 (UID)"); len(untagged) != 1 {
		t.Errorf("FETCH on the connection already open = %q, want one message", untagged)
	}
	if got := refused(srv, refusedConnections); got != 2 {
		t.Errorf("refused{reason=connections} = %v, want 2", got)
	}

	// A connection that ends gives its slot back.
	idle.c.Close()
	testlib.WaitGreeting(t, srv.addr, "* OK")
}

// TestCommandRatePacesFlood floods a connection with NOOPs, pipelined, on the
// default rate (50/s): the burst is served at once, then the client is slowed, not
// cut, until it has flooded for long enough to be clear abuse; then it is told BYE.
// Another connection of the same client goes on.
func TestCommandRatePacesFlood(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, false)
	inbox, token := newInbox()
	put(t, st, inbox, "a", nil)
	other := loginRaw(t, srv.addr, inbox, token)

	flood := loginRaw(t, srv.addr, inbox, token)
	flood.ok("SELECT INBOX")
	answered, elapsed, lines := floodNoop(t, flood.c, flood.br)
	t.Logf("%d NOOPs answered in %v before the cut", answered, elapsed)
	// The connection's bucket holds PaceBurst and refills at 50/s: no more can have
	// been answered, however fast the server.
	if most := limit.PaceBurst + 2 + int(50*elapsed.Seconds()) + 5; answered > most {
		t.Errorf("%d NOOPs answered in %v: the rate (50/s, burst %d) did not slow the flood", answered, elapsed, limit.PaceBurst)
	}
	// A flood is cut only after it has been slowed for about twice the client's slack
	// (limit.Pacer): 500 commands past the burst.
	if answered < limit.PaceBurst+400 {
		t.Errorf("the flood was cut after %d NOOPs, want it slowed past %d first", answered, limit.PaceBurst+400)
	}
	if !hasLine(lines, "* BYE too many commands (MAYFLY_COMMAND_RATE), slow down") {
		t.Errorf("the end of the flood read %q, want * BYE too many commands (MAYFLY_COMMAND_RATE), slow down", lines)
	}

	// The other connection has a rate of its own.
	other.ok("SELECT INBOX")
	if untagged := other.ok("FETCH 1 (UID)"); len(untagged) != 1 {
		t.Errorf("FETCH on the other connection = %q, want one message", untagged)
	}
	if got := refused(srv, refusedCommands); got != 1 {
		t.Errorf("refused{reason=commands} = %v, want 1", got)
	}
}

// floodNoop sends NOOPs as fast as the connection takes them, while reading the
// answers, until the server closes it (for at most a minute and a half). It returns
// how many were answered OK, how long until the close, and the last lines read.
func floodNoop(t *testing.T, c net.Conn, br *bufio.Reader) (answered int, elapsed time.Duration, last []string) {
	t.Helper()
	go func() {
		line := []byte("n NOOP\r\n")
		batch := []byte(strings.Repeat(string(line), 100))
		for {
			if _, err := c.Write(batch); err != nil {
				return // closed by the server, or by the test's end
			}
		}
	}()
	start := time.Now()
	c.SetReadDeadline(start.Add(90 * time.Second))
	for {
		l, err := br.ReadString('\n')
		if strings.HasPrefix(l, "n OK") {
			answered++
		} else if l != "" {
			last = append(last, strings.TrimSpace(l))
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("flood not cut within 90s: %v (%d answered)", err, answered)
		}
		return answered, time.Since(start), last
	}
}

// TestPipelinedFetchOfFullInbox fetches every message of a full inbox (200) with one
// UID FETCH each, all sent before the first answer is read, as mbsync does, on the
// default CommandRate: every one is answered, and the connection stays open.
func TestPipelinedFetchOfFullInbox(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		const n = 200
		for i := range n {
			put(t, st, inbox, fmt.Sprintf("message %d", i), nil)
		}
		c, _ := open(t, srv.addr, inbox, nil)
		all, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
		if err != nil || len(all) != n {
			t.Fatalf("FETCH 1:* (UID) = %d messages, %v; want %d", len(all), err, n)
		}
		body := []*imap.FetchItemBodySection{{Peek: true}}
		cmds := make([]*imapclient.FetchCommand, n)
		for i, m := range all {
			cmds[i] = c.Fetch(imap.UIDSetNum(m.UID), &imap.FetchOptions{UID: true, BodySection: body})
		}
		for i, cmd := range cmds {
			msgs, err := cmd.Collect()
			if err != nil {
				t.Fatalf("UID FETCH %d of %d: %v", i+1, n, err)
			}
			if len(msgs) != 1 || len(msgs[0].FindBodySection(body[0])) == 0 {
				t.Fatalf("UID FETCH %d of %d gave %d messages, or no body", i+1, n, len(msgs))
			}
		}
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("NOOP after the fetches: %v", err)
		}
		if got := refused(srv, refusedCommands); got != 0 {
			t.Errorf("refused{reason=commands} = %v, want 0", got)
		}
	})
}

// slowServer has a short login timeout, and an autologout long enough for a test that
// waits past the login timeout after logging in.
func slowServer(t *testing.T, loginTimeout, autologout time.Duration) *testServer {
	st := testlib.Memory(t, memstore.Options{})
	return startServer(t, st, false, func(_ *Options, s *Server) {
		s.loginTimeout = loginTimeout
		s.autologout = autologout
	})
}

func TestSlowClient(t *testing.T) {
	const loginTimeout = 300 * time.Millisecond
	// imapserver alone would wait 30s for the rest of a line: the tests wait far less.
	const wait = 5 * time.Second

	t.Run("partial line", func(t *testing.T) {
		srv := slowServer(t, loginTimeout, time.Minute)
		inbox, token := newInbox()
		other := loginRaw(t, srv.addr, inbox, token)
		r := dialRaw(t, srv.addr)
		fmt.Fprintf(r.c, "a1 LOGIN")
		_, took := untilClosed(t, r.c, r.br, wait)
		if took < loginTimeout/2 {
			t.Errorf("closed after %v, before the login timeout of %v", took, loginTimeout)
		}
		other.ok("NOOP") // logged in, it has the autologout timeout
	})

	t.Run("a byte at a time", func(t *testing.T) {
		srv := slowServer(t, loginTimeout, time.Minute)
		r := dialRaw(t, srv.addr)
		stop := testlib.Drip(r.c, "a1 LOGIN ", loginTimeout/10)
		// The line keeps growing, so only a deadline per line, not per read, ends it.
		r.c.SetReadDeadline(time.Now().Add(wait))
		first, err := r.br.ReadString('\n')
		stop()
		if err != nil && !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("a line sent a byte each %v still open after %v: %v", loginTimeout/10, wait, err)
		}
		// imapserver answers the timed-out command, but must read nothing after it.
		io.WriteString(r.c, "a2 CAPABILITY\r\n")
		lines, _ := untilClosed(t, r.c, r.br, wait)
		if hasLine(lines, "* CAPABILITY") {
			t.Errorf("after the timeout (answered %q) the connection was still read: %q", first, lines)
		}
	})

	t.Run("after login", func(t *testing.T) {
		const autologout = 2 * time.Second
		srv := slowServer(t, loginTimeout, autologout)
		inbox, token := newInbox()
		r := loginRaw(t, srv.addr, inbox, token)
		r.ok("SELECT INBOX")
		// IDLE outlasts the login timeout: once logged in, autologout applies.
		fmt.Fprintf(r.c, "i1 IDLE\r\n")
		if l := r.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE = %q, want a continuation", l)
		}
		time.Sleep(3 * loginTimeout) // time passing is what is tested
		fmt.Fprintf(r.c, "DONE\r\n")
		if l := r.line(); !strings.HasPrefix(l, "i1 OK") {
			t.Fatalf("DONE after %v = %q, want i1 OK", 3*loginTimeout, l)
		}
		// A client silent for longer than autologout is logged out.
		_, took := untilClosed(t, r.c, r.br, autologout+wait)
		if took < autologout/2 {
			t.Errorf("logged out after %v, before the autologout of %v", took, autologout)
		}
	})
}

func TestLoginFailuresPerIP(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 3, Per: time.Hour})
	srv := startServer(t, st, false, func(o *Options, _ *Server) { o.LoginFailures = failures })
	inbox, token := newInbox()
	put(t, st, inbox, "a", nil)
	// Logged in before the guessing starts, from the same address.
	working := loginRaw(t, srv.addr, inbox, token)
	working.ok("SELECT INBOX")

	guesser := dialRaw(t, srv.addr)
	for i := range 3 {
		if _, status := guesser.cmd(fmt.Sprintf("LOGIN %s wrong-%d", inbox, i)); !strings.HasPrefix(status, "NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("wrong token %d = %s, want NO [AUTHENTICATIONFAILED]", i, status)
		}
	}
	const throttled = "NO [UNAVAILABLE] too many failed logins from your address (MAYFLY_LOGIN_FAILURES), try later"
	if _, status := guesser.cmd(fmt.Sprintf("LOGIN %s %s", inbox, token)); status != throttled {
		t.Errorf("the right token after 3 wrong ones = %s, want %s", status, throttled)
	}
	// The address is throttled, not the connection; AUTHENTICATE as LOGIN.
	fresh := dialRaw(t, srv.addr)
	fmt.Fprintf(fresh.c, "a1 AUTHENTICATE PLAIN %s\r\n", plainResponse(inbox, token))
	if l := strings.TrimSpace(fresh.line()); l != "a1 "+throttled {
		t.Errorf("AUTHENTICATE with the right token on a new connection = %q, want a1 %s", l, throttled)
	}

	if untagged := working.ok("FETCH 1 (UID)"); len(untagged) != 1 {
		t.Errorf("FETCH on the session logged in before = %q, want one message", untagged)
	}
	if got := refused(srv, refusedLogins); got != 2 {
		t.Errorf("refused{reason=logins} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(srv.metrics.logins.WithLabelValues("failed")); got != 3 {
		t.Errorf("logins{result=failed} = %v, want 3 (throttled ones are not checked)", got)
	}
}

// plainResponse is the initial response of AUTHENTICATE PLAIN.
func plainResponse(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

// noCommandRate lets a benchmark send commands as fast as it can.
func noCommandRate(o *Options, _ *Server) { o.CommandRate = limit.Rate{N: -1} }
