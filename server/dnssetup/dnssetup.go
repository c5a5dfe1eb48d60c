// Package dnssetup is `mayfly dns`: the DNS records that bring a domain's mail to
// Mayfly and let its replies pass SPF, DKIM and DMARC, printed to publish, or looked
// up through the DNS client to check what is published.
package dnssetup

import (
	"cmp"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/dkimkey"
	"github.com/mayfly-mail/mayfly/server/dnsclient"
)

const (
	// recordTTL is the TTL of every record printed: an hour lets a mistake be fixed
	// the same day without making resolvers ask every minute.
	recordTTL = 3600
	// dnsTimeout bounds one query of --check, over UDP or TCP.
	dnsTimeout = 2 * time.Second
)

// UsageError is a mistake in the command line: the caller exits with status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }

func (e UsageError) Unwrap() error { return e.Err }

func asUsage(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return UsageError{err}
}

// dnsOptions is what `mayfly dns` was asked, validated.
type dnsOptions struct {
	domains  []string // lower case, without the final dot
	host     string   // the mail host: MX target, name of the IPs, PTR name
	ips      []netip.Addr
	keyFile  string
	selector string
	rua      map[string]string // by domain; "" = no aggregate reports
	check    bool
	server   string // host:port of the resolver; "" = /etc/resolv.conf
}

