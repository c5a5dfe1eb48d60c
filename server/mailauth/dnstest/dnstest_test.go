package dnstest

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestZoneServer(t *testing.T) {
	rrs := []dns.RR{
		mustRR(t, "example.org. 3600 IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 300"),
		mustRR(t, "example.org. 3600 IN MX 10 mail.example.org."),
		mustRR(t, "example.org. 3600 IN TXT \"v=spf1 mx -all\""),
		mustRR(t, "Mail.Example.org. 3600 IN A 192.0.2.25"),
		mustRR(t, "s1._domainkey.example.org. 3600 IN TXT \"v=DKIM1; p=\" \"abc\""),
		mustRR(t, "www.example.org. 3600 IN CNAME mail.example.org."),
		mustRR(t, "gone.example.org. 3600 IN CNAME nowhere.example.net."),
		mustRR(t, "25.2.0.192.in-addr.arpa. 3600 IN PTR mail.example.org."),
	}
	for i := range 100 {
		rrs = append(rrs, mustRR(t, "big.example.org. 60 IN TXT \""+strings.Repeat("x", 200)+"\" \""+string(rune('a'+i%26))+"\""))
	}
	addr := ZoneServer(t, rrs)

	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		net    string
		rcode  int
		answer []string // the answer's records, by type and data
		soa    bool     // a negative answer carries the zone's SOA
	}{
		{"A, any case", "MAIL.example.ORG.", dns.TypeA, "udp", dns.RcodeSuccess, []string{"A 192.0.2.25"}, false},
		{"MX", "example.org.", dns.TypeMX, "udp", dns.RcodeSuccess, []string{"MX 10 mail.example.org."}, false},
		{"TXT of two strings", "s1._domainkey.example.org.", dns.TypeTXT, "tcp", dns.RcodeSuccess, []string{`TXT "v=DKIM1; p=" "abc"`}, false},
		{"PTR", "25.2.0.192.in-addr.arpa.", dns.TypePTR, "udp", dns.RcodeSuccess, []string{"PTR mail.example.org."}, false},
		{"CNAME followed", "www.example.org.", dns.TypeA, "udp", dns.RcodeSuccess, []string{"CNAME mail.example.org.", "A 192.0.2.25"}, false},
		{"CNAME asked for", "www.example.org.", dns.TypeCNAME, "udp", dns.RcodeSuccess, []string{"CNAME mail.example.org."}, false},
		{"CNAME out of the zone", "gone.example.org.", dns.TypeA, "udp", dns.RcodeNameError, []string{"CNAME nowhere.example.net."}, false},
		{"NODATA", "mail.example.org.", dns.TypeAAAA, "udp", dns.RcodeSuccess, nil, true},
		{"empty non-terminal", "_domainkey.example.org.", dns.TypeTXT, "udp", dns.RcodeSuccess, nil, true},
		{"NXDOMAIN", "nope.example.org.", dns.TypeTXT, "udp", dns.RcodeNameError, nil, true},
		{"NXDOMAIN outside the zone", "example.net.", dns.TypeTXT, "udp", dns.RcodeNameError, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.qname, tt.qtype)
			r, _, err := (&dns.Client{Net: tt.net}).Exchange(m, addr)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, rr := range r.Answer {
				got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
				got[len(got)-1] = dns.TypeToString[rr.Header().Rrtype] + " " + got[len(got)-1]
			}
			if r.Rcode != tt.rcode || !slices.Equal(got, tt.answer) || !r.Authoritative {
				t.Errorf("%s %s = %s %q (aa %v), want %s %q", tt.qname, dns.TypeToString[tt.qtype], dns.RcodeToString[r.Rcode], got, r.Authoritative, dns.RcodeToString[tt.rcode], tt.answer)
			}
			if hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA; hasSOA != tt.soa {
				t.Errorf("authority section = %v, want SOA %v", r.Ns, tt.soa)
			}
		})
	}

	t.Run("truncated over UDP, whole over TCP", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetQuestion("big.example.org.", dns.TypeTXT)
		m.SetEdns0(1232, false)
		r, _, err := (&dns.Client{Net: "udp", UDPSize: 1232}).Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Truncated || len(r.Answer) >= 100 || r.Len() > 1232 {
			t.Errorf("UDP answer: truncated %v, %d records, %d bytes; want a truncated answer within 1232 bytes", r.Truncated, len(r.Answer), r.Len())
		}
		r, _, err = (&dns.Client{Net: "tcp"}).Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		if r.Truncated || len(r.Answer) != 100 {
			t.Errorf("TCP answer: truncated %v, %d records; want all 100", r.Truncated, len(r.Answer))
		}
	})
}

func TestTXTServer(t *testing.T) {
	long := strings.Repeat("k", 300)
	addr := TXTServer(t, map[string]string{"s._domainkey.example.org.": long})
	m := new(dns.Msg)
	m.SetQuestion("S._domainkey.example.org.", dns.TypeTXT)
	r, err := dns.Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || !slices.Equal(r.Answer[0].(*dns.TXT).Txt, []string{long[:255], long[255:]}) {
		t.Errorf("TXT = %v, want the value in strings of 255 bytes", r.Answer)
	}
	m.SetQuestion("other.example.org.", dns.TypeTXT)
	if r, err = dns.Exchange(m, addr); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("unknown name = %v %v, want NXDOMAIN", r, err)
	}
}
