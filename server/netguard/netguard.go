// Package netguard keeps the connections Mayfly makes on behalf of others (direct
// delivery to an MX, webhooks) away from this machine and its private networks: a
// sender who controls a domain's DNS could otherwise point an MX at 127.0.0.1 or at an
// internal service, and have us talk to it (SSRF).
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrForbidden is the error of a dial refused for its address.
var ErrForbidden = errors.New("address not allowed for outbound connections")

// Forbidden networks besides what netip's predicates name: RFC 6598 shared address
// space (carrier-grade NAT), "this network" (RFC 1122 section 3.2.1.3, 0.0.0.0/8 reaches
// this host on Linux), the reserved 240.0.0.0/4 and the limited broadcast inside it.
var (
	cgnat       = netip.MustParsePrefix("100.64.0.0/10")
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	reserved    = netip.MustParsePrefix("240.0.0.0/4")
)

// Public reports whether ip may be the target of an outbound connection made for
// someone else: not loopback, private (RFC 1918, and the ULAs fc00::/7 of RFC 4193),
// link-local, shared (CGNAT), multicast, unspecified or reserved. An IPv4 address
// written as IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it is.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsLoopback(), ip.IsPrivate(),
		ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(),
		ip.IsMulticast():
		return false
	case ip.Is4() && (cgnat.Contains(ip) || thisNetwork.Contains(ip) || reserved.Contains(ip)):
		return false
	}
	return true
}

// Control is a net.Dialer Control function that refuses every address Public does
// not allow. It runs on the address actually dialed, after name resolution, so a name
// that resolves to a public address when checked and to 127.0.0.1 when dialed (DNS
// rebinding) is still refused.
func Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%s %s: %w", network, address, ErrForbidden)
	}
	if !Public(ap.Addr()) {
		return fmt.Errorf("%s is not a public address: %w", ap.Addr().Unmap(), ErrForbidden)
	}
	return nil
}

// Dialer returns d refusing what Control refuses, unless allowPrivate: then d as it is
// (tests, and deployments whose mail servers are on a private network).
func Dialer(d net.Dialer, allowPrivate bool) *net.Dialer {
	if !allowPrivate {
		d.Control = Control
	}
	return &d
}
