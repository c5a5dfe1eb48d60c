package mailauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
)

// Details is what Explain found: the verdicts of Verify and what each rests on,
// for the deliverability report. It is computed by the same code as the verdicts,
// so the two cannot disagree.
type Details struct {
	SPF   SPFDetails
	DKIM  []DKIMSignature // in header order, at most 10
	DMARC DMARCDetails
}

// SPFDetails is the SPF verdict of the MAIL FROM (or HELO) domain.
type SPFDetails struct {
	Verdict string
	Reason  string // why, when not pass; the library's words
	Domain  string // the domain checked: MAIL FROM's, or HELO's for a bounce
}

// DKIMSignature is one DKIM-Signature field, its verdict and its key.
type DKIMSignature struct {
	Domain, Selector string
	Algorithm        string // a=, e.g. "rsa-sha256", "ed25519-sha256"
	KeyBits          int    // size of the public key in DNS; 0 when not found or unreadable
	KeyType          string // "rsa", "ed25519"; "" when not found
	Verdict, Reason  string
	Aligned          bool // relaxed alignment with the From domain (RFC 7489 section 3.1.1)
}

// DMARCDetails is the DMARC verdict of the From domain and the record it applied.
type DMARCDetails struct {
	Verdict    string
	Reason     string
	FromDomain string
	Record     bool   // a record was found (at the From domain or its organizational domain)
	Policy     string // p=
	Subdomain  string // sp=, "" when absent
	Applied    string // the policy applied to this message: p, or sp for a subdomain
	Percent    int    // pct=, 100 when absent
	SPFAligned bool   // SPF passed for a domain aligned with From under the record's aspf
	// DKIMAligned: a DKIM signature passed for a domain aligned with From under adkim.
	DKIMAligned bool
}

// Explain verifies one message as Verify does and returns the details behind
// the verdicts: each signature's key size and algorithm, the DMARC record and its
// alignment. The key lookups go through the same cached resolver, within the
// same budget; metrics count only Verify. For a message injected over HTTP the
// DMARC record is looked up all the same, its verdict none (or why there is no
// record: temperror, permerror). Message may be the stored copy: our
// own Authentication-Results fields, which verification never sees, are dropped.
func (v *Verifier) Explain(ctx context.Context, in Input) Details {
	in.Message, in.Header = StripOwn(in.Message, v.authservID), nil
	if in.MailFrom == "<>" {
		in.MailFrom = ""
	}
	o := v.verify(ctx, in)
	d := Details{
		SPF: SPFDetails{Verdict: o.spf.verdict, Reason: o.spf.reason, Domain: strings.ToLower(o.spfDomain)},
		DMARC: DMARCDetails{
			Verdict: o.dmarc.verdict, Reason: o.dmarc.reason, FromDomain: o.from, Percent: 100,
		},
	}
	// The key and policy lookups below: answers from the cache mostly, within a budget of their own.
	ctx, cancel := context.WithTimeout(ctx, v.budget)
	defer cancel()
	if in.Injected && o.from != "" {
		// No envelope, so no DMARC verdict; the record is still the sender's to fix.
		p := v.lookupPolicy(ctx, o.from)
		o.dmarc = dmarcOutcome{verdict: p.verdict, reason: p.reason, policy: p.rec, applied: string(p.applied)}
		if p.rec != nil {
			d.DMARC.Verdict, d.DMARC.Reason = None, injectedComment
		} else {
			d.DMARC.Verdict, d.DMARC.Reason = p.verdict, p.reason
		}
	}
	if p := o.dmarc.policy; p != nil {
		d.DMARC.Record = true
		d.DMARC.Policy, d.DMARC.Subdomain, d.DMARC.Applied = string(p.Policy), string(p.SubdomainPolicy), o.dmarc.applied
		if p.Percent != nil {
			d.DMARC.Percent = *p.Percent
		}
		d.DMARC.SPFAligned = o.spf.verdict == Pass && aligned(p.SPFAlignment, o.spfDomain, o.from)
	}
	for _, s := range o.dkim.sigs {
		sig := DKIMSignature{Domain: s.domain, Selector: s.selector, Algorithm: s.algorithm, Verdict: s.result, Reason: s.reason}
		sig.Aligned = aligned(dmarc.AlignmentRelaxed, s.domain, o.from)
		if p := o.dmarc.policy; p != nil && s.result == Pass && aligned(p.DKIMAlignment, s.domain, o.from) {
			d.DMARC.DKIMAligned = true
		}
		if s.domain != "" && s.selector != "" {
			// Verify asked for the same name a moment ago: an answer from the cache.
			txt, err := v.res.LookupTXT(ctx, s.selector+"._domainkey."+s.domain)
			if err == nil {
				sig.KeyType, sig.KeyBits = keySize(strings.Join(txt, ""))
			}
		}
		d.DKIM = append(d.DKIM, sig)
	}
	return d
}

// keySize reads the k= and p= tags of a DKIM key record (RFC 6376 section 3.6.1)
// and returns the key's type and size in bits; 0 when it does not parse.
func keySize(record string) (string, int) {
	kind, p := "rsa", ""
	for _, tag := range strings.Split(record, ";") {
		k, val, _ := strings.Cut(tag, "=")
		val = strings.Join(strings.Fields(val), "")
		switch strings.TrimSpace(k) {
		case "k":
			kind = strings.ToLower(val)
		case "p":
			p = val
		}
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil || len(der) == 0 {
		return kind, 0
	}
	switch kind {
	case "ed25519":
		// RFC 8463 section 4.2: the raw 32-byte key, not SubjectPublicKeyInfo.
		if len(der) == ed25519.PublicKeySize {
			return kind, 256
		}
		return kind, 0
	case "rsa":
		// RFC 6376 section 3.6.1 says SubjectPublicKeyInfo; some publish PKCS#1.
		if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
			if k, ok := pub.(*rsa.PublicKey); ok {
				return kind, k.N.BitLen()
			}
			return kind, 0
		}
		if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
			return kind, k.N.BitLen()
		}
	}
	return kind, 0
}
