// Package certs is the TLS certificate every listener shares: from files, reloaded
// on SIGHUP and when they change; from an ACME CA; or self-signed, made at start.
package certs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// defaultPoll is how often the certificate files are checked for a change: a renewal
// by certbot or a Kubernetes secret update then needs no signal.
const defaultPoll = 30 * time.Second

// Options say where the certificate comes from. Zero values mean the documented defaults.
type Options struct {
	CertFile, KeyFile string        // MAYFLY_TLS_CERT, MAYFLY_TLS_KEY; empty = ACME or self-signed
	Hostname          string        // the self-signed certificate's name, and ACME's when ACME.Hosts is empty
	ACME              ACME          // ACME.Email set = the certificate comes from the ACME CA
	Shared            SharedValues  // where every node finds the ACME state; nil = ACME.Dir
	Poll              time.Duration // how often the files (or ACME) are looked at again; 0 = 30s
}

// Certificate is the TLS configuration every listener shares. The configuration
// handed out stays the same value; each handshake asks it (GetConfigForClient) for
// the current one, so a new certificate from MAYFLY_TLS_CERT and MAYFLY_TLS_KEY, taken
// on SIGHUP or when the files change, or from ACME, serves the next handshake without
// a restart.
type Certificate struct {
	certFile, keyFile string
	acme              *acmeSource // nil unless the certificate comes from ACME
	poll              time.Duration
	logger            *slog.Logger
	current           atomic.Pointer[tls.Config]
	stamp             []byte // what the files looked like when last loaded
}

// New takes the certificate from files, from ACME (its state in o.Shared, when not
// nil, else in a directory), or makes a self-signed one. It returns the configuration
// to hand every listener.
func New(o Options, logger *slog.Logger) (*Certificate, *tls.Config, error) {
	c := &Certificate{certFile: o.CertFile, keyFile: o.KeyFile, poll: cmp.Or(o.Poll, defaultPoll), logger: logger}
	var cert tls.Certificate
	var err error
	if o.ACME.Email != "" {
		// Self-signed until the CA has answered, which needs the HTTP listener up.
		if c.acme, err = newACMESource(o.ACME, o.Hostname, o.Shared); err != nil {
			return nil, nil, err
		}
	}
	if c.certFile != "" {
		c.stamp = c.fileStamp()
		cert, err = tls.LoadX509KeyPair(c.certFile, c.keyFile)
	} else {
		cert, err = SelfSigned(o.Hostname)
	}
	if err != nil {
		return nil, nil, err
	}
	c.current.Store(configFor(cert))
	shared := configFor(cert) // Certificates[0] is the one at start, for go-guerrilla's files
	shared.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return c.current.Load(), nil }
	return c, shared, nil
}

// configFor serves certs, the first to clients that name no server or one none of
// them is for (crypto/tls picks by name among several).
func configFor(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
}

// SMTPStartTLS is what inbound SMTP offers with STARTTLS, nil for nothing. Senders
// upgrade whenever STARTTLS is offered, and many then verify the certificate
// (nodemailer, Go's net/smtp.SendMail): offered with the self-signed one, their mail
// fails where in plain text it would have arrived, and that certificate proves nothing
// to any sender anyway. So auto offers it with a certificate from files or ACME only.
// ACME starts on a self-signed certificate too, but the CA's follows within seconds
// (at once from acme-dir), and the listener's offer is fixed at start: auto offers it.
// Auto's refusal is logged, with the settings that change it.
func (c *Certificate) SMTPStartTLS(mode string, shared *tls.Config) *tls.Config {
	if mode == "auto" && c.certFile == "" && c.acme == nil {
		c.logger.Info("inbound SMTP offers no STARTTLS: the certificate is self-signed, and senders that verify would fail; set smtp-starttls=on to offer it anyway, or give tls-cert or acme-email")
		return nil
	}
	if mode == "off" {
		return nil
	}
	return shared
}

// Challenge is the handler of the ACME CA's http-01 requests, nil without ACME.
func (c *Certificate) Challenge() http.Handler {
	if c.acme == nil {
		return nil
	}
	return c.acme.challenge()
}

// fileStamp is the size and modification time of both files: cheap to take, and it
// changes with any rewrite or symlink swap (as Kubernetes does).
func (c *Certificate) fileStamp() []byte {
	var b []byte
	for _, f := range []string{c.certFile, c.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			b = fmt.Appendf(b, "%d %d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b
}

// reload takes the files again. A pair that does not load keeps the one in service:
// a half-written renewal must not leave the listeners without a certificate.
func (c *Certificate) reload(why string) {
	c.stamp = c.fileStamp()
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.logger.Error("tls certificate not reloaded; the previous one stays", "why", why, "err", err)
		return
	}
	c.current.Store(configFor(cert))
	c.logger.Info("tls certificate reloaded", "why", why, "cert", c.certFile)
}

// Watch takes SIGHUP at once and returns the loop that reloads on it and on a change
// of the files, or follows ACME, until ctx ends. SIGHUP is taken whatever the source,
// so that `systemctl reload` never stops the process (SIGHUP's default action): taken
// before the listeners open, as one sent once they are up must not kill it.
func (c *Certificate) Watch(ctx context.Context) (run func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return func() {
		defer signal.Stop(hup)
		c.watch(ctx, hup)
	}
}

func (c *Certificate) watch(ctx context.Context, hup <-chan os.Signal) {
	if c.acme != nil {
		c.followACME(ctx, hup)
		return
	}
	var poll <-chan time.Time
	if c.certFile != "" {
		tick := time.NewTicker(c.poll)
		defer tick.Stop()
		poll = tick.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if c.certFile == "" {
				c.logger.Info("SIGHUP: the certificate is self-signed, no files to reload")
				continue
			}
			c.reload("SIGHUP")
		case <-poll:
			if !bytes.Equal(c.fileStamp(), c.stamp) {
				c.reload("files changed")
			}
		}
	}
}
