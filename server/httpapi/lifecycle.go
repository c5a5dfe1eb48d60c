package httpapi

// An inbox's lifecycle (issue 17 item 6): its settings read (GET) and changed (PATCH),
// a message's flags, burn after read, and the SMTP faults a test declares (item 5; the
// receiver applies them).

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/storage"
)

// Bounds of the faults an inbox may declare.
const (
	maxFaults       = 10
	maxFaultTimes   = 1000
	maxFaultMessage = 200
	// maxFaultDelay is RFC 5321 section 4.5.3.2's shortest client timeout (5 minutes,
	// for the greeting, MAIL, RCPT and DATA): a longer delay tests nothing but a timeout.
	maxFaultDelay = 5 * time.Minute
)

var faultStages = []string{"connect", "mail", "rcpt", "data"}

// faultRequest is one fault as a request declares it.
type faultRequest struct {
	Stage   string          `json:"stage"`
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Times   int             `json:"times"`
	Delay   json.RawMessage `json:"delay"` // "2s", or seconds
}

// faultJSON is one fault as answers show it.
type faultJSON struct {
	Stage   string `json:"stage"`
	Code    int    `json:"code"`
	Message string `json:"message"`
	Times   int    `json:"times"`
	Delay   string `json:"delay"` // a Go duration, "0s" for none
	// Attempts is how many attempts the receiver answered with this fault so far.
	Attempts int `json:"attempts"`
	// Remaining is how many more it will; null when Times is 0 (every attempt).
	Remaining *int `json:"remaining"`
}

func toFaultsJSON(faults []storage.Fault) []faultJSON {
	out := make([]faultJSON, len(faults))
	for i, f := range faults {
		out[i] = faultJSON{Stage: f.Stage, Code: f.Code, Message: f.Message, Times: f.Times, Delay: f.Delay.String(), Attempts: f.Attempts}
		if f.Times > 0 {
			left := max(f.Times-f.Attempts, 0)
			out[i].Remaining = &left
		}
	}
	return out
}

// parseFaults reads the "faults" field: null or [] clears them.
func parseFaults(raw json.RawMessage) ([]storage.Fault, error) {
	var list []faultRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_faults", "faults: want a list of {\"stage\", \"code\", \"message\", \"times\", \"delay\"}: %v", err)
	}
	if len(list) > maxFaults {
		return nil, errorf(http.StatusBadRequest, "bad_faults", "faults: %d given, at most %d", len(list), maxFaults)
	}
	var faults []storage.Fault
	for i, r := range list {
		field := fmt.Sprintf("faults[%d]", i)
		if !slices.Contains(faultStages, r.Stage) {
			return nil, errorf(http.StatusBadRequest, "bad_faults", "%s.stage %q: want one of %s", field, r.Stage, strings.Join(faultStages, ", "))
		}
		if r.Code != 0 && (r.Code < 400 || r.Code > 599) {
			return nil, errorf(http.StatusBadRequest, "bad_faults", "%s.code %d: want an SMTP error reply code from 400 to 599, or 0 for a delay alone", field, r.Code)
		}
		if len(r.Message) > maxFaultMessage {
			return nil, errorf(http.StatusBadRequest, "bad_faults", "%s.message: %d characters, at most %d", field, len(r.Message), maxFaultMessage)
		}
		for _, c := range []byte(r.Message) {
			// It goes into an SMTP reply line: a CR or LF would end it and start another.
			if c < ' ' || c > '~' {
				return nil, errorf(http.StatusBadRequest, "bad_faults", "%s.message: only printable ASCII characters may appear (it is sent in an SMTP reply), not %q", field, c)
			}
		}
		if r.Times < 0 || r.Times > maxFaultTimes {
			return nil, errorf(http.StatusBadRequest, "bad_faults", "%s.times %d: want 0 (every attempt) to %d", field, r.Times, maxFaultTimes)
		}
		var delay time.Duration
		if len(r.Delay) > 0 && string(r.Delay) != "null" {
			d, err := parseDuration(r.Delay, field+".delay", "bad_faults")
			if err != nil {
				return nil, err
			}
			if d < 0 || d > maxFaultDelay {
				return nil, errorf(http.StatusBadRequest, "bad_faults", "%s.delay %s: want from 0s to %s (RFC 5321 client timeouts are 5 minutes)", field, d, maxFaultDelay)
			}
			delay = d
		}
		if r.Code == 0 && delay == 0 {
			return nil, errorf(http.StatusBadRequest, "bad_faults", "%s: code 0 refuses nothing, so it needs a delay", field)
		}
		faults = append(faults, storage.Fault{Stage: r.Stage, Code: r.Code, Message: r.Message, Times: r.Times, Delay: delay})
	}
	return faults, nil
}

// inboxJSON is GET /api/v1/inboxes/{address}'s answer.
type inboxJSON struct {
	Address   string `json:"address"`
	TTL       string `json:"ttl"`        // how long mail lives in this inbox, as a Go duration
	ExpiresIn int64  `json:"expires_in"` // the same, in seconds
	// ExpiresAt is when the last of its mail expires; null when it holds none.
	ExpiresAt     *time.Time  `json:"expires_at"`
	BurnAfterRead bool        `json:"burn_after_read"`
	Faults        []faultJSON `json:"faults"`
	Messages      int         `json:"messages"`
	Unread        int         `json:"unread"` // of Messages, those not seen
}

// getInbox answers GET /api/v1/inboxes/{address}.
func (s *Server) getInbox(c echo.Context) error {
	return s.answerInbox(c, inboxOf(c))
}

