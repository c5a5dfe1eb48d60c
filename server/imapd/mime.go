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

// textContains reports whether the text of a message contains pattern,
// case-insensitively: its body (SEARCH BODY) or its header and body (SEARCH TEXT).
// Text parts are read with their transfer encoding and charset undone; other parts
// (attachments) are not text and are not searched.
func textContains(raw []byte, pattern string, withHeader bool) bool {
	if pattern == "" {
		return true
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	h, _ := textproto.ReadHeader(br)
	s := &textSearch{pattern: strings.ToLower(pattern), withHeader: withHeader}
	return s.part(h, br, 0, "")
}

type textSearch struct {
	pattern    string
	withHeader bool
	parts      int
}

func (s *textSearch) part(rawHeader textproto.Header, body io.Reader, depth int, parent string) bool {
	s.parts++
	if s.parts > maxParts || depth > maxDepth {
		return false
	}
	if s.withHeader && s.headerMatches(rawHeader) {
		return true
	}
	h := message.Header{Header: rawHeader}
	mediaType, params := contentType(h, parent)
	switch {
	case strings.HasPrefix(mediaType, "multipart/"):
		mr := textproto.NewMultipartReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				return false
			}
			if s.part(p.Header, p, depth+1, mediaType) {
				return true
			}
		}
	case mediaType == "message/rfc822" || mediaType == "message/global":
		e, _ := message.New(h, body)
		if e == nil {
			return false
		}
		br := bufio.NewReader(e.Body)
		child, _ := textproto.ReadHeader(br)
		// The header of an attached message is its text, for BODY too.
		if !s.withHeader && s.headerMatches(child) {
			return true
		}
		return s.part(child, br, depth+1, "")
	case strings.HasPrefix(mediaType, "text/"):
		e, _ := message.New(h, body)
		if e == nil {
			return false
		}
		b, _ := io.ReadAll(e.Body)
		return strings.Contains(strings.ToLower(string(b)), s.pattern)
	}
	return false
}

func (s *textSearch) headerMatches(h textproto.Header) bool {
	for f := h.Fields(); f.Next(); {
		if strings.Contains(strings.ToLower(f.Key()+": "+decodeField(f.Value())), s.pattern) {
			return true
		}
	}
	return false
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
