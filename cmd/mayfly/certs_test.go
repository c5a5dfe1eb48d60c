package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/certs"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// writeCertificate writes a self-signed pair for name to certFile and keyFile.
func writeCertificate(t *testing.T, name, certFile, keyFile string) {
	t.Helper()
	cert, err := certs.SelfSigned(name)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	// Written aside and renamed, as a renewal tool does, so a reload never sees half a file.
	for file, data := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
	} {
		if err := os.WriteFile(file+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
}

// pop3Certificate opens a POP3 session, upgrades it with STLS and returns the name in
// the certificate the server showed.
func pop3Certificate(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("greeting %q %v", line, err)
	}
	conn.Write([]byte("STLS\r\n"))
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("STLS: %q %v", line, err)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) // the name is what is checked
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return tc.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// smtpCertificate does the same over SMTP with STARTTLS: go-guerrilla's listener,
// which loads certificates from files of its own.
func smtpCertificate(t *testing.T, addr string) string {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	state, _ := c.TLSConnectionState()
	return state.PeerCertificates[0].Subject.CommonName
}

// waitCertificate polls new POP3 sessions until the server shows want's certificate.
func waitCertificate(t *testing.T, addr, want string) {
	t.Helper()
	waitShown(t, func() string { return pop3Certificate(t, addr) }, want)
}

// waitShown polls shown until it returns want.
func waitShown(t *testing.T, shown func() string, want string) {
	t.Helper()
	// The SMTP listener looks for a new certificate every 5s.
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := shown()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still shows %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond) // polling the server, with a deadline
	}
}

func TestCertificateReloadsWhenFilesChange(t *testing.T) {
	old := certPoll
	certPoll = 20 * time.Millisecond
	t.Cleanup(func() { certPoll = old })
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertificate(t, "first.serve.test", certFile, keyFile)
	n := startNode(t, "-tls-cert", certFile, "-tls-key", keyFile)
	if got, smtpGot := pop3Certificate(t, n.pop3), smtpCertificate(t, n.smtp); got != "first.serve.test" || smtpGot != "first.serve.test" {
		t.Fatalf("certificate at start: %q over POP3, %q over SMTP", got, smtpGot)
	}
	// A broken pair (a renewal half done) keeps the one in service.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(n.log.String(), "tls certificate not reloaded") {
		if time.Now().After(deadline) {
			t.Fatal("a broken key file was not noticed")
		}
		time.Sleep(10 * time.Millisecond) // polling the log, with a deadline
	}
	if got := pop3Certificate(t, n.pop3); got != "first.serve.test" {
		t.Fatalf("after a broken renewal the server shows %q", got)
	}
	writeCertificate(t, "second.serve.test", certFile, keyFile)
	waitCertificate(t, n.pop3, "second.serve.test")
	waitShown(t, func() string { return smtpCertificate(t, n.smtp) }, "second.serve.test")
}

func TestCertificateReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertificate(t, "first.serve.test", certFile, keyFile)
	pop3 := testlib.FreePort(t)
	p := startProcess(t, "-pop3-addr", pop3, "-tls-cert", certFile, "-tls-key", keyFile)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.log.String(), "proto=pop3 addr="+pop3); {
		if time.Now().After(deadline) {
			t.Fatalf("POP3 not listening within 10s:\n%s", p.log.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the log, with a deadline
	}
	waitCertificate(t, pop3, "first.serve.test")
	writeCertificate(t, "second.serve.test", certFile, keyFile)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitCertificate(t, pop3, "second.serve.test")
	// The file check runs every 30s; the log says it was the signal. The line is written
	// just after the new certificate is in service, and reaches us through a pipe.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.log.String(), `why=SIGHUP`); {
		if time.Now().After(deadline) {
			t.Fatalf("no reload on SIGHUP in the log:\n%s", p.log.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the log, with a deadline
	}
}

// TestSIGHUPWithoutFiles: SIGHUP to a process with nothing to reload (a self-signed
// certificate) is logged, not fatal, as `systemctl reload` may send it to any node.
func TestSIGHUPWithoutFiles(t *testing.T) {
	p := startProcess(t)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.log.String(), "no files to reload"); {
		if time.Now().After(deadline) {
			t.Fatalf("no word of SIGHUP in the log within 10s:\n%s", p.log.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the log, with a deadline
	}
	p.stop(t) // and it must still be there to exit 0 on SIGTERM
}
