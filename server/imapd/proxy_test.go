package imapd

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// dialProxied is an IMAP client at src behind the proxy; how says how it gets TLS:
// "" none, "starttls", or "implicit" (IMAPS, the handshake after the header).
func dialProxied(t *testing.T, addr, src, how string) *imapclient.Client {
	t.Helper()
	c := testlib.ProxiedClient(t, addr, src, 143, how,
		func(conn net.Conn) *imapclient.Client { return imapclient.New(conn, nil) },
		func(conn net.Conn) (*imapclient.Client, error) {
			return imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: clientTLS()})
		})
	t.Cleanup(func() { c.Close() })
	if err := c.WaitGreeting(); err != nil {
		t.Fatalf("greeting as %s: %v", src, err)
	}
	return c
}

// TestProxiedClients: behind a trusted proxy, each client is the one its PROXY header
// names: wrong tokens count against it alone, and a proxy on loopback does not make a
// remote client local enough to log in without TLS.
func TestProxiedClients(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 3, Per: time.Hour})
	// s.loopback stays the real check: the proxy is on loopback, the clients are not.
	proxy := func(o *Options, _ *Server) {
		o.TrustedProxies = testlib.LoopbackProxies
		o.LoginFailures = failures
	}
	srv := startServer(t, st, false, proxy)
	tlsSrv := startServer(t, st, true, proxy)
	inbox, token := newInbox()
	put(t, st, inbox, "a", nil)
	const guesser, other = "203.0.113.7", "203.0.113.8"

	t.Run("plain text", func(t *testing.T) {
		for _, tt := range []struct {
			src      string
			disabled bool
		}{
			{guesser, true},
			{"127.0.0.2", false}, // a client on this machine, relayed: still local
		} {
			c := dialProxied(t, srv.addr, tt.src, "")
			caps, err := c.Capability().Wait()
			if err != nil {
				t.Fatal(err)
			}
			if caps.Has(imap.CapLoginDisabled) != tt.disabled {
				t.Errorf("client at %s: LOGINDISABLED = %v, want %v (capabilities %v)", tt.src, !tt.disabled, tt.disabled, capList(caps))
			}
			err = c.Login(inbox, token).Wait()
			if tt.disabled {
				wantCode(t, "LOGIN without TLS from "+tt.src, err, imap.ResponseCodePrivacyRequired)
			} else if err != nil {
				t.Errorf("LOGIN without TLS from %s = %v, want OK", tt.src, err)
			}
		}
	})

	t.Run("login failures", func(t *testing.T) {
		g := dialProxied(t, tlsSrv.addr, guesser, "implicit")
		for i := range 3 {
			wantCode(t, fmt.Sprintf("wrong token %d", i), g.Login(inbox, fmt.Sprintf("wrong-%d", i)).Wait(), imap.ResponseCodeAuthenticationFailed)
		}
		err := dialProxied(t, srv.addr, guesser, "starttls").Login(inbox, token).Wait()
		wantCode(t, "the right token after 3 wrong ones, from the guesser", err, imap.ResponseCodeUnavailable)

		// Through the same proxy, another client is not held to the guesser's failures.
		for _, how := range []string{"starttls", "implicit"} {
			addr := srv.addr
			if how == "implicit" {
				addr = tlsSrv.addr
			}
			c := dialProxied(t, addr, other, how)
			if err := c.Login(inbox, token).Wait(); err != nil {
				t.Fatalf("LOGIN (%s) from %s after %s's failures = %v", how, other, guesser, err)
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("SELECT (%s) = %v", how, err)
			}
		}
		if !failures.Empty(netip.MustParseAddr(guesser)) {
			t.Errorf("LoginFailures for %s not used up after its 3 wrong tokens", guesser)
		}
		if failures.Empty(netip.MustParseAddr("127.0.0.1")) {
			t.Error("LoginFailures counted the failures under the proxy's address")
		}
	})

	// From a trusted proxy's address, a connection without a header is closed before
	// any greeting. (One that sends nothing is closed when the header is overdue.)
	t.Run("no header", func(t *testing.T) { testlib.NoHeaderClosed(t, srv.addr, "a1 CAPABILITY") })
}
