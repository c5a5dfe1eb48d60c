package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
	"github.com/mayfly-mail/mayfly/storage"
)

const defaultWait = 30 * time.Second

// maxCount is the most messages one wait answers.
const maxCount = 1000

// waitFilter is what a waiter is waiting for: the summary's filter, which webhooks
// share (storage.Filter); since means "received after".
type waitFilter struct {
	storage.Filter
	since   time.Time
	sinceID string
	// body and link need the message parsed: body is in the text or the HTML
	// rendered as text, link in a link's URL; every has must hold.
	body, link string
	has        []string
}

// hasKinds are the values of has=.
var hasKinds = []string{"code", "link", "attachment"}

// parsedNeeded reports whether matching reads the message itself, not only its summary.
func (f *waitFilter) parsedNeeded() bool {
	return f.body != "" || f.link != "" || len(f.has) > 0
}

// matchParsed is the part of the match that needs the parsed message.
func (f *waitFilter) matchParsed(p *parse.Parsed) bool {
	for _, h := range f.has {
		if h == "code" && len(p.Codes) == 0 || h == "link" && len(p.Links) == 0 || h == "attachment" && len(p.Attachments) == 0 {
			return false
		}
	}
	if f.link != "" && !slices.ContainsFunc(p.Links, func(u string) bool { return contains(u, f.link) }) {
		return false
	}
	// The text is the HTML rendered when there is no text part; when there are both,
	// the HTML may say what the text does not.
	return f.body == "" || contains(p.Text, f.body) || contains(p.HTMLText, f.body)
}

func (f *waitFilter) match(m *storage.Message) bool {
	return f.Filter.Match(m) && m.Received.After(f.since) && m.ID != f.sinceID
}

// contains reports whether needle, already lower case, is in s, ignoring case.
func contains(s, needle string) bool {
	return needle == "" || strings.Contains(strings.ToLower(s), needle)
}

// parseWait reads the wait's parameters; since=ID needs the store to learn when that
// message arrived.
func (s *Server) parseWait(c echo.Context) (waitFilter, int, time.Duration, error) {
	q := c.QueryParams()
	f := waitFilter{
		Filter: storage.Filter{
			From: q.Get("from"), To: q.Get("to"), Subject: q.Get("subject"), Tag: q.Get("tag"),
			SPF: q.Get("spf"), DKIM: q.Get("dkim"), DMARC: q.Get("dmarc"),
		}.Lower(),
		body: strings.ToLower(q.Get("body")),
		link: strings.ToLower(q.Get("link")),
	}
	for _, v := range q["has"] {
		for h := range strings.SplitSeq(v, ",") {
			h = strings.ToLower(strings.TrimSpace(h))
			if !slices.Contains(hasKinds, h) {
				return f, 0, 0, errorf(http.StatusBadRequest, "bad_parameter", "has=%q: want code, link or attachment", v)
			}
			if !slices.Contains(f.has, h) {
				f.has = append(f.has, h)
			}
		}
	}
	if since := q.Get("since"); since != "" {
		if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
			f.since = t
		} else {
			inbox, _ := c.Get(inboxKey).(string)
			if inbox == "" {
				return f, 0, 0, errorf(http.StatusBadRequest, "bad_parameter", "since=%q: want an RFC 3339 time (a message id names one inbox's message)", since)
			}
			m, err := s.store.Get(c.Request().Context(), inbox, since)
			if errors.Is(err, storage.ErrNotFound) {
				return f, 0, 0, errorf(http.StatusBadRequest, "bad_parameter", "since=%q: neither an RFC 3339 time nor a message of this inbox", since)
			}
			if err != nil {
				return f, 0, 0, err
			}
			f.since, f.sinceID = m.Received, m.ID
		}
	}
	count := 1
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxCount {
			return f, 0, 0, errorf(http.StatusBadRequest, "bad_parameter", "count=%q: want a whole number from 1 to %d", v, maxCount)
		}
		count = n
	}
	timeout := defaultWait
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, serr := strconv.ParseFloat(v, 64)
			d, err = time.Duration(secs*float64(time.Second)), serr
		}
		if err != nil || d <= 0 || d > maxWait {
			return f, 0, 0, errorf(http.StatusBadRequest, "bad_parameter", "timeout=%q: want a duration up to %s, such as 30s", v, maxWait)
		}
		timeout = d
	}
	return f, count, timeout, nil
}

