// Package dkimkey is the DKIM signing key in one place: what submission signs replies
// with and what `mayfly dns` publishes are read by the same code, and a new key is
// made and placed by the same rules.
package dkimkey

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Bits is the size of a new RSA key: RFC 8301 section 3.2 says signers SHOULD use
// at least 2048 bits.
const Bits = 2048

// Load reads the signing key in the PEM file at path.
func Load(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	signer, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("dkim key %s: %w", path, err)
	}
	return signer, nil
}

// Parse reads the first private key in PEM data: RSA in PKCS#1 or PKCS#8,
// Ed25519 in PKCS#8 (the key types of RFC 6376 and RFC 8463).
func Parse(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key in it")
		}
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("the key is encrypted; Mayfly reads an unencrypted one")
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			return checkRSA(k)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			switch k := k.(type) {
			case *rsa.PrivateKey:
				return checkRSA(k)
			case ed25519.PrivateKey:
				return k, nil
			}
			return nil, fmt.Errorf("a %T: DKIM signs with RSA or Ed25519", k)
		case "EC PRIVATE KEY":
			return nil, errors.New("an EC key: DKIM signs with RSA or Ed25519")
		}
		// Anything else, such as a certificate kept in the same file, is not the key.
	}
}

// checkRSA refuses keys that verifiers ignore: RFC 8301 section 3.2.
func checkRSA(k *rsa.PrivateKey) (crypto.Signer, error) {
	if k.N.BitLen() < 1024 {
		return nil, fmt.Errorf("a %d-bit RSA key: verifiers ignore signatures of keys under 1024 bits (RFC 8301 section 3.2)", k.N.BitLen())
	}
	return k, nil
}

// Public is the public half of a signing key as RFC 6376 section 3.6.1 publishes it.
type Public struct {
	Algo string // the k= tag: "rsa" or "ed25519"
	Key  []byte // the p= tag, decoded
}

// PublicOf returns the public half of signer.
func PublicOf(signer crypto.Signer) (Public, error) {
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		// RFC 6376 section 3.6.1: p= is the DER SubjectPublicKeyInfo for k=rsa.
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return Public{}, err
		}
		return Public{Algo: "rsa", Key: der}, nil
	case ed25519.PublicKey:
		// RFC 8463 section 4.2: p= is the raw 32-byte key for k=ed25519.
		return Public{Algo: "ed25519", Key: pub}, nil
	}
	return Public{}, fmt.Errorf("unsupported key %T", signer.Public())
}

// Record is the key record's text (RFC 6376 section 3.6.1).
func (k Public) Record() string {
	return fmt.Sprintf("v=DKIM1; k=%s; p=%s", k.Algo, base64.StdEncoding.EncodeToString(k.Key))
}

// Fingerprint names the key in a line of output, where base64 of two RSA keys looks
// alike for its first forty characters.
func (k Public) Fingerprint() string {
	sum := sha256.Sum256(k.Key)
	return fmt.Sprintf("k=%s key sha256:%s", k.Algo, hex.EncodeToString(sum[:8]))
}

// DefaultPath is where a key of selector goes when no path is given: a private key
// belongs in the user's own configuration, not in whatever directory the command ran
// in, which others may read or write.
func DefaultPath(selector string) (string, error) {
	dir, err := os.UserConfigDir()
	return filepath.Join(dir, "mayfly", "dkim-"+selector+".pem"), err
}

// Create writes a new RSA key to path as PKCS#8, which everything that reads a DKIM
// key for Mayfly takes. O_EXCL: a key another run made meanwhile is never
// overwritten, since its public half may be published already.
func Create(path string) (crypto.Signer, error) {
	k, err := rsa.GenerateKey(rand.Reader, Bits)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	if err := privateDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("dkim key: write %s: %w", path, err)
	}
	return k, nil
}

// privateDir makes dir (mode 0700) when it is missing and refuses one that group may
// write or others may read or write: there others could list or plant the key, and
// a key planted before the first run would be published as ours.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make the key's directory: %w; give -dkim-key (MAYFLY_DKIM_KEY) another path", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o026 != 0 {
		return fmt.Errorf("refusing to write a private key into %s (mode %04o): others may read or write there; give -dkim-key (MAYFLY_DKIM_KEY) a path in a directory only you may use (chmod 700), or leave it unset for %s", dir, perm, "$XDG_CONFIG_HOME/mayfly or ~/.config/mayfly")
	}
	return nil
}
