package report

import (
	"context"
	"fmt"
	"strings"

	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/storage"
)

// maxSPFLookups is RFC 7208 section 4.6.4's limit: past 10 DNS-querying terms,
// receivers answer permerror.
const maxSPFLookups = 10

// domainChecks looks at the sender's domain: the From domain, or the MAIL FROM
// domain when there is no From domain; SPF is about the MAIL FROM domain.
func (r *Reporter) domainChecks(ctx context.Context, m *storage.Message, d mailauth.Details) []Check {
	dom := d.DMARC.FromDomain
	envDom := ""
	if at := strings.LastIndexByte(m.Envelope.From, '@'); at >= 0 {
		envDom = strings.ToLower(strings.TrimSuffix(m.Envelope.From[at+1:], "."))
	}
	if dom == "" {
		dom = envDom
	}
	if dom == "" {
		why := "no sender domain: no From domain and no MAIL FROM"
		out := []Check{}
		for _, id := range []string{"mx", "spf-record", "dmarc-policy", "mta-sts", "tls-rpt", "bimi"} {
			out = append(out, Check{ID: id, Status: Info, Detail: why})
		}
		return out
	}
	spfDom := envDom
	if spfDom == "" {
		spfDom = dom
	}
	return []Check{
		r.mxCheck(ctx, dom),
		r.spfRecordCheck(ctx, spfDom),
		dmarcPolicyCheck(dom, d.DMARC),
		r.txtCheck(ctx, "mta-sts", "_mta-sts."+dom, "v=STSv1", "id",
			"publish _mta-sts."+dom+` TXT "v=STSv1; id=20260101" and the policy at https://mta-sts.`+dom+"/.well-known/mta-sts.txt (RFC 8461)"),
		r.txtCheck(ctx, "tls-rpt", "_smtp._tls."+dom, "v=TLSRPTv1", "rua",
			"publish _smtp._tls."+dom+` TXT "v=TLSRPTv1; rua=mailto:tls-reports@`+dom+`" (RFC 8460)`),
		r.bimiCheck(ctx, dom, d.DMARC),
	}
}

func (r *Reporter) mxCheck(ctx context.Context, dom string) Check {
	mxs, err := r.res.LookupMX(ctx, dom)
	switch {
	case err != nil && !notFound(err):
		return dnsUnknown("mx", err, r.budget)
	case len(mxs) == 0:
		return Check{ID: "mx", Status: Fail, Detail: dom + " has no MX record: replies and bounces cannot reach it",
			Fix: "publish an MX record for " + dom}
	case len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == ""):
		return Check{ID: "mx", Status: Fail, Detail: dom + " has a null MX (RFC 7505): it receives no mail, so replies and bounces are lost",
			Fix: "publish an MX record for " + dom + " naming a host that receives mail"}
	}
	hosts := make([]string, 0, len(mxs))
	for _, mx := range mxs[:min(len(mxs), 5)] {
		hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
	}
	return Check{ID: "mx", Status: Pass, Detail: dom + " receives mail at " + strings.Join(hosts, ", ")}
}

// spfRecords returns the SPF records among a name's TXT records (RFC 7208 section 4.5).
func spfRecords(txt []string) []string {
	var out []string
	for _, t := range txt {
		if len(t) >= 6 && strings.EqualFold(t[:6], "v=spf1") && (len(t) == 6 || t[6] == ' ') {
			out = append(out, t)
		}
	}
	return out
}

func (r *Reporter) spfRecordCheck(ctx context.Context, dom string) Check {
	txt, err := r.res.LookupTXT(ctx, dom)
	if err != nil && !notFound(err) {
		return dnsUnknown("spf-record", err, r.budget)
	}
	recs := spfRecords(txt)
	fixNew := "publish " + dom + ` TXT "v=spf1 ip4:YOUR.SERVER.IP -all" listing every host that sends as ` + dom
	switch len(recs) {
	case 0:
		return Check{ID: "spf-record", Status: Fail, Detail: dom + " publishes no SPF record", Fix: fixNew}
	case 1:
	default:
		return Check{ID: "spf-record", Status: Fail, Detail: fmt.Sprintf("%s publishes %d SPF records; RFC 7208 section 4.5 makes that a permerror", dom, len(recs)),
			Fix: "merge them into one v=spf1 record"}
	}
	rec, err := parseSPF(recs[0])
	if err != nil {
		return Check{ID: "spf-record", Status: Fail, Detail: fmt.Sprintf("the SPF record of %s does not parse: %v", dom, err),
			Fix: "correct the record (RFC 7208 section 12 has the syntax)"}
	}
	n, unknown := r.countLookups(ctx, rec, 0)
	if unknown != nil {
		return dnsUnknown("spf-record", unknown, r.budget)
	}
	switch {
	case n > maxSPFLookups:
		return Check{ID: "spf-record", Status: Fail,
			Detail: fmt.Sprintf("the SPF record of %s needs %d DNS lookups, more than the 10 of RFC 7208 section 4.6.4: receivers answer permerror", dom, n),
			Fix:    "replace include: chains by ip4:/ip6: ranges, or drop senders that no longer send"}
	case rec.all == "+":
		return Check{ID: "spf-record", Status: Fail, Detail: "the SPF record of " + dom + " ends with +all: anyone may send as " + dom,
			Fix: "end the record with -all (or ~all)"}
	case rec.all == "?" || rec.all == "" && !rec.redirect:
		return Check{ID: "spf-record", Status: Warn, Detail: "the SPF record of " + dom + " ends neutral (?all or no all): mail from any host gets neutral",
			Fix: "end the record with -all (or ~all)"}
	}
	return Check{ID: "spf-record", Status: Pass, Detail: fmt.Sprintf("%s: %s (%d DNS lookups of 10)", dom, clip(recs[0], 300), n)}
}

