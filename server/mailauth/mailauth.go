// Package mailauth gives each received message its SPF (RFC 7208), DKIM (RFC
// 6376, 8463) and DMARC (RFC 7489) verdicts and the Authentication-Results
// header field (RFC 8601) that records them. All lookups go through one caching
// resolver of ours, and a message never waits longer than its budget.
package mailauth

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/dnsclient"

	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// Verdicts, as RFC 8601 section 2.7 spells them.
const (
	Pass      = "pass"
	Fail      = "fail"
	SoftFail  = "softfail"
	Neutral   = "neutral"
	None      = "none"
	TempError = "temperror"
	PermError = "permerror"
)

// Options configure a Verifier. Zero values mean the documented defaults.
type Options struct {
	AuthservID   string        // MAYFLY_HOSTNAME: the authserv-id of our Authentication-Results header
	DNS          string        // MAYFLY_DNS host:port of a resolver; "" = the servers of /etc/resolv.conf
	QueryTimeout time.Duration // per DNS query; 0 = 2s
	Budget       time.Duration // per message, all lookups; 0 = 5s; past it what is not known is temperror
	Metrics      prometheus.Registerer
	Resolver     *dnsclient.Resolver // the DNS client shared with outbound delivery; nil = one of its own on DNS and QueryTimeout
}

// Verifier checks messages. It is safe for concurrent use; its DNS cache is
// shared by all messages.
type Verifier struct {
	authservID string
	budget     time.Duration
	res        *dnsclient.Resolver
	metrics    *metrics
	headers    memo[headerKey, []byte]
	unsigned   memo[unsignedKey, outcome] // with its lifetime unsignedMemo
}

// New returns a Verifier. It fails only on a malformed Options.DNS or an
// unreadable /etc/resolv.conf.
func New(o Options) (*Verifier, error) {
	if o.AuthservID == "" {
		return nil, fmt.Errorf("mailauth: empty authserv-id")
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 2 * time.Second
	}
	if o.Budget <= 0 {
		o.Budget = 5 * time.Second
	}
	m := newMetrics(o.Metrics)
	res, err := o.Resolver, error(nil)
	if res == nil {
		if res, err = dnsclient.New(dnsclient.Options{Server: o.DNS, Timeout: o.QueryTimeout, Metrics: o.Metrics}); err != nil {
			return nil, fmt.Errorf("mailauth: %w", err)
		}
	}
	return &Verifier{authservID: o.AuthservID, budget: o.Budget, res: res, metrics: m,
		unsigned: memo[unsignedKey, outcome]{lifetime: unsignedMemo}}, nil
}

// Input is one received message and its SMTP envelope.
type Input struct {
	RemoteIP net.IP
	Helo     string
	MailFrom string // envelope sender; "" (or "<>") for bounces: SPF then checks postmaster@Helo, RFC 7208 section 2.4
	Message  []byte // as received, CRLF line ends, already passed through StripOwn
	// Header is Message as mailparse reads it (ParseFacts or ParseHeader), when the
	// caller has read it already; nil: Verify reads the header itself.
	Header *mailparse.Message
	// Injected says the message came over HTTP (POST .../messages), not SMTP: there is
	// no client address, HELO or MAIL FROM to check, so SPF and DMARC are none with a
	// comment saying why, and DKIM, which needs only the content, is verified for real.
	Injected bool
}

// Result is what Verify found.
type Result struct {
	Verdicts storage.AuthResults
	// Header is a complete, folded "Authentication-Results: ...\r\n" field to
	// prepend to the stored message. It may be shared with other Results: copy it,
	// never change it.
	Header []byte
	// Pending is set when the Budget ran out while the DKIM check was still reading
	// Input.Message: it goes on reading it until its lookups end, so the caller must
	// not reuse that memory for another message.
	Pending bool
}

