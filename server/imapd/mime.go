package imapd

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // SEARCH matches text in any charset
	"github.com/emersion/go-message/textproto"
)

// Limits on every walk of a message's MIME tree. A message is data from strangers:
// imapserver.ExtractBodyStructure reads each nested message/rfc822 whole before
// descending into it, which on a 640KB message of 20000 nested parts takes 14GB of
// allocations and most of a minute; nobody reads the thousandth part of a sign-up mail.
const (
	maxParts = 1000
	maxDepth = 50
)

// headerEnd returns where the header of raw ends: the index just past the empty line,
// or len(raw) when there is none (the whole message is header).
func headerEnd(raw []byte) int {
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return 2
	}
	if bytes.HasPrefix(raw, []byte("\n")) {
		return 1
	}
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return len(raw)
		}
		i += j + 1
		if bytes.HasPrefix(raw[i:], []byte("\r\n")) {
			return i + 2
		}
		if bytes.HasPrefix(raw[i:], []byte("\n")) {
			return i + 1
		}
	}
}

// readHeader parses the header of raw as far as it can be read.
func readHeader(raw []byte) textproto.Header {
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw[:headerEnd(raw)])))
	return h
}

func envelope(raw []byte) *imap.Envelope {
	return imapserver.ExtractEnvelope(readHeader(raw))
}

// bodySection returns a FETCH BODY[...] section. The whole message, its header and its
// text are cut from the stored bytes, so that BODY[] is exactly what was received and
// RFC822.SIZE its length; the parts go through imapserver, which re-reads the MIME tree.
func bodySection(raw []byte, item *imap.FetchItemBodySection) []byte {
	var b []byte
	switch {
	case len(item.Part) > maxDepth:
		b = nil
	case len(item.Part) == 0 && item.Specifier == imap.PartSpecifierNone:
		b = raw
	case len(item.Part) == 0 && item.Specifier == imap.PartSpecifierText:
		b = raw[headerEnd(raw):]
	case len(item.Part) == 0 && item.Specifier == imap.PartSpecifierHeader && len(item.HeaderFields) == 0 && len(item.HeaderFieldsNot) == 0:
		b = raw[:headerEnd(raw)]
	default:
		// imapserver applies the partial range itself: ask for the whole section.
		whole := *item
		whole.Partial = nil
		b = imapserver.ExtractBodySection(bytes.NewReader(raw), &whole)
	}
	return partial(b, item.Partial)
}

// binarySection returns a FETCH BINARY[...] section: the part with its content
// transfer encoding undone (RFC 3516).
func binarySection(raw []byte, item *imap.FetchItemBinarySection) []byte {
	if len(item.Part) > maxDepth {
		return nil
	}
	whole := *item
	whole.Partial = nil
	return partial(imapserver.ExtractBinarySection(bytes.NewReader(raw), &whole), item.Partial)
}

// partial cuts <offset.size> out of b; an offset past the end leaves nothing
// (RFC 9051 section 6.4.5).
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset < 0 || p.Offset >= int64(len(b)) {
		return nil
	}
	end := int64(len(b))
	if p.Size >= 0 && p.Size < end-p.Offset {
		end = p.Offset + p.Size
	}
	return b[p.Offset:end]
}

// bodyStructure returns the BODYSTRUCTURE of raw, like imapserver.ExtractBodyStructure
// but in one pass over the bytes, within maxParts and maxDepth, and always in a shape
// imapserver can write (it panics on a multipart with no parts).
func bodyStructure(raw []byte) imap.BodyStructure {
	br := bufio.NewReader(bytes.NewReader(raw))
	h, _ := textproto.ReadHeader(br)
	w := &structureWalk{}
	return w.part(h, br, 0, "")
}

type structureWalk struct {
	parts int
}

func (w *structureWalk) part(rawHeader textproto.Header, body io.Reader, depth int, parent string) imap.BodyStructure {
	w.parts++
	h := message.Header{Header: rawHeader}
	mediaType, params := contentType(h, parent)
	typ, sub, _ := strings.Cut(mediaType, "/")
	descend := depth < maxDepth && w.parts < maxParts

	if typ == "multipart" && descend {
		bs := &imap.BodyStructureMultiPart{Subtype: sub}
		mr := textproto.NewMultipartReader(body, params["boundary"])
		for w.parts < maxParts {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			bs.Children = append(bs.Children, w.part(p.Header, p, depth+1, mediaType))
		}
		if len(bs.Children) == 0 {
			// RFC 2046 section 5.1.1 wants at least one part; a multipart without
			// one reads as a single empty text part.
			bs.Children = []imap.BodyStructure{emptyText()}
		}
		bs.Extended = &imap.BodyStructureMultiPartExt{
			Params:      params,
			Disposition: disposition(h),
			Language:    language(h),
			Location:    h.Get("Content-Location"),
		}
		return bs
	}
	if typ == "multipart" {
		// Too deep or too many parts: shown as one opaque part.
		typ, sub, params = "application", "octet-stream", nil
	}

	cr := &countReader{r: body}
	bs := &imap.BodyStructureSinglePart{
		Type:        typ,
		Subtype:     sub,
		Params:      params,
		ID:          h.Get("Content-Id"),
		Description: h.Get("Content-Description"),
		Encoding:    h.Get("Content-Transfer-Encoding"),
	}
	if (mediaType == "message/rfc822" || mediaType == "message/global") && descend {
		br := bufio.NewReader(cr)
		childHeader, _ := textproto.ReadHeader(br)
		child := w.part(childHeader, br, depth+1, "")
		io.Copy(io.Discard, br)
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      imapserver.ExtractEnvelope(childHeader),
			BodyStructure: child,
			NumLines:      cr.lines,
		}
	} else {
		io.Copy(io.Discard, cr)
		if typ == "text" {
			bs.Text = &imap.BodyStructureText{NumLines: cr.lines}
		}
	}
	bs.Size = uint32(min(cr.n, 1<<32-1))
	bs.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: disposition(h),
		Language:    language(h),
		Location:    h.Get("Content-Location"),
	}
	return bs
}

