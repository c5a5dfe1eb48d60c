package pop3d

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// untilClosed reads what the server says until it closes the connection, for at most
// wait, and returns the lines. A connection still open at the end fails the test.
func untilClosed(t *testing.T, c *client, wait time.Duration) []string {
	t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(wait))
	var lines []string
	for {
		l, err := c.R.ReadString('\n')
		if l != "" {
			lines = append(lines, strings.TrimSpace(l))
		}
		if err == nil {
			continue
		}
		var op *net.OpError
		if !errors.Is(err, io.EOF) && !(errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")) {
			t.Fatalf("connection not closed by the server within %v: %v (read %q)", wait, err, lines)
		}
		return lines
	}
}

// rawDial connects without reading a greeting.
func rawDial(t *testing.T, addr string) *client {
	t.Helper()
	return &client{Client: testlib.Dial(t, addr), t: t}
}

func limited(e *env, reason string) float64 {
	return testutil.ToFloat64(e.srv.metrics.limited.WithLabelValues(reason))
}

func TestMaxConnectionsPerIP(t *testing.T) {
	st := memory(t)
	put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{opts: Options{Options: limit.Options{MaxConnectionsPerIP: 3}}})
	working := e.loggedIn(t)
	quitting := dial(t, e.addr)
	// A POP3S connection from the same address: one count for both listeners.
	secure := dialTLS(t, e.tlsAddr, e.pool)
	if got := untilClosed(t, rawDial(t, e.addr), 10*time.Second); len(got) != 1 || got[0] != "-ERR [SYS/TEMP] too many connections from your address" {
		t.Errorf("connection over the limit read %q, want -ERR [SYS/TEMP] too many connections from your address", got)
	}
	// Over POP3S, before any handshake: the connection just closes.
	if got := untilClosed(t, rawDial(t, e.tlsAddr), 10*time.Second); len(got) != 0 {
		t.Errorf("POP3S connection over the limit read %q, want nothing", got)
	}
	secure.ok("CAPA")
	secure.lines()
	if got := working.ok("STAT"); got != "+OK 1 "+strconv.Itoa(len(plainMsg)) {
		t.Errorf("STAT on the session already open = %q", got)
	}
	if got := limited(e, limitedConnections); got != 2 {
		t.Errorf("refused{reason=connections} = %v, want 2", got)
	}

	// A connection that ends gives its slot back.
	quitting.ok("QUIT")
	quitting.closed()
	testlib.WaitGreeting(t, e.addr, "+OK")
}

// TestCommandRatePacesFlood floods a connection with NOOPs, pipelined, on the
// default rate (50/s): the burst is served at once, then the client is slowed, not
// cut, until it has flooded for long enough to be clear abuse; then it is cut.
// Bad commands count too. Another connection of the same client goes on.
func TestCommandRatePacesFlood(t *testing.T) {
	st := memory(t)
	put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})
	other := e.loggedIn(t)

	flood := e.loggedIn(t)
	flood.fail("XYZZY", "unknown command")
	go func() {
		batch := strings.Repeat("NOOP\r\n", 100)
		for {
			if _, err := io.WriteString(flood.Conn, batch); err != nil {
				return // closed by the server, or by the test's end
			}
		}
	}()
	start := time.Now()
	flood.Conn.SetDeadline(start.Add(90 * time.Second))
	answered := 0
	var last []string
	for {
		l, err := flood.R.ReadString('\n')
		if l == "+OK\r\n" {
			answered++
		} else if l != "" {
			last = append(last, strings.TrimSpace(l))
		}
		if err == nil {
			continue
		}
		var op *net.OpError
		if !errors.Is(err, io.EOF) && !(errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")) {
			t.Fatalf("flood not cut within 90s: %v (%d answered)", err, answered)
		}
		break
	}
	elapsed := time.Since(start)
	t.Logf("%d NOOPs answered in %v before the cut", answered, elapsed)
	// The connection's bucket holds PaceBurst and refills at 50/s: no more can have
	// been answered, however fast the server.
	if most := limit.PaceBurst + int(50*elapsed.Seconds()) + 5; answered > most {
		t.Errorf("%d NOOPs answered in %v: the rate (50/s, burst %d) did not slow the flood", answered, elapsed, limit.PaceBurst)
	}
	// A flood is cut only after it has been slowed for about twice the client's slack
	// (limit.Pacer): 500 commands past the burst.
	if answered < limit.PaceBurst+400 {
		t.Errorf("the flood was cut after %d NOOPs, want it slowed past %d first", answered, limit.PaceBurst+400)
	}
	if len(last) != 1 || last[0] != "-ERR [SYS/TEMP] too many commands (MAYFLY_COMMAND_RATE), slow down" {
		t.Errorf("the end of the flood read %q, want -ERR [SYS/TEMP] too many commands (MAYFLY_COMMAND_RATE), slow down", last)
	}

	// The other connection has a rate of its own.
	other.ok("STAT")
	other.ok("RETR 1")
	other.multi()
	if got := limited(e, limitedCommands); got != 1 {
		t.Errorf("refused{reason=commands} = %v, want 1", got)
	}
}

