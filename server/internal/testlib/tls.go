package testlib

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"time"
)

// CertNames are the names the test certificate is good for: every test server's
// hostname, localhost and 127.0.0.1, so one certificate serves every package.
var CertNames = []string{"mayfly.test", "mail.mayfly.test", "imap.mayfly.test", "pop3.mayfly.test", "mx.mayfly.test", "localhost"}

// testCA is a CA made once per test binary and the leaf it signed for CertNames.
var testCA = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	caKey := newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Mayfly test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER := must(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey))
	ca := must(x509.ParseCertificate(caDER))
	key := newKey()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: CertNames[0]},
		DNSNames:     CertNames,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}, pool
})

func newKey() *ecdsa.PrivateKey {
	return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
}

// must is for what cannot fail with the fixed inputs above.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Cert returns the test servers' certificate, signed by the test CA, and the pool
// that trusts that CA. Both are made once per test binary.
func Cert() (tls.Certificate, *x509.CertPool) { return testCA() }

// ServerTLS is a server configuration with the test certificate.
func ServerTLS() *tls.Config {
	cert, _ := testCA()
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// ClientTLS is a client configuration that trusts the test CA and expects serverName
// (one of CertNames or "127.0.0.1").
func ClientTLS(serverName string) *tls.Config {
	_, pool := testCA()
	return &tls.Config{RootCAs: pool, ServerName: serverName}
}
