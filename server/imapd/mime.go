package imapd

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/mayfly-mail/mayfly/server/mailparse"
)

// Every view of a message reads it through mailparse (its package doc states the rule
// the views share): ENVELOPE from its header facts, BODYSTRUCTURE from its tree, BODY
// and BINARY sections from its parts, SEARCH from its search text. The walk is bounded
// there (mailparse.MaxParts, MaxDepth) for every view at once.

// envelope is a message's ENVELOPE: its header facts as mailparse reads them, so that a
// folded first line, a header cut short or a broken From shows in IMAP as in the API.
func envelope(m *mailparse.Message) *imap.Envelope {
	e := &imap.Envelope{
		Date:      m.Date,
		Subject:   m.Subject,
		InReplyTo: m.InReplyTo,
		MessageID: m.MessageID,
	}
	for i, dst := range []*[]imap.Address{&e.From, &e.Sender, &e.ReplyTo, &e.To, &e.Cc, &e.Bcc} {
		list := m.From
		switch i {
		case 1:
			list = m.Sender
		case 2:
			list = m.ReplyTo
		case 3:
			list = m.To
		case 4:
			list = m.Cc
		case 5:
			list = m.Bcc
		}
		for _, a := range list {
			mailbox, host := a.Address, ""
			if at := strings.LastIndexByte(mailbox, '@'); at >= 0 {
				mailbox, host = mailbox[:at], mailbox[at+1:]
			}
			if mailbox == "" {
				mailbox = missingMailbox
			}
			if host == "" {
				host = missingDomain
			}
			*dst = append(*dst, imap.Address{Name: a.Name, Mailbox: mailbox, Host: host})
		}
	}
	return e
}

// headerEnvelope is the ENVELOPE of raw read from its header alone, for a FETCH that
// asks for nothing else: a mail client opening an inbox fetches the envelopes of every
// message, and the body walk would be most of the work. mailparse ends a header at the
// first empty line or before, so the bytes up to that line hold all it reads of the
// header, and their facts are the whole message's.
func headerEnvelope(raw []byte) *imap.Envelope {
	end := len(raw)
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			break
		}
		line := raw[i : i+j]
		i += j + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			end = i
			break
		}
	}
	return envelope(mailparse.Parse(raw[:end]))
}

// Placeholders for the part of an address a broken field leaves out ("From: foo"
// reads as the name foo): an address with no host is a group marker in ENVELOPE (RFC
// 9051 section 7.5.2), which clients hide, so the sender would not show at all.
// Dovecot writes the same words.
const (
	missingMailbox = "MISSING_MAILBOX"
	missingDomain  = "MISSING_DOMAIN"
)

