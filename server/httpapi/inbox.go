package httpapi

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/storage"
)

type createRequest struct {
	Local         string          `json:"local"`
	Domain        string          `json:"domain"`
	TTL           json.RawMessage `json:"ttl"` // "30m", or seconds
	BurnAfterRead *bool           `json:"burn_after_read"`
	Faults        json.RawMessage `json:"faults"` // see parseFaults
}

type createResponse struct {
	Address   string `json:"address"`
	Token     string `json:"token"`
	ExpiresIn int64  `json:"expires_in"` // how long mail lives in this inbox, in seconds
	TTL       string `json:"ttl"`        // the same, as a Go duration
	// BurnAfterRead and Faults are shown when set.
	BurnAfterRead bool        `json:"burn_after_read,omitempty"`
	Faults        []faultJSON `json:"faults,omitempty"`
}

// suffixLen random base32 characters (50 bits) after two words (15.7 bits) make a name
// of more than 64 bits of entropy: unguessable, unlike a chosen one.
const suffixLen = 10

// createInbox answers POST /api/v1/inboxes: a random address, or a chosen local part,
// on the first domain or one asked for, with its token and its messages' lifetime.
// limitRate has counted it in Options.CreateRate's bucket.
func (s *Server) createInbox(c echo.Context) error {
	var req createRequest
	if err := s.decodeBody(c, &req, true, `{"local", "domain", "ttl", "burn_after_read", "faults"}`); err != nil {
		return err
	}
	domain := s.opts.Domains[0]
	if req.Domain != "" {
		domain = strings.ToLower(req.Domain)
		if !slices.Contains(s.opts.Domains, domain) {
			return errorf(http.StatusBadRequest, "bad_domain", "%q is not one of this service's domains: %s", req.Domain, strings.Join(s.opts.Domains, ", "))
		}
	}
	local := strings.ToLower(req.Local)
	ns, err := s.inboxNamespace(c, &local)
	if err != nil {
		return err
	}
	if local == "" {
		local = randomLocal()
		if ns != nil {
			local = ns.Name + "." + local
		}
	} else if err := checkLocal(local); err != nil {
		return errorf(http.StatusBadRequest, "bad_address", "local %q: %v", req.Local, err)
	} else if randomShape.MatchString(local) {
		// Anyone may ask for a chosen address's token, so chosen addresses are public;
		// random ones stay private only if nobody can choose one.
		return errorf(http.StatusBadRequest, "bad_address", "local %q: names shaped like random ones (word-word-xxxxxxxxxx) are reserved", req.Local)
	}
	ttl, err := s.parseTTL(req.TTL)
	if err != nil {
		return err
	}
	var faults []storage.Fault
	if req.Faults != nil {
		if faults, err = parseFaults(req.Faults); err != nil {
			return err
		}
	}
	inbox := local + "@" + domain
	ctx := c.Request().Context()
	var set storage.InboxSettings
	if req.Local != "" {
		// A chosen inbox may have been created before: it keeps the settings this
		// request does not give.
		if set, err = s.store.Settings(ctx, inbox); err != nil {
			return err
		}
	}
	if ttl > 0 {
		set.TTL = ttl
	} else if ns != nil && ns.TTL > 0 && set.TTL == 0 {
		ttl, set.TTL = ns.TTL, ns.TTL // the namespace's default
	}
	if ns != nil {
		if err := s.store.AdmitInbox(ctx, inbox, time.Now().Add(cmp.Or(set.TTL, s.opts.TTL))); err != nil {
			return limitRefusal(err)
		}
	}
	if req.BurnAfterRead != nil {
		set.BurnAfterRead = *req.BurnAfterRead
	}
	if req.Faults != nil {
		set.Faults = faults
	}
	if ttl > 0 || req.BurnAfterRead != nil || req.Faults != nil {
		if err := s.store.SetInbox(ctx, inbox, set); err != nil {
			return err
		}
		if len(faults) > 0 {
			// Faults equal to those set keep their attempts (storage.Store.SetInbox): show them.
			if set, err = s.store.Settings(ctx, inbox); err != nil {
				return err
			}
		}
	}
	ttl = cmp.Or(set.TTL, s.opts.TTL)
	return c.JSON(http.StatusCreated, createResponse{
		Address:       inbox,
		Token:         s.tokens.Token(inbox),
		ExpiresIn:     int64(ttl / time.Second),
		TTL:           ttl.String(),
		BurnAfterRead: set.BurnAfterRead,
		Faults:        toFaultsJSON(set.Faults),
	})
}

// parseTTL reads a "ttl" field: 0 when absent or null.
func (s *Server) parseTTL(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	ttl, err := parseDuration(raw, "ttl", "bad_ttl")
	if err != nil {
		return 0, err
	}
	if ttl < time.Second || ttl > s.opts.MaxTTL {
		return 0, errorf(http.StatusBadRequest, "bad_ttl", "ttl %s: want between 1s and %s", ttl, s.opts.MaxTTL)
	}
	return ttl, nil
}

// parseDuration reads a duration given as a Go duration string ("30m") or a number of
// seconds; a refusal names field and carries code. The caller checks the range.
func parseDuration(raw json.RawMessage, field, code string) (time.Duration, error) {
	var text string
	var seconds float64
	switch {
	case json.Unmarshal(raw, &text) == nil:
		d, err := time.ParseDuration(text)
		if err != nil {
			return 0, errorf(http.StatusBadRequest, code, "%s %q: want a duration such as \"30m\" or a number of seconds", field, text)
		}
		return d, nil
	case json.Unmarshal(raw, &seconds) == nil && math.Abs(seconds) < math.MaxInt64/float64(time.Second):
		return time.Duration(seconds * float64(time.Second)), nil
	}
	return 0, errorf(http.StatusBadRequest, code, "%s: want a duration such as \"30m\" or a number of seconds", field)
}

var randomShape = regexp.MustCompile(`^[a-z]+-[a-z]+-[a-z2-7]{10}$`)

func randomLocal() string {
	return pick(adjectives) + "-" + pick(nouns) + "-" + strings.ToLower(rand.Text()[:suffixLen])
}

func pick(words []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return words[n.Int64()]
}

var errPlus = errors.New(`"+" separates a tag (box+tag@domain delivers to box@domain)`)

// checkLocal accepts an RFC 5321 dot-atom of at most 64 characters, except "+",
// which Mayfly reads as the start of a tag.
func checkLocal(local string) error {
	if len(local) > 64 {
		return errors.New("longer than 64 characters")
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return errors.New("a dot may not start or end it or follow another")
	}
	for _, r := range local {
		switch {
		case r == '+':
			return errPlus
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.':
		case strings.ContainsRune("!#$%&'*-/=?^_`{|}~", r):
		default:
			return errors.New("only letters, digits and !#$%&'*-/=?^_`{|}~. may appear (RFC 5321 dot-atom)")
		}
	}
	return nil
}

// queryInt reads an optional non-negative integer parameter.
func queryInt(c echo.Context, name string, max int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > max {
		return 0, errorf(http.StatusBadRequest, "bad_parameter", "%s=%q: want a whole number from 0 to %d", name, v, max)
	}
	return n, nil
}

// deleteInbox answers DELETE /api/v1/inboxes/{address}.
func (s *Server) deleteInbox(c echo.Context) error {
	n, err := s.store.DeleteInbox(c.Request().Context(), inboxOf(c))
	if err != nil {
		return err
	}
	s.cache.dropInbox(inboxOf(c))
	return c.JSON(http.StatusOK, map[string]int{"deleted": n})
}
