package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/storage"
)

// inboxKey is where authorize leaves the normalized inbox for the handlers.
const inboxKey = "inbox"

// partKey is set on a request let in by the frame's key, which opens only the inline
// images of one message (see htmlImages).
const partKey = "frame"

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
// links and WebSockets, which cannot set headers). It counts the request against
// Options.RequestRate: under the inbox when a credential opened it, so that one
// address's many inboxes (a CI runner's parallel tests) do not share one bucket, and
// under the client's address otherwise, so that requests without credentials, with
// wrong ones, or at addresses that are none are held to the address's rate.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		opened, err := s.authenticate(c)
		key := rateKey{client: s.clientKey(c)}
		if opened {
			key = rateKey{inbox: inboxOf(c)}
		}
		if err := s.allowRequest(c, key); err != nil {
			return err
		}
		if err != nil {
			return err
		}
		return s.revocable(c, next)
	}
}

// revocable runs next under a request context that ends when the namespace key that
// opened the request stops opening its namespace (gate.Watch): a WebSocket closes, an
// event stream ends, a wait answers 403. Other credentials change nothing.
func (s *Server) revocable(c echo.Context, next echo.HandlerFunc) error {
	ctx, cancel := s.gate().Revocable(c.Request().Context(), bearer(c.Request()))
	defer cancel()
	c.SetRequest(c.Request().WithContext(ctx))
	err := next(c)
	if errors.Is(context.Cause(ctx), gate.ErrRevoked) && !c.Response().Committed {
		return errorf(http.StatusForbidden, "revoked", "%s", gate.ErrRevoked)
	}
	return err
}

// authenticate decides whether c may read the inbox it names, which it leaves for the
// handlers, and whether a credential opened it: the inbox's token, the admin key or the
// frame's key. In public mode every inbox opens without one, and a request without one
// is still counted by address.
func (s *Server) authenticate(c echo.Context) (opened bool, err error) {
	// Browsers' encodeURIComponent writes "@" as %40; echo leaves path parameters escaped.
	address, err := url.PathUnescape(c.Param("address"))
	if err != nil {
		return false, errorf(http.StatusBadRequest, "bad_address", "%q is not an address", c.Param("address"))
	}
	inbox, err := s.parseInbox(address)
	if err != nil {
		return false, err
	}
	c.Set(inboxKey, inbox)
	token := bearer(c.Request())
	if g := s.gate(); g.Public {
		// Nothing is guessed here, every inbox being open: no failure to count.
		return token != "" && g.Opens(c.Request().Context(), inbox, token), nil
	}
	if key := c.QueryParam(frameKeyParam); token == "" && key != "" && c.Path() == attachmentRoute {
		// The sandboxed frame's image requests carry the frame's key, not the token,
		// and are held to the same guessing bound.
		want := s.frameKey(inbox, c.Param("id"))
		opens, err := s.checkToken(c, key, func(key string) bool { return subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1 })
		if err != nil {
			return false, err
		}
		if !opens {
			return false, errorf(http.StatusForbidden, "forbidden", "that key does not open this message's images")
		}
		c.Set(partKey, true)
		return true, nil
	}
	if token == "" {
		return false, errorf(http.StatusUnauthorized, "unauthorized", "this inbox needs its token: Authorization: Bearer TOKEN, or ?token=TOKEN")
	}
	opens, err := s.checkToken(c, token, func(token string) bool { return s.gate().Opens(c.Request().Context(), inbox, token) })
	if err != nil {
		return false, err
	}
	if !opens {
		return false, errorf(http.StatusForbidden, "forbidden", "that token does not open %s", inbox)
	}
	return true, nil
}

// checkToken reports whether token opens what the request asks for, by opens, at the
// login gate, which counts a failure against the client. A client out of failures gets
// the 429 even with the right token: a guesser must not learn which of its guesses
// would have worked.
func (s *Server) checkToken(c echo.Context, token string, opens func(string) bool) (bool, error) {
	r := c.Request()
	err := s.gate().Check(r.Context(), s.logger, s.clientIP(r).String(), s.clientKey(c), func() bool { return opens(token) })
	if errors.Is(err, gate.ErrThrottled) {
		s.metrics.refused.WithLabelValues("failures").Inc()
		return false, errorf(http.StatusTooManyRequests, "too_many_failures", "too many wrong tokens from your address (MAYFLY_LOGIN_FAILURES), try later")
	}
	if err != nil {
		s.metrics.authFailures.Inc()
		return false, nil
	}
	return true, nil
}

// gate is the login gate under the options as they are now.
func (s *Server) gate() gate.Gate {
	return gate.Gate{Keys: storage.Keys{Tokens: s.tokens, APIKey: s.opts.APIKey, Namespaces: s.store}, Public: s.opts.Public, Failures: s.opts.LoginFailures, Delay: s.authFailDelay}
}

func (s *Server) isAdminKey(token string) bool { return s.gate().IsAdminKey(token) }

// operatorOnly guards what only the operator may read (/metrics, which tells who uses
// the service and how much): it answers loopback peers and the admin key. A loopback
// peer that forwards for someone else is a reverse proxy on the same host, not the
// operator, even when it is not configured as a trusted proxy.
func (s *Server) operatorOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.clientIP(r).IsLoopback() && !forwarded(r) {
			return next(c)
		}
		if token := bearer(r); token != "" && s.opts.APIKey != "" {
			opens, err := s.checkToken(c, token, s.isAdminKey)
			if err != nil {
				return err
			}
			if opens {
				return next(c)
			}
		}
		return errorf(http.StatusForbidden, "forbidden", "%s answers loopback peers and the admin key (MAYFLY_API_KEY) only; MAYFLY_METRICS_ADDR serves it on a listener of its own", r.URL.Path)
	}
}

// forwarded reports whether a request names a client other than its peer.
func forwarded(r *http.Request) bool {
	h := r.Header
	return h.Get("X-Forwarded-For") != "" || h.Get("Forwarded") != "" || h.Get("X-Real-Ip") != ""
}

// bearer returns the token of a request: the Authorization header's Bearer credentials
// (the scheme is case-insensitive, RFC 9110 section 11.1), else the token parameter.
func bearer(r *http.Request) string {
	if scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("token")
}
