package dnssetup

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/dkimkey"
	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
)

// runDNS runs `mayfly dns args...` and returns what it printed.
// keyDir is a directory only its owner may use, where mayfly dns writes a key.
func keyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runDNS(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Command(context.Background(), args, os.LookupEnv, &out, &errOut)
	return out.String(), errOut.String(), err
}

// zoneOf parses the zone-file fragment that starts the output, up to the first
// blank line, as a name server would load it.
func zoneOf(t *testing.T, stdout string) []dns.RR {
	t.Helper()
	fragment, _, ok := strings.Cut(stdout, "\n\n")
	if !ok {
		t.Fatalf("no blank line after the zone fragment in:\n%s", stdout)
	}
	zp := dns.NewZoneParser(strings.NewReader(fragment), "", "")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone fragment does not parse: %v\n%s", err, fragment)
	}
	return rrs
}

// ptrsOf parses the PTR records the output asks the hosting provider for.
func ptrsOf(t *testing.T, stdout string) []dns.RR {
	t.Helper()
	var rrs []dns.RR
	for line := range strings.SplitSeq(stdout, "\n") {
		if strings.HasPrefix(line, "  ") && strings.Contains(line, " PTR ") {
			rr, err := dns.NewRR(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("PTR line %q: %v", line, err)
			}
			rrs = append(rrs, rr)
		}
	}
	return rrs
}

// lookupTXT reads TXT records out of rrs as a resolver would return them.
func lookupTXT(rrs []dns.RR) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		var out []string
		for _, rr := range rrs {
			if txt, ok := rr.(*dns.TXT); ok && strings.EqualFold(txt.Hdr.Name, dns.Fqdn(name)) {
				out = append(out, strings.Join(txt.Txt, ""))
			}
		}
		if out == nil {
			return nil, fmt.Errorf("no TXT at %s", name)
		}
		return out, nil
	}
}

// checkLines returns the status lines of -check output by record, "status name type".
func checkLines(stdout string) map[string]string {
	lines := map[string]string{}
	for line := range strings.SplitSeq(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && slices.Contains([]string{"ok", "missing", "differs", "error"}, f[0]) {
			lines[f[1]+" "+f[2]+" "+strings.Join(f[3:], " ")] = f[0]
		}
	}
	return lines
}

func readPrivateKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("%s: want a PKCS#8 PEM block, got %q", path, data)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

var dnsArgs = []string{"-domain", "example.org", "-ip", "203.0.113.25", "--ip", "2001:db8::25", "-selector", "s1"}