// Command is `mayfly dns`: it prints the records to publish so that mail for the
// domains reaches this Mayfly and its replies pass SPF, DKIM and DMARC, or with
// -check looks them up and reports each one. lookupEnv reads the MAYFLY_* twins.
func Command(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	o, err := parseDNSFlags(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	key, err := dkimPublicKey(o.keyFile, !o.check, stderr)
	if err != nil {
		return err
	}
	recs := dnsRecords(o, key)
	if o.check {
		c, err := newDNSClient(o.server)
		if err != nil {
			return err
		}
		return checkRecords(ctx, c, recs, stdout)
	}
	printRecords(stdout, o, recs)
	return nil
}

// listFlag collects a flag that may be repeated or given as a comma list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}

// splitList cuts a comma list, dropping empty items.
func splitList(v string) []string {
	items := strings.Split(v, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return slices.DeleteFunc(items, func(s string) bool { return s == "" })
}

func parseDNSFlags(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (dnsOptions, error) {
	envOr := func(name, def string) string {
		if v, ok := lookupEnv(name); ok && v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("mayfly dns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var domains, ips listFlag
	fs.Var(&domains, "domain", "mail `DOMAIN` to receive for; repeat or comma-separate for several (required)")
	fs.Var(&ips, "ip", "public IPv4 or IPv6 address of the mail host, `IP`; repeat or comma-separate for several (required)")
	host := fs.String("host", "", "`NAME` of the mail host: MX target, A/AAAA name and PTR name (default mail.DOMAIN of the first domain)")
	keyFile := fs.String("dkim-key", envOr("MAYFLY_DKIM_KEY", ""), "`FILE` of the PEM DKIM private key, made (2048-bit RSA, mode 0600) when missing, in a directory only its owner may read and write; env MAYFLY_DKIM_KEY (default $XDG_CONFIG_HOME/mayfly/dkim-SELECTOR.pem, else ~/.config/mayfly/dkim-SELECTOR.pem)")
	selector := fs.String("selector", envOr("MAYFLY_DKIM_SELECTOR", "mayfly"), "DKIM selector `NAME`; env MAYFLY_DKIM_SELECTOR")
	fs.StringVar(selector, "dkim-selector", *selector, "the same as -selector")
	rua := fs.String("rua", "", "DMARC aggregate report `URIs`, comma-separated; empty = no reports (default mailto:dmarc-reports@DOMAIN)")
	check := fs.Bool("check", false, "look the records up and report what is missing or differs, instead of printing them")
	server := fs.String("dns", envOr("MAYFLY_DNS", ""), "`host:port` of the resolver -check asks; env MAYFLY_DNS; empty = the ones in /etc/resolv.conf")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: mayfly dns -domain DOMAIN -ip IP [flags]

Prints the DNS records that bring DOMAIN's mail to this Mayfly and let its replies
pass SPF, DKIM and DMARC: a zone-file fragment, the same records as a table, and the
PTR record to ask your hosting provider for. With -check it looks each one up and
says which are missing or differ. docs/deployment.md walks through it.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return dnsOptions{}, asUsage(err)
	}
	if fs.NArg() > 0 {
		return dnsOptions{}, UsageError{fmt.Errorf("dns: unexpected argument %q", fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	o := dnsOptions{keyFile: *keyFile, check: *check, rua: map[string]string{}}
	var errs []error
	if o.keyFile == "" {
		var err error
		if o.keyFile, err = dkimkey.DefaultPath(*selector); err != nil {
			errs = append(errs, fmt.Errorf("-dkim-key: no default place for the key (%w): give the path of the key file", err))
		}
	}
	if len(domains) == 0 {
		errs = append(errs, errors.New("-domain is required"))
	}
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if err := checkHostName(d); err != nil {
			errs = append(errs, fmt.Errorf("-domain %q: %w", d, err))
		} else if !slices.Contains(o.domains, d) {
			o.domains = append(o.domains, d)
		}
	}
	if len(ips) == 0 {
		errs = append(errs, errors.New("-ip is required: the public address of the mail host"))
	}
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		switch {
		case err != nil || ip.Zone() != "":
			errs = append(errs, fmt.Errorf("-ip %q: want an IPv4 or IPv6 address", s))
		case ip.IsUnspecified() || ip.IsMulticast():
			errs = append(errs, fmt.Errorf("-ip %q: want the address the host is reached at", s))
		default:
			ip = ip.Unmap()
			if !ip.IsGlobalUnicast() || ip.IsPrivate() {
				fmt.Fprintf(stderr, "mayfly dns: note: %s is not reachable from the internet; other mail servers need the public address\n", ip)
			}
			if !slices.Contains(o.ips, ip) {
				o.ips = append(o.ips, ip)
			}
		}
	}
	o.host = strings.ToLower(strings.TrimSuffix(*host, "."))
	if o.host == "" && len(o.domains) > 0 {
		o.host = "mail." + o.domains[0]
	}
	if err := checkHostName(o.host); err != nil && len(o.domains) > 0 {
		errs = append(errs, fmt.Errorf("-host %q: %w", o.host, err))
	}
	o.selector = strings.ToLower(*selector)
	if err := checkHostName(o.selector); err != nil {
		errs = append(errs, fmt.Errorf("-selector %q: %w", o.selector, err))
	}
	if given["rua"] {
		for _, u := range splitList(*rua) {
			// RFC 7489 section 6.3: a comma separates URIs, a semicolon ends the tag.
			if scheme, rest, ok := strings.Cut(u, ":"); !ok || scheme == "" || rest == "" || strings.ContainsAny(u, " ;\"\\") {
				errs = append(errs, fmt.Errorf("-rua %q: want a URI such as mailto:dmarc@example.org", u))
			}
		}
	}
	for _, d := range o.domains {
		o.rua[d] = "mailto:dmarc-reports@" + d
		if given["rua"] {
			o.rua[d] = strings.Join(splitList(*rua), ",")
		}
	}
	if o.server = *server; o.server != "" {
		if _, _, err := net.SplitHostPort(o.server); err != nil {
			// A bare address or name means the usual port.
			if _, perr := netip.ParseAddr(o.server); perr == nil || checkHostName(o.server) == nil {
				o.server = net.JoinHostPort(o.server, "53")
			} else {
				errs = append(errs, fmt.Errorf("-dns %q: want host:port", *server))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return dnsOptions{}, UsageError{err}
	}
	return o, nil
}

// checkHostName accepts the names DNS can hold for mail: letters, digits and
// hyphens in labels of up to 63 bytes (RFC 1035 section 2.3.1, RFC 5321 section
// 2.3.5), and the underscore, which selectors and service names use.
func checkHostName(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("want a domain name")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("want a domain name")
		}
		for _, c := range []byte(label) {
			if c >= 0x80 {
				return errors.New("write an internationalized name in its xn-- form")
			}
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return errors.New("want a domain name")
			}
		}
	}
	return nil
}

// dkimPublicKey reads the private key in path, or when there is none and create is
// set, makes a new one there.
func dkimPublicKey(path string, create bool, stderr io.Writer) (dkimkey.Public, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		signer, err := dkimkey.Create(path)
		if err != nil {
			return dkimkey.Public{}, err
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		fmt.Fprintf(stderr, "mayfly dns: created a %d-bit RSA DKIM key in %s (PKCS#8 PEM, mode 0600); keep it: the DKIM record is its public half\n", dkimkey.Bits, path)
		return dkimkey.PublicOf(signer)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return dkimkey.Public{}, fmt.Errorf("dkim key: %w (mayfly dns without -check creates it)", err)
	}
	if err != nil {
		return dkimkey.Public{}, fmt.Errorf("dkim key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "mayfly dns: note: %s is readable by other users (mode %v); chmod 600 it\n", path, fi.Mode().Perm())
	}
	signer, err := dkimkey.Parse(data)
	if err != nil {
		return dkimkey.Public{}, fmt.Errorf("dkim key %s: %w", path, err)
	}
	if k, ok := signer.(*rsa.PrivateKey); ok && k.N.BitLen() < dkimkey.Bits {
		fmt.Fprintf(stderr, "mayfly dns: note: %s holds a %d-bit RSA key; RFC 8301 section 3.2 asks for %d bits\n", path, k.N.BitLen(), dkimkey.Bits)
	}
	return dkimkey.PublicOf(signer)
}

// recordKind says what a record is for, and so how -check judges what it finds.
type recordKind int

const (
	kindAddr  recordKind = iota // A or AAAA of the mail host
	kindMX                      // MX of a domain
	kindSPF                     // SPF TXT of a domain or of the host's HELO name
	kindDKIM                    // DKIM key TXT
	kindDMARC                   // DMARC policy TXT
	kindPTR                     // reverse DNS of an IP: not in the domain's zone
)

// record is one resource record to publish.
type record struct {
	kind recordKind
	rr   dns.RR
	dkim dkimkey.Public // kindDKIM: the key the record must hold
}

// name is the owner name without the final dot, as DNS providers' forms show it.
func (r record) name() string { return strings.TrimSuffix(r.rr.Header().Name, ".") }

func (r record) typ() string { return dns.TypeToString[r.rr.Header().Rrtype] }

// value is the record's data as one line: a TXT record's strings joined, as
// verifiers read them (RFC 7208 section 3.3, RFC 6376 section 3.6.2.2).
func (r record) value() string {
	switch rr := r.rr.(type) {
	case *dns.A:
		return rr.A.String()
	case *dns.AAAA:
		return rr.AAAA.String()
	case *dns.MX:
		return fmt.Sprintf("%d %s", rr.Preference, rr.Mx)
	case *dns.TXT:
		return strings.Join(rr.Txt, "")
	case *dns.PTR:
		return rr.Ptr
	}
	return ""
}

// label tells TXT records apart in -check output.
func (r record) label() string {
	switch r.kind {
	case kindSPF:
		return "SPF"
	case kindDKIM:
		return "DKIM"
	case kindDMARC:
		return "DMARC"
	}
	return r.value()
}

// dnsRecords lists the records for o: the mail host's addresses and its HELO SPF,
// then for each domain its MX, SPF, DKIM and DMARC, then the PTR of each address.
func dnsRecords(o dnsOptions, key dkimkey.Public) []record {
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: recordTTL}
	}
	txt := func(kind recordKind, name, v string) record {
		return record{kind: kind, rr: &dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: splitTXT(v)}}
	}
	var recs []record
	for _, ip := range o.ips {
		if ip.Is4() {
			recs = append(recs, record{kind: kindAddr, rr: &dns.A{Hdr: hdr(o.host, dns.TypeA), A: ip.AsSlice()}})
		} else {
			recs = append(recs, record{kind: kindAddr, rr: &dns.AAAA{Hdr: hdr(o.host, dns.TypeAAAA), AAAA: ip.AsSlice()}})
		}
	}
	if !slices.Contains(o.domains, o.host) {
		// RFC 7208 section 2.3: the HELO name gets its own SPF record, and it is the
		// only identity checked for bounces (section 2.4), which have no sender.
		recs = append(recs, txt(kindSPF, o.host, "v=spf1 a -all"))
	}
	for _, d := range o.domains {
		recs = append(recs,
			record{kind: kindMX, rr: &dns.MX{Hdr: hdr(d, dns.TypeMX), Preference: 10, Mx: dns.Fqdn(o.host)}},
			// RFC 7208 section 5.4: mx allows exactly the hosts that receive the
			// domain's mail, which is where Mayfly sends replies from.
			txt(kindSPF, d, "v=spf1 mx -all"),
			record{kind: kindDKIM, dkim: key, rr: &dns.TXT{Hdr: hdr(o.selector+"._domainkey."+d, dns.TypeTXT),
				Txt: splitTXT(key.Record())}},
			txt(kindDMARC, "_dmarc."+d, dmarcRecord(o.rua[d])),
		)
	}
	for _, ip := range o.ips {
		rev, _ := dns.ReverseAddr(ip.String()) // a valid address always has one
		recs = append(recs, record{kind: kindPTR, rr: &dns.PTR{Hdr: hdr(rev, dns.TypePTR), Ptr: dns.Fqdn(o.host)}})
	}
	return recs
}

// dmarcRecord asks receivers to quarantine mail that fails DMARC (RFC 7489 section
// 6.3): strict enough to stop spoofing, and mistakes land in spam, not nowhere.
func dmarcRecord(rua string) string {
	v := "v=DMARC1; p=quarantine"
	if rua != "" {
		v += "; rua=" + rua
	}
	return v
}

// splitTXT cuts v into the character-strings of one TXT record: each holds at most
// 255 bytes (RFC 1035 section 3.3.14), and readers join them without a separator.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out, v = append(out, v[:255]), v[255:]
	}
	return append(out, v)
}

