package report

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/storage"
)

// authChecks reads the verdicts of mailauth and what they rest on.
func authChecks(m *storage.Message, d mailauth.Details) []Check {
	var out []Check
	switch {
	case injected(m):
		out = append(out, Check{ID: "spf", Status: Info, Detail: "injected over HTTP: no SMTP client whose address SPF could check"})
	case d.SPF.Verdict == mailauth.Pass:
		out = append(out, Check{ID: "spf", Status: Pass, Detail: fmt.Sprintf("SPF pass for %s from %s", d.SPF.Domain, m.Envelope.RemoteIP)})
	case d.SPF.Verdict == mailauth.None:
		out = append(out, Check{ID: "spf", Status: Info, Detail: fmt.Sprintf("%s publishes no SPF record (see spf-record)", d.SPF.Domain)})
	case d.SPF.Verdict == mailauth.TempError:
		out = append(out, Check{ID: "spf", Status: Info, Detail: unknownPrefix + "SPF temperror: " + d.SPF.Reason})
	default:
		out = append(out, Check{ID: "spf", Status: Fail,
			Detail: fmt.Sprintf("SPF %s for %s from %s%s", d.SPF.Verdict, d.SPF.Domain, m.Envelope.RemoteIP, because(d.SPF.Reason)),
			Fix:    fmt.Sprintf("list %s in the SPF record of %s (e.g. ip4:%s) or send through a host it lists", m.Envelope.RemoteIP, d.SPF.Domain, m.Envelope.RemoteIP)})
	}

	dk := Check{ID: "dkim", Status: Fail, Detail: "not signed", Fix: "sign outgoing mail with DKIM (a 2048-bit RSA key) for the From domain and publish the key at SELECTOR._domainkey"}
	key := Check{ID: "dkim-key", Status: Info, Detail: "no signature that passes"}
	var sigs []string
	for _, s := range d.DKIM {
		desc := fmt.Sprintf("d=%s s=%s %s", s.Domain, s.Selector, s.Algorithm)
		if s.KeyBits > 0 {
			desc += fmt.Sprintf(" %d-bit %s key", s.KeyBits, s.KeyType)
		}
		desc += ": " + s.Verdict + because(s.Reason)
		sigs = append(sigs, desc)
		if s.Verdict != mailauth.Pass {
			continue
		}
		dk.Status, dk.Fix = Pass, ""
		switch {
		case s.KeyType == "rsa" && s.KeyBits > 0 && s.KeyBits < 2048:
			if key.Status != Pass {
				key = Check{ID: "dkim-key", Status: Warn, Detail: fmt.Sprintf("%s._domainkey.%s is a %d-bit RSA key", s.Selector, s.Domain, s.KeyBits),
					Fix: fmt.Sprintf("publish a 2048-bit RSA key at %s._domainkey.%s (RFC 8301: 1024 bits is the minimum)", s.Selector, s.Domain)}
			}
		case s.KeyBits > 0:
			key = Check{ID: "dkim-key", Status: Pass, Detail: fmt.Sprintf("%s._domainkey.%s: %d-bit %s", s.Selector, s.Domain, s.KeyBits, s.KeyType)}
		}
	}
	if len(sigs) > 0 {
		dk.Detail = strings.Join(sigs, "; ")
		if dk.Status == Fail {
			if slices.ContainsFunc(d.DKIM, func(s mailauth.DKIMSignature) bool { return s.Verdict == mailauth.TempError }) {
				dk.Status, dk.Detail, dk.Fix = Info, unknownPrefix+dk.Detail, ""
			} else {
				dk.Fix = "check that the key published at SELECTOR._domainkey matches the signing key, and that nothing rewrites the message after signing"
			}
		}
	}
	out = append(out, dk, key)

	dm := Check{ID: "dmarc"}
	aligned := d.DMARC.SPFAligned || d.DMARC.DKIMAligned
	for _, s := range d.DKIM {
		aligned = aligned || s.Verdict == mailauth.Pass && s.Aligned
	}
	switch {
	case injected(m):
		dm.Status, dm.Detail = Info, "injected over HTTP: DMARC needs the SMTP envelope"
	case d.DMARC.Verdict == mailauth.Pass:
		dm.Status, dm.Detail = Pass, fmt.Sprintf("DMARC pass for %s (%s), policy %s", d.DMARC.FromDomain, d.DMARC.Reason, d.DMARC.Applied)
	case d.DMARC.Verdict == mailauth.TempError:
		dm.Status, dm.Detail = Info, unknownPrefix+"DMARC temperror"+because(d.DMARC.Reason)
	case d.DMARC.Verdict == mailauth.None && d.DMARC.FromDomain != "" && aligned:
		dm.Status, dm.Detail = Pass, fmt.Sprintf("no DMARC record (see dmarc-policy), but SPF or DKIM passed for a domain aligned with %s", d.DMARC.FromDomain)
	case d.DMARC.Verdict == mailauth.None && d.DMARC.FromDomain != "":
		dm.Status, dm.Detail = Fail, fmt.Sprintf("neither SPF nor DKIM passed for a domain aligned with From (%s)", d.DMARC.FromDomain)
		dm.Fix = "sign with DKIM as d=" + d.DMARC.FromDomain + " or send with a MAIL FROM under it that SPF passes"
	default:
		dm.Status, dm.Detail = Fail, "DMARC "+d.DMARC.Verdict+because(d.DMARC.Reason)
		dm.Fix = "sign with DKIM as d=" + d.DMARC.FromDomain + " or send with a MAIL FROM under it that SPF passes"
		if d.DMARC.FromDomain == "" {
			dm.Fix = "send exactly one From field with one address"
		}
	}
	return append(out, dm)
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + clip(reason, 200) + ")"
}

