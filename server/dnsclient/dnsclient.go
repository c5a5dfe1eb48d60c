// Package dnsclient is Mayfly's one DNS client: the lookups of SPF, DKIM and DMARC,
// outbound MX and address lookups, and `mayfly dns -check` go through it to one
// resolver of the operator's choice, with a cache shared by every caller.
package dnsclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Cache bounds. RFC 2308 section 5 lets a resolver cap negative TTLs; we cap
// positive ones too so a record published with a week-long TTL is still
// re-read within the hour.
const (
	maxPositiveTTL  = time.Hour
	maxNegativeTTL  = 15 * time.Minute
	defaultNegative = 60 * time.Second // no SOA in the authority section
	servfailTTL     = 5 * time.Second  // RFC 2308 section 7.1: server failures may be cached briefly
	maxCacheEntries = 50000
	// evictScan is how many entries one insertion into a full cache looks at.
	evictScan = 64
)

// Options configure a Resolver. Zero values mean the documented defaults.
type Options struct {
	Server  string        // MAYFLY_DNS host:port of a resolver; "" = the servers of /etc/resolv.conf
	Timeout time.Duration // per question, every server and round together; 0 = 2s
	// Rounds is how many times the servers are asked in turn before a question
	// fails; 0 = 1. A one-off command gives 2, so that one lost UDP datagram does
	// not read as a missing record.
	Rounds  int
	NoCache bool // every question goes to the server: a check of what is published now
	Metrics prometheus.Registerer
	Now     func() time.Time // the cache's clock; nil = time.Now
}

// Resolver answers lookups through the DNS servers of Options, with a cache shared
// by all callers. Its methods return *net.DNSError, not wrapped: the SPF and
// go-msgauth libraries tell "not found" from "temporary" by a type assertion on
// that exact type. It is safe for concurrent use.
type Resolver struct {
	servers []string
	timeout time.Duration
	rounds  int
	noCache bool
	udp     *dns.Client
	tcp     *dns.Client
	now     func() time.Time
	metrics *metrics

	flight singleflight.Group

	mu    sync.Mutex
	cache map[cacheKey]*cacheEntry
	max   int
}

type cacheKey struct {
	name  string // lower case, fully qualified
	qtype uint16
}

// cacheEntry is a complete answer: either records or a negative or failed outcome.
type cacheEntry struct {
	rrs     []dns.RR
	err     *net.DNSError // nil when rrs is the answer (possibly empty is never stored: that is NODATA)
	expires time.Time
}

// New returns a Resolver. It fails only on a malformed Options.Server or an
// unreadable /etc/resolv.conf.
func New(o Options) (*Resolver, error) {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var servers []string
	if o.Server != "" {
		if _, _, err := net.SplitHostPort(o.Server); err != nil {
			return nil, fmt.Errorf("dns server %q: %w", o.Server, err)
		}
		servers = []string{o.Server}
	} else {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("read resolv.conf: %w", err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, errors.New("read resolv.conf: no nameserver")
		}
	}
	return &Resolver{
		servers: servers,
		timeout: o.Timeout,
		rounds:  max(o.Rounds, 1),
		noCache: o.NoCache,
		udp:     &dns.Client{Net: "udp", Timeout: o.Timeout, UDPSize: 1232},
		tcp:     &dns.Client{Net: "tcp", Timeout: o.Timeout},
		now:     o.Now,
		metrics: newMetrics(o.Metrics),
		cache:   make(map[cacheKey]*cacheEntry),
		max:     maxCacheEntries,
	}, nil
}

// Servers are the host:port of the servers asked, in order.
func (r *Resolver) Servers() []string { return slices.Clone(r.servers) }

// dnsError builds the error value the SPF and DKIM libraries understand.
func dnsError(name, msg string, notFound, temporary, timeout bool) *net.DNSError {
	return &net.DNSError{Err: msg, Name: name, IsNotFound: notFound, IsTemporary: temporary, IsTimeout: timeout}
}

// Query returns the records of type qtype at name, from the cache or the server;
// NXDOMAIN and NODATA are a *net.DNSError with IsNotFound. It returns when ctx
// ends even if the server has not answered; the query itself goes on, bounded by
// the query timeout, so that its answer can still be cached and shared with
// whoever asked the same question meanwhile.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	tname := dns.TypeToString[qtype]
	fqdn := dns.CanonicalName(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || fqdn == "." || len(fqdn) > 254 {
		// RFC 7208 section 4.3: a malformed domain is not a DNS question; say
		// "not found" so each check turns it into its own "none".
		return nil, dnsError(name, "invalid domain name", true, false, false)
	}
	key := cacheKey{fqdn, qtype}
	if e := r.cached(key); e != nil {
		r.metrics.cacheHit(tname)
		if e.err != nil {
			return nil, e.err
		}
		return e.rrs, nil
	}
	ch := r.flight.DoChan(fqdn+"/"+tname, func() (any, error) {
		// A flight for this question may have landed between our cache miss
		// and this one starting; its answer is in the cache by now.
		if e := r.cached(key); e != nil {
			return e, nil
		}
		return r.exchange(fqdn, qtype), nil
	})
	select {
	case <-ctx.Done():
		return nil, dnsError(name, "lookup abandoned: "+ctx.Err().Error(), false, true, true)
	case res := <-ch:
		e := res.Val.(*cacheEntry)
		if e.err != nil {
			// Each caller gets its own copy: the libraries keep what we return.
			err := *e.err
			err.Name = name
			return nil, &err
		}
		return e.rrs, nil
	}
}

// CachedTXT reports whether LookupTXT would answer from the cache, without asking a
// server: a caller that would otherwise wait for the answer elsewhere can ask inline.
func (r *Resolver) CachedTXT(name string) bool {
	return r.cached(cacheKey{dns.CanonicalName(name), dns.TypeTXT}) != nil
}

