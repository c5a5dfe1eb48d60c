package submission

import (
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// greeting connects to addr and returns the first line the server sends, "" when it
// closes without one.
func greeting(t testing.TB, addr string) string {
	t.Helper()
	line, err := testlib.Greeting(t, addr)
	if err != nil {
		t.Fatalf("reading the greeting: %v", err)
	}
	return line
}

// TestMaxConnectionsPerIP turns a client's connection over its limit away, on either
// listener, while its sessions already open go on; a slot closed is a slot free.
func TestMaxConnectionsPerIP(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	e := newEnv(t, st, setup{opts: Options{Options: limit.Options{MaxConnectionsPerIP: 2}}})
	busy := login(t, e.addr, box, token(box))
	idle := dial(t, e.addr)

	want := "421 4.7.0 mail.mayfly.test too many connections from your address\r\n"
	if got := greeting(t, e.addr); got != want {
		t.Errorf("third connection got %q, want %q", got, want)
	}
	// The implicit-TLS listener counts the same client; it closes before any handshake.
	if c, err := smtp.DialTLS(e.tlsAddr, clientTLS()); err == nil {
		c.Close()
		t.Error("a TLS connection over the limit was served")
	}
	if got := testutil.ToFloat64(e.srv.metrics.refused.WithLabelValues(refusedConnections)); got != 2 {
		t.Errorf("refused{connections} = %v, want 2", got)
	}

	if err := send(busy, box, []string{ann}, letter(box, ann, "Re: hi", "still here")); err != nil {
		t.Fatalf("a session open before the refusals: %v", err)
	}
	if err := idle.Quit(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the closed session's slot to be free", func() bool {
		return strings.HasPrefix(greeting(t, e.addr), "220 ")
	})
}

// TestCommandRate floods connections with NOOPs on the default rate (50/s), on a
// plain connection, after STARTTLS and on implicit TLS: the burst is served at once,
// then the client is slowed, not cut, until it has flooded for long enough to be
// clear abuse; then it gets a 421 it can read, and another connection of the same
// client is served. NOOP is the flood: go-smtp answers it without calling the session.
func TestCommandRate(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	e := newEnv(t, st, setup{})

	dials := []struct {
		name string
		dial func() (*smtp.Client, error)
	}{
		{"plain", func() (*smtp.Client, error) { return smtp.Dial(e.addr) }},
		{"starttls", func() (*smtp.Client, error) { return smtp.DialStartTLS(e.addr, clientTLS()) }},
		{"implicit", func() (*smtp.Client, error) { return smtp.DialTLS(e.tlsAddr, clientTLS()) }},
	}
	t.Run("flood", func(t *testing.T) {
		for _, d := range dials {
			t.Run(d.name, func(t *testing.T) {
				t.Parallel()
				c, err := d.dial()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				start := time.Now()
				answered := 0
				for ; answered < 100_000 && time.Since(start) < 90*time.Second; answered++ {
					if err = c.Noop(); err != nil {
						break
					}
				}
				elapsed := time.Since(start)
				t.Logf("%d NOOPs answered in %v before the cut", answered, elapsed)
				wantCode(t, "NOOP flood", err, 421, smtp.EnhancedCode{4, 7, 0}, "too many commands (MAYFLY_COMMAND_RATE), slow down")
				// The bucket holds PaceBurst and refills at 50/s: no more can have been
				// answered, however fast the server.
				if most := limit.PaceBurst + int(50*elapsed.Seconds()) + 5; answered > most {
					t.Errorf("%d NOOPs answered in %v: the rate (50/s, burst %d) did not slow the flood", answered, elapsed, limit.PaceBurst)
				}
				// A flood is cut only after it has been slowed for about twice the
				// client's slack (limit.Pacer): 500 commands past the burst.
				if answered < limit.PaceBurst+400 {
					t.Errorf("the flood was cut after %d NOOPs, want it slowed past %d first", answered, limit.PaceBurst+400)
				}
				if err := c.Noop(); err == nil {
					t.Error("the connection is still served after the 421")
				}
			})
		}
	})
	if got := testutil.ToFloat64(e.srv.metrics.refused.WithLabelValues(refusedCommands)); got != float64(len(dials)) {
		t.Errorf("refused{commands} = %v, want %d", got, len(dials))
	}
	// Another connection of the same client has a rate of its own.
	other := login(t, e.addr, box, token(box))
	if err := send(other, box, []string{ann}, letter(box, ann, "Re: hi", "not flooding")); err != nil {
		t.Fatalf("the other connection: %v", err)
	}
}

// TestCommandRateTakesAPipelinedTransaction sends, in one write, what a client using
// PIPELINING may: AUTH and a transaction to MaxRecipients recipients. Neither the
// default rate nor the same rate set explicitly (as mayfly serve does) may cut it off
// halfway.
func TestCommandRateTakesAPipelinedTransaction(t *testing.T) {
	for name, rate := range map[string]limit.Rate{"default": {}, "50/s": {N: 50, Per: time.Second}} {
		t.Run(name, func(t *testing.T) { testPipelinedTransaction(t, rate) })
	}
}