// quoteTXT writes s as a zone-file character-string (RFC 1035 section 5.1).
func quoteTXT(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// printRecords writes the zone-file fragment, the table and the PTR reminder. The
// fragment has no blank line in it, so it can be cut out up to the first one.
func printRecords(w io.Writer, o dnsOptions, recs []record) {
	width := 0
	for _, r := range recs {
		if r.kind != kindPTR {
			width = max(width, len(r.rr.Header().Name))
		}
	}
	fmt.Fprintf(w, "; Mail for %s, received by %s. Paste into the zone, or enter each record at your DNS provider.\n", strings.Join(o.domains, ", "), o.host)
	for _, r := range recs {
		if r.kind == kindPTR {
			continue
		}
		prefix := fmt.Sprintf("%-*s %d IN %-4s ", width, r.rr.Header().Name, recordTTL, r.typ())
		txt, ok := r.rr.(*dns.TXT)
		switch {
		case !ok:
			fmt.Fprintf(w, "%s%s\n", prefix, r.value())
		case len(txt.Txt) == 1:
			fmt.Fprintf(w, "%s%s\n", prefix, quoteTXT(txt.Txt[0]))
		default:
			// Parentheses let one record go on over several lines (RFC 1035 section 5.1).
			for i, s := range txt.Txt {
				lead, end := strings.Repeat(" ", len(prefix)+2), ""
				if i == 0 {
					lead = prefix + "( "
				}
				if i == len(txt.Txt)-1 {
					end = " )"
				}
				fmt.Fprintf(w, "%s%s%s\n", lead, quoteTXT(s), end)
			}
		}
	}

	fmt.Fprint(w, "\nThe same records, one per row. A TXT value is shown whole: most providers' forms take it so\nand split it into 255-byte strings themselves (see docs/deployment.md if yours does not).\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tVALUE")
	for _, r := range recs {
		if r.kind != kindPTR {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.name(), r.typ(), strings.TrimSuffix(r.value(), "."))
		}
	}
	tw.Flush()

	fmt.Fprint(w, "\nPTR (reverse DNS) is not in your zone: the owner of each address, usually your hosting\nprovider, sets it. Ask them to set:")
	for _, r := range recs {
		if r.kind == kindPTR {
			fmt.Fprintf(w, "\n  %s PTR %s", r.rr.Header().Name, r.value())
		}
	}
	fmt.Fprint(w, "\nMany receivers refuse mail from an address whose PTR does not name a host that resolves\nback to it (RFC 8601 section 2.7.3, \"iprev\").\n")

	key, err := filepath.Abs(o.keyFile)
	if err != nil {
		key = o.keyFile
	}
	fmt.Fprintf(w, "\nRun Mayfly to match, e.g.:\n  MAYFLY_DOMAINS=%s MAYFLY_HOSTNAME=%s MAYFLY_DKIM_KEY=%s MAYFLY_DKIM_SELECTOR=%s MAYFLY_SMTP_ADDR=:25 mayfly\n",
		strings.Join(o.domains, ","), o.host, key, o.selector)
	fmt.Fprintln(w, "Once the records are published, mayfly dns -check with the same flags looks each one up.")
}

