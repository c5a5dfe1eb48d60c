package httpapi

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/storage"
)

// inboxKey is where authorize leaves the normalized inbox for the handlers.
const inboxKey = "inbox"

func inboxOf(c echo.Context) string { return c.Get(inboxKey).(string) }

// parseInbox turns an address from the path into the inbox it names, which must be on
// one of our domains.
func (s *Server) parseInbox(address string) (string, error) {
	inbox, _, err := storage.ParseAddress(address)
	if err != nil {
		return "", errorf(http.StatusBadRequest, "bad_address", "%q is not an address", address)
	}
	if !slices.Contains(s.opts.Domains, storage.Domain(inbox)) {
		return "", errorf(http.StatusBadRequest, "bad_address", "%s is not one of this service's domains", storage.Domain(inbox))
	}
	return inbox, nil
}

// authorize lets a request at an inbox through with the inbox's token, the admin key,
// or in public mode; the token comes as "Authorization: Bearer T" or "?token=T" (for
// links and WebSockets, which cannot set headers).
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Browsers' encodeURIComponent writes "@" as %40; echo leaves path parameters escaped.
		address, err := url.PathUnescape(c.Param("address"))
		if err != nil {
			return errorf(http.StatusBadRequest, "bad_address", "%q is not an address", c.Param("address"))
		}
		inbox, err := s.parseInbox(address)
		if err != nil {
			return err
		}
		c.Set(inboxKey, inbox)
		if s.opts.Public {
			return next(c)
		}
		token := bearer(c.Request())
		if token == "" {
			return errorf(http.StatusUnauthorized, "unauthorized", "this inbox needs its token: Authorization: Bearer TOKEN, or ?token=TOKEN")
		}
		ip := c.RealIP()
		if s.opts.APIKey != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.APIKey)) == 1 || s.tokens.Valid(inbox, token) {
			return next(c)
		}
		s.metrics.authFailures.Inc()
		if err := s.guard.fail(c.Request().Context(), ip); err != nil {
			return err
		}
		return errorf(http.StatusForbidden, "forbidden", "that token does not open %s", inbox)
	}
}

// bearer returns the token of a request: the Authorization header's Bearer credentials
// (the scheme is case-insensitive, RFC 9110 section 11.1), else the token parameter.
func bearer(r *http.Request) string {
	if scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("token")
}

// failureGuard slows down clients that keep presenting wrong tokens: past
// freeFailures in a window, each further failure waits twice as long as the last, up
// to maxPenalty. Guessing a 128-bit token is hopeless anyway; this keeps the attempts
// from costing us much.
type failureGuard struct {
	mu  sync.Mutex
	ips map[string]*failures
	now func() time.Time
}

type failures struct {
	n     int
	since time.Time
}

const (
	freeFailures  = 10
	failureWindow = 10 * time.Minute
	maxPenalty    = 5 * time.Second
	maxTrackedIPs = 100_000
)

func newFailureGuard() *failureGuard {
	return &failureGuard{ips: make(map[string]*failures), now: time.Now}
}

// fail counts a failure of ip and waits out its penalty, or until ctx ends.
func (g *failureGuard) fail(ctx context.Context, ip string) error {
	penalty := g.record(ip)
	if penalty == 0 {
		return nil
	}
	t := time.NewTimer(penalty)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

func (g *failureGuard) record(ip string) time.Duration {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.ips[ip]
	if f == nil || now.Sub(f.since) > failureWindow {
		if len(g.ips) >= maxTrackedIPs {
			g.forgetOldLocked(now)
		}
		f = &failures{since: now}
		g.ips[ip] = f
	}
	f.n++
	if f.n <= freeFailures {
		return 0
	}
	shift := min(f.n-freeFailures, 16)
	return min(time.Duration(1<<shift)*50*time.Millisecond, maxPenalty)
}

// forgetOldLocked drops the IPs whose window has passed, or all of them when none has:
// the table must not grow without bound under a spray of source addresses.
func (g *failureGuard) forgetOldLocked(now time.Time) {
	for ip, f := range g.ips {
		if now.Sub(f.since) > failureWindow {
			delete(g.ips, ip)
		}
	}
	if len(g.ips) >= maxTrackedIPs {
		clear(g.ips)
	}
}
