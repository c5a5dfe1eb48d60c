package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/mayfly-mail/mayfly/storage"
)

// ACME is where the certificate comes from when it is not a file: an ACME CA such as
// Let's Encrypt, asked over http-01 on the HTTP listener.
type ACME struct {
	Email string   // the account's contact; set = ACME on
	Hosts []string // names to get certificates for; empty = the hostname
	Dir   string   // account and certificates, kept between restarts (not on Redis)
	URL   string   // the CA's directory
	CA    string   // PEM roots for the CA's own HTTPS; empty = the system's
}

// acmeRetry bounds the wait between failed attempts: an order the CA refuses (DNS not
// pointing here yet, a rate limit) is tried again without a restart, and not so often
// that the CA's rate limits bite.
const (
	acmeRetryFirst = 10 * time.Second
	acmeRetryMax   = 10 * time.Minute
)

// acmeSource gets and renews the certificates of a set of names through autocert. The
// listeners never wait for it: they serve what the certificate holds (self-signed at
// first), and followACME swaps in each certificate once autocert has it.
type acmeSource struct {
	manager *autocert.Manager
	hosts   []string
}

// SharedValues is what the Redis store offers to keep the ACME state where every node
// finds it (see redisstore.GetShared).
type SharedValues interface {
	GetShared(ctx context.Context, name string) ([]byte, error)
	PutShared(ctx context.Context, name string, value []byte) error
	DeleteShared(ctx context.Context, name string) error
}

// acmeCache is autocert's cache on the store's shared values.
type acmeCache struct{ values SharedValues }

func (c acmeCache) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := c.values.GetShared(ctx, "acme:"+key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, autocert.ErrCacheMiss
	}
	return b, err
}

func (c acmeCache) Put(ctx context.Context, key string, data []byte) error {
	return c.values.PutShared(ctx, "acme:"+key, data)
}

func (c acmeCache) Delete(ctx context.Context, key string) error {
	return c.values.DeleteShared(ctx, "acme:"+key)
}

// newACMESource keeps the ACME state in shared when there is one (Redis: every node
// can answer a challenge another node's order asked for, and a certificate is ordered
// once for all), else in a.Dir.
func newACMESource(a ACME, hostname string, shared SharedValues) (*acmeSource, error) {
	hosts := a.Hosts
	if len(hosts) == 0 {
		hosts = []string{hostname}
	}
	client := &acme.Client{DirectoryURL: a.URL, UserAgent: "mayfly"}
	if a.CA != "" {
		pem, err := os.ReadFile(a.CA)
		if err != nil {
			return nil, fmt.Errorf("acme-ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme-ca %s: no PEM certificate in it", a.CA)
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: transport}
	}
	var cache autocert.Cache = acmeCache{shared}
	if shared == nil {
		// Made now, so that a directory Mayfly may not write fails at start, not at the
		// first certificate.
		if err := os.MkdirAll(a.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("acme-dir: %w", err)
		}
		cache = autocert.DirCache(a.Dir)
	}
	return &acmeSource{
		manager: &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      cache,
			HostPolicy: autocert.HostWhitelist(hosts...),
			Email:      a.Email,
			Client:     client,
		},
		hosts: hosts,
	}, nil
}

// challenge answers the CA's http-01 requests under /.well-known/acme-challenge/.
func (s *acmeSource) challenge() http.Handler {
	h := s.manager.HTTPHandler(nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// autocert checks the Host header against the names as it is; a CA asks on port
		// 80, where there is no port in it, but a proxy in front may have added one.
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// certificates returns those of the names autocert has or can get now, the first
// name's first; err tells of the names it could not. It returns early with ctx: a new
// order may take autocert minutes, and it cannot be told to stop, so it is left to
// finish in the background (its work is bounded by autocert's own 5-minute timeout).
func (s *acmeSource) certificates(ctx context.Context) ([]tls.Certificate, error) {
	type result struct {
		certs []tls.Certificate
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for _, host := range s.hosts {
			cert, err := s.manager.GetCertificate(&tls.ClientHelloInfo{ServerName: host})
			if err != nil {
				r.err = errors.Join(r.err, fmt.Errorf("%s: %w", host, err))
				continue
			}
			r.certs = append(r.certs, *cert)
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r.certs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// followACME keeps the served certificates those autocert holds, until ctx ends.
// autocert renews them itself well before they expire; asking it again every poll
// (or at once on hup) costs a map lookup and picks up a renewal.
func (c *Certificate) followACME(ctx context.Context, hup <-chan os.Signal) {
	retry := acmeRetryFirst
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-hup:
		}
		certs, err := c.acme.certificates(ctx)
		if ctx.Err() != nil {
			return
		}
		if len(certs) > 0 && !sameCertificates(c.current.Load().Certificates, certs) {
			c.current.Store(configFor(certs...))
			c.logger.Info("tls certificate from acme", "hosts", len(certs), "expires", notAfter(certs[0]))
		}
		if err != nil {
			c.logger.Error("acme: no certificate yet for some names; trying again", "in", retry, "err", err)
			timer.Reset(retry)
			retry = min(2*retry, acmeRetryMax)
			continue
		}
		retry = acmeRetryFirst
		timer.Reset(c.poll)
	}
}

func notAfter(cert tls.Certificate) time.Time {
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return time.Time{}
		}
	}
	return leaf.NotAfter
}

func sameCertificates(a, b []tls.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Certificate[0], b[i].Certificate[0]) {
			return false
		}
	}
	return true
}