func TestDNSRecordsPassCheck(t *testing.T) {
	keyFile := filepath.Join(keyDir(t), "dkim.pem")
	args := append(slices.Clone(dnsArgs), "--dkim-key", keyFile)
	stdout, stderr, err := runDNS(t, args...)
	if err != nil {
		t.Fatalf("dns: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "created a 2048-bit RSA DKIM key in "+keyFile) {
		t.Errorf("stderr does not say the key was made:\n%s", stderr)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}

	rrs := zoneOf(t, stdout)
	var got []string
	for _, rr := range rrs {
		got = append(got, rr.Header().Name+" "+dns.TypeToString[rr.Header().Rrtype])
		if rr.Header().Ttl != 3600 || rr.Header().Class != dns.ClassINET {
			t.Errorf("record %v: want TTL 3600 class IN", rr)
		}
	}
	want := []string{
		"mail.example.org. A", "mail.example.org. AAAA", "mail.example.org. TXT",
		"example.org. MX", "example.org. TXT", "s1._domainkey.example.org. TXT", "_dmarc.example.org. TXT",
	}
	if !slices.Equal(got, want) {
		t.Errorf("zone records = %q, want %q", got, want)
	}
	for _, c := range []struct{ name, want string }{
		{"example.org", "v=spf1 mx -all"},
		{"mail.example.org", "v=spf1 a -all"},
		{"_dmarc.example.org", "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.org"},
	} {
		if txt, _ := lookupTXT(rrs)(c.name); !slices.Equal(txt, []string{c.want}) {
			t.Errorf("TXT %s = %q, want %q", c.name, txt, c.want)
		}
	}
	for _, rr := range rrs {
		if mx, ok := rr.(*dns.MX); ok && mx.Mx != "mail.example.org." {
			t.Errorf("MX = %v, want mail.example.org.", mx)
		}
	}
	for _, line := range []string{"NAME", "example.org  ", "MX", "10 mail.example.org", "_dmarc.example.org"} {
		if !strings.Contains(stdout, line) {
			t.Errorf("output has no %q:\n%s", line, stdout)
		}
	}

	// The DKIM record: split into strings of at most 255 bytes, and holding the
	// public half of the key in the file, as a verifier finds it.
	var dkimTXT *dns.TXT
	for _, rr := range rrs {
		if rr.Header().Name == "s1._domainkey.example.org." {
			dkimTXT = rr.(*dns.TXT)
		}
	}
	if len(dkimTXT.Txt) < 2 {
		t.Errorf("DKIM TXT of a 2048-bit key is %d string(s), want it split", len(dkimTXT.Txt))
	}
	for _, s := range dkimTXT.Txt {
		if len(s) > 255 {
			t.Errorf("DKIM TXT string of %d bytes, want at most 255", len(s))
		}
	}
	key := readPrivateKey(t, keyFile)
	if bits := key.(*rsa.PrivateKey).N.BitLen(); bits != 2048 {
		t.Errorf("new key has %d bits, want 2048", bits)
	}
	msg := "From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "example.org", Selector: "s1", Signer: key}); err != nil {
		t.Fatal(err)
	}
	vs, err := dkim.VerifyWithOptions(&signed, &dkim.VerifyOptions{LookupTXT: lookupTXT(rrs)})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("DKIM verification with the printed record: %v %+v", err, vs)
	}

	ptrs := ptrsOf(t, stdout)
	if len(ptrs) != 2 || ptrs[0].Header().Name != "25.113.0.203.in-addr.arpa." || ptrs[0].(*dns.PTR).Ptr != "mail.example.org." {
		t.Fatalf("PTR reminder = %v, want 25.113.0.203.in-addr.arpa. and the IPv6 one, naming mail.example.org.", ptrs)
	}

	addr := dnstest.ZoneServer(t, append(rrs, ptrs...))
	stdout, stderr, err = runDNS(t, append(args, "--check", "--dns", addr)...)
	if err != nil {
		t.Fatalf("check of the zone it printed: %v\n%s%s", err, stdout, stderr)
	}
	lines := checkLines(stdout)
	if len(lines) != 9 {
		t.Errorf("check reports %d records, want 9:\n%s", len(lines), stdout)
	}
	for rec, status := range lines {
		if status != "ok" {
			t.Errorf("check: %s %s, want ok", rec, status)
		}
	}
	if !strings.Contains(stdout, "all 9 records ok") {
		t.Errorf("check output does not end all good:\n%s", stdout)
	}

	// A second run keeps the key, and so the record.
	again, stderr, err := runDNS(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "created") {
		t.Errorf("second run made a new key: %s", stderr)
	}
	if a, b := lookupTXT(zoneOf(t, again))("s1._domainkey.example.org"); !slices.Equal(a, []string{strings.Join(dkimTXT.Txt, "")}) {
		t.Errorf("second run's DKIM record = %q, want the first one's", a)
	} else if b != nil {
		t.Fatal(b)
	}
}

