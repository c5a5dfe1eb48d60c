package mailauth

import (
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"github.com/mayfly-mail/mayfly/server/mailparse"
)

// from is the RFC5322.From domain, or why there is none.
type from struct {
	domain  string
	verdict string // when domain is "": the DMARC verdict without one
	reason  string
}

// fromDomain applies RFC 7489 section 6.6.1 to the header as every view reads it
// (mailparse): DMARC needs exactly one From field with exactly one address. No From
// at all means nothing to evaluate (none); more than one, or one that does not
// parse, is a permanent error.
func fromDomain(h *mailparse.Message) from {
	switch h.Header.FieldsByKey("From").Len() {
	case 0:
		return from{verdict: None, reason: "no From field"}
	case 1:
	default:
		return from{verdict: PermError, reason: "multiple From fields"}
	}
	addrs, err := mailparse.StrictAddressList(h.Header, "From")
	if err != nil {
		return from{verdict: PermError, reason: "unparsable From: " + err.Error()}
	}
	if len(addrs) != 1 {
		return from{verdict: PermError, reason: "From has more than one address"}
	}
	at := strings.LastIndexByte(addrs[0].Address, '@')
	d := strings.TrimSuffix(strings.ToLower(addrs[0].Address[at+1:]), ".")
	if at < 0 || d == "" {
		return from{verdict: PermError, reason: "From address without domain"}
	}
	return from{domain: d}
}

// policy is the DMARC record that applies to a From domain, or why there is none.
type policy struct {
	rec     *dmarc.Record // nil: verdict says why
	applied dmarc.Policy  // p, or sp when found at the organizational domain
	verdict string
	reason  string
}

// lookupPolicy is RFC 7489 section 6.6.3: the From domain's own record, or else
// the organizational domain's, whose sp= (else p=) then applies.
func (v *Verifier) lookupPolicy(ctx context.Context, domain string) policy {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return v.res.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(domain, opts)
	sub := false
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := orgDomain(domain); org != domain {
			sub = true
			rec, err = dmarc.LookupWithOptions(org, opts)
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		return policy{verdict: None, reason: "no DMARC record"}
	case dmarc.IsTempFail(err):
		return policy{verdict: TempError, reason: err.Error()}
	case err != nil:
		// A record that does not parse (RFC 8601 section 2.7.1 "permerror"),
		// or a DNS answer that is neither found nor temporary.
		return policy{verdict: PermError, reason: err.Error()}
	}
	p := policy{rec: rec, applied: rec.Policy}
	if sub && rec.SubdomainPolicy != "" {
		p.applied = rec.SubdomainPolicy
	}
	return p
}

// orgDomain is the organizational domain of RFC 7489 section 3.2, from the
// public suffix list; a name that is itself a suffix is its own.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned is RFC 7489 section 3.1: strict mode wants the same domain, relaxed
// the same organizational domain.
func aligned(mode dmarc.AlignmentMode, a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	a, b = strings.ToLower(strings.TrimSuffix(a, ".")), strings.ToLower(strings.TrimSuffix(b, "."))
	if mode == dmarc.AlignmentStrict {
		return a == b
	}
	return orgDomain(a) == orgDomain(b)
}

type dmarcOutcome struct {
	verdict string
	reason  string
	policy  *dmarc.Record
	applied string
}

// evaluate is RFC 7489 section 4.2: pass when SPF or DKIM passes for a domain
// aligned with the From domain. An unknown SPF or DKIM result that could still
// have aligned makes the whole temperror rather than fail.
func evaluate(p policy, fromDom, mailFromDom string, s spfOutcome, d dkimOutcome) dmarcOutcome {
	if p.rec == nil {
		return dmarcOutcome{verdict: p.verdict, reason: p.reason}
	}
	out := dmarcOutcome{policy: p.rec, applied: string(p.applied)}
	if s.verdict == Pass && aligned(p.rec.SPFAlignment, mailFromDom, fromDom) {
		out.verdict, out.reason = Pass, "SPF aligned"
		return out
	}
	unknown := s.verdict == TempError && aligned(p.rec.SPFAlignment, mailFromDom, fromDom)
	for _, sig := range d.sigs {
		if sig.result == Pass && aligned(p.rec.DKIMAlignment, sig.domain, fromDom) {
			out.verdict, out.reason = Pass, "DKIM aligned"
			return out
		}
		if sig.result == TempError && aligned(p.rec.DKIMAlignment, sig.domain, fromDom) {
			unknown = true
		}
	}
	if unknown {
		out.verdict, out.reason = TempError, "SPF or DKIM result unknown"
		return out
	}
	out.verdict, out.reason = Fail, "no aligned SPF or DKIM pass"
	return out
}

// spfDomain is the domain SPF authenticated: the MAIL FROM domain, or HELO for
// a bounce (RFC 7489 section 3.1.2).
func spfDomain(in Input) string {
	if at := strings.LastIndexByte(in.MailFrom, '@'); at >= 0 {
		return in.MailFrom[at+1:]
	}
	return in.Helo
}
