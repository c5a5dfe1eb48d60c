package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// serveDNSStub answers on addr (a loopback UDP address) as the DNS of the generator's
// sender domain, so a Mayfly under load can verify SPF and DMARC without any traffic
// leaving the machine: the domain's SPF allows loopback, its DMARC policy is p=none,
// and every other name does not exist. It serves until ctx ends.
func serveDNSStub(ctx context.Context, addr, senderDomain string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns stub: %w", err)
	}
	senderDomain = strings.ToLower(senderDomain)
	zone := map[string]string{
		dns.Fqdn(senderDomain):             "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all",
		dns.Fqdn("_dmarc." + senderDomain): "v=DMARC1; p=none",
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 {
			q := r.Question[0]
			txt, ok := zone[strings.ToLower(q.Name)]
			switch {
			case !ok:
				m.Rcode = dns.RcodeNameError
			case q.Qtype == dns.TypeTXT:
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 3600}, Txt: []string{txt}})
			}
		}
		w.WriteMsg(m)
	})}
	go func() {
		<-ctx.Done()
		srv.Shutdown()
	}()
	if err := srv.ActivateAndServe(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("dns stub: %w", err)
	}
	return nil
}
