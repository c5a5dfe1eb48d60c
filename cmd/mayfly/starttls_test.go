package main

import (
	"bytes"
	"crypto/tls"
	"net/smtp"
	"path/filepath"
	"strings"
	"testing"
)

// smtpOffersStartTLS says whether the inbound listener at addr advertises STARTTLS in
// its EHLO reply, and whether it takes the command anyway.
func smtpOffersStartTLS(t *testing.T, addr string) (advertised, accepted bool) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	advertised, _ = c.Extension("STARTTLS")
	id, err := c.Text.Cmd("STARTTLS")
	if err != nil {
		t.Fatal(err)
	}
	c.Text.StartResponse(id)
	defer c.Text.EndResponse(id)
	_, _, err = c.Text.ReadResponse(220)
	return advertised, err == nil
}

// TestSMTPStartTLSDefaultDelivers: on defaults the certificate is self-signed, so inbound
// SMTP offers no STARTTLS, and a sender that upgrades whenever offered and verifies the
// certificate (Go's net/smtp.SendMail, as nodemailer and others do) delivers in plain
// text instead of failing with "certificate signed by unknown authority".
func TestSMTPStartTLSDefaultDelivers(t *testing.T) {
	n := startNode(t)
	if advertised, accepted := smtpOffersStartTLS(t, n.smtp); advertised || accepted {
		t.Errorf("on defaults STARTTLS advertised=%v accepted=%v, want neither: the certificate is self-signed", advertised, accepted)
	}
	rcpt := "app-under-test@serve.test"
	msg := "From: app@example.test\r\nTo: " + rcpt + "\r\nSubject: welcome\r\n\r\nhello\r\n"
	if err := smtp.SendMail(n.smtp, nil, "app@example.test", []string{rcpt}, []byte(msg)); err != nil {
		t.Fatalf("net/smtp.SendMail on defaults: %v", err)
	}
	if log := n.log.String(); !strings.Contains(log, "msg=received proto=smtp remote=127.0.0.1 inbox="+rcpt) {
		t.Errorf("no received line for %s; log:\n%s", rcpt, log)
	}
	if log := n.log.String(); !strings.Contains(log, "proto=smtp addr="+n.smtp+" domains=serve.test starttls=false") ||
		!strings.Contains(log, "set smtp-starttls=on to offer it anyway") {
		t.Errorf("the log does not say STARTTLS is off on inbound SMTP and which setting turns it on:\n%s", log)
	}
}

// TestSMTPStartTLSModes: on offers the self-signed certificate too; auto offers a
// certificate from files; off offers none, even with files. Submission keeps STARTTLS
// whatever the mode: its users configure a client.
func TestSMTPStartTLSModes(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertificate(t, "files.serve.test", certFile, keyFile)
	files := []string{"-tls-cert", certFile, "-tls-key", keyFile}
	tests := []struct {
		name string
		args []string
		want bool
	}{
		{"on, self-signed", []string{"-smtp-starttls", "on"}, true},
		{"auto, from files", files, true},
		{"off, from files", append([]string{"-smtp-starttls", "off"}, files...), false},
		{"off, self-signed", []string{"-smtp-starttls", "off"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, tt.args...)
			advertised, accepted := smtpOffersStartTLS(t, n.smtp)
			if advertised != tt.want || accepted != tt.want {
				t.Errorf("STARTTLS advertised=%v accepted=%v, want %v", advertised, accepted, tt.want)
			}
			if tt.want {
				if got := smtpCertificate(t, n.smtp); tt.args[0] == "-tls-cert" && got != "files.serve.test" {
					t.Errorf("STARTTLS shows %q, want the certificate from files", got)
				}
			}
			c, err := smtp.Dial(n.submission)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
				t.Errorf("submission STARTTLS: %v, want it offered whatever smtp-starttls says", err)
			}
		})
	}
}

func TestSMTPStartTLSConfig(t *testing.T) {
	c, err := parseConfig("mayfly", nil, env(nil), &bytes.Buffer{})
	if err != nil || c.SMTPStartTLS != "auto" {
		t.Errorf("default smtp-starttls = %q, %v; want auto", c.SMTPStartTLS, err)
	}
	c, err = parseConfig("mayfly", nil, env(map[string]string{"MAYFLY_SMTP_STARTTLS": "off"}), &bytes.Buffer{})
	if err != nil || c.SMTPStartTLS != "off" {
		t.Errorf("MAYFLY_SMTP_STARTTLS=off gives %q, %v", c.SMTPStartTLS, err)
	}
	_, err = parseConfig("mayfly", []string{"-smtp-starttls", "yes"}, env(nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "smtp-starttls") || !strings.Contains(err.Error(), "auto, on or off") {
		t.Errorf("-smtp-starttls yes: %v, want an error naming the setting and its choices", err)
	}
}