// errNoRecord is a name that does not exist or has no record of the type asked.
var errNoRecord = errors.New("no such record")

// dnsClient asks one resolver after another, as /etc/resolv.conf lists them,
// through the service's DNS client without its cache: -check wants what is
// published now.
type dnsClient struct{ res *dnsclient.Resolver }

func newDNSClient(server string) (*dnsClient, error) {
	// Two rounds: one lost UDP datagram should not read as a missing record.
	res, err := dnsclient.New(dnsclient.Options{Server: server, Timeout: dnsTimeout, Rounds: 2, NoCache: true})
	if err != nil {
		return nil, fmt.Errorf("%w (or give -dns host:port)", err)
	}
	return &dnsClient{res: res}, nil
}

// lookup returns the records of type t at name, errNoRecord for NXDOMAIN or
// NODATA, or why there is no answer.
func (c *dnsClient) lookup(ctx context.Context, name string, t uint16) ([]dns.RR, error) {
	rrs, err := c.res.Query(ctx, name, t)
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return nil, errNoRecord
	}
	return rrs, err
}

// lookupTXT returns one string per TXT record, its strings joined. miekg/dns keeps
// them in zone-file form, with \" and \DDD escapes; the records Mayfly asks for hold
// nothing that needs one, so they compare as they come.
func (c *dnsClient) lookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := c.lookup(ctx, name, dns.TypeTXT)
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, err
}

