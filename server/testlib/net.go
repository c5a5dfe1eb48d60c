package testlib

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Listen listens on a free loopback port until the test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// FreePort returns a loopback address nothing listens on, for a server that binds by
// address rather than taking a listener. The port is below Linux's ephemeral range
// (32768 and up), so that between this check and the server's bind neither a client
// socket's local port nor another test's port-0 listener can take it; both come from
// that range.
//
// No port is handed out twice in one process: a port handed out but not yet bound
// looks free, and two servers of one test were once given the same one.
func FreePort(t testing.TB) string {
	t.Helper()
	for range 100 {
		port := 10000 + rand.IntN(22000)
		portsMu.Lock()
		taken := portsGiven[port]
		portsGiven[port] = true
		portsMu.Unlock()
		if taken {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken: another try
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("no free loopback port between 10000 and 32000 in 100 tries")
	return ""
}

// Serve runs serve(ctx, ln) on a free loopback port and returns the address; at the
// end of the test, or at the first call of stop, it ends ctx and requires serve to
// return nil within the safety-net deadline.
func Serve(t testing.TB, serve func(ctx context.Context, ln net.Listener) error) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	// Once: a test may stop the server from another goroutine while Cleanup does too.
	stop = sync.OnceFunc(func() {
		cancel()
		Returned(t, done, 20*time.Second, "Serve after its context ended")
	})
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// LoopbackProxies trusts every test connection as a proxy's, which must then send a
// PROXY header.
var LoopbackProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// Proxied connects to addr as a proxy relaying a client at src does: a PROXY v1
// header naming port as the destination first, then whatever the client sends.
func Proxied(t testing.TB, addr, src string, port int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "PROXY TCP4 %s 127.0.0.1 5555 %d\r\n", src, port); err != nil {
		t.Fatal(err)
	}
	return conn
}

// ProxiedClient is a client at src behind a trusted proxy on port: Proxied, then how
// says how the client gets TLS: "" none (plain makes the client), "implicit" (plain
// makes it after the handshake that follows the header) or "starttls" (startTLS
// makes it, the protocol's own upgrade).
func ProxiedClient[C any](t testing.TB, addr, src string, port int, how string, plain func(net.Conn) C, startTLS func(net.Conn) (C, error)) C {
	t.Helper()
	conn := Proxied(t, addr, src, port)
	switch how {
	case "implicit":
		return plain(tls.Client(conn, ClientTLS("127.0.0.1")))
	case "starttls":
		c, err := startTLS(conn)
		if err != nil {
			t.Fatalf("STARTTLS as %s: %v", src, err)
		}
		return c
	}
	return plain(conn)
}

// NoHeaderClosed connects to addr from a trusted proxy's address without a PROXY header,
// sends line, and requires the connection closed within 5 seconds with nothing read:
// no greeting, no reply.
func NoHeaderClosed(t testing.TB, addr, line string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s\r\n", line)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	if len(got) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("a trusted peer without a PROXY header got %q, %v; want the connection closed", got, err)
	}
}