// TestRetrFullMaildrop downloads a full inbox (200 messages) RETR after RETR, as
// fetchmail does, on the default CommandRate, and deletes them: every one is served.
func TestRetrFullMaildrop(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			const n = 200
			for range n {
				put(t, st, box, plainMsg)
			}
			e := newEnv(t, st, setup{})
			c := e.loggedIn(t)
			if got := c.ok("STAT"); !strings.HasPrefix(got, fmt.Sprintf("+OK %d ", n)) {
				t.Fatalf("STAT = %q, want %d messages", got, n)
			}
			c.ok("UIDL")
			c.multi()
			for i := 1; i <= n; i++ {
				c.ok(fmt.Sprintf("RETR %d", i))
				if len(c.multi()) == 0 {
					t.Fatalf("RETR %d: no message", i)
				}
				c.ok(fmt.Sprintf("DELE %d", i))
			}
			c.ok("QUIT")
			if left := ids(t, st, box); len(left) != 0 {
				t.Errorf("%d messages left after QUIT, want 0", len(left))
			}
			if got := limited(e, limitedCommands); got != 0 {
				t.Errorf("refused{reason=commands} = %v, want 0", got)
			}
		})
	}
}

func TestSlowClient(t *testing.T) {
	const loginTimeout = 300 * time.Millisecond
	// Timeout alone would wait 10 minutes: the tests wait far less.
	const wait = 5 * time.Second
	const autologout = "-ERR autologout: idle for too long"

	t.Run("partial line", func(t *testing.T) {
		e := newEnv(t, memory(t), setup{loginTimeout: loginTimeout})
		other := e.loggedIn(t)
		c := dial(t, e.addr)
		io.WriteString(c.Conn, "USER bo")
		start := time.Now()
		if got := untilClosed(t, c, wait); len(got) != 1 || got[0] != autologout {
			t.Errorf("a partial line read %q, want %s", got, autologout)
		}
		if took := time.Since(start); took < loginTimeout/2 {
			t.Errorf("closed after %v, before the login timeout of %v", took, loginTimeout)
		}
		other.ok("STAT") // logged in, it has Timeout
	})

	t.Run("a byte at a time", func(t *testing.T) {
		e := newEnv(t, memory(t), setup{loginTimeout: loginTimeout})
		c := dial(t, e.addr)
		stop := testlib.Drip(c.Conn, "USER ", loginTimeout/10)
		// The line keeps growing, so only a deadline per line, not per read, ends it.
		got := untilClosed(t, c, wait)
		stop()
		if len(got) != 1 || got[0] != autologout {
			t.Errorf("a line sent a byte at a time read %q, want %s", got, autologout)
		}
	})

	t.Run("after login", func(t *testing.T) {
		const timeout = 2 * time.Second
		e := newEnv(t, memory(t), setup{loginTimeout: loginTimeout, opts: Options{Timeout: timeout}})
		c := e.loggedIn(t)
		time.Sleep(3 * loginTimeout) // time passing is what is tested
		c.ok("STAT")
		start := time.Now()
		if got := untilClosed(t, c, timeout+wait); len(got) != 1 || got[0] != autologout {
			t.Errorf("an idle session read %q, want %s", got, autologout)
		}
		if took := time.Since(start); took < timeout/2 {
			t.Errorf("logged out after %v, before Timeout %v", took, timeout)
		}
	})
}

func TestLoginFailuresPerIP(t *testing.T) {
	st := memory(t)
	put(t, st, box, plainMsg)
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 3, Per: time.Hour})
	e := newEnv(t, st, setup{opts: Options{Options: limit.Options{LoginFailures: failures}}})
	// Logged in before the guessing starts, from the same address.
	working := e.loggedIn(t)

	// Three wrong tokens from the address, over two connections (one alone closes after
	// maxLoginFailures).
	g1 := dial(t, e.addr)
	for range 2 {
		g1.ok("USER " + box)
		g1.fail("PASS wrong", "[AUTH] invalid user name or password")
	}
	g2 := dial(t, e.addr)
	g2.fail("AUTH PLAIN "+plain("", box, "wrong"), "[AUTH] invalid user name or password")
	// Now even the right token is refused, on any connection from the address.
	const throttled = "[SYS/TEMP] too many failed logins from your address (MAYFLY_LOGIN_FAILURES), try later"
	g2.ok("USER " + box)
	g2.fail("PASS "+token(box), throttled)
	g3 := dial(t, e.addr)
	g3.fail("AUTH PLAIN "+plain("", box, token(box)), throttled)
	g3.fail("STAT", "STAT is not valid")

	working.ok("STAT")
	working.ok("RETR 1")
	if got := working.multi(); string(got) != string(plainMsg) {
		t.Errorf("RETR on the session logged in before = %q", got)
	}
	if got := limited(e, limitedLogins); got != 2 {
		t.Errorf("refused{reason=logins} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.srv.metrics.logins.WithLabelValues(loginFailed)); got != 3 {
		t.Errorf("logins{result=failed} = %v, want 3 (throttled ones are not checked)", got)
	}
}