// countLookups adds up the DNS-querying terms of rec and of the records its
// include: and redirect= name, as a receiver evaluating every branch would; it stops
// past the limit. A target with macros cannot be expanded here and counts as one.
func (r *Reporter) countLookups(ctx context.Context, rec spfRecord, depth int) (int, error) {
	n := rec.lookups
	if depth >= maxSPFLookups {
		return n, nil
	}
	for _, t := range rec.targets {
		if n > maxSPFLookups {
			break
		}
		if strings.Contains(t, "%") {
			continue
		}
		txt, err := r.res.LookupTXT(ctx, t)
		if err != nil && !notFound(err) {
			return n, err
		}
		recs := spfRecords(txt)
		if len(recs) != 1 {
			continue // the receiver's permerror; the record's own check is about this domain
		}
		sub, err := parseSPF(recs[0])
		if err != nil {
			continue
		}
		m, err := r.countLookups(ctx, sub, depth+1)
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

func dmarcPolicyCheck(dom string, d mailauth.DMARCDetails) Check {
	fix := "publish _dmarc." + dom + ` TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@` + dom + `"`
	switch {
	case d.Verdict == mailauth.TempError && !d.Record:
		return Check{ID: "dmarc-policy", Status: Info, Detail: unknownPrefix + "DMARC lookup: " + d.Reason}
	case d.Verdict == mailauth.PermError && !d.Record:
		return Check{ID: "dmarc-policy", Status: Fail, Detail: "the DMARC record of " + dom + " does not parse" + because(d.Reason), Fix: fix}
	case !d.Record:
		return Check{ID: "dmarc-policy", Status: Fail, Detail: dom + " publishes no DMARC record", Fix: fix}
	case d.Applied == "none":
		return Check{ID: "dmarc-policy", Status: Warn, Detail: "the DMARC policy of " + dom + " is p=none: monitoring only, nothing protects the domain",
			Fix: "once reports show all mail aligned, move to p=quarantine, then p=reject"}
	case d.Percent < 100:
		return Check{ID: "dmarc-policy", Status: Warn, Detail: fmt.Sprintf("the DMARC policy of %s applies to %d%% of failing mail", dom, d.Percent),
			Fix: "remove pct= (or set pct=100)"}
	}
	return Check{ID: "dmarc-policy", Status: Pass, Detail: fmt.Sprintf("%s: p=%s", dom, d.Applied)}
}

// txtCheck looks for a TXT record at name starting with version (RFC 8461's and
// 8460's "v=" tag first) that carries the tag need. Missing is a warning: these
// records protect mail to the domain, and few domains have them.
func (r *Reporter) txtCheck(ctx context.Context, id, name, version, need, fix string) Check {
	txt, err := r.res.LookupTXT(ctx, name)
	if err != nil && !notFound(err) {
		return dnsUnknown(id, err, r.budget)
	}
	var found []string
	for _, t := range txt {
		if v, _, _ := strings.Cut(t, ";"); strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(v), " ", ""), version) {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 0:
		return Check{ID: id, Status: Warn, Detail: "no " + version + " record at " + name, Fix: fix}
	case len(found) > 1:
		return Check{ID: id, Status: Fail, Detail: fmt.Sprintf("%d %s records at %s: receivers ignore them all", len(found), version, name), Fix: "keep one"}
	case tag(found[0], need) == "":
		return Check{ID: id, Status: Fail, Detail: fmt.Sprintf("the record at %s has no %s=", name, need), Fix: fix}
	}
	return Check{ID: id, Status: Pass, Detail: name + ": " + clip(found[0], 300)}
}

// tag returns the value of a tag=value; list (RFC 6376 section 3.2 syntax, which
// DMARC, MTA-STS, TLS-RPT and BIMI records share).
func tag(rec, name string) string {
	for _, t := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(t, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// bimiCheck looks for the default BIMI record; the logo is not fetched. Mailbox
// providers show the logo only under an enforcing DMARC policy.
func (r *Reporter) bimiCheck(ctx context.Context, dom string, d mailauth.DMARCDetails) Check {
	c := r.txtCheck(ctx, "bimi", "default._bimi."+dom, "v=BIMI1", "l",
		"publish default._bimi."+dom+` TXT "v=BIMI1; l=https://`+dom+`/logo.svg" (an SVG Tiny PS logo)`)
	if c.Status == Pass && d.Record && d.Applied != "quarantine" && d.Applied != "reject" {
		return Check{ID: "bimi", Status: Warn, Detail: c.Detail + "; but BIMI logos show only under DMARC p=quarantine or p=reject",
			Fix: "move the DMARC policy of " + dom + " to p=quarantine or p=reject"}
	}
	return c
}
