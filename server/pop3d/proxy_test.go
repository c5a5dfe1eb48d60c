package pop3d

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

func dialProxied(t *testing.T, addr, src string) *client {
	t.Helper()
	return start(t, testlib.Proxied(t, addr, src, 110))
}

// dialProxiedTLS is dialProxied to a POP3S listener: the handshake follows the header.
func dialProxiedTLS(t *testing.T, addr, src string, pool *x509.CertPool) *client {
	t.Helper()
	return start(t, tls.Client(testlib.Proxied(t, addr, src, 110), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))
}

// TestProxiedClients: behind a trusted proxy, each client is the one its PROXY header
// names: wrong tokens count against it alone, and a proxy on loopback does not make a
// remote client local enough to send its password in the clear.
func TestProxiedClients(t *testing.T) {
	st := memory(t)
	put(t, st, box, plainMsg)
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 3, Per: time.Hour})
	// isLoopback stays the real one: the proxy's address is loopback, the clients' not.
	e := newEnv(t, st, setup{opts: Options{Options: limit.Options{TrustedProxies: testlib.LoopbackProxies, LoginFailures: failures}}})
	const guesser, other = "203.0.113.7", "203.0.113.8"

	c := dialProxied(t, e.addr, guesser)
	c.fail("USER "+box, "[AUTH] plaintext authentication is not allowed without TLS")
	// Three wrong tokens over TLS: two after STLS, one on POP3S.
	c.starttls(e.pool)
	for range 2 {
		c.ok("USER " + box)
		c.fail("PASS wrong", "[AUTH] invalid user name or password")
	}
	dialProxiedTLS(t, e.tlsAddr, guesser, e.pool).fail("AUTH PLAIN "+plain("", box, "wrong"), "[AUTH] invalid user name or password")
	const throttled = "[SYS/TEMP] too many failed logins from your address (MAYFLY_LOGIN_FAILURES), try later"
	dialProxiedTLS(t, e.tlsAddr, guesser, e.pool).fail("AUTH PLAIN "+plain("", box, token(box)), throttled)

	// Through the same proxy, another client is not held to the guesser's failures.
	o := dialProxiedTLS(t, e.tlsAddr, other, e.pool)
	o.login(box, token(box))
	o.ok("STAT")
	o = dialProxied(t, e.addr, other)
	o.starttls(e.pool)
	o.login(box, token(box))

	if !failures.Empty(netip.MustParseAddr(guesser)) {
		t.Errorf("LoginFailures for %s not used up after its 3 wrong tokens", guesser)
	}
	if failures.Empty(netip.MustParseAddr("127.0.0.1")) {
		t.Error("LoginFailures counted the failures under the proxy's address")
	}

	// A client on this machine, through the proxy, is still local.
	dialProxied(t, e.addr, "127.0.0.2").login(box, token(box))

	// From a trusted proxy's address, a connection without a header is closed, before
	// any greeting. (One that sends nothing is closed when the header is overdue.)
	testlib.NoHeaderClosed(t, e.addr, "CAPA")
}
