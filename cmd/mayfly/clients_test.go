package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// The client compatibility tests drive mail clients nobody here wrote against a
// `mayfly serve` on default settings, with a certificate from a private CA the
// clients are told to trust, as an operator with their own CA would run it.
// make test installs the clients (.ci/with-services: Debian packages and npm ci in
// testdata/clients) and sets MAYFLY_REQUIRE_CLIENTS=1, so a missing one fails there.

// fullInbox is as many messages as an inbox holds on defaults (-max-messages).
const fullInbox = 200

// needClient skips the test when the program is missing, or fails it under make test.
func needClient(t *testing.T, program string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		missingClient(t, program+" not installed")
	}
	return path
}

// needNodeModule is needClient for a package of testdata/clients.
func needNodeModule(t *testing.T, module string) {
	t.Helper()
	needClient(t, "node")
	if _, err := os.Stat(filepath.Join("testdata", "clients", "node_modules", module, "package.json")); err != nil {
		missingClient(t, module+" not installed (npm ci --prefix cmd/mayfly/testdata/clients)")
	}
}

// phpMailerScript sends with PHPMailer from Debian's libphp-phpmailer.
var phpMailerScript = filepath.Join("testdata", "clients", "phpmailer.php")

// needPHPMailer is needClient for php with Debian's PHPMailer, and returns php.
func needPHPMailer(t *testing.T) string {
	t.Helper()
	php := needClient(t, "php")
	if _, err := os.Stat("/usr/share/php/libphp-phpmailer/autoload.php"); err != nil {
		missingClient(t, "PHPMailer not installed (Debian package libphp-phpmailer)")
	}
	return php
}

// jakartaMail runs testdata/clients/JakartaMail.java with Debian's Jakarta Mail, trusting
// the CA of trustStore (from javaTrustStore) when not empty.
func jakartaMail(t *testing.T, trustStore string, args ...string) string {
	t.Helper()
	java := needClient(t, "java")
	classpath := []string{"/usr/share/java/jakarta-mail.jar", "/usr/share/java/jakarta-activation.jar"}
	for _, jar := range classpath {
		if _, err := os.Stat(jar); err != nil {
			missingClient(t, "Jakarta Mail not installed (Debian package libjakarta-mail-java)")
		}
	}
	var opts []string
	if trustStore != "" {
		opts = []string{"-Djavax.net.ssl.trustStore=" + trustStore, "-Djavax.net.ssl.trustStorePassword=changeit"}
	}
	opts = append(opts, "-cp", strings.Join(classpath, ":"), filepath.Join("testdata", "clients", "JakartaMail.java"))
	return runClient(t, []string{"HOME=" + t.TempDir()}, "", java, append(opts, args...)...)
}

// javaTrustStore puts the CA in a PKCS #12 trust store, as one tells Java of a private CA.
func javaTrustStore(t *testing.T, caFile string) string {
	t.Helper()
	keytool := needClient(t, "keytool")
	store := filepath.Join(t.TempDir(), "ca.p12")
	runClient(t, nil, "", keytool, "-importcert", "-noprompt", "-alias", "mayfly-test-ca", "-file", caFile, "-keystore", store, "-storetype", "PKCS12", "-storepass", "changeit")
	return store
}

func missingClient(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("MAYFLY_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("%s, and MAYFLY_REQUIRE_CLIENTS=1", why)
	}
	t.Skipf("%s; make test installs it (MAYFLY_REQUIRE_CLIENTS=1 makes this a failure)", why)
}

// runClient runs a client with a deadline, so a client that hangs on the server fails
// the test instead of stalling it, and returns its output.
func runClient(t *testing.T, env []string, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writePrivateCA makes a CA and a server certificate it signs for localhost and
// 127.0.0.1, and returns the paths of the CA certificate, server certificate and key.
func writePrivateCA(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	// issue makes a key and a certificate of tmpl for it, valid from an hour ago for a
	// day, signed by parentKey as parent, or by itself when parent is nil.
	issue := func(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return key, der
	}
	caKey, caDER := issue(&x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Mayfly test CA"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, nil)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, der := issue(&x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// port is the port of a loopback address.
func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeConfig writes a client's configuration, readable by its owner only, as
// fetchmail and msmtp demand of a file holding a password.
func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// subjectsIn counts the distinct fill subjects in a client's output.
func subjectsIn(text string) int {
	seen := map[string]bool{}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "Subject:"))
		if strings.HasPrefix(line, "Message ") && strings.HasSuffix(line, fmt.Sprintf(" of %d", fullInbox)) {
			seen[line] = true
		}
	}
	return len(seen)
}

