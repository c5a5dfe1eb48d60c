package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// secretPrefix starts every signing secret (Standard Webhooks).
const secretPrefix = "whsec_"

// newSecret returns a signing secret: 24 random bytes, as Svix's are, base64 after whsec_.
func newSecret() string {
	key := make([]byte, 24)
	rand.Read(key)
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// secretKey returns the HMAC key of a secret: the base64-decoded part after whsec_.
func secretKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	return key, nil
}

// Sign returns the webhook-signature header of a delivery: "v1," and the base64 of
// HMAC-SHA256 over "id.timestamp.body", keyed with the secret's key (Standard Webhooks,
// "Signature scheme").
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// ErrSignature is Verify's answer to a delivery it cannot vouch for.
var ErrSignature = errors.New("webhook: no valid signature")

// Verify checks a delivery as a receiver does: one of the space-separated signatures of
// the webhook-signature header is the v1 signature of id, timestamp and body under
// secret, and the timestamp is within tolerance of now, so a recorded delivery cannot
// be replayed later. It is the receiver's side of Sign, for tests and Go receivers.
func Verify(secret, id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", timestamp, ErrSignature)
	}
	ts := time.Unix(sec, 0)
	if now.Sub(ts) > tolerance || ts.Sub(now) > tolerance {
		return fmt.Errorf("timestamp %s too far from now: %w", ts.UTC(), ErrSignature)
	}
	want, err := Sign(secret, id, ts, body)
	if err != nil {
		return err
	}
	for _, s := range strings.Fields(signatures) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrSignature
}
