// Package mailparse is the one reader of a stored message: the listing's summary, the
// API, IMAP, POP3 and replies all take their facts from Parse, so no two views can
// disagree on what a message holds.
//
// The rule every view shares (docs/architecture.md, "One message reader"):
//
//   - The header ends at the blank line, or at the first line that is neither a field
//     nor a continuation of one; that line starts the body (Message.HeaderEnd).
//     Indented lines before the first field continue nothing: one that reads as a
//     field without its indentation is one, the others are skipped.
//   - The text body is the first text/plain leaf in tree order that is not an
//     attachment (a disposition other than inline, or a file name); the HTML body the
//     first such text/html leaf. Leaves inside attached messages (message/rfc822,
//     message/global) are never bodies: the attached message is one attachment.
//   - A further text/plain leaf that is not an attachment and not inside a
//     multipart/alternative (a list footer in multipart/mixed) is shown after the
//     text body, as Thunderbird shows it: it joins Message.TextParts.
//   - A further text leaf inside a multipart/alternative that is not an attachment
//     (a second text/plain or text/html, text/enriched, text/x-amp-html,
//     text/watch-html; not text/calendar) is another rendering of the body: neither
//     body nor attachment.
//   - Every other leaf is an attachment, in tree order: inline images with a
//     Content-ID, message/rfc822 parts, DSN status parts, unnamed octet-streams,
//     calendar invitations, text parts with a file name, a second text/html outside an
//     alternative. Inline is true for a disposition inline or none.
//   - HasAttachments is len(Attachments) > 0, by that same rule.
//
// Everything here reads mail from strangers: Parse never fails and never panics; the
// walk is bounded in parts (MaxParts), depth (MaxDepth) and bytes copied (past
// 8×len(raw)+1MiB, enough for a chain of seven forwards of a large attachment,
// a multipart is kept whole, as application/octet-stream).
package mailparse

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Limits on the walk: a message is data from strangers, and nobody reads the
// thousandth part of a sign-up mail.
const (
	MaxParts = 1000
	MaxDepth = 50
)

// Message is one parsed message, or one attached message inside another.
type Message struct {
	// Header is the header block, each field's raw bytes kept: textproto.WriteHeader
	// writes the fields back byte for byte (and ends the block with CRLF whatever the
	// message used: BODY[HEADER] byte for byte is Raw()[:HeaderEnd]).
	Header textproto.Header
	// HeaderEnd is where the body starts in the bytes parsed: after the blank line, or
	// at the first line that is neither a header field nor a continuation.
	HeaderEnd int
	// Root is the body tree. Its Path is the message's own ("" for the top, "2" for a
	// message attached as part 2); IMAP numbers a Root that is not multipart as
	// Path+".1" ("1" at the top).
	Root *Part

	TextParts   []*Part // the text/plain leaves that make Text, in tree order
	HTMLPart    *Part   // the text/html body; nil if none
	Attachments []*Part // every other leaf, in tree order

	Subject    string          // decoded
	From       []*mail.Address // the addresses of From, Sender, To, Cc, Bcc and Reply-To
	Sender     []*mail.Address
	To         []*mail.Address
	Cc         []*mail.Address
	Bcc        []*mail.Address
	ReplyTo    []*mail.Address
	Date       time.Time // zero if missing or unparsable
	MessageID  string    // without angle brackets
	InReplyTo  []string  // without angle brackets
	References []string

	raw []byte // the bytes parsed

	hasAttachments bool
}

// Part is one MIME entity of the tree.
type Part struct {
	// Path is the IMAP section number: "" for the top, "1", "1.2"; the parts of an
	// attached message at "2" are "2.1", "2.2".
	Path string
	// Header is the entity's header; HeaderRaw its bytes as sent, blank line included
	// when there is one (BODY[n.MIME]).
	Header    textproto.Header
	HeaderRaw []byte

	MediaType   string            // lower case, e.g. "text/plain"; RFC 2045 defaults applied
	Params      map[string]string // Content-Type parameters, keys lower case, values decoded
	Disposition string            // lower case, "" when absent
	DispParams  map[string]string
	Filename    string // decoded (RFC 2231, RFC 2047, 8-bit) and valid UTF-8; not made safe
	ContentID   string // without angle brackets
	Charset     string // lower case; "us-ascii" for a text/plain that names none (RFC 2046 section 4.1.2); "" for other types
	Encoding    string // Content-Transfer-Encoding, lower case; "" when none was given

	// Body is the body as sent, still transfer-encoded: a slice of the bytes given to
	// Parse wherever it could be located there (Offset >= 0), else a copy.
	Body   []byte
	Offset int // where Body starts in the bytes given to Parse; -1 for a copy
	Lines  int // line breaks in Body, for BODYSTRUCTURE

	Children []*Part  // of a multipart
	Message  *Message // of a message/rfc822 or message/global part

	inAlternative bool
}