// Verify checks SPF, DKIM and DMARC of one message. SPF, DKIM and the DMARC
// policy lookup run at once; it returns when all are known, or when ctx or the
// Budget ends, with temperror for what is still unknown. The goroutines it
// leaves behind then end by themselves within one query timeout.
func (v *Verifier) Verify(ctx context.Context, in Input) Result {
	o := v.verify(ctx, in)
	v.metrics.result("spf", o.spf.verdict)
	v.metrics.result("dkim", o.dkim.verdict)
	v.metrics.result("dmarc", o.dmarc.verdict)
	return Result{
		Verdicts: storage.AuthResults{SPF: o.spf.verdict, DKIM: o.dkim.verdict, DMARC: o.dmarc.verdict, FromAligned: o.fromAligned},
		Header:   v.cachedHeader(in, o),
		Pending:  o.pending,
	}
}

// outcome is everything one verification found.
type outcome struct {
	spf         spfOutcome
	dkim        dkimOutcome
	dmarc       dmarcOutcome
	from        string // the RFC5322.From domain; "" when there is none to evaluate
	spfDomain   string
	fromAligned bool
	pending     bool // the DKIM check still reads the message (Result.Pending)
}

func (v *Verifier) verify(ctx context.Context, in Input) outcome {
	if in.MailFrom == "<>" {
		in.MailFrom = ""
	}
	fields := headerFieldsNamed(in.Message, "DKIM-Signature")
	h := in.Header
	if h == nil {
		h = mailparse.ParseHeader(in.Message)
	}
	from := fromDomain(h)
	sigs := dkimSignatures(in.Message, fields)
	var key unsignedKey
	if len(sigs) == 0 && !in.Injected {
		ip, _ := netip.AddrFromSlice(in.RemoteIP)
		key = unsignedKey{ip: ip.Unmap(), helo: in.Helo, mailFrom: in.MailFrom, from: from}
		if o, ok := v.unsigned.get(key); ok {
			return o
		}
	}
	ctx, cancel := context.WithTimeout(ctx, v.budget) // after the memo: a timer each
	defer cancel()

	// The checks run at once, but a goroutine each costs the receiver more than a
	// check answered from the DNS cache, as most are under load: DKIM (a public-key
	// operation) and a DMARC policy not in the cache run beside SPF, which runs here.
	dkimc := make(chan dkimOutcome, 1)
	dmarcc := make(chan policy, 1)
	if len(sigs) > 0 {
		dkimSigs := slices.Clone(sigs) // the goroutine fills in its own copy
		go func() {
			defer recoverTo(dkimc, func(r any) dkimOutcome { return dkimOutcome{verdict: PermError} })
			dkimc <- v.checkDKIM(ctx, in.Message, dkimSigs)
		}()
	}
	var p *policy
	pending := false
	switch {
	case in.Injected:
		p = &policy{verdict: None}
	case from.domain == "":
		p = &policy{verdict: from.verdict, reason: from.reason}
	case v.policyCached(from.domain):
		got := v.safePolicy(ctx, from.domain)
		p = &got
	default:
		go func() {
			defer recoverTo(dmarcc, func(r any) policy { return policy{verdict: PermError, reason: fmt.Sprint("panic: ", r)} })
			dmarcc <- v.lookupPolicy(ctx, from.domain)
		}()
	}
	s := spfOutcome{verdict: None}
	if !in.Injected {
		s = v.safeSPF(ctx, in)
	}

	d := dkimOutcome{verdict: TempError, sigs: sigs}
	if len(sigs) == 0 {
		d.verdict = None
	}
	for i := range d.sigs {
		d.sigs[i].result, d.sigs[i].reason = TempError, "time budget exhausted"
	}
	// Unsigned mail is most mail: no need to hand the whole message to the DKIM library.
	for haveDKIM := len(sigs) == 0; !haveDKIM || p == nil; {
		select {
		case d = <-dkimc:
			haveDKIM = true
		case got := <-dmarcc:
			p = &got
		case <-ctx.Done():
			if p == nil {
				p = &policy{verdict: TempError, reason: "time budget exhausted"}
			}
			pending = !haveDKIM
			haveDKIM = true
		}
	}
	dm := evaluate(*p, from.domain, spfDomain(in), s, d)
	// Whether From: is vouched for whatever the DMARC record says, or when there is
	// none: the reply policy of server/submission asks.
	fromAligned := s.verdict == Pass && in.MailFrom != "" && aligned(dmarc.AlignmentRelaxed, spfDomain(in), from.domain)
	for _, sig := range d.sigs {
		fromAligned = fromAligned || (sig.result == Pass && aligned(dmarc.AlignmentRelaxed, sig.domain, from.domain))
	}

	o := outcome{spf: s, dkim: d, dmarc: dm, from: from.domain, spfDomain: spfDomain(in), fromAligned: fromAligned, pending: pending}
	if len(sigs) == 0 && !in.Injected && s.verdict != TempError && dm.verdict != TempError && p.verdict != TempError {
		v.unsigned.put(key, o)
	}
	return o
}