// cached returns the live entry for key, or nil.
func (r *Resolver) cached(key cacheKey) *cacheEntry {
	if r.noCache {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[key]
	if !ok {
		return nil
	}
	if !r.now().Before(e.expires) {
		delete(r.cache, key)
		return nil
	}
	return e
}

func (r *Resolver) store(key cacheKey, e *cacheEntry) {
	if r.noCache {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= r.max {
		// Map iteration order is random, so this drops expired entries where it
		// finds them and otherwise an arbitrary one: cheap, and no entry can be
		// pinned by an attacker who controls the order of queries.
		now := r.now()
		var victim *cacheKey
		n := 0
		for k, v := range r.cache {
			if !now.Before(v.expires) {
				delete(r.cache, k)
			} else if victim == nil {
				victim = &k
			}
			if n++; n >= evictScan {
				break
			}
		}
		if len(r.cache) >= r.max && victim != nil {
			delete(r.cache, *victim)
		}
	}
	r.cache[key] = e
}

// exchange asks the servers in turn, Rounds times, within one query timeout a
// round, and caches what they say.
func (r *Resolver) exchange(fqdn string, qtype uint16) *cacheEntry {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout*time.Duration(r.rounds))
	defer cancel()
	start := r.now()
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.SetEdns0(1232, false)
	var (
		resp *dns.Msg
		err  error
	)
	for range r.rounds {
		for _, srv := range r.servers {
			resp, _, err = r.udp.ExchangeContext(ctx, m, srv)
			if err == nil && resp.Truncated {
				// RFC 7766 section 5: a truncated UDP answer is retried over TCP.
				resp, _, err = r.tcp.ExchangeContext(ctx, m, srv)
			}
			if err == nil || ctx.Err() != nil {
				break
			}
		}
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	tname := dns.TypeToString[qtype]
	now := r.now()
	var e *cacheEntry
	switch {
	case err != nil:
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout() || ctx.Err() != nil
		r.metrics.query(tname, "error", now.Sub(start))
		// Not cached: the next message asks again.
		return &cacheEntry{err: dnsError(fqdn, "dns query: "+err.Error(), false, true, timeout)}
	case resp.Rcode == dns.RcodeNameError:
		r.metrics.query(tname, "nxdomain", now.Sub(start))
		e = &cacheEntry{err: dnsError(fqdn, "no such host", true, false, false), expires: now.Add(negativeTTL(resp))}
	case resp.Rcode != dns.RcodeSuccess:
		r.metrics.query(tname, "error", now.Sub(start))
		e = &cacheEntry{err: dnsError(fqdn, "dns server: "+dns.RcodeToString[resp.Rcode], false, true, false), expires: now.Add(servfailTTL)}
	default:
		var rrs []dns.RR
		ttl := maxPositiveTTL
		for _, rr := range resp.Answer {
			// CNAMEs are followed by the recursive server; we keep the records
			// of the type asked for, and their TTLs bound the entry's too.
			if d := time.Duration(rr.Header().Ttl) * time.Second; d < ttl {
				ttl = d
			}
			if rr.Header().Rrtype == qtype {
				rrs = append(rrs, rr)
			}
		}
		if len(rrs) == 0 {
			// NODATA: RFC 2308 section 2.2, cached like NXDOMAIN.
			r.metrics.query(tname, "nxdomain", now.Sub(start))
			e = &cacheEntry{err: dnsError(fqdn, "no such host", true, false, false), expires: now.Add(negativeTTL(resp))}
		} else {
			r.metrics.query(tname, "ok", now.Sub(start))
			e = &cacheEntry{rrs: rrs, expires: now.Add(ttl)}
		}
	}
	r.store(cacheKey{fqdn, qtype}, e)
	return e
}

// negativeTTL is RFC 2308 section 5: the lesser of the SOA's TTL and its MINIMUM.
func negativeTTL(resp *dns.Msg) time.Duration {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			ttl := min(soa.Hdr.Ttl, soa.Minttl)
			return min(time.Duration(ttl)*time.Second, maxNegativeTTL)
		}
	}
	return defaultNegative
}

// LookupTXT returns one string per record, its character-strings joined, as
// net.LookupTXT does (RFC 7208 section 3.3, RFC 6376 section 3.6.2.2).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupMX returns the MX records by preference.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.Query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

// LookupIPAddr asks for A and AAAA at once. One family's answer is enough;
// only when neither has one does the worse of the two errors count.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	type res struct {
		rrs []dns.RR
		err error
	}
	aaaa := make(chan res, 1)
	go func() {
		rrs, err := r.Query(ctx, host, dns.TypeAAAA)
		aaaa <- res{rrs, err}
	}()
	a4, err4 := r.Query(ctx, host, dns.TypeA)
	a6 := <-aaaa
	var out []net.IPAddr
	for _, rr := range append(a4, a6.rrs...) {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, net.IPAddr{IP: rr.A})
		case *dns.AAAA:
			out = append(out, net.IPAddr{IP: rr.AAAA})
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	var d4, d6 *net.DNSError
	errors.As(err4, &d4)
	errors.As(a6.err, &d6)
	switch {
	case d4 != nil && !d4.IsNotFound:
		return nil, d4
	case d6 != nil && !d6.IsNotFound:
		return nil, d6
	case d4 != nil:
		return nil, d4
	case d6 != nil:
		return nil, d6
	default:
		return nil, dnsError(host, "no such host", true, false, false)
	}
}

// LookupAddr returns the PTR names of addr (the SPF "ptr" mechanism and %{p}).
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, dnsError(addr, "invalid address", true, false, false)
	}
	rrs, err := r.Query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}
