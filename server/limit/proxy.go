package limit

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// proxyHeaderTimeout bounds the wait for a trusted proxy's PROXY header. A proxy
// sends it as soon as it has connected, before any byte of its client's (haproxy's
// send-proxy), so it arrives within a round trip; the wait holds up the accept loop
// (see ProxyListener), so it is short.
const proxyHeaderTimeout = 5 * time.Second

// ProxyListener wraps ln so that a connection from a trusted proxy reports, as its
// RemoteAddr, the client the proxy relays: the source address of the PROXY protocol
// header (v1 or v2) the proxy sends first. Every limit keyed by client address, and
// every check of where a client is, then sees the client rather than the proxy.
// With no trusted prefixes ln is returned as it is.
//
// A peer inside a trusted prefix must send the header: one that does not within 5
// seconds, or sends a malformed one, or one for anything but TCP over IPv4 or IPv6,
// is closed and never reaches Accept's caller. A LOCAL header (v2 health checks, v1
// UNKNOWN) leaves the proxy's own address. Any other peer is taken as it is, unread:
// its address is its own, and a header it sends reaches the protocol as a line of
// garbage, so no client can claim another's address.
//
// Accept reads a trusted peer's header before it returns the connection, so that
// what it returns has its address settled (limit.Listener counts it at once). A
// trusted proxy that is slow to send its header therefore holds up the accept loop,
// and so every other connection, for up to those 5 seconds; an untrusted peer never
// does, as nothing is read from it. IPv4 prefixes match IPv4 peers also on a
// dual-stack listener, where they arrive as IPv4-mapped IPv6 addresses.
func ProxyListener(ln net.Listener, trusted []netip.Prefix) net.Listener {
	return proxyListener(ln, trusted, proxyHeaderTimeout)
}

// proxyListener is ProxyListener with the header timeout the tests shorten.
func proxyListener(ln net.Listener, trusted []netip.Prefix, timeout time.Duration) net.Listener {
	if len(trusted) == 0 {
		return ln
	}
	trusted = append([]netip.Prefix(nil), trusted...) // the caller's slice may change
	return &proxyHeaderListener{Listener: &proxyproto.Listener{
		Listener: ln,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if isTrusted(o.Upstream, trusted) {
				return proxyproto.REQUIRE, nil
			}
			// Not IGNORE: that still waits for and strips a header, reading from a
			// client that may never write, in the accept loop. SKIP hands the
			// socket on untouched.
			return proxyproto.SKIP, nil
		},
		ValidateHeader:    validateHeader,
		ReadHeaderTimeout: timeout,
	}}
}

func isTrusted(addr net.Addr, trusted []netip.Prefix) bool {
	var ip netip.Addr
	if a, ok := addr.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(a.IP)
	} else if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var errProxiedNotTCP = errors.New("proxy header: not TCP over IPv4 or IPv6")

// validateHeader refuses headers for UDP or Unix sockets, whose source is no client
// address a limit could count.
func validateHeader(h *proxyproto.Header) error {
	if h.Command.IsLocal() {
		return nil
	}
	if _, _, ok := h.TCPAddrs(); !ok {
		return errProxiedNotTCP
	}
	return nil
}

// proxyHeaderListener reads the header of each connection from a trusted proxy in
// Accept, and closes those without a valid one.
type proxyHeaderListener struct {
	*proxyproto.Listener
}

func (l *proxyHeaderListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		pc, ok := c.(*proxyproto.Conn)
		if !ok {
			return c, nil // an untrusted peer, skipped
		}
		// Under REQUIRE the header is nil exactly when reading it failed: missing,
		// late, malformed or refused by validateHeader. The library would report
		// that only at the first Read, after the protocol had greeted the proxy
		// and counted the connection under the proxy's address.
		if pc.ProxyHeader() == nil {
			pc.Close()
			continue
		}
		return pc, nil
	}
}
