package storage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// Tokens makes and checks inbox tokens: stateless capabilities, an HMAC-SHA256 of the
// normalized address under the secret. They need no storage, work on every node, and
// rotating the secret revokes them all.
type Tokens struct {
	key []byte
}

// NewTokens returns Tokens keyed by secret.
func NewTokens(secret []byte) *Tokens {
	return &Tokens{key: secret}
}

// tokenBytes is 128 bits of the MAC: unguessable, and 22 characters in a URL.
const tokenBytes = 16

// Token returns the token of a normalized inbox address.
func (t *Tokens) Token(inbox string) string {
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte(inbox))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:tokenBytes])
}

// Valid reports whether token opens inbox, in time independent of where they differ.
func (t *Tokens) Valid(inbox, token string) bool {
	return subtle.ConstantTimeCompare([]byte(t.Token(inbox)), []byte(token)) == 1
}

// Keys decides what opens an inbox for the mail protocols and the API alike: the
// inbox's own token, the admin key that opens every inbox, or a key of the inbox's
// namespace (server/gate asks Namespaces).
type Keys struct {
	Tokens *Tokens
	APIKey string // empty = no admin key
	// Namespaces looks namespace keys up (NamespaceStore.NamespaceOfKey), per login:
	// nil = no namespace key opens anything.
	Namespaces KeyLookup
}

// KeyLookup finds the namespace of a namespace key by its hash (HashKey).
type KeyLookup interface {
	NamespaceOfKey(ctx context.Context, hash string) (string, error)
}

// Opens reports whether secret opens inbox, in time independent of where they differ.
func (k Keys) Opens(inbox, secret string) bool {
	admin := k.APIKey != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(k.APIKey)) == 1
	return k.Tokens.Valid(inbox, secret) || admin
}
