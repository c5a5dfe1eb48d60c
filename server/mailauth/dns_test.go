package mailauth

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
)

// testDNS is an authoritative-looking DNS server on loopback, serving a zone
// built by the test, counting the queries it gets.
type testDNS struct {
	addr string

	mu       sync.Mutex
	zone     map[string][]dns.RR // by lower-case FQDN
	queries  map[string]int      // "name/TYPE"
	servfail map[string]bool
	truncate map[string]bool // over UDP, answer TC=1 with no records
	negTTL   uint32          // SOA minimum of negative answers
}

func newTestDNS(t testing.TB, records ...string) *testDNS {
	t.Helper()
	s := &testDNS{zone: map[string][]dns.RR{}, queries: map[string]int{}, servfail: map[string]bool{}, truncate: map[string]bool{}, negTTL: 30}
	for _, r := range records {
		s.add(t, r)
	}
	// TCP on the UDP port too, for the truncation retry.
	s.addr = dnstest.Serve(t, true, s.ServeDNS)
	return s
}

// add parses one record in zone-file syntax.
func (s *testDNS) add(t testing.TB, record string) {
	t.Helper()
	rr, err := dns.NewRR(record)
	if err != nil {
		t.Fatalf("record %q: %v", record, err)
	}
	s.addRR(rr)
}

func (s *testDNS) addRR(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := strings.ToLower(rr.Header().Name)
	s.zone[name] = append(s.zone[name], rr)
}

// txt adds a TXT record of any length, split into 255-byte strings (RFC 1035 section 3.3.14).
func (s *testDNS) txt(name string, ttl uint32, value string) {
	var parts []string
	for len(value) > 255 {
		parts, value = append(parts, value[:255]), value[255:]
	}
	parts = append(parts, value)
	s.addRR(&dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: parts})
}

// fail makes the server answer SERVFAIL for name.
func (s *testDNS) fail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[dns.Fqdn(name)] = true
}

// truncateUDP makes the server answer name over UDP with TC=1 and no records.
func (s *testDNS) truncateUDP(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate[dns.Fqdn(name)] = true
}

func (s *testDNS) count(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[dns.Fqdn(strings.ToLower(name))+"/"+dns.TypeToString[qtype]]
}

func (s *testDNS) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.queries {
		n += c
	}
	return n
}

func (s *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.queries[name+"/"+dns.TypeToString[q.Qtype]]++
	rrs, exists := s.zone[name]
	servfail, truncate := s.servfail[name], s.truncate[name]
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns: "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: s.negTTL}
	s.mu.Unlock()
	switch {
	case servfail:
		m.Rcode = dns.RcodeServerFailure
	case truncate && w.LocalAddr().Network() == "udp":
		m.Truncated = true
	case !exists:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa}
	default:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{soa}
		}
	}
	w.WriteMsg(m) //nolint:errcheck
}

// silentDNS is a loopback UDP port where a server reads queries and never answers.
func silentDNS(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String()
}