// hostChecks looks at the sending host: its PTR name, whether that name resolves
// back to the address (forward-confirmed reverse DNS), and its HELO name.
func (r *Reporter) hostChecks(ctx context.Context, m *storage.Message) []Check {
	ip := net.ParseIP(m.Envelope.RemoteIP)
	if injected(m) || ip == nil {
		why := "injected over HTTP: no SMTP client to check"
		if !injected(m) {
			why = "no client address recorded"
		}
		return []Check{{ID: "rdns", Status: Info, Detail: why}, {ID: "fcrdns", Status: Info, Detail: why}, {ID: "helo", Status: Info, Detail: why}}
	}
	addr := ip.String()
	helo := strings.ToLower(strings.TrimSuffix(m.Envelope.Helo, "."))
	names, err := r.res.LookupAddr(ctx, addr)
	var rdns, fc Check
	var confirmed string
	switch {
	case err != nil && !notFound(err):
		rdns, fc = dnsUnknown("rdns", err, r.budget), dnsUnknown("fcrdns", err, r.budget)
	case len(names) == 0:
		rdns = Check{ID: "rdns", Status: Fail, Detail: "no PTR record for " + addr,
			Fix: "ask whoever runs " + addr + " (the hosting provider) for a PTR record naming the host, e.g. mail.example.org"}
		fc = Check{ID: "fcrdns", Status: Info, Detail: "no PTR name to confirm"}
	default:
		rdns = Check{ID: "rdns", Status: Pass, Detail: addr + " is " + strings.Join(trimDots(names), ", ")}
		fc = Check{ID: "fcrdns", Status: Fail, Detail: "no PTR name of " + addr + " resolves back to it",
			Fix: "publish an A/AAAA record for " + strings.TrimSuffix(names[0], ".") + " pointing to " + addr}
		for _, n := range names[:min(len(names), 3)] {
			addrs, err := r.res.LookupIPAddr(ctx, n)
			if err != nil && !notFound(err) {
				fc = dnsUnknown("fcrdns", err, r.budget)
				continue
			}
			if slices.ContainsFunc(addrs, func(a net.IPAddr) bool { return a.IP.Equal(ip) }) {
				confirmed = strings.ToLower(strings.TrimSuffix(n, "."))
				fc = Check{ID: "fcrdns", Status: Pass, Detail: confirmed + " resolves back to " + addr}
				break
			}
		}
	}
	h := Check{ID: "helo", Status: Fail, Detail: fmt.Sprintf("HELO %q is neither the host's PTR name nor a name of %s", m.Envelope.Helo, addr),
		Fix: "make the sending host greet with its own name (the PTR name of " + addr + ")"}
	switch {
	case helo == "":
		h.Detail = "no HELO name"
	case confirmed != "" && helo == confirmed:
		h = Check{ID: "helo", Status: Pass, Detail: "HELO " + helo + " is the confirmed PTR name"}
	default:
		addrs, err := r.res.LookupIPAddr(ctx, helo)
		switch {
		case err != nil && !notFound(err):
			h = dnsUnknown("helo", err, r.budget)
		case slices.ContainsFunc(addrs, func(a net.IPAddr) bool { return a.IP.Equal(ip) }):
			h = Check{ID: "helo", Status: Pass, Detail: "HELO " + helo + " resolves to " + addr}
		}
	}
	return []Check{rdns, fc, h}
}

func trimDots(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names[:min(len(names), 5)] {
		out = append(out, strings.TrimSuffix(n, "."))
	}
	return out
}
