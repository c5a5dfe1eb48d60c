package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"net/smtp"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	pebbledb "github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// pebble is an ACME CA (Let's Encrypt's test server, Pebble) in this test's process:
// its directory on a loopback HTTPS port; it finds host at 127.0.0.1 (through a DNS
// server of this test's) and validates it on the port of httpAddr.
type pebble struct {
	directory string         // the ACME directory URL
	serverCA  string         // PEM file of the roots of the directory's own HTTPS
	roots     *x509.CertPool // what the certificates it issues chain to
}

func startPebble(t *testing.T, host, httpAddr string) *pebble {
	t.Helper()
	_, port, _ := net.SplitHostPort(httpAddr)
	httpPort, _ := strconv.Atoi(port)
	a, err := dns.NewRR(host + ". 300 IN A 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := dnstest.ZoneServer(t, []dns.RR{a})
	// Validate at once, and never answer a good nonce as bad (Pebble's default, to
	// exercise clients' retries, would only slow the test down).
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	db := pebbledb.NewMemoryStore()
	authority := ca.New(logger, db, "", "rsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, 0, false, dnsAddr, db)
	frontEnd := wfe.New(logger, db, validator, authority, nil, false, false, 1, 1)
	srv := httptest.NewTLSServer(frontEnd.Handler())
	t.Cleanup(srv.Close)

	serverCA := filepath.Join(t.TempDir(), "pebble-https.pem")
	if err := os.WriteFile(serverCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return &pebble{directory: srv.URL + wfe.DirectoryPath, serverCA: serverCA, roots: roots}
}

// TestACMECertificate: with acme-email set, mayfly gets its certificate from an ACME CA
// over http-01 on its own HTTP listener, serves it on its TLS listeners (IMAPS, and
// SMTP STARTTLS through go-guerrilla's files) without a restart, and after a restart
// serves the same certificate from acme-dir at once, with no new order.
func TestACMECertificate(t *testing.T) {
	const host = "mx.acme.test"
	httpAddr := testlib.FreePort(t)
	acmeCA := startPebble(t, host, httpAddr)

	imaps, dir := testlib.FreePort(t), t.TempDir()
	args := []string{"-imaps-addr", imaps, "-acme-email", "ops@acme.test", "-acme-hosts", host,
		"-acme-dir", dir, "-acme-url", acmeCA.directory, "-acme-ca", acmeCA.serverCA}
	trusted := &tls.Config{ServerName: host, RootCAs: acmeCA.roots}

	p := startProcessOn(t, httpAddr, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the first mayfly's log:\n%s", p.log.String())
		}
	})
	first := waitForCertificate(t, "IMAPS", tlsCertificate(imaps, trusted))
	if !slices.Contains(first.DNSNames, host) {
		t.Errorf("certificate for %v, want %s", first.DNSNames, host)
	}
	// go-guerrilla follows the served certificate through its files.
	smtpCert := waitForCertificate(t, "SMTP STARTTLS", func() (*x509.Certificate, error) {
		c, err := smtp.Dial(p.smtp)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			return nil, err
		}
		if err := c.StartTLS(trusted); err != nil {
			return nil, err
		}
		state, _ := c.TLSConnectionState()
		return state.PeerCertificates[0], nil
	})
	if smtpCert.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("SMTP serves serial %v, IMAPS %v; want one certificate", smtpCert.SerialNumber, first.SerialNumber)
	}
	p.stop(t)

	again := startProcessOn(t, httpAddr, args...)
	defer again.stop(t)
	second := waitForCertificate(t, "IMAPS after a restart", tlsCertificate(imaps, trusted))
	if second.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("after a restart: serial %v, want %v from acme-dir (a new order was placed)", second.SerialNumber, first.SerialNumber)
	}
	if out := again.log.String(); strings.Contains(out, "acme: no certificate") {
		t.Errorf("after a restart, mayfly failed to take the certificate from acme-dir:\n%s", out)
	}
}

// tlsCertificate is a handshake with the implicit-TLS listener at addr.
func tlsCertificate(addr string, cfg *tls.Config) func() (*x509.Certificate, error) {
	return func() (*x509.Certificate, error) {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}
}

// waitForCertificate polls handshake until it verifies against the CA's roots.
func waitForCertificate(t *testing.T, what string, handshake func() (*x509.Certificate, error)) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cert, err := handshake()
		if err == nil {
			return cert
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no certificate from the ACME CA within 60s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the listener, with a deadline
	}
}

// TestACMEAcrossNodes: on Redis the ACME state is shared, so a node the CA never asks
// (B: the CA validates on A's HTTP port only) still gets a certificate, with no
// directory of its own (B's acme-dir cannot be made).
func TestACMEAcrossNodes(t *testing.T) {
	url := redisURL(t)
	// The shared ACME state of an earlier run holds certificates of an earlier CA.
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	forget := func() {
		// Not t.Context(): forget runs again in a cleanup, when that has ended.
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, "mayfly:shared:acme:*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Fatalf("forgetting the ACME state of earlier runs: %v", err)
		}
	}
	forget()
	t.Cleanup(forget)

	const host = "mx.acme.test"
	httpA := testlib.FreePort(t)
	acmeCA := startPebble(t, host, httpA)
	common := []string{"-redis-url", url, "-acme-email", "ops@acme.test", "-acme-hosts", host,
		"-acme-url", acmeCA.directory, "-acme-ca", acmeCA.serverCA}
	imapsB := testlib.FreePort(t)
	startProcessOn(t, httpA, append(common, "-acme-dir", t.TempDir())...)
	b := startProcess(t, append(common, "-imaps-addr", imapsB, "-acme-dir", "/proc/no-such-dir")...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node B's log:\n%s", b.log.String())
		}
	})
	trusted := &tls.Config{ServerName: host, RootCAs: acmeCA.roots}
	waitForCertificate(t, "IMAPS on node B", tlsCertificate(imapsB, trusted))
}