func (s *Server) answerInbox(c echo.Context, inbox string) error {
	ctx := c.Request().Context()
	set, err := s.store.Settings(ctx, inbox)
	if err != nil {
		return err
	}
	msgs, err := s.store.List(ctx, inbox, storage.Page{})
	if err != nil {
		return err
	}
	ttl := cmp.Or(set.TTL, s.opts.TTL)
	out := inboxJSON{Address: inbox, TTL: ttl.String(), ExpiresIn: int64(ttl / time.Second),
		BurnAfterRead: set.BurnAfterRead, Faults: toFaultsJSON(set.Faults), Messages: len(msgs)}
	for _, m := range msgs {
		if m.Flags&storage.FlagSeen == 0 {
			out.Unread++
		}
		if out.ExpiresAt == nil || m.Expires.After(*out.ExpiresAt) {
			at := m.Expires.UTC()
			out.ExpiresAt = &at
		}
	}
	return c.JSON(http.StatusOK, out)
}

// decodeObject reads a JSON object body into its fields, refusing any not in known.
func (s *Server) decodeObject(c echo.Context, known ...string) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, s.bodyError(err)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, errorf(http.StatusBadRequest, "bad_request", "body: want a JSON object with any of %s: %v", strings.Join(known, ", "), err)
	}
	if dec.More() {
		return nil, errorf(http.StatusBadRequest, "bad_request", "body: want one JSON object")
	}
	for name := range fields {
		if !slices.Contains(known, name) {
			return nil, errorf(http.StatusBadRequest, "bad_request", "body: unknown field %q; want any of %s", name, strings.Join(known, ", "))
		}
	}
	return fields, nil
}

// patchInbox answers PATCH /api/v1/inboxes/{address}: a JSON merge of ttl (null: back
// to the default), burn_after_read and faults (null or []: none) into the inbox's
// settings, answered as GET answers. A new ttl applies to the mail already there.
func (s *Server) patchInbox(c echo.Context) error {
	fields, err := s.decodeObject(c, "ttl", "burn_after_read", "faults")
	if err != nil {
		return err
	}
	ctx, inbox := c.Request().Context(), inboxOf(c)
	set, err := s.store.Settings(ctx, inbox)
	if err != nil {
		return err
	}
	if raw, ok := fields["ttl"]; ok {
		// parseTTL reads null as unset: back to the receiver's default.
		if set.TTL, err = s.parseTTL(raw); err != nil {
			return err
		}
	}
	if raw, ok := fields["burn_after_read"]; ok {
		if err := json.Unmarshal(raw, &set.BurnAfterRead); err != nil {
			return errorf(http.StatusBadRequest, "bad_request", "burn_after_read: want true or false")
		}
	}
	if raw, ok := fields["faults"]; ok {
		if set.Faults, err = parseFaults(raw); err != nil {
			return err
		}
	}
	if err := s.store.SetInbox(ctx, inbox, set); err != nil {
		return err
	}
	return s.answerInbox(c, inbox)
}

var flagFields = []struct {
	name string
	flag storage.Flags
}{{"seen", storage.FlagSeen}, {"flagged", storage.FlagFlagged}, {"answered", storage.FlagAnswered}, {"deleted", storage.FlagDeleted}}

// flagsAnswer is PATCH .../messages/{id}'s answer: the summary with the flags now set.
type flagsAnswer struct {
	summaryJSON
	// Burned says seen:true deleted the message, its inbox being burn after read; the
	// summary is its last state.
	Burned bool `json:"burned"`
}

// patchMessage answers PATCH .../messages/{id}: sets or clears the flags IMAP sees.
func (s *Server) patchMessage(c echo.Context) error {
	names := make([]string, len(flagFields))
	for i, f := range flagFields {
		names[i] = f.name
	}
	fields, err := s.decodeObject(c, names...)
	if err != nil {
		return err
	}
	var add, remove storage.Flags
	for _, f := range flagFields {
		raw, ok := fields[f.name]
		if !ok {
			continue
		}
		var on bool
		if err := json.Unmarshal(raw, &on); err != nil {
			return errorf(http.StatusBadRequest, "bad_request", "%s: want true or false", f.name)
		}
		if on {
			add |= f.flag
		} else {
			remove |= f.flag
		}
	}
	ctx, inbox, id := c.Request().Context(), inboxOf(c), c.Param("id")
	m, err := s.store.Get(ctx, inbox, id)
	if err != nil {
		return err
	}
	if m.Flags, err = s.store.SetFlags(ctx, inbox, id, add, remove); err != nil {
		return err
	}
	out := flagsAnswer{summaryJSON: toSummary(m)}
	if add&storage.FlagSeen != 0 {
		// Only the store knows whether it burned the message (see storage.Store.SetFlags).
		if _, err := s.store.Get(ctx, inbox, id); errors.Is(err, storage.ErrNotFound) {
			out.Burned = true
			s.burned(inbox, id)
		}
	}
	return c.JSON(http.StatusOK, out)
}

// burnAfterRead marks a message read in full (the parsed message, the raw bytes) as
// seen when its inbox burns read mail, so that the store deletes it, once the answer is
// built and before it is sent: of two readers at once, one gets the message and the
// other a 404, and a store that fails to delete it fails the read too.
func (s *Server) burnAfterRead(c echo.Context, inbox, id string) error {
	ctx := c.Request().Context()
	set, err := s.store.Settings(ctx, inbox)
	if err != nil || !set.BurnAfterRead {
		return err
	}
	if _, err := s.store.SetFlags(ctx, inbox, id, storage.FlagSeen, 0); err != nil {
		return err
	}
	s.burned(inbox, id)
	return nil
}

// burned forgets what the API kept of a burned message and counts it.
func (s *Server) burned(inbox, id string) {
	s.cache.drop(inbox, id)
	s.metrics.burned.Inc()
}