// contentType returns a part's media type, lower case, with the defaults of RFC 2045
// section 5.2 (text/plain in US-ASCII, also for a type that cannot be parsed or a
// multipart without its boundary) and RFC 2046 section 5.1.5 (message/rfc822 in a
// digest).
func contentType(h message.Header, parent string) (string, map[string]string) {
	if !h.Has("Content-Type") && parent == "multipart/digest" {
		return "message/rfc822", nil
	}
	t, params, err := h.ContentType()
	t = strings.ToLower(t)
	typ, sub, ok := strings.Cut(t, "/")
	if !h.Has("Content-Type") || err != nil || !ok || typ == "" || sub == "" ||
		typ == "multipart" && params["boundary"] == "" {
		return "text/plain", map[string]string{"charset": "us-ascii"}
	}
	return t, params
}

func emptyText() imap.BodyStructure {
	return &imap.BodyStructureSinglePart{
		Type: "text", Subtype: "plain",
		Params:   map[string]string{"charset": "us-ascii"},
		Text:     &imap.BodyStructureText{},
		Extended: &imap.BodyStructureSinglePartExt{},
	}
}

func disposition(h message.Header) *imap.BodyStructureDisposition {
	d, params, _ := h.ContentDisposition()
	if d == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d, Params: params}
}

func language(h message.Header) []string {
	v := h.Get("Content-Language")
	if v == "" {
		return nil
	}
	var langs []string
	for _, l := range strings.Split(v, ",") {
		if l = strings.TrimSpace(l); l != "" {
			langs = append(langs, l)
		}
	}
	return langs
}

// countReader counts the bytes and lines read through it, for a part's size and
// line count.
type countReader struct {
	r     io.Reader
	n     int64
	lines int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.lines += int64(bytes.Count(p[:n], []byte("\n")))
	return n, err
}

// headerContains reports whether a field named key in h contains pattern,
// case-insensitively, after RFC 2047 decoding; an empty pattern asks whether the field
// is there at all (RFC 9051 section 6.4.4, HEADER).
func headerContains(h textproto.Header, key, pattern string) bool {
	pattern = strings.ToLower(pattern)
	for fields := h.FieldsByKey(key); fields.Next(); {
		if pattern == "" {
			return true
		}
		if strings.Contains(strings.ToLower(decodeField(fields.Value())), pattern) {
			return true
		}
	}
	return false
}

// maxSearchText bounds the folded text SEARCH BODY and TEXT look in, per message:
// its header fields, its parts' and attached messages' headers and its text parts, in
// that order, up to 256KiB in all. Text past it is not searched (docs/security.md):
// a sign-up mail or newsletter holds far less, and the bound keeps both the work of a
// search and the cache of searched text small whatever a sender makes of a message.
const maxSearchText = 256 << 10

// searchText is what SEARCH BODY and TEXT match in a message, decoded and folded
// once: its transfer encodings and charsets undone, RFC 2047 words decoded, lower
// case. Fields and parts are separated by NUL, which no search string holds, so a
// match never spans two of them.
type searchText struct {
	header string // header fields of the message and of its MIME parts: TEXT only
	body   string // text parts and the headers of attached messages: BODY and TEXT
}

func (t *searchText) size() int { return len(t.header) + len(t.body) }

// contains reports whether t holds pattern, case-insensitively: in its body (SEARCH
// BODY) or anywhere (SEARCH TEXT). Text parts were read with their transfer encoding
// and charset undone; other parts (attachments) are not text and are not searched.
func (t *searchText) contains(pattern string, withHeader bool) bool {
	if pattern == "" {
		return true
	}
	pattern = strings.ToLower(pattern)
	if strings.IndexByte(pattern, 0) >= 0 {
		return false
	}
	return strings.Contains(t.body, pattern) || withHeader && strings.Contains(t.header, pattern)
}