// verdict is what -check found for one record.
type verdict struct {
	status string // ok, missing, differs or error
	got    string // differs: what is published
	want   string // missing, differs: what should be
	note   string // anything else worth saying
}

// checkRecords looks every record up at once and prints a line for each, in order.
func checkRecords(ctx context.Context, c *dnsClient, recs []record, w io.Writer) error {
	verdicts := make([]verdict, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Go(func() { verdicts[i] = checkRecord(ctx, c, r) })
	}
	wg.Wait()
	fmt.Fprintf(w, "asking resolver %s\n", strings.Join(c.res.Servers(), ", "))
	bad := 0
	for i, r := range recs {
		v := verdicts[i]
		fmt.Fprintf(w, "%-8s %s %s %s\n", v.status, r.rr.Header().Name, r.typ(), r.label())
		if v.got != "" {
			fmt.Fprintf(w, "         got:  %s\n", v.got)
		}
		if v.want != "" {
			fmt.Fprintf(w, "         want: %s\n", v.want)
		}
		if v.note != "" {
			fmt.Fprintf(w, "         %s\n", v.note)
		}
		if v.status != "ok" {
			bad++
		}
	}
	if bad > 0 {
		fmt.Fprintln(w, "Records published a moment ago may take up to their TTL, or the zone's negative TTL, to show\nthrough a resolver; -dns NAMESERVER:53 asks your provider's server directly.")
		return fmt.Errorf("dns check: %d of %d records missing or different", bad, len(recs))
	}
	fmt.Fprintf(w, "all %d records ok\n", len(recs))
	return nil
}

