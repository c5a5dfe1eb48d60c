// Package gate is the login gate every protocol that takes a secret passes: IMAP's
// LOGIN and AUTHENTICATE, POP3's PASS and AUTH, submission's AUTH and the HTTP API's
// bearer tokens. It decides what opens an inbox (its token or the admin key, or
// nothing at all in public mode), counts failures in the bucket the protocols share,
// so that a guesser gains nothing by switching, throttles a client out of failures,
// delays every refusal alike and logs it in one shape. Which reply a refusal gets
// stays the protocol's.
package gate

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// Delay is how late every server answers a refused secret, throttled or not: tokens
// are too long to guess, and the delay keeps a script from trying addresses and keys
// as fast as the network allows.
const Delay = time.Second

// Gate checks secrets. It is a value of the server's options, made where it is used,
// so that it always sees them as they are.
type Gate struct {
	// Domains are ours, lower case (Domains makes the set): a user on any other domain
	// never logs in. nil = any domain (the HTTP API checks its path's domain itself).
	Domains map[string]bool
	// Keys decide what opens an inbox: its token, the admin key or a key of its
	// namespace. A nil Tokens opens no inbox by token, a nil Namespaces none by a
	// namespace key.
	Keys storage.Keys
	// Public opens every inbox without a secret (MAYFLY_PUBLIC, the API's reads).
	Public bool
	// Failures counts refused secrets per client (MAYFLY_LOGIN_FAILURES), one bucket
	// for every protocol; a client with none left is refused before its secret is
	// looked at, so a guesser learns nothing and the right secret waits too. nil = no
	// throttle.
	Failures *limit.Buckets[netip.Addr]
	// Delay is how late a refusal is answered; servers use the package's Delay, tests
	// shorten it. 0 = at once.
	Delay time.Duration
}

// Domains returns the set of domains, in lower case, that Gate.Domains wants.
func Domains(domains []string) map[string]bool {
	m := make(map[string]bool, len(domains))
	for _, d := range domains {
		m[strings.ToLower(d)] = true
	}
	return m
}

// The refusals of a gate; a protocol answers each with its own words and codes.
var (
	// ErrThrottled: the client has no failure left (MAYFLY_LOGIN_FAILURES).
	ErrThrottled = errors.New("too many failed logins from your address (MAYFLY_LOGIN_FAILURES), try later")
	// ErrDenied: the user is not an address of ours, or the secret does not open it.
	ErrDenied = errors.New("invalid user name or password")
)

// Opens reports whether secret is inbox's token, the admin key or a key of inbox's
// namespace, counting nothing (in public mode, where no secret is needed and so none
// is guessed). A namespace key is looked up in the store each time, so a key revoked
// on any node opens nothing from then on; a store that does not answer opens nothing.
func (g Gate) Opens(ctx context.Context, inbox, secret string) bool {
	if g.Keys.Tokens != nil && g.Keys.Tokens.Valid(inbox, secret) || g.IsAdminKey(secret) {
		return true
	}
	ns := storage.NamespaceOf(inbox)
	if ns == "" || !storage.IsNamespaceKey(secret) {
		return false
	}
	name, ok := g.Namespace(ctx, secret)
	return ok && name == ns
}

// Namespace returns the namespace secret is a key of, counting nothing.
func (g Gate) Namespace(ctx context.Context, secret string) (string, bool) {
	if g.Keys.Namespaces == nil || !storage.IsNamespaceKey(secret) {
		return "", false
	}
	name, err := g.Keys.Namespaces.NamespaceOfKey(ctx, storage.HashKey(secret))
	return name, err == nil
}

// IsAdminKey reports whether secret is the admin key, counting nothing.
func (g Gate) IsAdminKey(secret string) bool {
	k := g.Keys.APIKey
	return k != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(k)) == 1
}

// Inbox is Login's test alone, counting and delaying nothing: the inbox user names
// (an address, plus-tag and capitals allowed), and whether it is on our domains and
// secret opens it.
func (g Gate) Inbox(ctx context.Context, user, secret string) (string, bool) {
	inbox, _, err := storage.ParseAddress(user)
	if err != nil || g.Domains != nil && !g.Domains[storage.Domain(inbox)] || !g.Opens(ctx, inbox, secret) {
		return "", false
	}
	return inbox, true
}

// Login returns the inbox user names when secret opens it, at the gate (Check).
// remote is the client as logged, client what Failures counts it under (limit.Key of
// its address).
func (g Gate) Login(ctx context.Context, logger *slog.Logger, remote string, client netip.Addr, user, secret string) (string, error) {
	var inbox string
	err := g.Check(ctx, logger, remote, client, func() bool {
		var ok bool
		inbox, ok = g.Inbox(ctx, user, secret)
		return ok
	})
	if err != nil {
		return "", err
	}
	logger.Debug("login", "remote", remote, "inbox", inbox)
	return inbox, nil
}

// Check is the gate around any test of a secret, opens: refused at once, before opens
// runs, for a client out of Failures (ErrThrottled); a failure counted when opens
// says no (ErrDenied). Either refusal is answered Delay late (sooner if ctx ends) and
// logged in one shape, a message with remote and reason: "login failed" at Info for a
// denial, which Failures bounds, "login refused" at Debug for a throttled client,
// which may retry as fast as it likes (its server's metric counts it).
func (g Gate) Check(ctx context.Context, logger *slog.Logger, remote string, client netip.Addr, opens func() bool) error {
	if g.Failures.Empty(client) {
		logger.Debug("login refused", "remote", remote, "reason", "throttled")
		g.pause(ctx)
		return ErrThrottled
	}
	if opens() {
		return nil
	}
	g.Failures.Allow(client)
	logger.Info("login failed", "remote", remote, "reason", "denied")
	g.pause(ctx)
	return ErrDenied
}

func (g Gate) pause(ctx context.Context) {
	if g.Delay <= 0 {
		return
	}
	t := time.NewTimer(g.Delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Recheck is how often a session opened with a namespace key looks the key up again,
// so that revoking it, or deleting its namespace, on any node ends the session within
// Recheck (plus one store round trip): one lookup per session per Recheck, whether
// the session is busy or idle.
const Recheck = 2 * time.Second

// ErrRevoked ends a session whose namespace key no longer opens its namespace; Watch
// cancels with it.
var ErrRevoked = errors.New("the namespace key of this session was revoked, or its namespace deleted")

// Watch calls end, once, when secret, a namespace key that opened a session, no longer
// opens its namespace, looking it up every Recheck until ctx ends. A secret that is no
// namespace key (an inbox token, the admin key) is never looked at again: Watch does
// nothing. A store that does not answer ends nothing, the next lookup deciding, so
// that a store's hiccup does not drop every session at once.
func (g Gate) Watch(ctx context.Context, secret string, end func()) {
	if g.Keys.Namespaces == nil || !storage.IsNamespaceKey(secret) || g.IsAdminKey(secret) {
		return
	}
	go func() {
		t := time.NewTicker(Recheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// A key belongs to one namespace for its life: found is still good.
			_, err := g.Keys.Namespaces.NamespaceOfKey(ctx, storage.HashKey(secret))
			if errors.Is(err, storage.ErrNotFound) {
				end()
				return
			}
		}
	}()
}

// Revocable returns a context that ends, with the cause ErrRevoked, when secret stops
// opening its namespace (Watch): the way a request or session held by a context (a
// WebSocket, an event stream, a wait) ends with its key. cancel must be called.
func (g Gate) Revocable(ctx context.Context, secret string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	g.Watch(ctx, secret, func() { cancel(ErrRevoked) })
	return ctx, func() { cancel(context.Canceled) }
}