// safeSPF is checkSPF in the caller's goroutine: a panic in the library is a
// permerror, and a check the Budget cut short says so.
func (v *Verifier) safeSPF(ctx context.Context, in Input) (out spfOutcome) {
	defer func() {
		if r := recover(); r != nil {
			out = spfOutcome{verdict: PermError, reason: fmt.Sprint("panic: ", r)}
		}
	}()
	out = v.checkSPF(ctx, in)
	if out.verdict == TempError && ctx.Err() != nil {
		out.reason = "time budget exhausted"
	}
	return out
}

// safePolicy is lookupPolicy in the caller's goroutine, a panic a permerror.
func (v *Verifier) safePolicy(ctx context.Context, domain string) (p policy) {
	defer func() {
		if r := recover(); r != nil {
			p = policy{verdict: PermError, reason: fmt.Sprint("panic: ", r)}
		}
	}()
	return v.lookupPolicy(ctx, domain)
}

// policyCached reports whether every record lookupPolicy may ask for domain is in the
// DNS cache, so that it answers without waiting.
func (v *Verifier) policyCached(domain string) bool {
	if !v.res.CachedTXT("_dmarc." + domain) {
		return false
	}
	org := orgDomain(domain)
	return org == domain || v.res.CachedTXT("_dmarc."+org)
}

// recoverTo turns a panic in a library into a verdict, so that hostile input
// costs one message its verdict and never the process.
func recoverTo[T any](c chan<- T, f func(any) T) {
	if r := recover(); r != nil {
		c <- f(r)
	}
}

// header formats the results with authres.Format, one result per folded line.
func (v *Verifier) header(in Input, s spfOutcome, d dkimOutcome, dm dmarcOutcome, from string) []byte {
	var lines []string
	add := func(r authres.Result, comment string) {
		line := strings.TrimSpace(strings.TrimPrefix(authres.Format("", []authres.Result{r}), "; "))
		if comment != "" {
			line += " (" + comment + ")"
		}
		lines = append(lines, line)
	}

	sr := &authres.SPFResult{Value: authres.ResultValue(s.verdict), Reason: cleanReason(s.reason)}
	switch {
	case in.Injected:
		// No SMTP client, so no identity to name: only why there is no result.
		add(sr, injectedComment)
	case in.MailFrom != "":
		sr.From = in.MailFrom
		add(sr, "")
	default:
		sr.Helo = in.Helo // RFC 7208 section 2.4: the HELO identity was checked
		add(sr, "")
	}

	if len(d.sigs) == 0 {
		add(&authres.DKIMResult{Value: authres.ResultValue(d.verdict)}, "")
	}
	for _, sig := range d.sigs {
		// RFC 6008: header.b tells apart signatures from the same d= and s=.
		add(&authres.GenericResult{Method: "dkim", Value: authres.ResultValue(sig.result), Params: map[string]string{
			"reason":   cleanReason(sig.reason),
			"header.d": sig.domain,
			"header.s": sig.selector,
			"header.b": sig.bprefix,
		}}, "")
	}

	params := map[string]string{"reason": cleanReason(dm.reason), "header.from": from}
	var comment string
	if dm.policy != nil {
		params["policy.dmarc"] = dm.applied
		comment = "p=" + string(dm.policy.Policy)
		if dm.policy.SubdomainPolicy != "" {
			comment += " sp=" + string(dm.policy.SubdomainPolicy)
		}
		if dm.policy.Percent != nil {
			comment += fmt.Sprintf(" pct=%d", *dm.policy.Percent)
		}
	}
	if in.Injected {
		comment = injectedComment
	}
	add(&authres.GenericResult{Method: "dmarc", Value: authres.ResultValue(dm.verdict), Params: params}, comment)

	return []byte("Authentication-Results: " + v.authservID + ";\r\n\t" + strings.Join(lines, ";\r\n\t") + "\r\n")
}

