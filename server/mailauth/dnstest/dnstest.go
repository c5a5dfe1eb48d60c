// Package dnstest serves test zones on loopback for tests that verify mail end to end.
package dnstest

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TXTServer answers TXT queries from txt (keys are lower-case names with the final dot)
// on a loopback UDP port until the test ends, and returns its address. Other names do
// not exist; other types of a known name have no data.
func TXTServer(tb testing.TB, txt map[string]string) string {
	tb.Helper()
	return Serve(tb, false, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
		} else if v, ok := txt[strings.ToLower(r.Question[0].Name)]; !ok {
			m.Rcode = dns.RcodeNameError
		} else if r.Question[0].Qtype == dns.TypeTXT {
			// A TXT string holds at most 255 bytes (RFC 1035 section 3.3.14).
			var chunks []string
			for len(v) > 255 {
				chunks, v = append(chunks, v[:255]), v[255:]
			}
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: append(chunks, v)})
		}
		w.WriteMsg(m)
	})
}

// ZoneServer answers queries of any type from rrs, as an authoritative server of
// every name in them would, on a loopback port over UDP and TCP until the test ends,
// and returns the address. A name that owns no record but has one below it exists
// (RFC 8020: _domainkey is not NXDOMAIN when a selector lives under it); other names
// do not exist. A CNAME is followed within rrs, as a recursive resolver would. A UDP
// answer larger than the client's EDNS0 size, or 512 bytes without EDNS0, is
// truncated, so that clients retry over TCP (RFC 7766 section 5). The SOA of the
// closest enclosing zone in rrs, if any, goes with negative answers (RFC 2308).
func ZoneServer(tb testing.TB, rrs []dns.RR) string {
	tb.Helper()
	z := make(zone)
	for _, rr := range rrs {
		name := dns.CanonicalName(rr.Header().Name)
		z[name] = append(z[name], rr)
	}
	return Serve(tb, true, func(w dns.ResponseWriter, r *dns.Msg) {
		m := z.answer(r)
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
			m.SetEdns0(opt.UDPSize(), false) // RFC 6891 section 6.1.1
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncate(size)
		}
		w.WriteMsg(m)
	})
}

// zone holds records by lower-case owner name.
type zone map[string][]dns.RR

func (z zone) answer(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 || r.Question[0].Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := r.Question[0]
	name := dns.CanonicalName(q.Name)
	found := false
	// A CNAME chain longer than a few links is a loop in a test zone.
	for range 8 {
		var cname *dns.CNAME
		for _, rr := range z[name] {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
				found = true
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if found || cname == nil {
			break
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		name = dns.CanonicalName(cname.Target)
	}
	if !found {
		// RFC 6604: the code speaks of the last name in the chain.
		if !z.exists(name) {
			m.Rcode = dns.RcodeNameError
		}
		if soa := z.soa(name); soa != nil {
			m.Ns = append(m.Ns, soa)
		}
	}
	return m
}

// exists reports whether name owns records or has a descendant that does.
func (z zone) exists(name string) bool {
	if len(z[name]) > 0 {
		return true
	}
	for owner := range z {
		if dns.IsSubDomain(name, owner) {
			return true
		}
	}
	return false
}

// soa returns the SOA of the closest zone in z that holds name, or nil.
func (z zone) soa(name string) dns.RR {
	for {
		for _, rr := range z[name] {
			if rr.Header().Rrtype == dns.TypeSOA {
				return dns.Copy(rr)
			}
		}
		if name == "." {
			return nil
		}
		if i, end := dns.NextLabel(name, 0); !end {
			name = name[i:]
		} else {
			name = "."
		}
	}
}

// Serve runs handler on a loopback UDP port, and on the same TCP port when tcp is
// set, until the test ends, and returns the address.
func Serve(tb testing.TB, tcp bool, handler dns.HandlerFunc) string {
	tb.Helper()
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	// The UDP port may be taken for TCP by someone else: try a few.
	for range 10 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		if !tcp {
			break
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		tb.Fatal(err)
	}
	servers := []*dns.Server{{PacketConn: pc, Handler: handler}}
	if ln != nil {
		servers = append(servers, &dns.Server{Listener: ln, Handler: handler})
	}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		tb.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}
