// Package parse turns a stored raw RFC 5322 message into what the QA API shows: the
// header fields, the text and HTML bodies, the attachments, and the links and
// one-time codes a tester reads out of a sign-up mail.
//
// Everything here reads mail from strangers: nothing fails on a malformed message,
// the walk is bounded (maxParts, maxDepth) and never reads past the raw bytes.
package parse

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Parsed is a message as the API shows it.
type Parsed struct {
	Headers     []Header         // every header field in order, names as written, text values decoded from RFC 2047
	Text        string           // the text/plain body decoded to UTF-8 with LF line ends; the HTML rendered as text when there is none
	HTML        string           // the text/html body decoded to UTF-8, as sent (not sanitized: the UI isolates it)
	Attachments []AttachmentInfo // attachments and inline parts with a file name or Content-ID, in tree order
	Links       []string         // see Links
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

// Message parses a raw message. It never fails on a malformed message: it returns
// what could be parsed. The error is always nil today and is there so a caller already
// handles a limit that may come.
func Message(raw []byte) (*Parsed, error) {
	fields, body := splitHeader(raw)
	p := &Parsed{Headers: make([]Header, len(fields))}
	subject, seenSubject := "", false
	for i, f := range fields {
		p.Headers[i] = Header{Name: f.name, Value: headerText(f.name, f.value)}
		if !seenSubject && strings.EqualFold(f.name, "Subject") {
			subject, seenSubject = p.Headers[i].Value, true
		}
	}

	var w walker
	w.walk(fields, body, 0, "text/plain")
	if w.plain != nil {
		p.Text = normalizeEOL(decodeCharset(w.plain.params["charset"], decodeTransfer(w.plain.encoding, w.plain.body)))
	}
	var rendered string
	var hrefs []string
	if w.html != nil {
		b := decodeTransfer(w.html.encoding, w.html.body)
		cs, ok := w.html.params["charset"]
		if !ok {
			cs = sniffHTMLCharset(b)
		}
		p.HTML = decodeCharset(cs, b)
		rendered, hrefs = renderHTML(p.HTML)
		p.RemoteContent = RemoteContent(p.HTML)
	}
	textIsHTML := false
	if strings.TrimSpace(p.Text) == "" && rendered != "" {
		p.Text, textIsHTML = rendered, true
	}

	p.Attachments = make([]AttachmentInfo, len(w.atts))
	p.spans, p.rawLen = make([]bodySpan, len(w.atts)), len(raw)
	for i, a := range w.atts {
		p.Attachments[i] = a.describe(i)
		p.Attachments[i].Size = decodedSize(a.encoding, a.body)
		p.spans[i] = bodySpan{off: offset(raw, a.body), n: len(a.body), encoding: a.encoding}
	}

	p.Links = links(hrefs, p.Text)
	if textIsHTML {
		rendered = "" // the same text: scanning it twice finds nothing new
	}
	p.Codes = codes(subject, p.Text, rendered)
	return p, nil
}

// Attachment returns the decoded bytes of attachment index, numbered as in
// Parsed.Attachments, and its description.
func Attachment(raw []byte, index int) ([]byte, AttachmentInfo, error) {
	fields, body := splitHeader(raw)
	var w walker
	w.walk(fields, body, 0, "text/plain")
	if index < 0 || index >= len(w.atts) {
		return nil, AttachmentInfo{}, ErrNoAttachment
	}
	a := w.atts[index]
	data := decodeTransfer(a.encoding, a.body)
	att := a.describe(index)
	att.Size = int64(len(data))
	return data, att, nil
}

// Attachment is the package's Attachment for the raw message p was parsed from,
// without walking it again: a message of 1000 inline images costs one walk, not one
// per image shown.
func (p *Parsed) Attachment(raw []byte, index int) ([]byte, AttachmentInfo, error) {
	if index < 0 || index >= len(p.Attachments) {
		return nil, AttachmentInfo{}, ErrNoAttachment
	}
	sp := p.spans[index]
	if len(raw) != p.rawLen || sp.off < 0 {
		return Attachment(raw, index) // not the bytes p came from: walk them
	}
	data := decodeTransfer(sp.encoding, raw[sp.off:sp.off+sp.n])
	a := p.Attachments[index]
	a.Size = int64(len(data))
	return data, a, nil
}

// AttachmentReader is Parsed.Attachment as a reader, for a route that sends the bytes
// on: a base64 part, the usual encoding of a large attachment, is decoded as it is
// read, where Attachment holds a clean copy of the text and the decoded bytes (a 7 MiB
// attachment, 16 MiB per reader, kept by a slow one until it has read it all). The
// bytes are Attachment's, and the description's Size is their number.
func (p *Parsed) AttachmentReader(raw []byte, index int) (io.Reader, AttachmentInfo, error) {
	if index < 0 || index >= len(p.Attachments) {
		return nil, AttachmentInfo{}, ErrNoAttachment
	}
	sp := p.spans[index]
	if len(raw) != p.rawLen || sp.off < 0 || sp.encoding != "base64" {
		data, a, err := p.Attachment(raw, index)
		if err != nil {
			return nil, a, err
		}
		return bytes.NewReader(data), a, nil
	}
	body := raw[sp.off : sp.off+sp.n]
	n := base64Chars(body)
	a := p.Attachments[index]
	a.Size = int64(n * 6 / 8)
	return base64.NewDecoder(base64.RawStdEncoding, &base64Text{b: body, left: n}), a, nil
}

// offset is where sub, a slice of raw as every part's body is, starts in raw; -1 if it
// is not one.
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

// walker collects the body parts and attachments of a MIME tree.
type walker struct {
	parts       int
	plain, html *part
	atts        []*part
}

func (w *walker) walk(fields []field, body []byte, depth int, defaultType string) {
	if w.parts >= maxParts {
		return
	}
	w.parts++
	p := newPart(fields, body, defaultType)
	if !strings.HasPrefix(p.mediaType, "multipart/") {
		w.leaf(p)
		return
	}
	if depth >= maxDepth {
		return
	}
	// RFC 2046 section 6: a multipart body has no transfer encoding of its own, so a
	// Content-Transfer-Encoding on it is ignored, as go-message does.
	subs, ok := splitMultipart(body, p.params["boundary"], maxParts-w.parts)
	if !ok {
		// No delimiter anywhere: show the body as text rather than nothing.
		p.mediaType, p.params = "text/plain", nil
		w.leaf(p)
		return
	}
	childType := "text/plain"
	if p.mediaType == "multipart/digest" {
		childType = "message/rfc822"
	}
	for _, s := range subs {
		f, b := splitHeader(s)
		w.walk(f, b, depth+1, childType)
	}
}

// leaf files a part as the text body, the HTML body, an attachment, or nothing (a
// second text alternative).
func (w *walker) leaf(p *part) {
	if p.disposition != "attachment" && p.filename() == "" {
		switch {
		case p.mediaType == "text/plain" && w.plain == nil:
			w.plain = p
			return
		case p.mediaType == "text/html" && w.html == nil:
			w.html = p
			return
		case (p.mediaType == "text/plain" || p.mediaType == "text/html") && p.contentID == "":
			return
		}
	}
	w.atts = append(w.atts, p)
}

// filename is the name the sender gave the part, decoded (go-message applies RFC 2231
// and RFC 2047 to parameters), not yet made safe.
func (p *part) filename() string {
	if n := p.dispParams["filename"]; n != "" {
		return n
	}
	return p.params["name"]
}

func (p *part) describe(index int) AttachmentInfo {
	a := AttachmentInfo{
		Index:       index,
		ContentType: p.mediaType,
		ContentID:   validUTF8(p.contentID),
		// RFC 2183 section 2.8: an unknown disposition is treated as attachment.
		Inline: p.disposition == "" || p.disposition == "inline",
	}
	name := p.filename()
	if name == "" && isMessage(p.mediaType) {
		name = "message.eml"
		f, _ := splitHeader(decodeTransfer(p.encoding, p.body))
		if s := strings.TrimSpace(headerText("Subject", get(f, "Subject"))); s != "" {
			name = s + ".eml"
		}
	}
	a.Filename = safeName(name, p.mediaType, index)
	if isMessage(p.mediaType) {
		a.ContentType = "message/rfc822"
	}
	return a
}

func isMessage(mediaType string) bool {
	return mediaType == "message/rfc822" || mediaType == "message/global"
}

// maxNameBytes keeps file names within what every file system accepts.
const maxNameBytes = 200

// safeName reduces a sender's file name to a base name a browser or shell can take:
// no directories, no control or invisible format characters (a right-to-left override
// makes "gpj.exe" read as "exe.jpg"), no "." or "..". Nothing left is a part without a
// name (see unnamed).
func safeName(name, mediaType string, index int) string {
	name = validUTF8(name)
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