// sectionPath is the IMAP section number of part, as mailparse numbers its parts.
func sectionPath(part []int) string {
	var b strings.Builder
	for i, n := range part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// bodySection returns a FETCH BODY[...] section (RFC 9051 section 6.4.5), cut from the
// stored bytes where mailparse located it: BODY[] is exactly what was received and
// RFC822.SIZE its length, BODY[HEADER] and BODY[TEXT] split where every view splits the
// message (mailparse.Message.HeaderEnd), and a part's section is its body as sent.
func bodySection(m *mailparse.Message, item *imap.FetchItemBodySection) []byte {
	msg := m // the message whose HEADER or TEXT is asked for
	if len(item.Part) > 0 {
		p := m.Section(sectionPath(item.Part))
		if p == nil {
			return nil
		}
		switch item.Specifier {
		case imap.PartSpecifierNone:
			return partial(p.Body, item.Partial)
		case imap.PartSpecifierMIME:
			return partial(p.HeaderRaw, item.Partial)
		}
		// HEADER and TEXT of a part are those of the message attached there.
		if msg = p.Message; msg == nil {
			return nil
		}
	}
	raw := msg.Raw()
	var b []byte
	switch {
	case item.Specifier == imap.PartSpecifierNone:
		b = raw
	case item.Specifier == imap.PartSpecifierText:
		b = raw[msg.HeaderEnd:]
	case len(item.HeaderFields) > 0 || len(item.HeaderFieldsNot) > 0:
		b = headerFields(msg, item.HeaderFields, item.HeaderFieldsNot)
	default:
		b = raw[:msg.HeaderEnd]
	}
	return partial(b, item.Partial)
}

// headerFields is BODY[HEADER.FIELDS (...)] or BODY[HEADER.FIELDS.NOT (...)]: the
// fields named (or all others) as sent, in their order, and the empty line that ends
// a header.
func headerFields(m *mailparse.Message, names, notNames []string) []byte {
	named := func(key string, list []string) bool {
		for _, n := range list {
			if strings.EqualFold(n, key) {
				return true
			}
		}
		return false
	}
	var b []byte
	for f := m.Header.Fields(); f.Next(); {
		key := f.Key()
		if len(names) > 0 && !named(key, names) || len(notNames) > 0 && named(key, notNames) {
			continue
		}
		raw, err := f.Raw()
		if err != nil {
			continue
		}
		b = append(b, raw...)
	}
	return append(b, "\r\n"...)
}

// binarySection returns a FETCH BINARY[...] section: the part with its content
// transfer encoding undone (RFC 3516), as mailparse decodes it for every view.
// Multiparts and attached messages are sent as they are.
func binarySection(m *mailparse.Message, item *imap.FetchItemBinarySection) []byte {
	if len(item.Part) == 0 {
		return partial(m.Raw(), item.Partial)
	}
	p := m.Section(sectionPath(item.Part))
	if p == nil {
		return nil
	}
	b := p.Body
	if !p.IsMultipart() && !p.IsMessage() {
		b, _ = io.ReadAll(p.Decoded())
	}
	return partial(b, item.Partial)
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

// bodyStructure is the BODYSTRUCTURE of m: mailparse's tree, in a shape imapserver can
// write (it panics on a multipart with no parts).
func bodyStructure(m *mailparse.Message) imap.BodyStructure {
	return partStructure(m.Root)
}

func partStructure(p *mailparse.Part) imap.BodyStructure {
	typ, sub, _ := strings.Cut(p.MediaType, "/")
	if len(p.Children) > 0 {
		bs := &imap.BodyStructureMultiPart{Subtype: sub}
		for _, c := range p.Children {
			bs.Children = append(bs.Children, partStructure(c))
		}
		bs.Extended = &imap.BodyStructureMultiPartExt{
			Params:      params(p.Params),
			Disposition: disposition(p),
			Language:    language(p),
			Location:    strings.TrimSpace(p.Header.Get("Content-Location")),
		}
		return bs
	}
	prm := params(p.Params)
	if p.IsMultipart() || p.IsMessage() && p.Message == nil {
		// Past mailparse.MaxDepth or MaxParts the walk stops, and an entity it did
		// not enter is one opaque part: a multipart needs parts and an attached
		// message its envelope and structure.
		typ, sub, prm = "application", "octet-stream", nil
	}
	if p.MediaType == "text/plain" && prm["charset"] == "" {
		prm = withParam(prm, "charset", p.Charset) // RFC 2046 section 4.1.2's default, said
	}
	bs := &imap.BodyStructureSinglePart{
		Type:        typ,
		Subtype:     sub,
		Params:      prm,
		ID:          strings.TrimSpace(p.Header.Get("Content-Id")),
		Description: strings.TrimSpace(p.Header.Get("Content-Description")),
		Encoding:    p.Encoding,
		Size:        uint32(min(p.Size(), 1<<32-1)),
	}
	switch {
	case typ == "message" && p.Message != nil:
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      envelope(p.Message),
			BodyStructure: partStructure(p.Message.Root),
			NumLines:      int64(p.Lines),
		}
	case typ == "text":
		bs.Text = &imap.BodyStructureText{NumLines: int64(p.Lines)}
	}
	bs.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: disposition(p),
		Language:    language(p),
		Location:    strings.TrimSpace(p.Header.Get("Content-Location")),
	}
	return bs
}

