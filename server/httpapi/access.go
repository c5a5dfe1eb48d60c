package httpapi

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/storage"
)

// inboxKey is where authorize leaves the normalized inbox for the handlers.
const inboxKey = "inbox"

// partKey is set on a request let in by the frame's key, which opens only the inline
// images of one message (see htmlDocument).
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
		if key := c.QueryParam(frameKeyParam); token == "" && key != "" && c.Path() == attachmentRoute {
			// The sandboxed frame's image requests carry the frame's key, not the token,
			// and are held to the same guessing bound.
			if s.opts.LoginFailures.Empty(s.clientKey(c)) {
				s.metrics.refused.WithLabelValues("failures").Inc()
				return errorf(http.StatusTooManyRequests, "too_many_failures", "too many wrong tokens from your address, try later")
			}
			if subtle.ConstantTimeCompare([]byte(key), []byte(s.frameKey(inbox, c.Param("id")))) == 1 {
				c.Set(partKey, true)
				return next(c)
			}
			s.metrics.authFailures.Inc()
			s.opts.LoginFailures.Allow(s.clientKey(c))
			return errorf(http.StatusForbidden, "forbidden", "that key does not open this message's images")
		}
		if token == "" {
			return errorf(http.StatusUnauthorized, "unauthorized", "this inbox needs its token: Authorization: Bearer TOKEN, or ?token=TOKEN")
		}
		// A client out of failures is refused even with the right token: a guesser
		// must not learn which of its guesses would have worked.
		key := s.clientKey(c)
		if s.opts.LoginFailures.Empty(key) {
			s.metrics.refused.WithLabelValues("failures").Inc()
			return errorf(http.StatusTooManyRequests, "too_many_failures", "too many wrong tokens from your address, try later")
		}
		if s.opts.APIKey != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.APIKey)) == 1 || s.tokens.Valid(inbox, token) {
			return next(c)
		}
		s.metrics.authFailures.Inc()
		s.opts.LoginFailures.Allow(key)
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
