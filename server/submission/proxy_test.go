package submission

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// dialProxied is an SMTP client at src behind the proxy, after EHLO; how says how it
// gets TLS: "" none, "starttls", or "implicit" (the handshake after the header).
func dialProxied(t *testing.T, addr, src, how string) *smtp.Client {
	t.Helper()
	c := testlib.ProxiedClient(t, addr, src, 587, how, smtp.NewClient,
		func(conn net.Conn) (*smtp.Client, error) { return smtp.NewClientStartTLS(conn, clientTLS()) })
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO as %s: %v", src, err)
	}
	return c
}

type syncBuffer = testlib.SyncBuffer

// TestProxiedClients: behind a trusted proxy, each client is the one its PROXY header
// names: wrong tokens count against it alone, its logs name it, and a proxy on
// loopback does not make a remote client local enough to log in without TLS.
func TestProxiedClients(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 3, Per: time.Hour})
	var logs syncBuffer
	// isLoopback stays the real check: the proxy is on loopback, the clients are not.
	e := newEnv(t, st, setup{
		opts:   Options{Options: limit.Options{TrustedProxies: testlib.LoopbackProxies, LoginFailures: failures}},
		logger: slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	const guesser, other = "203.0.113.7", "203.0.113.8"

	t.Run("plain text", func(t *testing.T) {
		c := dialProxied(t, e.addr, guesser, "")
		if ok, _ := c.Extension("AUTH"); ok {
			t.Errorf("EHLO without TLS offers AUTH to a client at %s", guesser)
		}
		err := c.Auth(sasl.NewPlainClient("", box, token(box)))
		wantCode(t, "AUTH without TLS from "+guesser, err, 538, smtp.EnhancedCode{5, 7, 11}, "Encryption required")

		// A client on this machine, relayed, is still local.
		c = dialProxied(t, e.addr, "127.0.0.2", "")
		if err := c.Auth(sasl.NewPlainClient("", box, token(box))); err != nil {
			t.Errorf("AUTH without TLS from 127.0.0.2: %v", err)
		}
	})

	t.Run("login failures", func(t *testing.T) {
		g := dialProxied(t, e.tlsAddr, guesser, "implicit")
		for i := range 3 {
			err := g.Auth(sasl.NewPlainClient("", box, fmt.Sprintf("guess-%d", i)))
			wantCode(t, "a wrong token", err, 535, smtp.EnhancedCode{5, 7, 8}, "")
		}
		err := dialProxied(t, e.addr, guesser, "starttls").Auth(sasl.NewPlainClient("", box, token(box)))
		wantCode(t, "the right token after the guesses", err, 454, smtp.EnhancedCode{4, 7, 0}, "too many failed logins")

		// Through the same proxy, another client is not held to the guesser's failures.
		for how, addr := range map[string]string{"starttls": e.addr, "implicit": e.tlsAddr} {
			c := dialProxied(t, addr, other, how)
			if err := c.Auth(sasl.NewPlainClient("", box, token(box))); err != nil {
				t.Fatalf("AUTH (%s) from %s after %s's failures: %v", how, other, guesser, err)
			}
			if err := send(c, box, []string{ann}, letter(box, ann, "Re: hi", "through the proxy")); err != nil {
				t.Fatalf("send (%s): %v", how, err)
			}
		}
		if !failures.Empty(netip.MustParseAddr(guesser)) {
			t.Errorf("LoginFailures for %s not used up after its 3 wrong tokens", guesser)
		}
		if failures.Empty(netip.MustParseAddr("127.0.0.1")) {
			t.Error("LoginFailures counted the failures under the proxy's address")
		}
		n := 0
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, `msg="login failed"`) && strings.Contains(l, " remote="+guesser+":5555") {
				n++
			}
		}
		if n != 3 {
			t.Errorf("%d login failed lines name remote=%s:5555, want 3:\n%s", n, guesser, logs.String())
		}
	})

	// From a trusted proxy's address, a connection without a header is closed before
	// any greeting. (One that sends nothing is closed when the header is overdue.)
	t.Run("no header", func(t *testing.T) { testlib.NoHeaderClosed(t, e.addr, "EHLO client.test") })
}
