// Package parse turns a stored raw RFC 5322 message into what the QA API shows: the
// header fields, the text and HTML bodies, the attachments, and the links and
// one-time codes a tester reads out of a sign-up mail.
//
// The message itself is read by server/mailparse, the reader every view shares (its
// rule for text, HTML and attachments is theirs too); what is here is the API's own:
// links, codes, the HTML's rendering as text, safe file names.
package parse

import (
	"bytes"
	"errors"
	"io"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mayfly-mail/mayfly/server/mailparse"
)

// Parsed is a message as the API shows it.
type Parsed struct {
	Headers []Header // every header field in order, names as written, text values decoded from RFC 2047
	Text    string   // the text/plain body decoded to UTF-8 with LF line ends; the HTML rendered as text when there is none
	HTML    string   // the text/html body decoded to UTF-8, as sent (not sanitized: the UI isolates it)
	// HTMLText is the HTML rendered as text when the message also has a text body
	// (else Text is that rendering and HTMLText is empty): a wait's body filter reads
	// it, as the HTML may say what the text does not.
	HTMLText    string
	Attachments []AttachmentInfo // attachments and inline parts with a file name or Content-ID, in tree order
	Links       []string         // see Links
	LinkDetails []Link           // Links with their text, in the same order
	Codes       []string         // see Codes
	// RemoteContent is how many things the HTML would fetch from elsewhere when shown
	// (see RemoteContent).
	RemoteContent int

	// spans are where each attachment's body lies in the raw message, so serving one
	// needs no second walk of the tree (see Parsed.Attachment).
	spans  []bodySpan
	rawLen int
}

// bodySpan is an attachment body's place in the raw bytes and its transfer encoding.
type bodySpan struct {
	off, n   int
	encoding string
}

// Header is one header field.
type Header struct {
	Name  string
	Value string
}

// AttachmentInfo describes one attachment; Attachment returns its bytes. (It cannot
// share the function's name in Go.)
type AttachmentInfo struct {
	Index       int    // position in Parsed.Attachments, used in /attachments/{index}
	Filename    string // decoded, reduced to a safe base name; when missing, see unnamed; offered under it by ContentDisposition
	ContentType string // media type, lower case, e.g. "application/pdf"
	Size        int64  // decoded size in bytes
	ContentID   string // without angle brackets; "" if none
	Inline      bool   // Content-Disposition inline (or none) as opposed to attachment
}

// ErrNoAttachment is returned by Attachment for an index the message does not have.
var ErrNoAttachment = errors.New("parse: no such attachment")

// Limits of the walk, mailparse's (kept here for the tests that check them).
const (
	maxParts = mailparse.MaxParts
	maxDepth = mailparse.MaxDepth
)

// Message parses a raw message with mailparse, the one reader every view shares. It
// never fails on a malformed message: it returns what could be parsed. The error is
// always nil today and is there so a caller already handles a limit that may come.
func Message(raw []byte) (*Parsed, error) {
	m := mailparse.Parse(raw)
	fields := m.Headers()
	p := &Parsed{Headers: make([]Header, len(fields))}
	subject, seenSubject := "", false
	for i, f := range fields {
		p.Headers[i] = Header{Name: f.Name, Value: f.Value}
		if !seenSubject && strings.EqualFold(f.Name, "Subject") {
			subject, seenSubject = f.Value, true
		}
	}

	p.Text = normalizeEOL(m.Text())
	var rendered string
	var anchors []anchor
	if m.HTMLPart != nil {
		p.HTML = m.HTML()
		rendered, anchors = renderAnchors(p.HTML)
		p.RemoteContent = RemoteContent(p.HTML)
	}
	textIsHTML := false
	if strings.TrimSpace(p.Text) == "" && rendered != "" {
		p.Text, textIsHTML = rendered, true
	}

	p.Attachments = make([]AttachmentInfo, len(m.Attachments))
	p.spans, p.rawLen = make([]bodySpan, len(m.Attachments)), len(raw)
	for i, a := range m.Attachments {
		p.Attachments[i] = describe(a, i)
		p.Attachments[i].Size = a.DecodedSize()
		p.spans[i] = bodySpan{off: a.Offset, n: len(a.Body), encoding: a.Encoding}
	}

	p.LinkDetails = links(anchors, p.Text)
	p.Links = urls(p.LinkDetails)
	if textIsHTML {
		rendered = "" // the same text: scanning it twice finds nothing new
	}
	p.HTMLText = rendered
	p.Codes = codes(subject, p.Text, rendered)
	return p, nil
}