func checkRecord(ctx context.Context, c *dnsClient, r record) verdict {
	name := r.rr.Header().Name
	want := r.value()
	if r.kind == kindSPF || r.kind == kindDMARC {
		want = quoteTXT(want)
	}
	switch r.kind {
	case kindAddr, kindPTR:
		rrs, err := c.lookup(ctx, name, r.rr.Header().Rrtype)
		if err != nil {
			v := failed(err, "")
			if r.kind == kindPTR && v.note == "" {
				v.note = "the owner of the address, usually the hosting provider, sets it"
			}
			return v
		}
		var got []string
		for _, rr := range rrs {
			got = append(got, record{rr: rr}.value())
		}
		if slices.ContainsFunc(got, func(s string) bool { return strings.EqualFold(s, want) }) {
			if len(got) > 1 {
				return verdict{status: "ok", note: "also " + strings.Join(slices.DeleteFunc(got, func(s string) bool { return strings.EqualFold(s, want) }), ", ")}
			}
			return verdict{status: "ok"}
		}
		return verdict{status: "differs", got: strings.Join(got, ", "), want: want}
	case kindMX:
		rrs, err := c.lookup(ctx, name, dns.TypeMX)
		if err != nil {
			return failed(err, "")
		}
		return judgeMX(rrs, r.rr.(*dns.MX))
	case kindSPF:
		txts, err := c.lookupTXT(ctx, name)
		if err != nil && !errors.Is(err, errNoRecord) {
			return failed(err, want)
		}
		return judgeSPF(txts, r.value())
	case kindDKIM:
		txts, err := c.lookupTXT(ctx, name)
		if err != nil {
			return failed(err, r.dkim.Fingerprint())
		}
		return judgeDKIM(txts, r.dkim)
	case kindDMARC:
		txts, err := c.lookupTXT(ctx, name)
		if err != nil && !errors.Is(err, errNoRecord) {
			return failed(err, want)
		}
		return judgeDMARC(txts, r.value())
	}
	panic(fmt.Sprintf("record kind %d", r.kind))
}

// failed is the verdict on a lookup with no records.
func failed(err error, want string) verdict {
	if errors.Is(err, errNoRecord) {
		return verdict{status: "missing", want: want}
	}
	return verdict{status: "error", want: want, note: err.Error()}
}

// judgeMX wants the host among the most preferred MX hosts: senders try those first
// (RFC 5321 section 5.1), so another host there gets the mail instead.
func judgeMX(rrs []dns.RR, want *dns.MX) verdict {
	var got []string
	best := uint16(65535)
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		got = append(got, fmt.Sprintf("%d %s", mx.Preference, mx.Mx))
		best = min(best, mx.Preference)
	}
	wantText := fmt.Sprintf("%d %s", want.Preference, want.Mx)
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		if strings.EqualFold(mx.Mx, want.Mx) && mx.Preference == best {
			if len(rrs) > 1 {
				return verdict{status: "ok", note: "with " + strings.Join(got, ", ")}
			}
			return verdict{status: "ok"}
		}
	}
	return verdict{status: "differs", got: strings.Join(got, ", "), want: wantText}
}

// spfRecords picks the SPF records out of a name's TXT records (RFC 7208 section 4.5).
func spfRecords(txts []string) []string {
	var out []string
	for _, t := range txts {
		if len(t) >= 6 && strings.EqualFold(t[:6], "v=spf1") && (len(t) == 6 || t[6] == ' ') {
			out = append(out, t)
		}
	}
	return out
}

