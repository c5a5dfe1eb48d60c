package httpapi

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
	"github.com/mayfly-mail/mayfly/storage"
)

// summaryJSON is a message as listings show it.
type summaryJSON struct {
	ID             string              `json:"id"`
	UID            uint32              `json:"uid"`
	From           string              `json:"from"`
	To             []string            `json:"to"`
	Subject        string              `json:"subject"`
	Date           *time.Time          `json:"date"` // null when the message has no usable Date
	ReceivedAt     time.Time           `json:"received_at"`
	ExpiresAt      time.Time           `json:"expires_at"`
	Size           int64               `json:"size"`
	Seen           bool                `json:"seen"`
	Flags          []string            `json:"flags"`
	Tag            string              `json:"tag"`
	HasAttachments bool                `json:"has_attachments"`
	Sent           bool                `json:"sent"` // a reply this inbox sent, kept with its mail
	Envelope       envelopeJSON        `json:"envelope"`
	Auth           storage.AuthResults `json:"auth"`
}

type envelopeJSON struct {
	From       string   `json:"from"`
	Recipients []string `json:"recipients"`
	RemoteIP   string   `json:"remote_ip"`
	Helo       string   `json:"helo"`
}

// messageJSON is one message parsed: the summary and what a test looks for in it.
type messageJSON struct {
	summaryJSON
	Headers     []headerJSON     `json:"headers"`
	Text        string           `json:"text"`
	HTML        string           `json:"html"`
	Attachments []attachmentJSON `json:"attachments"`
	Links       []string         `json:"links"`
	Codes       []string         `json:"codes"`
	// AuthDetails are the results behind the summary's auth verdicts: per method,
	// its domains, selectors, reasons and policy, from our Authentication-Results field.
	AuthDetails []authDetail `json:"auth_details"`
	// RemoteContent counts what the HTML would load from other hosts (tracking
	// pixels among them); the html route blocks it unless asked with images=1.
	RemoteContent int `json:"remote_content"`
}

type headerJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type attachmentJSON struct {
	Index       int    `json:"index"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	ContentID   string `json:"content_id,omitempty"`
	Inline      bool   `json:"inline"`
}

var flagNames = []struct {
	flag storage.Flags
	name string
}{{storage.FlagSeen, `\Seen`}, {storage.FlagAnswered, `\Answered`}, {storage.FlagFlagged, `\Flagged`}, {storage.FlagDeleted, `\Deleted`}}

func toSummary(m *storage.Message) summaryJSON {
	s := summaryJSON{
		ID: m.ID, UID: m.UID, From: m.From, To: nonNil(m.To), Subject: m.Subject,
		ReceivedAt: m.Received.UTC(), ExpiresAt: m.Expires.UTC(), Size: m.Size,
		Seen: m.Flags&storage.FlagSeen != 0, Flags: []string{}, Tag: m.Tag, HasAttachments: m.HasAttachments, Sent: m.Sent,
		Envelope: envelopeJSON{From: m.Envelope.From, Recipients: nonNil(m.Envelope.Recipients), RemoteIP: m.Envelope.RemoteIP, Helo: m.Envelope.Helo},
		Auth:     m.Auth,
	}
	if !m.Date.IsZero() {
		d := m.Date
		s.Date = &d
	}
	for _, f := range flagNames {
		if m.Flags&f.flag != 0 {
			s.Flags = append(s.Flags, f.name)
		}
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// listMessages answers GET .../messages: summaries, newest first, a page at a time
// (?limit=N&before=UID); "next" is the before= of the following page.
func (s *Server) listMessages(c echo.Context) error {
	limit, err := queryInt(c, "limit", 10000)
	if err != nil {
		return err
	}
	before, err := queryInt(c, "before", 1<<32-1)
	if err != nil {
		return err
	}
	tag := c.QueryParam("tag")
	msgs, err := s.store.List(c.Request().Context(), inboxOf(c), storage.Page{Before: uint32(before), Limit: limit})
	if err != nil {
		return err
	}
	out := struct {
		Messages []summaryJSON `json:"messages"`
		Next     *uint32       `json:"next"` // null on the last page
	}{Messages: make([]summaryJSON, 0, len(msgs))}
	for i := range msgs {
		if tag == "" || msgs[i].Tag == tag {
			out.Messages = append(out.Messages, toSummary(&msgs[i]))
		}
	}
	if limit > 0 && len(msgs) == limit && msgs[len(msgs)-1].UID > 1 {
		next := msgs[len(msgs)-1].UID
		out.Next = &next
	}
	return c.JSON(http.StatusOK, out)
}

// getMessage answers GET .../messages/{id}: the message parsed, links and codes included.
func (s *Server) getMessage(c echo.Context) error {
	m, err := s.store.Get(c.Request().Context(), inboxOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	out, err := s.parsedMessage(c.Request().Context(), m)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// parsedMessage parses m's raw bytes once; later requests, and every waiter woken by
// the same message, take it from the cache. Stored bytes never change, so the cache
// needs no invalidation, only a bound.
func (s *Server) parsedMessage(ctx context.Context, m *storage.Message) (*messageJSON, error) {
	p, ok := s.parsed.get(m.ID)
	if !ok {
		raw, err := s.store.Raw(ctx, m.Inbox, m.ID)
		if err != nil {
			return nil, err
		}
		if p, err = parse.Message(raw); err != nil {
			return nil, fmt.Errorf("parse %s: %w", m.ID, err)
		}
		s.parsed.put(m.ID, p)
	}
	out := &messageJSON{
		summaryJSON:   toSummary(m),
		Headers:       make([]headerJSON, len(p.Headers)),
		Text:          p.Text,
		HTML:          p.HTML,
		Attachments:   make([]attachmentJSON, len(p.Attachments)),
		Links:         nonNil(p.Links),
		Codes:         nonNil(p.Codes),
		RemoteContent: p.RemoteContent,
	}
	for i, h := range p.Headers {
		out.Headers[i] = headerJSON{Name: h.Name, Value: h.Value}
	}
	out.AuthDetails = authDetails(out.Headers, s.opts.Hostname)
	for i, a := range p.Attachments {
		out.Attachments[i] = attachmentJSON{Index: a.Index, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, ContentID: a.ContentID, Inline: a.Inline}
	}
	return out, nil
}

// getRaw answers GET .../messages/{id}/raw with the bytes exactly as stored.
func (s *Server) getRaw(c echo.Context) error {
	ctx, inbox, id := c.Request().Context(), inboxOf(c), c.Param("id")
	raw, err := s.store.Raw(ctx, inbox, id)
	if err != nil {
		return err
	}
	download(c, id+".eml")
	return c.Blob(http.StatusOK, "message/rfc822", raw)
}

// getAttachment answers GET .../messages/{id}/attachments/{index}: always as a download,
// so an HTML or SVG attachment never runs as a page of our origin.
func (s *Server) getAttachment(c echo.Context) error {
	index, err := strconv.Atoi(c.Param("index"))
	if err != nil || index < 0 {
		return errorf(http.StatusBadRequest, "bad_parameter", "attachment index %q: want a whole number", c.Param("index"))
	}
	ctx, inbox, id := c.Request().Context(), inboxOf(c), c.Param("id")
	raw, err := s.store.Raw(ctx, inbox, id)
	if err != nil {
		return err
	}
	data, a, err := parse.Attachment(raw, index)
	if errors.Is(err, parse.ErrNoAttachment) {
		return errorf(http.StatusNotFound, "not_found", "message %s has no attachment %d", id, index)
	}
	if err != nil {
		return fmt.Errorf("attachment %d of %s: %w", index, id, err)
	}
	download(c, a.Filename)
	contentType := a.ContentType
	if _, _, err := mime.ParseMediaType(contentType); err != nil || contentType == "" {
		contentType = "application/octet-stream"
	}
	return c.Blob(http.StatusOK, contentType, data)
}

// download sets the headers that keep a browser from rendering a stranger's bytes as
// a page of ours: a download, no type sniffing, and a sandbox if it renders anyway.
func download(c echo.Context, filename string) {
	h := c.Response().Header()
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
}

// deleteMessage answers DELETE .../messages/{id}.
func (s *Server) deleteMessage(c echo.Context) error {
	if err := s.store.Delete(c.Request().Context(), inboxOf(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// parseCache is a small LRU of parsed messages by ID.
type parseCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recent; values are *cacheEntry
	byID  map[string]*list.Element
}

type cacheEntry struct {
	id string
	p  *parse.Parsed
}

func newParseCache(max int) *parseCache {
	return &parseCache{max: max, order: list.New(), byID: make(map[string]*list.Element)}
}

func (c *parseCache) get(id string) (*parse.Parsed, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).p, true
}

func (c *parseCache) put(id string, p *parse.Parsed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.byID[id] = c.order.PushFront(&cacheEntry{id: id, p: p})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(*cacheEntry).id)
	}
}
