package testlib

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mayfly-mail/mayfly/server/certs"
)

// testCert is the production's self-signed certificate, made once per test binary:
// one maker of certificates, for 127.0.0.1, ::1, localhost and mayfly.test.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	cert, err := certs.SelfSigned("mayfly.test")
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		panic(err)
	}
	cert.Leaf = leaf
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return cert, pool
})

// Cert returns the test servers' self-signed certificate and the pool that trusts it.
func Cert() (tls.Certificate, *x509.CertPool) { return testCert() }

// ServerTLS is a server configuration with the test certificate.
func ServerTLS() *tls.Config {
	cert, _ := testCert()
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// ClientTLS is a client configuration that trusts the test certificate and expects
// serverName: "127.0.0.1", "::1", "localhost" or "mayfly.test".
func ClientTLS(serverName string) *tls.Config {
	_, pool := testCert()
	return &tls.Config{RootCAs: pool, ServerName: serverName}
}

// CAFile writes the test certificate as PEM into the test's temporary folder and
// returns the file's path, for clients such as curl that read their trust from a file.
func CAFile(t testing.TB) string {
	t.Helper()
	cert, _ := testCert()
	name := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}