// maildirSubjects counts the distinct fill subjects in a Maildir folder.
func maildirSubjects(t *testing.T, folder string) int {
	t.Helper()
	var all strings.Builder
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(folder, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			all.Write(b)
			all.WriteString("\n")
		}
	}
	return subjectsIn(all.String())
}

// TestClients fills an inbox to its limit and has each client read all of it, reply
// through submission, and send to port 25. The inbox is filled through a second node on
// the same Redis with no per-inbox receive rate, since the server under test, on
// defaults, takes 120 a minute for one inbox; the clients talk only to the server
// under test.
func TestClients(t *testing.T) {
	// The inbox is filled through a second node on one Redis. A database of its own:
	// the outgoing queue is one stream per database, and a job another test's node left
	// there would reach this test's relay, or this test's reply another node.
	u, err := url.Parse(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/13"
	redis := []string{"-redis-url", u.String()}
	caFile, certFile, keyFile := writePrivateCA(t)
	// sender.test passes SPF for loopback, so alice is a proved correspondent to reply to.
	dnsAddr := dnstest.TXTServer(t, map[string]string{"sender.test.": "v=spf1 ip4:127.0.0.0/8 -all"})
	sink := newRelaySink(t)
	// Beyond the listeners' ports, the certificate and where DNS and mail go out (this
	// machine only), the defaults.
	// The one listener added to the defaults, IMAP over implicit TLS, for offlineimap3.
	imaps := testlib.FreePort(t)
	n := startNode(t, append([]string{"-tls-cert", certFile, "-tls-key", keyFile, "-imaps-addr", imaps, "-relay", "smtp://" + sink.addr, "-dns", dnsAddr}, redis...)...)
	// The filler takes jobs from the same queue, so it sends them to the same relay.
	filler := startNode(t, append([]string{"-receive-rate", "off", "-relay", "smtp://" + sink.addr, "-dns", dnsAddr}, redis...)...)
	in := createInbox(t, n.http, "")

	c, err := smtp.Dial(filler.smtp)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= fullInbox; i++ {
		msg := fmt.Sprintf("From: Alice <alice@sender.test>\r\nTo: %s\r\nSubject: Message %d of %d\r\nMessage-ID: <m%d@sender.test>\r\n\r\nBody of message %d.\r\n", in.Address, i, fullInbox, i, i)
		if err := c.SendMail("alice@sender.test", []string{in.Address}, strings.NewReader(msg)); err != nil {
			t.Fatalf("filling message %d: %v", i, err)
		}
	}
	c.Close()
	home := t.TempDir()
	env := []string{"HOME=" + home}

	t.Run("mbsync", func(t *testing.T) {
		mbsync := needClient(t, "mbsync")
		maildir := t.TempDir()
		rc := writeConfig(t, "mbsyncrc", fmt.Sprintf(`IMAPAccount mayfly
Host localhost
Port %s
User %s
Pass %s
SSLType STARTTLS
CertificateFile %s

IMAPStore mayfly-remote
Account mayfly

MaildirStore mayfly-local
Path %s/
Inbox %s/INBOX

Channel mayfly
Far :mayfly-remote:
Near :mayfly-local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
`, port(t, n.imap), in.Address, in.Token, caFile, maildir, maildir))
		runClient(t, env, "", mbsync, "-c", rc, "-a")
		var all strings.Builder
		files := 0
		for _, sub := range []string{"new", "cur"} {
			entries, err := os.ReadDir(filepath.Join(maildir, "INBOX", sub))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(maildir, "INBOX", sub, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				all.Write(b)
				all.WriteString("\n")
				files++
			}
		}
		if got := subjectsIn(all.String()); files != fullInbox || got != fullInbox {
			t.Errorf("mbsync synced %d files with %d distinct messages, want %d", files, got, fullInbox)
		}
	})

	// Over IMAPS: offlineimap3 8.0.0's STARTTLS checks no certificate, and imaplib2 3.05
	// now and then loses its first command after the handshake, writing to the TLS
	// connection from one thread while reading the session ticket on another
	// (docs/clients.md).
	t.Run("offlineimap3", func(t *testing.T) {
		offlineimap := needClient(t, "offlineimap")
		dir := t.TempDir()
		rc := writeConfig(t, "offlineimaprc", fmt.Sprintf(`[general]
accounts = mayfly
metadata = %s/meta

[Account mayfly]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = %s/mail

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = %s
remoteuser = %s
remotepass = %s
ssl = yes
sslcacertfile = %s
folderfilter = lambda folder: folder == 'INBOX'
readonly = True
`, dir, dir, port(t, imaps), in.Address, in.Token, caFile))
		runClient(t, env, "", offlineimap, "-c", rc, "-o", "-u", "basic")
		if got := maildirSubjects(t, filepath.Join(dir, "mail", "INBOX")); got != fullInbox {
			t.Errorf("offlineimap3 synced %d distinct messages, want %d", got, fullInbox)
		}
	})

	for _, proto := range []struct{ name, addr string }{{"POP3", n.pop3}, {"IMAP", n.imap}} {
		t.Run("fetchmail-"+proto.name, func(t *testing.T) {
			fetchmail := needClient(t, "fetchmail")
			mbox := filepath.Join(t.TempDir(), "mbox")
			// STARTTLS (STLS) is required by sslproto; keep leaves the inbox for the
			// clients after it.
			rc := writeConfig(t, "fetchmailrc", fmt.Sprintf(`set no bouncemail
poll localhost service %s protocol %s auth password
  user "%s" password "%s"
  sslproto TLS1.2+ sslcertck sslcertfile "%s"
  fetchall keep
  mda "cat >> %s"
`, port(t, proto.addr), proto.name, in.Address, in.Token, caFile, mbox))
			fetchmailHome := t.TempDir()
			runClient(t, []string{"HOME=" + fetchmailHome, "FETCHMAILHOME=" + fetchmailHome}, "", fetchmail, "-f", rc, "--nodetach", "--nosyslog")
			b, err := os.ReadFile(mbox)
			if err != nil {
				t.Fatal(err)
			}
			if got := subjectsIn(string(b)); got != fullInbox {
				t.Errorf("fetchmail over %s delivered %d distinct messages, want %d", proto.name, got, fullInbox)
			}
		})
	}

	t.Run("imapflow", func(t *testing.T) {
		needNodeModule(t, "imapflow")
		out := runClient(t, append(env, "NODE_EXTRA_CA_CERTS="+caFile), "", "node", filepath.Join("testdata", "clients", "imapflow.mjs"), "localhost", port(t, n.imap), in.Address, in.Token)
		if !strings.Contains(out, fmt.Sprintf("fetched %d\n", fullInbox)) || subjectsIn(out) != fullInbox {
			t.Errorf("imapflow fetched %d distinct messages, want %d:\n%.500s", subjectsIn(out), fullInbox, out)
		}
	})

	// mutt and neomutt have no batch mode for reading: each runs in a terminal (script(1)
	// gives it one) with keys pushed that tag every message, copy them to an mbox and quit.
	for _, program := range []string{"mutt", "neomutt"} {
		t.Run(program, func(t *testing.T) {
			path := needClient(t, program)
			needClient(t, "script")
			dir := t.TempDir()
			mbox := filepath.Join(dir, "mbox")
			rc := writeConfig(t, "muttrc", muttrc(n.imap, n.submission, in.Address, in.Token, caFile))
			keys := fmt.Sprintf("<tag-pattern>~A<enter><tag-prefix><copy-message>%s<enter><quit>", mbox)
			runClient(t, append(env, "TERM=vt100"), "", "script", "-q", "-e", "-c",
				shellQuote(path, "-n", "-F", rc, "-f", "imap://localhost:"+port(t, n.imap)+"/INBOX", "-e", "push '"+keys+"'"), "/dev/null")
			b, err := os.ReadFile(mbox)
			if err != nil {
				t.Fatal(err)
			}
			if got := subjectsIn(string(b)); got != fullInbox {
				t.Errorf("%s copied %d distinct messages, want %d", program, got, fullInbox)
			}
		})
	}

	t.Run("jakarta-mail", func(t *testing.T) {
		out := jakartaMail(t, javaTrustStore(t, caFile), "read", "localhost", port(t, n.imap), in.Address, in.Token)
		if !strings.Contains(out, fmt.Sprintf("fetched %d\n", fullInbox)) || subjectsIn(out) != fullInbox {
			t.Errorf("Jakarta Mail read %d distinct messages, want %d:\n%.500s", subjectsIn(out), fullInbox, out)
		}
	})

	// The replies come after the readers: a sent copy is one more message in the inbox.
	t.Run("python", func(t *testing.T) {
		python := needClient(t, "python3")
		out := runClient(t, env, "", python, filepath.Join("testdata", "clients", "python_clients.py"), "localhost", port(t, n.imap), port(t, n.pop3), port(t, n.submission), in.Address, in.Token, caFile, "alice@sender.test")
		imap, pop3, _ := strings.Cut(out, "--- POP3")
		if subjectsIn(imap) != fullInbox || subjectsIn(pop3) != fullInbox {
			t.Errorf("Python read %d distinct messages over IMAP and %d over POP3, want %d each:\n%.500s", subjectsIn(imap), subjectsIn(pop3), fullInbox, out)
		}
		m := sink.next(t)
		if m.from != in.Address || len(m.to) != 1 || m.to[0] != "alice@sender.test" || !strings.Contains(m.data, "Replied with Python smtplib.") {
			t.Errorf("relayed from %q to %q:\n%s\nwant smtplib's reply from %s to alice@sender.test", m.from, m.to, m.data, in.Address)
		}
	})

	t.Run("msmtp", func(t *testing.T) {
		msmtp := needClient(t, "msmtp")
		rc := writeConfig(t, "msmtprc", fmt.Sprintf(`defaults
tls on
tls_starttls on
tls_trust_file %s
logfile -

account mayfly
host localhost
port %s
auth plain
user %s
password %s
from %s

account default : mayfly
`, caFile, port(t, n.submission), in.Address, in.Token, in.Address))
		reply := fmt.Sprintf("From: %s\r\nTo: alice@sender.test\r\nSubject: Re: Message 1 of %d\r\nIn-Reply-To: <m1@sender.test>\r\n\r\nReplied with msmtp.\r\n", in.Address, fullInbox)
		runClient(t, env, reply, msmtp, "-C", rc, "alice@sender.test")
		m := sink.next(t)
		if m.from != in.Address || len(m.to) != 1 || m.to[0] != "alice@sender.test" || !strings.Contains(m.data, "Replied with msmtp.") {
			t.Errorf("relayed from %q to %q:\n%s\nwant msmtp's reply from %s to alice@sender.test", m.from, m.to, m.data, in.Address)
		}
	})

	// Sending in batch mode: the body on standard input, no terminal.
	for _, program := range []string{"mutt", "neomutt"} {
		t.Run(program+"-reply", func(t *testing.T) {
			path := needClient(t, program)
			rc := writeConfig(t, "muttrc", muttrc(n.imap, n.submission, in.Address, in.Token, caFile))
			body := "Replied with " + program + ".\n"
			runClient(t, env, body, path, "-n", "-F", rc, "-s", "Re: Message 3 of 200", "-e", "my_hdr In-Reply-To: <m3@sender.test>", "alice@sender.test")
			m := sink.next(t)
			if m.from != in.Address || len(m.to) != 1 || m.to[0] != "alice@sender.test" || !strings.Contains(m.data, "Replied with "+program+".") || !strings.Contains(m.data, "In-Reply-To: <m3@sender.test>") {
				t.Errorf("relayed from %q to %q:\n%s\nwant %s's reply from %s to alice@sender.test", m.from, m.to, m.data, program, in.Address)
			}
		})
	}

	// PHPMailer's defaults upgrade to STARTTLS when offered and verify: the private CA is
	// trusted the PHP way, openssl.cafile, and nothing set in the script.
	t.Run("phpmailer", func(t *testing.T) {
		php := needPHPMailer(t)
		other := createInbox(t, n.http, "")
		runClient(t, env, "", php, "-d", "openssl.cafile="+caFile, phpMailerScript, "localhost", port(t, n.smtp), "app@sender.test", other.Address, "From PHPMailer")
		var list struct{ Messages []struct{ Subject string } }
		getJSON(t, n.http, "/api/v1/inboxes/"+other.Address+"/messages", other.Token, &list)
		if len(list.Messages) != 1 || list.Messages[0].Subject != "From PHPMailer" {
			t.Errorf("inbox after PHPMailer sent: %+v, want its mail", list.Messages)
		}
	})

	t.Run("phpmailer-reply", func(t *testing.T) {
		php := needPHPMailer(t)
		runClient(t, env, "", php, "-d", "openssl.cafile="+caFile, phpMailerScript, "localhost", port(t, n.submission), in.Address, "alice@sender.test", "Re: Message 4 of 200", in.Address, in.Token, "<m4@sender.test>")
		m := sink.next(t)
		if m.from != in.Address || len(m.to) != 1 || m.to[0] != "alice@sender.test" || !strings.Contains(m.data, "Sent by PHPMailer") || !strings.Contains(m.data, "In-Reply-To: <m4@sender.test>") {
			t.Errorf("relayed from %q to %q:\n%s\nwant PHPMailer's reply from %s to alice@sender.test", m.from, m.to, m.data, in.Address)
		}
	})

	t.Run("jakarta-mail-reply", func(t *testing.T) {
		jakartaMail(t, javaTrustStore(t, caFile), "reply", "localhost", port(t, n.submission), in.Address, in.Token, "alice@sender.test", "Re: Message 5 of 200", "<m5@sender.test>")
		m := sink.next(t)
		if m.from != in.Address || len(m.to) != 1 || m.to[0] != "alice@sender.test" || !strings.Contains(m.data, "Sent by Jakarta Mail") || !strings.Contains(m.data, "In-Reply-To: <m5@sender.test>") {
			t.Errorf("relayed from %q to %q:\n%s\nwant Jakarta Mail's reply from %s to alice@sender.test", m.from, m.to, m.data, in.Address)
		}
	})

	// Jakarta Mail's default SMTP settings stay in plain text even when STARTTLS is offered.
	t.Run("jakarta-mail-send", func(t *testing.T) {
		other := createInbox(t, n.http, "")
		jakartaMail(t, "", "send", "localhost", port(t, n.smtp), "app@sender.test", other.Address, "From Jakarta Mail")
		var list struct{ Messages []struct{ Subject string } }
		getJSON(t, n.http, "/api/v1/inboxes/"+other.Address+"/messages", other.Token, &list)
		if len(list.Messages) != 1 || list.Messages[0].Subject != "From Jakarta Mail" {
			t.Errorf("inbox after Jakarta Mail sent: %+v, want its mail", list.Messages)
		}
	})

	t.Run("nodemailer", func(t *testing.T) {
		needNodeModule(t, "nodemailer")
		other := createInbox(t, n.http, "")
		// nodemailer upgrades to STARTTLS when offered and checks the certificate; the
		// CA is trusted the way a Node.js app is told of one.
		runClient(t, append(env, "NODE_EXTRA_CA_CERTS="+caFile), "", "node", filepath.Join("testdata", "clients", "nodemailer.mjs"), "localhost", port(t, n.smtp), "app@sender.test", other.Address, "From nodemailer")
		var list struct{ Messages []struct{ Subject string } }
		getJSON(t, n.http, "/api/v1/inboxes/"+other.Address+"/messages", other.Token, &list)
		if len(list.Messages) != 1 || list.Messages[0].Subject != "From nodemailer" {
			t.Errorf("inbox after nodemailer sent: %+v, want its mail", list.Messages)
		}
	})
}

// TestClientNodemailerSelfSigned is the application under test against a plain
// `mayfly serve`: no certificate configured, nodemailer on its defaults, trusting
// nothing extra. Port 25 must not offer STARTTLS with the self-signed certificate,
// which nodemailer would take and then refuse (ESOCKET self-signed certificate).
func TestClientNodemailerSelfSigned(t *testing.T) {
	needNodeModule(t, "nodemailer")
	n := startNode(t)
	in := createInbox(t, n.http, "")
	runClient(t, []string{"HOME=" + t.TempDir()}, "", "node", filepath.Join("testdata", "clients", "nodemailer.mjs"), "127.0.0.1", port(t, n.smtp), "app@sender.test", in.Address, "From nodemailer")
	var list struct{ Messages []struct{ Subject string } }
	getJSON(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages", in.Token, &list)
	if len(list.Messages) != 1 || list.Messages[0].Subject != "From nodemailer" {
		t.Errorf("inbox after nodemailer sent: %+v, want its mail", list.Messages)
	}
}

// muttrc is a mutt (and neomutt) configuration reading the inbox over IMAP and sending
// through submission, both with STARTTLS required and the certificate verified against
// the CA file, and nothing asked on the way: no header cache, no confirmations, no copy
// of sent mail kept.
func muttrc(imapAddr, submissionAddr, user, pass, caFile string) string {
	_, imapPort, _ := net.SplitHostPort(imapAddr)
	_, subPort, _ := net.SplitHostPort(submissionAddr)
	return fmt.Sprintf(`set imap_user = "%s"
set imap_pass = "%s"
set folder = "imap://localhost:%s/"
set spoolfile = "+INBOX"
set smtp_url = "smtp://%s@localhost:%s/"
set smtp_pass = "%s"
set from = "%s"
set ssl_starttls = yes
set ssl_force_tls = yes
set ssl_ca_certificates_file = "%s"
set header_cache = ""
set record = ""
set copy = no
set confirmappend = no
set confirmcreate = no
set delete = no
set move = no
set quit = yes
set mark_old = no
set sort = mailbox-order
`, user, pass, imapPort, url.QueryEscape(user), subPort, pass, user, caFile)
}

// shellQuote makes one sh command line of words, for script -c.
func shellQuote(words ...string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

// TestClientPHPMailerSelfSigned is TestClientNodemailerSelfSigned for PHPMailer on its
// defaults (SMTPAutoTLS: STARTTLS taken whenever offered, the certificate verified).
func TestClientPHPMailerSelfSigned(t *testing.T) {
	php := needPHPMailer(t)
	n := startNode(t)
	in := createInbox(t, n.http, "")
	runClient(t, []string{"HOME=" + t.TempDir()}, "", php, phpMailerScript, "127.0.0.1", port(t, n.smtp), "app@sender.test", in.Address, "From PHPMailer")
	var list struct{ Messages []struct{ Subject string } }
	getJSON(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages", in.Token, &list)
	if len(list.Messages) != 1 || list.Messages[0].Subject != "From PHPMailer" {
		t.Errorf("inbox after PHPMailer sent: %+v, want its mail", list.Messages)
	}
}

// TestClientJakartaMailSelfSigned is TestClientNodemailerSelfSigned for Jakarta Mail: on
// its default SMTP settings, which never take STARTTLS, and with
// mail.smtp.starttls.enable=true, which takes it when offered and verifies.
func TestClientJakartaMailSelfSigned(t *testing.T) {
	n := startNode(t)
	for _, mode := range []string{"defaults", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			in := createInbox(t, n.http, "")
			jakartaMail(t, "", "send", "127.0.0.1", port(t, n.smtp), "app@sender.test", in.Address, "From Jakarta Mail", mode)
			var list struct{ Messages []struct{ Subject string } }
			getJSON(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages", in.Token, &list)
			if len(list.Messages) != 1 || list.Messages[0].Subject != "From Jakarta Mail" {
				t.Errorf("inbox after Jakarta Mail sent: %+v, want its mail", list.Messages)
			}
		})
	}
}