// Size is len(Body), for BODYSTRUCTURE.
func (p *Part) Size() int { return len(p.Body) }

// IsMultipart reports whether p is a multipart/* entity.
func (p *Part) IsMultipart() bool { return strings.HasPrefix(p.MediaType, "multipart/") }

// IsMessage reports whether p holds an attached message.
func (p *Part) IsMessage() bool {
	return p.MediaType == "message/rfc822" || p.MediaType == "message/global"
}

// Inline reports whether p is shown in place (disposition inline or none) rather than
// offered as a file. RFC 2183 section 2.8: an unknown disposition is an attachment.
func (p *Part) Inline() bool { return p.Disposition == "" || p.Disposition == "inline" }

// IsAttachment reports whether p is named as a file or not disposed inline (RFC 2183
// section 2.8: an unknown disposition is an attachment): such a leaf is never a body.
func (p *Part) IsAttachment() bool { return !p.Inline() || p.Filename != "" }

// Text is the message's text body: its TextParts decoded to UTF-8, one after the
// other. Line ends are as sent.
func (m *Message) Text() string {
	switch len(m.TextParts) {
	case 0:
		return ""
	case 1:
		return m.TextParts[0].Text()
	}
	var b strings.Builder
	for _, p := range m.TextParts {
		s := p.Text()
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteString("\n")
		}
		b.WriteString(s)
	}
	return b.String()
}

// HTML is the message's HTML body decoded to UTF-8, as sent; "" if none.
func (m *Message) HTML() string {
	if m.HTMLPart == nil {
		return ""
	}
	return m.HTMLPart.Text()
}

// HasAttachments is len(m.Attachments) > 0: the listing's has_attachments. For a
// message read by ParseFacts it is the same answer, which the walk may have found
// before it listed the attachment.
func (m *Message) HasAttachments() bool { return m.hasAttachments }

// Raw is the bytes m was parsed from: the message, or an attached message's bytes.
func (m *Message) Raw() []byte { return m.raw }

// Walk calls fn for each part of m in tree order, the parts of attached messages
// included, until fn returns false.
func (m *Message) Walk(fn func(*Part) bool) {
	walkPart(m.Root, fn)
}

func walkPart(p *Part, fn func(*Part) bool) bool {
	if p == nil {
		return true
	}
	if !fn(p) {
		return false
	}
	for _, c := range p.Children {
		if !walkPart(c, fn) {
			return false
		}
	}
	if p.Message != nil {
		return walkPart(p.Message.Root, fn)
	}
	return true
}

// Section is the part IMAP means by a section number such as "1", "2.1" (RFC 3501
// section 6.4.5): "1" is the body of a message that is not multipart, and the parts of
// an attached message at "2" are "2.1", "2.2"... (its body "2.1" when it is not
// multipart). nil when there is no such part.
func (m *Message) Section(path string) *Part {
	if path == "" {
		return nil
	}
	p := m.Root
	root := true // p is a message's root: "1" names it when it is not multipart
	for i, f := range strings.Split(path, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil
		}
		if i > 0 && p.Message != nil {
			p, root = p.Message.Root, true
		}
		switch {
		case p.IsMultipart():
			if n > len(p.Children) {
				return nil
			}
			p = p.Children[n-1]
		case n != 1 || !root:
			return nil // a leaf has no parts: "1.1" of a text part is nothing
		}
		root = false
	}
	return p
}

// Parse reads raw. It never fails: what cannot be parsed is kept as it can be (a
// header that breaks off starts the body, a multipart without delimiters is text).
func Parse(raw []byte) *Message {
	w := &walker{raw: raw, budget: 8*int64(len(raw)) + 1<<20}
	return w.message(raw, "", 0)
}

// ParseHeader reads only the header of raw, by the same rule as Parse: Header,
// HeaderEnd and the header facts (Subject, From, ..., References). Root is nil, there
// are no bodies and HasAttachments is false: for a reader that needs no body, such as
// a check of a submitted message's sender.
func ParseHeader(raw []byte) *Message {
	fields, _, end := scanHeader(raw, true)
	m := &Message{Header: buildHeader(fields), HeaderEnd: end, raw: raw}
	m.facts()
	return m
}

// ParseFacts reads what a listing shows of raw, as Parse reads it: the header facts
// (Subject, From, To, Date...) and HasAttachments. It stops the walk at the first part
// that is an attachment whatever else the message holds (a leaf that is not text, or
// is named as a file or disposed as one), so the receiver does not locate every base64
// line of a 10 MiB mail to learn that it has an attachment. The rest of the Message
// (Root, TextParts, HTMLPart, Attachments) is what was read up to there: use Parse
// for the views.
func ParseFacts(raw []byte) *Message {
	w := &walker{raw: raw, budget: 8*int64(len(raw)) + 1<<20, facts: true}
	m := w.message(raw, "", 0)
	m.hasAttachments = m.hasAttachments || w.settled
	return m
}