func TestDNSCheckReportsMissingAndDiffering(t *testing.T) {
	dir := keyDir(t)
	args := append(slices.Clone(dnsArgs), "-dkim-key", filepath.Join(dir, "dkim.pem"))
	stdout, _, err := runDNS(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	// The zone as published: no DMARC, and the DKIM record of another key.
	other, _, err := runDNS(t, append(slices.Clone(dnsArgs), "-dkim-key", filepath.Join(dir, "other.pem"))...)
	if err != nil {
		t.Fatal(err)
	}
	var published []dns.RR
	for _, rr := range zoneOf(t, stdout) {
		switch rr.Header().Name {
		case "_dmarc.example.org.":
		case "s1._domainkey.example.org.":
			for _, o := range zoneOf(t, other) {
				if o.Header().Name == rr.Header().Name {
					published = append(published, o)
				}
			}
		default:
			published = append(published, rr)
		}
	}
	published = append(published, ptrsOf(t, stdout)...)
	addr := dnstest.ZoneServer(t, published)

	stdout, _, err = runDNS(t, append(args, "-check", "-dns", addr)...)
	if err == nil || errors.As(err, new(UsageError)) {
		t.Fatalf("check = %v, want a failure that is not a usage error", err)
	}
	if !strings.Contains(err.Error(), "2 of 9 records") {
		t.Errorf("check error = %q, want it to count 2 of 9 records", err)
	}
	var bad []string
	for rec, status := range checkLines(stdout) {
		if status != "ok" {
			bad = append(bad, status+" "+rec)
		}
	}
	slices.Sort(bad)
	want := []string{"differs s1._domainkey.example.org. TXT DKIM", "missing _dmarc.example.org. TXT DMARC"}
	if !slices.Equal(bad, want) {
		t.Errorf("check reports %q, want %q:\n%s", bad, want, stdout)
	}
	if !strings.Contains(stdout, `want: "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.org"`) {
		t.Errorf("missing DMARC line does not say what to publish:\n%s", stdout)
	}
}

// TestDNSCheckOverTCP: an answer too big for UDP is asked again over TCP.
func TestDNSCheckOverTCP(t *testing.T) {
	args := append(slices.Clone(dnsArgs), "-dkim-key", filepath.Join(keyDir(t), "dkim.pem"))
	stdout, _, err := runDNS(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	rrs := append(zoneOf(t, stdout), ptrsOf(t, stdout)...)
	for i := range 100 {
		rr, _ := dns.NewRR(fmt.Sprintf("mail.example.org. 3600 IN A 198.51.100.%d", i))
		rrs = append(rrs, rr)
	}
	stdout, _, err = runDNS(t, append(args, "-check", "-dns", dnstest.ZoneServer(t, rrs))...)
	if err != nil {
		t.Fatalf("check: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "198.51.100.99") {
		t.Errorf("the A lookup did not get the whole answer:\n%s", stdout)
	}
}

func TestDNSCheckUnreachableResolver(t *testing.T) {
	args := append(slices.Clone(dnsArgs), "-dkim-key", filepath.Join(keyDir(t), "dkim.pem"))
	if _, _, err := runDNS(t, args...); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: every query fails at once, and says so.
	stdout, _, err := runDNS(t, append(args, "-check", "-dns", "127.0.0.1:1")...)
	if err == nil {
		t.Fatal("check against no resolver succeeded")
	}
	for rec, status := range checkLines(stdout) {
		if status != "error" {
			t.Errorf("%s: %s, want error", rec, status)
		}
	}
}

func TestDNSKeyFiles(t *testing.T) {
	dir := keyDir(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pkcs8RSA, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8Ed, _ := x509.MarshalPKCS8PrivateKey(edKey)
	t.Setenv("GODEBUG", "rsa1024min=0") // Go refuses to make such a key otherwise
	short, err := rsa.GenerateKey(rand.Reader, 768)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	tests := []struct {
		name    string
		file    string
		want    string // the DKIM record; empty: an error
		wantErr string
	}{
		{"PKCS#1 RSA", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPub), ""},
		{"PKCS#8 RSA", pemOf("PRIVATE KEY", pkcs8RSA), "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPub), ""},
		{"PKCS#8 Ed25519 after a certificate", pemOf("CERTIFICATE", []byte("x")) + pemOf("PRIVATE KEY", pkcs8Ed), "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub), ""},
		{"short RSA", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(short)), "", "1024 bits"},
		{"EC", pemOf("EC PRIVATE KEY", []byte("x")), "", "RSA or Ed25519"},
		{"not PEM", "hello", "", "no PEM private key"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("key%d.pem", i))
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, err := runDNS(t, append(slices.Clone(dnsArgs), "-dkim-key", path)...)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("dns with %s key = %v, want an error saying %q", tt.name, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("dns with %s key: %v\n%s", tt.name, err, stderr)
			}
			if got, _ := lookupTXT(zoneOf(t, stdout))("s1._domainkey.example.org"); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("DKIM record = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("check does not make a key", func(t *testing.T) {
		path := filepath.Join(dir, "none.pem")
		_, _, err := runDNS(t, append(slices.Clone(dnsArgs), "-dkim-key", path, "-check", "-dns", "127.0.0.1:1")...)
		if err == nil || !strings.Contains(err.Error(), "without -check creates it") {
			t.Errorf("check without a key = %v, want an error that says how to make one", err)
		}
		if _, err := os.Stat(path); err == nil {
			t.Error("check made a key")
		}
	})
}

// TestDNSKeyPlace: a new DKIM key goes to the user's configuration directory, made
// 0700, as a 0600 file, and never into a directory others may read or write.
func TestDNSKeyPlace(t *testing.T) {
	t.Setenv("MAYFLY_DKIM_KEY", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "config"))
	t.Setenv("HOME", keyDir(t))
	cwd, _ := os.Getwd()
	_, stderr, err := runDNS(t, dnsArgs...)
	if err != nil {
		t.Fatalf("dns without -dkim-key: %v\n%s", err, stderr)
	}
	want := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "mayfly", "dkim-s1.pem")
	if !strings.Contains(stderr, "created a 2048-bit RSA DKIM key in "+want) {
		t.Errorf("stderr does not say the key went to %s:\n%s", want, stderr)
	}
	for path, mode := range map[string]os.FileMode{want: 0o600, filepath.Dir(want): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), mode)
		}
	}
	if _, err := os.Stat(filepath.Join(cwd, "dkim.pem")); err == nil {
		t.Error("a dkim.pem appeared in the current directory")
	}

	for _, mode := range []os.FileMode{0o777, 0o755, 0o770} {
		dir := t.TempDir()
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "dkim.pem")
		_, _, err := runDNS(t, append(slices.Clone(dnsArgs), "-dkim-key", path)...)
		if err == nil || !strings.Contains(err.Error(), "-dkim-key") || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("key into a %04o directory = %v, want a refusal naming -dkim-key", mode, err)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("a key was written into a %04o directory", mode)
		}
	}
}

