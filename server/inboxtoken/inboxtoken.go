// Package inboxtoken is `mayfly token`: the token of an inbox, computed from the
// configured secret or the one a Redis store shares, or else asked of the running
// server, whose memory store's secret never leaves its process.
package inboxtoken

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
)

// Source is where the secret of the tokens is found, the first that is set.
type Source struct {
	Secret    string // MAYFLY_SECRET
	RedisURL  string // MAYFLY_REDIS_URL: the secret the store shares
	ServerURL string // MAYFLY_URL: the running server's HTTP address
}

// UsageError is a mistake in the command line: the caller exits with status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }

func (e UsageError) Unwrap() error { return e.Err }

// Print writes the token of address to w: from the configured secret, or the one the
// Redis store shares, or else from the running server. The memory store's secret
// lives and dies with its process and never leaves it, so only that process can tell
// a token.
func Print(ctx context.Context, src Source, address string, w io.Writer) error {
	inbox, _, err := storage.ParseAddress(address)
	if err != nil {
		return UsageError{fmt.Errorf("%q is not an address", address)}
	}
	secret := []byte(src.Secret)
	switch {
	case len(secret) > 0:
	case src.RedisURL != "":
		st, err := redisstore.New(ctx, redisstore.Options{URL: src.RedisURL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		defer st.Close()
		if secret, err = st.Secret(ctx); err != nil {
			return fmt.Errorf("secret: %w", err)
		}
	default:
		t, err := ask(ctx, src.ServerURL, inbox)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, t)
		return nil
	}
	fmt.Fprintln(w, storage.NewTokens(secret).Token(inbox))
	return nil
}

// ask asks the server at base for the token of inbox: creating an inbox of a chosen
// name answers its token and changes nothing when the inbox exists.
func ask(ctx context.Context, base, inbox string) (string, error) {
	local, domain, _ := strings.Cut(inbox, "@")
	body, _ := json.Marshal(map[string]string{"local": local, "domain": domain})
	hint := fmt.Sprintf("no MAYFLY_SECRET and no MAYFLY_REDIS_URL, so asked the server at MAYFLY_URL=%s", base)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/api/v1/inboxes", bytes.NewReader(body))
	if err != nil {
		return "", UsageError{fmt.Errorf("%s: %w", hint, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	// A bounded wait: a firewall that drops packets must not hang a script.
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w; set MAYFLY_URL to the running server's HTTP address, or MAYFLY_SECRET to its secret", hint, err)
	}
	defer resp.Body.Close()
	var out struct {
		Address, Token string
		Error          struct{ Message string }
	}
	// An answer is a few hundred bytes; a bounded read keeps a wrong URL from filling memory.
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<16))
	decErr := dec.Decode(&out)
	switch {
	case resp.StatusCode != http.StatusCreated && out.Error.Message != "":
		return "", fmt.Errorf("%s: %s: %s; MAYFLY_SECRET computes any token without asking", hint, resp.Status, out.Error.Message)
	case resp.StatusCode != http.StatusCreated || decErr != nil || out.Token == "":
		return "", fmt.Errorf("%s: answered %s, not a Mayfly inbox; set MAYFLY_URL to the running server's HTTP address, or MAYFLY_SECRET to its secret", hint, resp.Status)
	case out.Address != inbox:
		return "", fmt.Errorf("%s: answered the token of %q, not of %q", hint, out.Address, inbox)
	}
	return out.Token, nil
}
