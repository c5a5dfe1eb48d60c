package limit

import (
	"net"
	"net/netip"
)

// Front is what every mail listener puts between its socket and its protocol.
type Front struct {
	// TrustedProxies are the networks of the TCP proxies (load balancers) in front of
	// the listener, which send the PROXY protocol header (v1 or v2) naming the client
	// they relay (ProxyListener). A peer in one must send it, and every per-client
	// rule (connection and login-failure limits, the loopback exemption for plain-text
	// logins, logs) then applies to the client it names; a peer in none is its own
	// client, header or not. nil = no proxies: every peer is its own client.
	TrustedProxies []netip.Prefix
	// PerClient caps each client's connections at once (Listener), a client being its
	// IPv4 address or its IPv6 /64 (Key); nil = no cap.
	PerClient *Conns
	// Refusal is the protocol's line to a client over PerClient, on a plain listener.
	Refusal string
	// Refused counts a client turned away by PerClient; nil = not counted.
	Refused func()
}

// Wrap puts f in front of ln. The PROXY header comes first, so that the cap, and
// everything after it (the loopback exemption, logs), sees the client a trusted proxy
// relays rather than the proxy; on an implicit-TLS listener the handshake follows the
// header. There a client over its cap just sees the connection close: it would need a
// handshake to read a refusal, which is the work the cap saves.
func (f Front) Wrap(ln net.Listener, implicitTLS bool) net.Listener {
	refusal := f.Refusal
	if implicitTLS {
		refusal = ""
	}
	return Listener(ProxyListener(ln, f.TrustedProxies), f.PerClient, refusal, f.Refused)
}