func TestDNSUsage(t *testing.T) {
	key := filepath.Join(keyDir(t), "dkim.pem")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no domain", []string{"-ip", "203.0.113.25"}, "-domain is required"},
		{"no ip", []string{"-domain", "example.org"}, "-ip is required"},
		{"bad ip", []string{"-domain", "example.org", "-ip", "203.0.113.256"}, `-ip "203.0.113.256"`},
		{"unspecified ip", []string{"-domain", "example.org", "-ip", "0.0.0.0"}, `-ip "0.0.0.0"`},
		{"bad domain", []string{"-domain", "exa mple.org", "-ip", "203.0.113.25"}, "-domain"},
		{"unicode domain", []string{"-domain", "bücher.example", "-ip", "203.0.113.25"}, "xn--"},
		{"bad host", []string{"-domain", "example.org", "-ip", "203.0.113.25", "-host", "a..b"}, "-host"},
		{"rua without scheme", []string{"-domain", "example.org", "-ip", "203.0.113.25", "-rua", "dmarc@example.org"}, "-rua"},
		{"bad dns", []string{"-domain", "example.org", "-ip", "203.0.113.25", "-dns", "a b"}, "-dns"},
		{"argument", []string{"-domain", "example.org", "-ip", "203.0.113.25", "extra"}, "unexpected argument"},
		{"unknown flag", []string{"-domains", "example.org"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runDNS(t, append(tt.args, "-dkim-key", key)...)
			if !errors.As(err, new(UsageError)) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("dns %q = %v, want a usage error saying %q", tt.args, err, tt.want)
			}
		})
	}
	if _, err := os.Stat(key); err == nil {
		t.Error("bad usage made a key")
	}
	_, stderr, err := runDNS(t, "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "-check") {
		t.Errorf("dns -h = %v with %q, want flag.ErrHelp and the flags", err, stderr)
	}
}