// headerKey is every input of header for unsigned mail.
type headerKey struct {
	injected                   bool
	identity                   string // MAIL FROM, or HELO for a bounce
	bounce                     bool
	spf, spfReason, dkim       string
	dmarc, dmarcReason, from   string
	policy, subdomain, applied string
	percent                    int // -1: none
	hasPolicy                  bool
}

// cachedHeader is header, kept by everything it says when the mail is unsigned: mail
// from one sender and client gets the same field every time, and formatting it
// (authres, its maps and quoting) cost more than the checks did once their DNS
// answers were cached. Signed mail, whose field names each signature, is formatted
// every time.
func (v *Verifier) cachedHeader(in Input, o outcome) []byte {
	if len(o.dkim.sigs) > 0 {
		return v.header(in, o.spf, o.dkim, o.dmarc, o.from)
	}
	k := headerKey{injected: in.Injected, identity: in.MailFrom, bounce: in.MailFrom == "",
		spf: o.spf.verdict, spfReason: o.spf.reason, dkim: o.dkim.verdict,
		dmarc: o.dmarc.verdict, dmarcReason: o.dmarc.reason, from: o.from, applied: o.dmarc.applied, percent: -1}
	if k.bounce {
		k.identity = in.Helo
	}
	if p := o.dmarc.policy; p != nil {
		k.hasPolicy, k.policy, k.subdomain = true, string(p.Policy), string(p.SubdomainPolicy)
		if p.Percent != nil {
			k.percent = *p.Percent
		}
	}
	if h, ok := v.headers.get(k); ok {
		return h
	}
	h := v.header(in, o.spf, o.dkim, o.dmarc, o.from)
	v.headers.put(k, h)
	return h
}

// injectedComment marks the results of a message injected over HTTP.
const injectedComment = "injected over HTTP"

// Injected is the Result of a message injected over HTTP when nothing is verified
// (MAYFLY_VERIFY off): every verdict none, and a header saying why.
func Injected(authservID string) Result {
	v := &Verifier{authservID: authservID}
	return Result{
		Verdicts: storage.AuthResults{SPF: None, DKIM: None, DMARC: None},
		Header:   v.header(Input{Injected: true}, spfOutcome{verdict: None}, dkimOutcome{verdict: None}, dmarcOutcome{verdict: None}, ""),
	}
}

// cleanReason keeps a library's error text from breaking the header: authres
// quotes it, but its own parser splits results at every ";" and the field must
// stay one line of printable ASCII per fold.
func cleanReason(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == ';':
			b[i] = ','
		case c == '"' || c == '\\':
			b[i] = '\''
		case c < ' ' || c > '~':
			b[i] = ' '
		}
	}
	if len(b) > 120 {
		b = b[:120]
	}
	return strings.TrimSpace(string(b))
}