// walker carries the limits of one Parse across its recursion.
type walker struct {
	raw    []byte
	parts  int
	budget int64 // bytes the walk may still copy
	buf    []byte

	facts   bool // ParseFacts: stop once HasAttachments is settled
	settled bool // an attachment was seen and the walk stopped there
}

// message parses the bytes of a message (the top one, or one attached at path).
func (w *walker) message(b []byte, path string, depth int) *Message {
	top := path == "" && depth == 0
	fields, hdrRaw, end := scanHeader(b, top)
	m := &Message{Header: buildHeader(fields), HeaderEnd: end, raw: b}
	w.parts++
	m.Root = w.entity(m.Header, hdrRaw, b[end:], path, depth, "text/plain", false)
	m.facts()
	m.choose()
	return m
}

// entity builds the part with header h and body, and its subtree.
func (w *walker) entity(h textproto.Header, hdrRaw, body []byte, path string, depth int, defaultType string, inAlt bool) *Part {
	p := newPart(h, defaultType)
	p.Path, p.HeaderRaw, p.inAlternative = path, hdrRaw, inAlt
	w.setBody(p, body)
	switch {
	case w.settled:
		return p // ParseFacts knows what it came for
	case p.IsMultipart():
		if depth >= MaxDepth || w.parts >= MaxParts {
			return p // kept, without children
		}
		if w.budget < int64(len(body)) {
			w.opaque(p)
			return p
		}
		if !w.multipart(p, depth) {
			// No delimiter anywhere: show the body as text rather than nothing.
			p.MediaType, p.Params, p.Charset = "text/plain", map[string]string{}, "us-ascii"
		}
	case p.IsMessage():
		if depth >= MaxDepth || w.parts >= MaxParts {
			return p
		}
		inner := p.Body
		if p.Encoding == "base64" || p.Encoding == "quoted-printable" {
			// RFC 2046 section 5.2.1 forbids it; some mailers do it anyway.
			if w.budget < int64(len(inner)) {
				w.opaque(p)
				return p
			}
			d, _ := io.ReadAll(Decode(p.Encoding, inner))
			w.budget -= int64(len(d))
			inner = d
		}
		if path == "" {
			path = "1" // RFC 3501 section 6.4.5: the body of a non-multipart message is part 1
		}
		p.Message = w.message(inner, path, depth+1)
	}
	return p
}

// opaque makes p a part the walk does not enter: the copy budget is spent.
func (w *walker) opaque(p *Part) {
	p.MediaType, p.Params, p.Charset = "application/octet-stream", map[string]string{}, ""
	p.Children, p.Message = nil, nil
}

// setBody sets p's body and where it lies in the top bytes.
func (w *walker) setBody(p *Part, body []byte) {
	p.Body = body
	p.Offset = offset(w.raw, body)
	if !w.facts {
		p.Lines = bytes.Count(body, []byte("\n"))
	}
}

// offset is where sub starts in raw if it is a slice of it; -1 if it is not.
func offset(raw, sub []byte) int {
	if len(sub) == 0 {
		return 0
	}
	off := cap(raw) - cap(sub)
	if off < 0 || off+len(sub) > len(raw) || &raw[off] != &sub[0] {
		return -1
	}
	return off
}

// childPath is the IMAP section number of the i-th (from 1) child of a multipart at
// parent.
func childPath(parent string, i int) string {
	if parent == "" {
		return strconv.Itoa(i)
	}
	return parent + "." + strconv.Itoa(i)
}

// rendering reports whether p, a leaf not chosen as a body, is another rendering of
// the body: a text part inside a multipart/alternative (text/plain, text/html,
// text/enriched, Gmail's text/x-amp-html, Apple's text/watch-html), not named as a
// file. An invitation (text/calendar) is not: it is something to accept.
func (p *Part) rendering() bool {
	return p.inAlternative && !p.IsAttachment() && strings.HasPrefix(p.MediaType, "text/") && p.MediaType != "text/calendar"
}

// choose applies the package rule: text body, HTML body, attachments.
func (m *Message) choose() {
	var visit func(p *Part)
	visit = func(p *Part) {
		if len(p.Children) > 0 {
			for _, c := range p.Children {
				visit(c)
			}
			return
		}
		if p.IsMultipart() {
			return // past MaxDepth or MaxParts: nothing known of it
		}
		if !p.IsAttachment() {
			switch {
			case p.MediaType == "text/plain" && (len(m.TextParts) == 0 || !p.inAlternative):
				m.TextParts = append(m.TextParts, p)
				return
			case p.MediaType == "text/html" && m.HTMLPart == nil:
				m.HTMLPart = p
				return
			case p.rendering():
				return
			}
		}
		m.Attachments = append(m.Attachments, p)
	}
	visit(m.Root)
	m.hasAttachments = len(m.Attachments) > 0
}