func TestDNSOptions(t *testing.T) {
	key := filepath.Join(keyDir(t), "dkim.pem")
	stdout, _, err := runDNS(t, "-domain", "Example.org.,example.net", "-ip", "203.0.113.25", "-host", "example.org", "-rua", "", "-dns", "192.0.2.53", "-dkim-key", key)
	if err != nil {
		t.Fatal(err)
	}
	rrs := zoneOf(t, stdout)
	for _, c := range []struct{ name, want string }{
		{"example.org", "v=spf1 mx -all"}, // the host is the domain: one SPF record there
		{"example.net", "v=spf1 mx -all"},
		{"_dmarc.example.net", "v=DMARC1; p=quarantine"},
	} {
		if txt, _ := lookupTXT(rrs)(c.name); !slices.Equal(txt, []string{c.want}) {
			t.Errorf("TXT %s = %q, want %q", c.name, txt, c.want)
		}
	}
	var mx []string
	for _, rr := range rrs {
		if m, ok := rr.(*dns.MX); ok {
			mx = append(mx, m.Hdr.Name+" "+m.Mx)
		}
	}
	if want := []string{"example.org. example.org.", "example.net. example.org."}; !slices.Equal(mx, want) {
		t.Errorf("MX = %q, want %q", mx, want)
	}

	o, err := parseDNSFlags([]string{"-domain", "example.org", "-ip", "::ffff:203.0.113.25", "-dns", "::1"}, func(k string) (string, bool) {
		return map[string]string{"MAYFLY_DKIM_SELECTOR": "env-sel", "MAYFLY_DKIM_KEY": "/keys/d.pem"}[k], k != "MAYFLY_DNS"
	}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.selector != "env-sel" || o.keyFile != "/keys/d.pem" || o.server != "[::1]:53" || o.ips[0].String() != "203.0.113.25" || o.host != "mail.example.org" {
		t.Errorf("parseDNSFlags = %+v, want the selector and key from the environment, [::1]:53, an IPv4 address and mail.example.org", o)
	}
}

func TestDNSJudges(t *testing.T) {
	mx := func(pref uint16, host string) dns.RR {
		return &dns.MX{Hdr: dns.RR_Header{Name: "example.org.", Rrtype: dns.TypeMX, Class: dns.ClassINET}, Preference: pref, Mx: host}
	}
	want := &dns.MX{Preference: 10, Mx: "mail.example.org."}
	key := dkimkey.Public{Algo: "rsa", Key: []byte("key")}
	p := base64.StdEncoding.EncodeToString(key.Key)
	tests := []struct {
		name string
		got  verdict
		want string
	}{
		{"MX alone", judgeMX([]dns.RR{mx(10, "mail.example.org.")}, want), "ok"},
		{"MX other preference", judgeMX([]dns.RR{mx(20, "MAIL.example.org.")}, want), "ok"},
		{"MX with a backup", judgeMX([]dns.RR{mx(10, "mail.example.org."), mx(20, "backup.example.net.")}, want), "ok"},
		{"MX another host first", judgeMX([]dns.RR{mx(5, "old.example.net."), mx(10, "mail.example.org.")}, want), "differs"},
		{"MX null", judgeMX([]dns.RR{mx(0, ".")}, want), "differs"},
		{"SPF equal", judgeSPF([]string{"google-site-verification=x", "V=SPF1  MX -ALL"}, "v=spf1 mx -all"), "ok"},
		{"SPF none", judgeSPF([]string{"v=spf10"}, "v=spf1 mx -all"), "missing"},
		{"SPF other", judgeSPF([]string{"v=spf1 ip4:192.0.2.1 -all"}, "v=spf1 mx -all"), "differs"},
		{"SPF two", judgeSPF([]string{"v=spf1 mx -all", "v=spf1 -all"}, "v=spf1 mx -all"), "differs"},
		{"DKIM same", judgeDKIM([]string{"v=DKIM1; k=rsa; p=" + p}, key), "ok"},
		{"DKIM spaces and no k", judgeDKIM([]string{"p = " + p[:2] + " " + p[2:]}, key), "ok"},
		{"DKIM revoked", judgeDKIM([]string{"v=DKIM1; p="}, key), "differs"},
		{"DKIM other algorithm", judgeDKIM([]string{"k=ed25519; p=" + p}, key), "differs"},
		{"DKIM two", judgeDKIM([]string{"p=" + p, "p=" + p}, key), "differs"},
		{"DKIM garbage", judgeDKIM([]string{"p=!!"}, key), "differs"},
		{"DMARC equal", judgeDMARC([]string{"v=DMARC1; p=quarantine"}, "v=DMARC1; p=quarantine"), "ok"},
		{"DMARC reject", judgeDMARC([]string{"v=DMARC1; p=reject; rua=mailto:x@example.org"}, "v=DMARC1; p=quarantine"), "ok"},
		{"DMARC no policy", judgeDMARC([]string{"v=DMARC1; rua=mailto:x@example.org"}, "v=DMARC1; p=quarantine"), "differs"},
		{"DMARC two", judgeDMARC([]string{"v=DMARC1; p=none", "v=DMARC1; p=reject"}, "v=DMARC1; p=quarantine"), "differs"},
		{"DMARC other TXT", judgeDMARC([]string{"hello"}, "v=DMARC1; p=quarantine"), "missing"},
	}
	for _, tt := range tests {
		if tt.got.status != tt.want {
			t.Errorf("%s: %+v, want %s", tt.name, tt.got, tt.want)
		}
	}
}

// TestQuoteTXT: a string written by quoteTXT reads back, and miekg/dns writes it the same.
func TestQuoteTXT(t *testing.T) {
	in := "a \"quoted\" \\ back\x01slash; é"
	rr, err := dns.NewRR("x.example. 3600 IN TXT " + quoteTXT(in))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rr.String(), "x.example.\t3600\tIN\tTXT\t"+quoteTXT(in); got != want {
		t.Errorf("quoteTXT(%q) reads back as %q, want %q", in, got, want)
	}
}