// Attachment returns the decoded bytes of attachment index, numbered as in
// Parsed.Attachments, and its description.
func Attachment(raw []byte, index int) ([]byte, AttachmentInfo, error) {
	m := mailparse.Parse(raw)
	if index < 0 || index >= len(m.Attachments) {
		return nil, AttachmentInfo{}, ErrNoAttachment
	}
	a := m.Attachments[index]
	data, _ := io.ReadAll(a.Decoded())
	att := describe(a, index)
	att.Size = int64(len(data))
	return data, att, nil
}

// Attachment is the package's Attachment for the raw message p was parsed from,
// without walking it again: a message of 1000 inline images costs one walk, not one
// per image shown.
func (p *Parsed) Attachment(raw []byte, index int) ([]byte, AttachmentInfo, error) {
	r, a, err := p.AttachmentReader(raw, index)
	if err != nil {
		return nil, a, err
	}
	data, _ := io.ReadAll(r)
	return data, a, nil
}

// AttachmentReader is Parsed.Attachment as a reader, for a route that sends the bytes
// on: the part is decoded as it is read, from its place in raw, where a copy would
// hold its text and its decoded bytes (a 7 MiB attachment, 16 MiB per reader, kept by
// a slow one until it has read it all). The bytes are Attachment's, and the
// description's Size is their number.
func (p *Parsed) AttachmentReader(raw []byte, index int) (io.Reader, AttachmentInfo, error) {
	if index < 0 || index >= len(p.Attachments) {
		return nil, AttachmentInfo{}, ErrNoAttachment
	}
	sp := p.spans[index]
	if len(raw) != p.rawLen || sp.off < 0 || sp.off+sp.n > len(raw) {
		data, a, err := Attachment(raw, index) // not the bytes p came from: walk them
		if err != nil {
			return nil, a, err
		}
		return bytes.NewReader(data), a, nil
	}
	body := raw[sp.off : sp.off+sp.n]
	a := p.Attachments[index]
	a.Size = mailparse.DecodedSize(sp.encoding, body)
	return mailparse.Decode(sp.encoding, body), a, nil
}

// describe is the API's description of an attachment.
func describe(p *mailparse.Part, index int) AttachmentInfo {
	a := AttachmentInfo{
		Index:       index,
		ContentType: p.MediaType,
		ContentID:   p.ContentID,
		Inline:      p.Inline(),
	}
	name := p.Filename
	if name == "" && p.IsMessage() {
		name = "message.eml"
		if p.Message != nil && p.Message.Subject != "" {
			name = p.Message.Subject + ".eml"
		}
	}
	a.Filename = safeName(name, p.MediaType, index)
	if p.IsMessage() {
		a.ContentType = "message/rfc822"
	}
	return a
}

// maxNameBytes keeps file names within what every file system accepts.
const maxNameBytes = 200

// safeName reduces a sender's file name to a base name a browser or shell can take:
// no directories, no control or invisible format characters (a right-to-left override
// makes "gpj.exe" read as "exe.jpg"), no "." or "..". Nothing left is a part without a
// name (see unnamed).
func safeName(name, mediaType string, index int) string {
	name = mailparse.ValidUTF8(name)
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(strings.TrimRight(name, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if len(name) > maxNameBytes {
		ext := path.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		stem := name[:maxNameBytes-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
		name = stem + ext
	}
	if name == "" || name == "." || name == ".." || name == "/" {
		return unnamed(mediaType, index)
	}
	return name
}

// normalizeEOL turns CRLF and lone CR into LF, the line end the API's clients expect.
func normalizeEOL(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}