// wait answers GET .../wait: the first count messages that match, oldest first, as
// soon as they are there — at once when they already are, else on the store's events,
// which reach every node. 408 when the timeout passes first.
//
// With expect=none it asserts the opposite: 204 when nothing matched within the
// timeout, 409 with every match found as soon as there is one.
func (s *Server) wait(c echo.Context) error {
	f, count, timeout, err := s.parseWait(c)
	if err != nil {
		return err
	}
	// With expect=none count is not asked for: one match fails the assertion, and the
	// answer shows all there are then, up to the most count may ask for.
	none, count, err := parseExpect(c, count)
	if err != nil {
		return err
	}
	inbox := inboxOf(c)
	return s.waitFor(c, f, count, timeout, none, inbox, func(ctx context.Context) ([]storage.Message, error) {
		return s.store.List(ctx, inbox, storage.Page{})
	})
}

// waitFor is the wait over what list returns (newest first) and the events of watch
// (an inbox, or a namespace's NamespaceWatch).
func (s *Server) waitFor(c echo.Context, f waitFilter, count int, timeout time.Duration, none bool, watch string, list func(context.Context) ([]storage.Message, error)) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
	defer cancel()
	s.metrics.waiters.Inc()
	defer s.metrics.waiters.Dec()

	var found []*storage.Message
	seen := map[string]bool{}
	add := func(m *storage.Message) error {
		if seen[m.ID] || !f.match(m) {
			return nil
		}
		if f.parsedNeeded() {
			// Reading a message to match it is a read like any other, under the
			// client's MAYFLY_HTTP_MAX_READS_PER_IP: a wait over a full inbox must not
			// parse it past that limit.
			release, err := s.awaitRead(c)
			if err != nil {
				return err
			}
			p, err := s.parsed(ctx, m)
			release()
			if err != nil {
				return err
			}
			if !f.matchParsed(p) {
				seen[m.ID] = true // parsed once: a later event for it need not parse again
				return nil
			}
		}
		seen[m.ID] = true
		found = append(found, m)
		return nil
	}
	for len(found) < count {
		// Subscribe before listing, so a message arriving in between is in one or the other.
		events, err := s.store.Subscribe(ctx, watch)
		if err != nil {
			return err
		}
		list, err := list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		for i := len(list) - 1; i >= 0; i-- {
			if err := add(&list[i]); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
		}
		delivered := false
		for len(found) < count {
			e, ok := <-events
			if !ok {
				break // fell behind, lost Redis, or timed out: list again, or stop below
			}
			delivered = true
			if e.Type == storage.EventAdded && e.Message != nil {
				if err := add(e.Message); err != nil {
					if ctx.Err() != nil {
						break
					}
					return err
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		if !delivered && len(found) < count {
			// A subscription that ends at once (a store shutting down) must not spin.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if len(found) < count {
		if c.Request().Context().Err() != nil {
			return c.Request().Context().Err()
		}
		if none {
			return c.NoContent(http.StatusNoContent)
		}
		return errorf(http.StatusRequestTimeout, "timeout", "%d of %d matching messages within %s", len(found), count, timeout)
	}
	status := http.StatusOK
	if none {
		status, count = http.StatusConflict, min(len(found), maxCount)
	}
	slices.SortFunc(found, func(a, b *storage.Message) int {
		if a.Inbox != b.Inbox { // a namespace's wait
			return a.Received.Compare(b.Received)
		}
		return int(int64(a.UID) - int64(b.UID))
	})
	out := struct {
		Messages []*messageJSON `json:"messages"`
	}{Messages: make([]*messageJSON, 0, count)}
	release, err := s.awaitRead(c)
	if err != nil {
		return err
	}
	defer release()
	// One budget for the whole answer: count=1000 of large mail must not make a
	// thousand times one message's answer.
	b := s.answerBudget()
	for _, m := range found[:count] {
		p, err := s.parsed(c.Request().Context(), m)
		if err != nil {
			return err
		}
		mj := s.toMessageJSON(m, p, &b)
		if watch != m.Inbox {
			mj.Inbox = m.Inbox
		}
		out.Messages = append(out.Messages, mj)
	}
	return writeJSON(c, status, out)
}
