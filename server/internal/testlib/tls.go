package testlib

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CertNames are the names the test certificate is good for besides 127.0.0.1 and
// ::1: every test server's hostname and localhost, so one certificate serves every
// package.
var CertNames = []string{"mayfly.test", "mail.mayfly.test", "imap.mayfly.test", "pop3.mayfly.test", "mx.mayfly.test", "localhost"}

// testCert is made once per test binary: it is its own CA, so the pool that trusts
// it, and a CA file for curl, hold the certificate itself.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: CertNames[0]},
		DNSNames:              CertNames,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
})

// Cert returns the test servers' self-signed certificate and the pool that trusts it.
func Cert() (tls.Certificate, *x509.CertPool) { return testCert() }

// ServerTLS is a server configuration with the test certificate.
func ServerTLS() *tls.Config {
	cert, _ := testCert()
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// ClientTLS is a client configuration that trusts the test certificate and expects
// serverName: one of CertNames, "127.0.0.1" or "::1".
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