// params copies a part's parameters for the wire: values valid UTF-8, nil when none.
func params(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = mailparse.ValidUTF8(v)
	}
	return out
}

func withParam(m map[string]string, k, v string) map[string]string {
	if v == "" {
		return m
	}
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

func disposition(p *mailparse.Part) *imap.BodyStructureDisposition {
	if p.Disposition == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: p.Disposition, Params: params(p.DispParams)}
}

func language(p *mailparse.Part) []string {
	var langs []string
	for l := range strings.SplitSeq(p.Header.Get("Content-Language"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			langs = append(langs, l)
		}
	}
	return langs
}

// headerContains reports whether a field named key in m's header contains pattern,
// case-insensitively, after RFC 2047 decoding; an empty pattern asks whether the field
// is there at all (RFC 9051 section 6.4.4, HEADER).
func headerContains(m *mailparse.Message, key, pattern string) bool {
	pattern = mailparse.Fold(pattern)
	for fields := m.Header.FieldsByKey(key); fields.Next(); {
		if pattern == "" {
			return true
		}
		if strings.Contains(mailparse.Fold(mailparse.HeaderText(key, fields.Value())), pattern) {
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

// searchText is what SEARCH BODY and TEXT match in a message: mailparse's search
// text, decoded and folded once. Fields and parts are separated by NUL, which no
// search string holds, so a match never spans two of them.
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
	pattern = mailparse.Fold(pattern)
	if strings.IndexByte(pattern, 0) >= 0 {
		return false
	}
	return strings.Contains(t.body, pattern) || withHeader && strings.Contains(t.header, pattern)
}

// extractText reads the searchable text of m, at most maxSearchText bytes of it.
func extractText(m *mailparse.Message) *searchText {
	h, b := m.SearchText(maxSearchText)
	return &searchText{header: h, body: b}
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

// parse reads the stored bytes of message id, or takes them parsed from the cache.
func (srv *Server) parse(id string, raw []byte) *mailparse.Message {
	if m := srv.parsed.get(id); m != nil {
		return m
	}
	m := mailparse.Parse(raw)
	srv.parsed.put(id, m)
	return m
}

// parseCache keeps recently parsed messages by ID for every session: a message's bytes
// never change, and a mail client asks for one message many times over (BODYSTRUCTURE,
// then the text part, then an attachment, each its own FETCH), where each parse is a
// third of the server's work (docs/benchmarks.md). It holds at most max bytes, counted
// as the bytes parsed and a share per part; when full, an arbitrary entry makes room,
// as in textCache. A message over a quarter of it is parsed each time instead, so that
// one large message does not empty the cache of the inbox a client is reading.
type parseCache struct {
	mu    sync.Mutex
	max   int
	bytes int
	m     map[string]parsedEntry
}

type parsedEntry struct {
	msg  *mailparse.Message
	size int
}

// parseCacheSize bounds the parsed messages kept, across every inbox.
const parseCacheSize = 32 << 20

func newParseCache(max int) *parseCache {
	return &parseCache{max: max, m: make(map[string]parsedEntry)}
}

func (c *parseCache) get(id string) *mailparse.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id].msg
}

func (c *parseCache) put(id string, msg *mailparse.Message) {
	size := len(msg.Raw()) + len(id) + 256
	msg.Walk(func(p *mailparse.Part) bool {
		size += 512 // the part, its header and maps; a copied body is counted too
		if p.Offset < 0 {
			size += len(p.Body)
		}
		return true
	})
	if size > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		return
	}
	for c.bytes+size > c.max && len(c.m) > 0 {
		for k, e := range c.m {
			delete(c.m, k)
			c.bytes -= e.size
			break
		}
	}
	c.m[id] = parsedEntry{msg, size}
	c.bytes += size
}

// reset empties the cache, for benchmarks of the cold path.
func (c *parseCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m, c.bytes = make(map[string]parsedEntry), 0
}
