package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
	"github.com/mayfly-mail/mayfly/storage"
)

// summaryJSON is a message as listings show it.
type summaryJSON struct {
	// Inbox is set in the answers of a namespace's routes, which span its inboxes.
	Inbox          string              `json:"inbox,omitempty"`
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
	// Truncated says a field was cut to keep the answer bounded (see maxSummaryField
	// and Options.MaxTextJSON); the raw and html routes have the whole message.
	Truncated bool `json:"truncated"`
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
	// LinkDetails are Links with the text each shows, in the same order: an
	// anchor's rendered content, "" for a URL written in text.
	LinkDetails []linkJSON `json:"link_details"`
	Codes       []string   `json:"codes"`
	// AuthDetails are the results behind the summary's auth verdicts: per method,
	// its domains, selectors, reasons and policy, from our Authentication-Results field.
	AuthDetails []authDetail `json:"auth_details"`
	// RemoteContent counts what the HTML would load from other hosts (tracking
	// pixels among them); the html route blocks it unless asked with images=1.
	RemoteContent int `json:"remote_content"`
}

type linkJSON struct {
	URL  string `json:"url"`
	Text string `json:"text"`
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

// maxSummaryField bounds the subject and the To addresses of a summary, so that a
// listing costs a few KiB a message whatever the mail's header held.
const maxSummaryField = 2 << 10

func toSummary(m *storage.Message) summaryJSON {
	subject, cutSubject := cut(m.Subject, maxSummaryField)
	to, cutTo := cutList(nonNil(m.To), maxSummaryField)
	s := summaryJSON{
		ID: m.ID, UID: m.UID, From: m.From, To: to, Subject: subject, Truncated: cutSubject || cutTo,
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

// cut returns s cut to at most max bytes at a character boundary, and whether it was.
// What is cut is a copy: a few bytes sliced from a cached 10 MiB body would keep all of
// it alive for as long as the answer is being built, even once the cache let it go.
func cut(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n]), true
}

// cutList keeps the items of l that fit in max bytes together.
func cutList(l []string, max int) ([]string, bool) {
	for i, v := range l {
		if len(v) > max {
			return l[:i], true
		}
		max -= len(v)
	}
	return l, false
}

// maxPage is the most summaries one listing answers; "next" leads to the rest.
const maxPage = 1000

// listMessages answers GET .../messages: summaries, newest first, a page at a time
// (?limit=N&before=UID, at most maxPage); "next" is the before= of the following page.
func (s *Server) listMessages(c echo.Context) error {
	limit, err := queryInt(c, "limit", 10000)
	if err != nil {
		return err
	}
	if limit == 0 || limit > maxPage {
		limit = maxPage
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
	ctx := c.Request().Context()
	m, err := s.store.Get(ctx, inboxOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	p, err := s.parsed(ctx, m)
	if err != nil {
		return err
	}
	b := s.answerBudget()
	out := s.toMessageJSON(m, p, &b)
	if err := s.burnAfterRead(c, m.Inbox, m.ID); err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, out)
}

// parsed returns m parsed, from the cache, or parsed now once for every request that
// wants it meanwhile. Store metadata comes first (the caller's Get, or the wait's List),
// so a message deleted on any node is never answered from the cache.
func (s *Server) parsed(ctx context.Context, m *storage.Message) (*parse.Parsed, error) {
	c, err := s.cachedMessage(ctx, m)
	if err != nil {
		return nil, err
	}
	return c.p, nil
}

func (s *Server) cachedMessage(ctx context.Context, m *storage.Message) (*cached, error) {
	if c, ok := s.cache.get(m.Inbox, m.ID); ok {
		return c, nil
	}
	// Those waiting on the same parse must not fail because the first of them left.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	v, err, _ := s.flight.Do(m.Inbox+"\x00"+m.ID, func() (any, error) {
		if c, ok := s.cache.get(m.Inbox, m.ID); ok {
			return c, nil // parsed by the flight that just ended
		}
		// Parsing costs a few times the message's size while it runs: as many at once
		// as there are cores, whoever asks, bounds that for the whole server.
		select {
		case s.parsing <- struct{}{}:
			defer func() { <-s.parsing }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		raw, err := s.store.Raw(ctx, m.Inbox, m.ID)
		if err != nil {
			return nil, err
		}
		s.parses.Add(1)
		p, err := parse.Message(raw)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", m.ID, err)
		}
		c := &cached{p: p}
		c.images, c.docLen = s.htmlImages(m.Inbox, m.ID, p)
		if c.images != nil {
			// The document shows images of the message: the frame asks for each of them
			// next, and each would read the whole message from the store again (from
			// Redis, 1000 images of a 9 MiB mail are 9 GiB).
			c.raw = raw
		}
		s.cache.put(m.Inbox, m.ID, c, m.Expires)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*cached), nil
}

// defaultMaxTextJSON is Options.MaxTextJSON's default.
const defaultMaxTextJSON = 1 << 20

// budget is how many bytes of text, HTML, header fields and links an answer may still
// carry: a message's share and the answer's whole, so that neither one large mail nor
// a wait for a thousand of them makes an answer without bound.
type budget struct{ left int }

// answerBudget is one answer's: a message's text, HTML, header fields and links at
// their cap each.
func (s *Server) answerBudget() budget { return budget{left: 4 * s.opts.MaxTextJSON} }

// take returns s cut to max bytes and what is left of b, and whether it was cut.
func (b *budget) take(s string, max int) (string, bool) {
	v, cutOff := cut(s, min(max, b.left))
	b.left -= len(v)
	return v, cutOff
}

// toMessageJSON is m and its parse as the API answers them, the large fields cut to
// Options.MaxTextJSON each and to what is left of b.
func (s *Server) toMessageJSON(m *storage.Message, p *parse.Parsed, b *budget) *messageJSON {
	limit := s.opts.MaxTextJSON
	out := &messageJSON{
		summaryJSON:   toSummary(m),
		Headers:       make([]headerJSON, 0, len(p.Headers)),
		Attachments:   make([]attachmentJSON, len(p.Attachments)),
		Links:         []string{},
		LinkDetails:   []linkJSON{},
		Codes:         nonNil(p.Codes),
		RemoteContent: p.RemoteContent,
	}
	var cutText, cutHTML, cutHeaders, cutLinks bool
	out.Text, cutText = b.take(p.Text, limit)
	out.HTML, cutHTML = b.take(p.HTML, limit)
	all := make([]headerJSON, len(p.Headers))
	for i, h := range p.Headers {
		all[i] = headerJSON{Name: h.Name, Value: h.Value}
	}
	out.AuthDetails = authDetails(all, s.opts.Hostname)
	hb := budget{left: min(limit, b.left)}
	for _, h := range all {
		v, c := hb.take(h.Value, len(h.Value))
		if c || len(h.Name) > hb.left {
			cutHeaders = true
			break
		}
		hb.left -= len(h.Name)
		out.Headers = append(out.Headers, headerJSON{Name: h.Name, Value: v})
	}
	b.left -= min(limit, b.left) - hb.left
	lb := budget{left: min(limit, b.left)}
	// A link and its details come together or not at all, so the two lists keep one
	// order and length.
	for _, l := range p.LinkDetails {
		if 2*len(l.URL)+len(l.Text) > lb.left {
			cutLinks = true
			break
		}
		lb.left -= 2*len(l.URL) + len(l.Text)
		out.Links = append(out.Links, l.URL)
		out.LinkDetails = append(out.LinkDetails, linkJSON{URL: l.URL, Text: l.Text})
	}
	b.left -= min(limit, b.left) - lb.left
	out.Truncated = out.Truncated || cutText || cutHTML || cutHeaders || cutLinks
	for i, a := range p.Attachments {
		out.Attachments[i] = attachmentJSON{Index: a.Index, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, ContentID: a.ContentID, Inline: a.Inline}
	}
	return out
}

// writeJSON answers v as JSON without escaping <, > and & as echo's c.JSON does: the
// answer is application/json under nosniff, never HTML, and the escapes made a body
// of "<" six times its size.
func writeJSON(c echo.Context, status int, v any) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	h.Set("X-Content-Type-Options", "nosniff")
	c.Response().WriteHeader(status)
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// getRaw answers GET .../messages/{id}/raw with the bytes exactly as stored.
func (s *Server) getRaw(c echo.Context) error {
	ctx, inbox, id := c.Request().Context(), inboxOf(c), c.Param("id")
	raw, err := s.store.Raw(ctx, inbox, id)
	if err != nil {
		return err
	}
	if err := s.burnAfterRead(c, inbox, id); err != nil {
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
	m, err := s.store.Get(ctx, inbox, id)
	if err != nil {
		return err
	}
	p, err := s.cachedMessage(ctx, m)
	if err != nil {
		return err
	}
	if c.Get(partKey) != nil && !framed(p.p, index) {
		// The frame's key opens the images its HTML shows, nothing else.
		return errorf(http.StatusNotFound, "not_found", "message %s has no image %d", id, index)
	}
	raw := p.raw
	if raw == nil {
		if raw, err = s.store.Raw(ctx, inbox, id); err != nil {
			return err
		}
	}
	data, a, err := p.p.AttachmentReader(raw, index)
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
	if c.Get(partKey) != nil {
		contentType = imageTypes[a.ContentType] // framed says it is one
	}
	c.Response().Header().Set(echo.HeaderContentLength, strconv.FormatInt(a.Size, 10))
	return c.Stream(http.StatusOK, contentType, data)
}

// download sets the headers that keep a browser from rendering a stranger's bytes as
// a page of ours: a download, no type sniffing, and a sandbox if it renders anyway.
func download(c echo.Context, filename string) {
	h := c.Response().Header()
	h.Set("Content-Disposition", parse.ContentDisposition(filename))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
}

// deleteMessage answers DELETE .../messages/{id}.
func (s *Server) deleteMessage(c echo.Context) error {
	if err := s.store.Delete(c.Request().Context(), inboxOf(c), c.Param("id")); err != nil {
		return err
	}
	s.cache.drop(inboxOf(c), c.Param("id"))
	return c.NoContent(http.StatusNoContent)
}
