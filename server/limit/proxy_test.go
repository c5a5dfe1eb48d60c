package limit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

var loopbackNet = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// accepting serves ln to the returned channel until the test ends.
func accepting(t *testing.T, ln net.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(ch)
		for c := range ch {
			c.Close()
		}
	})
	return ch
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// dialWith connects to ln and writes first, unless it is empty.
func dialWith(t *testing.T, ln net.Listener, first []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(first) > 0 {
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func nextConn(t *testing.T, ch <-chan net.Conn, wait time.Duration) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(wait):
		t.Fatalf("no connection accepted within %v", wait)
		return nil
	}
}

func header(t *testing.T, version byte, src, dst net.Addr) []byte {
	t.Helper()
	b, err := proxyproto.HeaderProxyFromAddrs(version, src, dst).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tcpAddr(s string) *net.TCPAddr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestProxyListenerNoTrustedProxies(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	if got := ProxyListener(ln, nil); got != ln {
		t.Errorf("ProxyListener(ln, nil) = %T, want ln itself", got)
	}
}

func TestProxyListenerTrustedPeer(t *testing.T) {
	dst := tcpAddr("127.0.0.1:143")
	for _, tt := range []struct {
		name   string
		header []byte
		want   string
	}{
		{"v1", []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 143\r\n"), "203.0.113.7:5555"},
		{"v1 IPv6", []byte("PROXY TCP6 2001:db8::7 ::1 5555 143\r\n"), "[2001:db8::7]:5555"},
		{"v2", header(t, 2, tcpAddr("203.0.113.7:5555"), dst), "203.0.113.7:5555"},
		{"v2 IPv6", header(t, 2, tcpAddr("[2001:db8::7]:5555"), tcpAddr("[::1]:143")), "[2001:db8::7]:5555"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln := listen(t)
			accepted := accepting(t, ProxyListener(ln, loopbackNet))
			// The header and the first line in one write: the line must survive
			// the header being read off the same segment.
			dialWith(t, ln, append(tt.header, "a1 NOOP\r\n"...))
			c := nextConn(t, accepted, 5*time.Second)
			if got := c.RemoteAddr().String(); got != tt.want {
				t.Errorf("RemoteAddr() = %s, want %s, the header's source", got, tt.want)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); line != "a1 NOOP\r\n" {
				t.Errorf("first line after the header = %q, %v, want %q", line, err, "a1 NOOP\r\n")
			}
		})
	}
}

// A health check's LOCAL header carries no client: the proxy's own address stays.
func TestProxyListenerLocalHeader(t *testing.T) {
	ln := listen(t)
	accepted := accepting(t, ProxyListener(ln, loopbackNet))
	local, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL}).Format()
	if err != nil {
		t.Fatal(err)
	}
	client := dialWith(t, ln, local)
	c := nextConn(t, accepted, 5*time.Second)
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr() after a LOCAL header = %s, want the peer's own %s", got, want)
	}
}

func TestProxyListenerUntrustedPeer(t *testing.T) {
	ln := listen(t)
	// Trusting only a network the test does not dial from makes 127.0.0.1 a stranger.
	accepted := accepting(t, proxyListener(ln, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, time.Minute))

	t.Run("sends a header", func(t *testing.T) {
		client := dialWith(t, ln, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 143\r\n"))
		c := nextConn(t, accepted, 5*time.Second)
		if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
			t.Errorf("RemoteAddr() = %s, want the peer's own %s: an untrusted header must not count", got, want)
		}
	})
	// Under the library's IGNORE policy RemoteAddr would wait, here a minute, for a
	// header from a client that sends nothing: limit.Listener calls it in the accept
	// loop, so one silent client would hold up everyone's connections.
	t.Run("silent", func(t *testing.T) {
		client := dialWith(t, ln, nil)
		start := time.Now()
		c := nextConn(t, accepted, 5*time.Second)
		got := c.RemoteAddr().String()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Accept and RemoteAddr of a silent untrusted peer took %v; nothing should be read", took)
		}
		if want := client.LocalAddr().String(); got != want {
			t.Errorf("RemoteAddr() = %s, want %s", got, want)
		}
	})
}

// A trusted peer must send a valid header; a connection without one is closed before
// anyone sees it, and the listener goes on to the next.
func TestProxyListenerTrustedPeerWithoutHeader(t *testing.T) {
	unix := header(t, 2, &net.UnixAddr{Name: "/run/a", Net: "unix"}, &net.UnixAddr{Name: "/run/b", Net: "unix"})
	for _, tt := range []struct {
		name  string
		first []byte
	}{
		{"protocol first", []byte("a1 CAPABILITY\r\n")},
		{"silent", nil},
		{"malformed v1", []byte("PROXY TCP4 203.0.113.7\r\n")},
		{"v2 for a unix socket", unix},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln := listen(t)
			accepted := accepting(t, proxyListener(ln, loopbackNet, 200*time.Millisecond))
			bad := dialWith(t, ln, tt.first)
			bad.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := bad.Read(make([]byte, 64)); !errors.Is(err, io.EOF) && !isReset(err) {
				t.Errorf("read on the connection without a header = %d bytes, %v; want it closed", n, err)
			}
			dialWith(t, ln, []byte("PROXY TCP4 203.0.113.8 127.0.0.1 5555 143\r\n"))
			c := nextConn(t, accepted, 5*time.Second)
			if got := c.RemoteAddr().String(); got != "203.0.113.8:5555" {
				t.Errorf("first connection accepted is from %s, want the one with a header (203.0.113.8:5555)", got)
			}
		})
	}
}

// Listener behind ProxyListener counts the proxied clients apart.
func TestProxyListenerUnderConnLimit(t *testing.T) {
	ln := listen(t)
	accepted := accepting(t, Listener(ProxyListener(ln, loopbackNet), NewConns(1), "421 too many\r\n", nil))
	dialWith(t, ln, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 143\r\n"))
	nextConn(t, accepted, 5*time.Second)
	dialWith(t, ln, []byte("PROXY TCP4 203.0.113.8 127.0.0.1 5556 143\r\n"))
	if c := nextConn(t, accepted, 5*time.Second); c.RemoteAddr().String() != "203.0.113.8:5556" {
		t.Errorf("second client accepted as %s, want 203.0.113.8:5556", c.RemoteAddr())
	}
	again := dialWith(t, ln, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5557 143\r\n"))
	again.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(again).ReadString('\n'); line != "421 too many\r\n" {
		t.Errorf("second connection of 203.0.113.7 got %q, %v; want the refusal", line, err)
	}
}

// isReset says whether err is the server closing with our data unread.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

func TestIsTrusted(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	for _, tt := range []struct {
		name string
		addr string
		want bool
	}{
		{"IPv4 inside", "10.1.2.3:40000", true},
		{"IPv4 outside", "192.0.2.1:40000", false},
		// How an IPv4 peer arrives on a dual-stack ("tcp", ":143") listener.
		{"IPv4-mapped inside", "[::ffff:10.1.2.3]:40000", true},
		{"IPv6 inside", "[2001:db8::1]:40000", true},
		{"IPv6 outside", "[2001:db9::1]:40000", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := isTrusted(tcpAddr(tt.addr), trusted); got != tt.want {
				t.Errorf("isTrusted(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}
