package report

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// spfRecord is what the report reads from one SPF record (RFC 7208 section 4.5).
type spfRecord struct {
	all      string   // the qualifier of "all" ("+", "-", "~", "?"); "" when there is none
	targets  []string // the domains of include: and redirect=, to count their lookups too
	lookups  int      // mechanisms and modifiers of this record that cost a DNS lookup (section 4.6.4)
	redirect bool
}

// maxSPFTerms bounds the work of one record: a TXT record may be long, but no
// sensible SPF record has hundreds of terms.
const maxSPFTerms = 200

// parseSPF checks the syntax of an SPF record (RFC 7208 section 12) and counts its
// DNS lookups. The error names the first term that does not parse.
func parseSPF(rec string) (spfRecord, error) {
	var r spfRecord
	terms := strings.Fields(rec)
	if len(terms) == 0 || !strings.EqualFold(terms[0], "v=spf1") {
		return r, fmt.Errorf("does not start with v=spf1")
	}
	if len(terms) > maxSPFTerms {
		return r, fmt.Errorf("more than %d terms", maxSPFTerms)
	}
	seen := map[string]bool{}
	for _, t := range terms[1:] {
		if name, val, ok := modifier(t); ok {
			// Section 6: redirect and exp at most once each.
			if (name == "redirect" || name == "exp") && seen[name] {
				return r, fmt.Errorf("%s= more than once", name)
			}
			seen[name] = true
			if name == "redirect" {
				if !domainSpec(val) {
					return r, fmt.Errorf("%q: bad domain", t)
				}
				r.redirect = true
				r.lookups++
				r.targets = append(r.targets, val)
			}
			continue
		}
		q := "+"
		if strings.ContainsRune("+-~?", rune(t[0])) {
			q, t = t[:1], t[1:]
		}
		name, arg, hasArg := strings.Cut(t, ":")
		if !hasArg {
			name, arg, _ = strings.Cut(t, "/")
			if arg != "" {
				arg = "/" + arg
			}
		}
		name = strings.ToLower(name)
		var err error
		switch name {
		case "all":
			if t != name && !strings.EqualFold(t, "all") {
				err = fmt.Errorf("%q: all takes no argument", t)
			}
			r.all = q
		case "include", "exists":
			if !hasArg || !domainSpec(arg) {
				err = fmt.Errorf("%q: %s needs a domain", t, name)
			}
			r.lookups++
			if name == "include" && err == nil {
				r.targets = append(r.targets, arg)
			}
		case "a", "mx":
			err = domainCIDR(t, hasArg, arg)
			r.lookups++
		case "ptr":
			if hasArg && !domainSpec(arg) {
				err = fmt.Errorf("%q: bad domain", t)
			}
			r.lookups++
		case "ip4", "ip6":
			err = ipNet(t, name, arg, hasArg)
		default:
			err = fmt.Errorf("%q: unknown mechanism", t)
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// modifier splits name=value, where name is ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
func modifier(t string) (string, string, bool) {
	name, val, ok := strings.Cut(t, "=")
	if !ok || name == "" || strings.ContainsAny(name, ":/") {
		return "", "", false
	}
	for i, c := range name {
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')) {
			return "", "", false
		}
	}
	return strings.ToLower(name), val, true
}

// domainSpec accepts a domain-spec: a name, possibly with macros (section 7), so
// only what can never be one is refused.
func domainSpec(s string) bool {
	if s == "" || len(s) > 1024 || strings.ContainsAny(s, " \t\"") {
		return false
	}
	if strings.Contains(s, "%") {
		return validMacros(s)
	}
	return strings.Contains(s, ".") && !strings.HasPrefix(s, ".") && !strings.Contains(s, "..")
}

// validMacros checks that every % starts a macro: %{x...}, %%, %_ or %-.
func validMacros(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+1 >= len(s) {
			return false
		}
		switch s[i+1] {
		case '%', '_', '-':
			i++
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 3 || !strings.ContainsRune("slodiphcrtvSLODIPHCRTV", rune(s[i+2])) {
				return false
			}
			i += end
		default:
			return false
		}
	}
	return true
}

// domainCIDR checks a or mx: an optional domain, then optional /cidr4 and //cidr6.
func domainCIDR(t string, hasArg bool, arg string) error {
	spec, cidr := arg, ""
	if i := strings.IndexByte(arg, '/'); i >= 0 {
		spec, cidr = arg[:i], arg[i:]
	}
	if hasArg && !domainSpec(spec) {
		return fmt.Errorf("%q: bad domain", t)
	}
	if cidr == "" {
		return nil
	}
	v4, v6, dual := cidr, "", strings.Index(cidr, "//")
	if dual >= 0 {
		v4, v6 = cidr[:dual], cidr[dual+1:]
	}
	if v4 != "" && !prefixLen(v4[1:], 32) || v6 != "" && !prefixLen(v6[1:], 128) {
		return fmt.Errorf("%q: bad prefix length", t)
	}
	return nil
}

func ipNet(t, name, arg string, hasArg bool) error {
	if !hasArg {
		return fmt.Errorf("%q: %s needs an address", t, name)
	}
	addr, bits, hasBits := strings.Cut(arg, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" || (name == "ip4") != a.Is4() {
		return fmt.Errorf("%q: bad address", t)
	}
	if hasBits && !prefixLen(bits, a.BitLen()) {
		return fmt.Errorf("%q: bad prefix length", t)
	}
	return nil
}

func prefixLen(s string, max int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= max && s == strconv.Itoa(n)
}