// extractText reads the searchable text of raw, at most maxSearchText bytes of it.
func extractText(raw []byte) *searchText {
	br := bufio.NewReader(bytes.NewReader(raw))
	h, _ := textproto.ReadHeader(br)
	x := &textExtract{left: maxSearchText}
	x.part(h, br, 0, "", false)
	return &searchText{header: x.header.String(), body: x.body.String()}
}

type textExtract struct {
	header, body strings.Builder
	left         int // bytes the builders may still take
	parts        int
}

// add appends folded text to b, as much of it as the budget leaves; false once the
// budget is spent.
func (x *textExtract) add(b *strings.Builder, text string) bool {
	if x.left <= 0 {
		return false
	}
	text = strings.ToLower(text)
	if len(text)+1 > x.left {
		text = strings.ToValidUTF8(text[:x.left-1], "")
	}
	b.WriteString(text)
	b.WriteByte(0)
	x.left -= len(text) + 1
	return x.left > 0
}

func (x *textExtract) fields(b *strings.Builder, h textproto.Header) bool {
	for f := h.Fields(); f.Next(); {
		if !x.add(b, f.Key()+": "+decodeField(f.Value())) {
			return false
		}
	}
	return true
}

// part collects the text of one part and what it holds (its header too unless
// inBody: that of an attached message, already with the body); false once the budget
// is spent, which ends the walk.
func (x *textExtract) part(rawHeader textproto.Header, body io.Reader, depth int, parent string, inBody bool) bool {
	x.parts++
	if x.parts > maxParts || depth > maxDepth {
		return false
	}
	if !inBody && !x.fields(&x.header, rawHeader) {
		return false
	}
	h := message.Header{Header: rawHeader}
	mediaType, params := contentType(h, parent)
	switch {
	case strings.HasPrefix(mediaType, "multipart/"):
		mr := textproto.NewMultipartReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				return true
			}
			if !x.part(p.Header, p, depth+1, mediaType, false) {
				return false
			}
		}
	case mediaType == "message/rfc822" || mediaType == "message/global":
		e, _ := message.New(h, body)
		if e == nil {
			return true
		}
		br := bufio.NewReader(e.Body)
		child, _ := textproto.ReadHeader(br)
		// The header of an attached message is its text, for BODY too.
		if !x.fields(&x.body, child) {
			return false
		}
		return x.part(child, br, depth+1, "", true)
	case strings.HasPrefix(mediaType, "text/"):
		e, _ := message.New(h, body)
		if e == nil {
			return true
		}
		// What is read past the budget is dropped: folding changes a text's length
		// by a byte or two a rune at most, and rarely.
		b, _ := io.ReadAll(io.LimitReader(e.Body, int64(x.left)))
		return x.add(&x.body, string(b))
	}
	return true
}

// decodeField undoes RFC 2047 encoded words, keeping the field as written where they
// cannot be decoded.
func decodeField(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	h := message.Header{}
	h.Set("X", v)
	if d, err := h.Text("X"); err == nil {
		return d
	}
	return v
}

// envelopeCache keeps the envelopes of recent messages by ID: a message's bytes never
// change, mail clients fetch the envelopes of a whole inbox each time they open it, and
// on Redis each one would cost a round trip for the bytes and a header parse. Two
// generations of at most size entries: a lookup in the old one moves the entry to the
// new, and when the new one is full the old is dropped.
type envelopeCache struct {
	mu       sync.Mutex
	size     int
	cur, old map[string]*imap.Envelope
}

// maxCachedEnvelope bounds what one entry may hold (a To: of thousands of addresses
// is not kept), so the cache stays within roughly size * 2 * 2KiB.
const maxCachedEnvelope = 2 << 10

func newEnvelopeCache(size int) *envelopeCache {
	return &envelopeCache{size: size, cur: make(map[string]*imap.Envelope)}
}

func (c *envelopeCache) get(id string) *imap.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cur[id]; ok {
		return e
	}
	if e, ok := c.old[id]; ok {
		c.putLocked(id, e)
		return e
	}
	return nil
}

func (c *envelopeCache) put(id string, e *imap.Envelope) {
	if envelopeSize(e) > maxCachedEnvelope {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(id, e)
}

func (c *envelopeCache) putLocked(id string, e *imap.Envelope) {
	if len(c.cur) >= c.size {
		c.old, c.cur = c.cur, make(map[string]*imap.Envelope, c.size)
	}
	c.cur[id] = e
}

// reset empties the cache, for benchmarks of the cold path.
func (c *envelopeCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur, c.old = make(map[string]*imap.Envelope), nil
}

func envelopeSize(e *imap.Envelope) int {
	n := len(e.Subject) + len(e.MessageID)
	for _, id := range e.InReplyTo {
		n += len(id)
	}
	for _, l := range [][]imap.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		for _, a := range l {
			n += len(a.Name) + len(a.Mailbox) + len(a.Host) + 16
		}
	}
	return n
}