func testPipelinedTransaction(t *testing.T, rate limit.Rate) {
	st := memory(t)
	received(t, st, box, "", ann)
	e := newEnv(t, st, setup{opts: Options{Options: limit.Options{CommandRate: rate}}})
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	b.WriteString("EHLO client.test\r\nAUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+box+"\x00"+token(box))) + "\r\nMAIL FROM:<" + box + ">\r\n")
	for range e.srv.opts.MaxRecipients {
		b.WriteString("RCPT TO:<" + ann + ">\r\n")
	}
	b.WriteString("RSET\r\nQUIT\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	replies, _ := io.ReadAll(conn)
	if strings.Contains(string(replies), "\r\n421 ") || !strings.HasSuffix(string(replies), "\r\n221 2.0.0 Bye\r\n") {
		t.Errorf("a pipelined transaction to %d recipients got:\n%s", e.srv.opts.MaxRecipients, replies)
	}
}

// TestSlowClientBeforeLogin cuts off a client that sends its first command a byte at
// a time at the pre-login deadline, which is per line, not per byte; a session logged
// in before it, idle for longer than that, is still served.
func TestSlowClientBeforeLogin(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	const preAuth = 500 * time.Millisecond
	// The command timeout (newEnv's 20s) is far beyond when the slow client must be gone.
	e := newEnv(t, st, setup{preAuth: preAuth})
	other := login(t, e.addr, box, token(box))

	// Before the dial: the server's deadline starts after it accepts, and may run out
	// a little before the client has read the greeting.
	start := time.Now()
	slow := testlib.DialGreeted(t, e.addr, "220 ")
	reply := slow.Trickle(start, "EHLO slow.client.test", nil)
	conn, r := slow.Conn, slow.R
	cut := time.Since(start)
	// go-smtp takes the bytes it had when the deadline passed for a line, and answers
	// them, before its 421.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	rest, err := io.ReadAll(r)
	// A byte trickled after the server's close has its kernel reset the connection:
	// harmless once the 421 is read.
	if err != nil && !(errors.Is(err, syscall.ECONNRESET) && strings.HasPrefix(reply, "421 4.4.2 ")) {
		t.Fatalf("reading to the close: %v", err)
	}
	replies := reply + string(rest)
	if !strings.HasPrefix(replies, "421 4.4.2 ") && !strings.Contains(replies, "\r\n421 4.4.2 ") {
		t.Errorf("slow client got %q, want 421 4.4.2 and the close", replies)
	}
	if cut < preAuth {
		t.Errorf("slow client cut off after %v, before the %v deadline", cut, preAuth)
	}

	if err := other.Noop(); err != nil {
		t.Fatalf("a logged-in session idle for %v: %v", cut, err)
	}
	if err := send(other, box, []string{ann}, letter(box, ann, "Re: hi", "patient")); err != nil {
		t.Fatalf("a logged-in session: %v", err)
	}
}

// TestLoginFailures: after LoginFailures' wrong tokens from one address, even the
// right token is refused, with 454, on any connection and by either mechanism; a
// session logged in before the guessing goes on.
func TestLoginFailures(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 3, Per: time.Hour})
	e := newEnv(t, st, setup{opts: Options{Options: limit.Options{LoginFailures: failures}}})
	before := login(t, e.addr, box, token(box))

	c := dial(t, e.addr)
	for i := range 3 {
		err := c.Auth(sasl.NewPlainClient("", box, "guess"+string(rune('a'+i))))
		wantCode(t, "a wrong token", err, 535, smtp.EnhancedCode{5, 7, 8}, "")
	}
	err := c.Auth(sasl.NewPlainClient("", box, token(box)))
	wantCode(t, "the right token after the guesses", err, 454, smtp.EnhancedCode{4, 7, 0}, "too many failed logins from your address (MAYFLY_LOGIN_FAILURES), try later")
	err = dial(t, e.addr).Auth(sasl.NewLoginClient(box, token(box)))
	wantCode(t, "LOGIN on a new connection", err, 454, smtp.EnhancedCode{4, 7, 0}, "too many failed logins")
	if got := testutil.ToFloat64(e.srv.metrics.refused.WithLabelValues(refusedLogins)); got != 2 {
		t.Errorf("refused{logins} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.srv.metrics.logins.WithLabelValues(loginFailed)); got != 3 {
		t.Errorf("logins{failed} = %v, want 3 (a refusal checks nothing)", got)
	}

	if err := send(before, box, []string{ann}, letter(box, ann, "Re: hi", "logged in first")); err != nil {
		t.Fatalf("a session logged in before the guessing: %v", err)
	}
}