func judgeSPF(txts []string, want string) verdict {
	spf := spfRecords(txts)
	switch {
	case len(spf) == 0:
		return verdict{status: "missing", want: quoteTXT(want)}
	case len(spf) > 1:
		return verdict{status: "differs", got: quoteAll(spf), want: quoteTXT(want),
			note: "several SPF records are a permerror (RFC 7208 section 4.5): merge them into one"}
	}
	// Terms are case-insensitive and separated by any run of spaces (RFC 7208 sections 4.6.1, 12).
	if !strings.EqualFold(strings.Join(strings.Fields(spf[0]), " "), want) {
		return verdict{status: "differs", got: quoteTXT(spf[0]), want: quoteTXT(want)}
	}
	return verdict{status: "ok"}
}

// dkimTags reads a DKIM key record's tag=value list (RFC 6376 section 3.2).
func dkimTags(s string) map[string]string {
	tags := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok {
			tags[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return tags
}

func judgeDKIM(txts []string, want dkimkey.Public) verdict {
	if len(txts) == 0 {
		return verdict{status: "missing", want: want.Fingerprint()}
	}
	if len(txts) > 1 {
		// RFC 6376 section 3.6.2.2: which of several records a verifier uses is undefined.
		return verdict{status: "differs", got: quoteAll(txts), want: want.Fingerprint(),
			note: "several TXT records at the selector: keep only the one mayfly dns prints"}
	}
	tags := dkimTags(txts[0])
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return verdict{status: "differs", got: quoteTXT(txts[0]), want: want.Fingerprint(), note: "v= must be DKIM1"}
	}
	algo := cmp.Or(tags["k"], "rsa")
	p := strings.Join(strings.Fields(tags["p"]), "") // RFC 6376 section 3.6.1: base64 may hold spaces
	if p == "" {
		return verdict{status: "differs", got: quoteTXT(txts[0]), want: want.Fingerprint(), note: "an empty p= revokes the key (RFC 6376 section 3.6.1)"}
	}
	pub, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return verdict{status: "differs", got: quoteTXT(txts[0]), want: want.Fingerprint(), note: "p= is not base64"}
	}
	got := dkimkey.Public{Algo: algo, Key: pub}
	if algo != want.Algo || string(pub) != string(want.Key) {
		return verdict{status: "differs", got: got.Fingerprint(), want: want.Fingerprint() + " (from -dkim-key)",
			note: "publish the DKIM record mayfly dns prints, or point -dkim-key at the key that was published"}
	}
	return verdict{status: "ok"}
}

// judgeDMARC accepts any valid policy: p=none or p=reject are the operator's choice,
// but without one a receiver applies none (RFC 7489 section 6.6.3).
func judgeDMARC(txts []string, want string) verdict {
	var recs []string
	for _, t := range txts {
		// RFC 7489 section 6.6.3: records that do not start with v=DMARC1 are discarded.
		if strings.HasPrefix(t, "v=DMARC1") {
			recs = append(recs, t)
		}
	}
	switch {
	case len(recs) == 0:
		return verdict{status: "missing", want: quoteTXT(want)}
	case len(recs) > 1:
		return verdict{status: "differs", got: quoteAll(recs), want: quoteTXT(want),
			note: "with several DMARC records receivers apply none (RFC 7489 section 6.6.3)"}
	}
	tags := dkimTags(recs[0])
	switch tags["p"] {
	case "none", "quarantine", "reject":
	default:
		return verdict{status: "differs", got: quoteTXT(recs[0]), want: quoteTXT(want), note: "p= must be none, quarantine or reject"}
	}
	if recs[0] != want {
		return verdict{status: "ok", note: "published " + quoteTXT(recs[0])}
	}
	return verdict{status: "ok"}
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quoteTXT(s)
	}
	return strings.Join(q, " and ")
}
