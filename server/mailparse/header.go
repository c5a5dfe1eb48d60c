package mailparse

import (
	"bytes"
	"io"
	"mime"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset" // every charset, for bodies, encoded words and RFC 2231 names
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// scanHeader finds the header block at the start of b: the raw bytes of each field
// (continuation lines and line ends included), the block's bytes, and where the body
// starts. The header ends at a blank line (the body starts after it) or at the first
// line that is neither a field nor a continuation (the body starts with it). Indented
// lines before the first field continue nothing: one that reads as a field once its
// indentation is dropped is one, the others are skipped, unless no field follows them:
// then they are the body. top allows what only a whole message has in
// front: a byte order mark and an mbox "From " line.
func scanHeader(b []byte, top bool) (fields [][]byte, block []byte, bodyStart int) {
	start := 0
	if top {
		if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
			start = 3
		}
		if bytes.HasPrefix(b[start:], []byte("From ")) {
			// An mbox separator some exporter left in front, not "From : x".
			if n := bytes.IndexByte(b[start:], '\n'); n >= 0 && !isField(bytes.TrimRight(b[start:start+n], "\r")) {
				start += n + 1
			}
		}
	}
	cur := -1    // index in fields of the field being read
	orphan := -1 // where white space-led lines before any field began
	for i := start; i < len(b); {
		next := len(b)
		if n := bytes.IndexByte(b[i:], '\n'); n >= 0 {
			next = i + n + 1
		}
		line := bytes.TrimRight(b[i:next], "\r\n")
		switch {
		case len(line) == 0:
			if len(fields) == 0 && orphan >= 0 {
				return nil, b[:0], orphan // no field after the indented lines: they are the body
			}
			return fields, b[start:next], next
		case line[0] == ' ' || line[0] == '\t':
			if cur < 0 && isField(bytes.TrimLeft(line, " \t")) {
				// " From: x" before any field continues nothing: a field indented
				// by mistake, read as one (go-message trims the name).
				fields = append(fields, b[i:next])
				cur = len(fields) - 1
				break
			}
			if cur < 0 {
				if orphan < 0 {
					orphan = i
				}
				break
			}
			fields[cur] = b[i-len(fields[cur]) : next]
		default:
			if !isField(line) {
				if len(fields) == 0 && orphan >= 0 {
					return nil, b[:0], orphan
				}
				return fields, b[start:i], i
			}
			fields = append(fields, b[i:next])
			cur = len(fields) - 1
		}
		i = next
	}
	if len(fields) == 0 && orphan >= 0 {
		return nil, b[:0], orphan
	}
	return fields, b[start:], len(b)
}

// isField reports whether line starts a header field: a name of printable US-ASCII
// (RFC 5322 section 3.6.8), white space allowed before the colon as mailers write it,
// and not a link at the start of a part that has no header ("https://...").
func isField(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	n := string(name)
	if (strings.EqualFold(n, "http") || strings.EqualFold(n, "https")) && bytes.HasPrefix(line[colon:], []byte("://")) {
		return false
	}
	return true
}

// buildHeader makes a go-message header of raw fields, each kept byte for byte.
func buildHeader(fields [][]byte) textproto.Header {
	var h textproto.Header
	// AddRaw puts a field on top: add them last first.
	for i := len(fields) - 1; i >= 0; i-- {
		h.AddRaw(fields[i])
	}
	return h
}

// Field is one header field as the API lists it.
type Field struct {
	Name  string // as written
	Value string // unfolded; text fields RFC 2047-decoded; valid UTF-8
}

// Headers lists every header field of m in order, names as written, values unfolded
// and decoded.
func (m *Message) Headers() []Field {
	return fieldsOf(m.Header)
}

func fieldsOf(h textproto.Header) []Field {
	out := make([]Field, 0, h.Len())
	for f := h.Fields(); f.Next(); {
		raw, _ := f.Raw()
		name, value, _ := bytes.Cut(raw, []byte(":"))
		n := string(bytes.TrimRight(name, " \t"))
		out = append(out, Field{Name: n, Value: HeaderText(n, unfold(value))})
	}
	return out
}

// unfold drops the line breaks of a folded field (RFC 5322 section 2.2.3: the white
// space stays) and the white space around the value.
func unfold(v []byte) string {
	v = bytes.TrimSpace(v)
	if !bytes.ContainsAny(v, "\r\n") {
		return string(v)
	}
	var sb strings.Builder
	sb.Grow(len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// wordDecoder decodes RFC 2047 encoded words in any charset go-message knows.
var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

// structured names fields whose values are not text (RFC 2047 section 5): their
// values are shown as sent.
var structured = map[string]bool{
	"received": true, "dkim-signature": true, "authentication-results": true, "received-spf": true,
	"message-id": true, "in-reply-to": true, "references": true, "content-type": true,
	"content-disposition": true, "content-transfer-encoding": true, "content-id": true,
	"date": true, "return-path": true, "mime-version": true, "list-unsubscribe": true,
	"list-unsubscribe-post": true, "list-id": true, "list-post": true, "list-help": true,
	"list-subscribe": true, "list-archive": true, "x-google-dkim-signature": true,
}

// HeaderText decodes encoded words in the value of a text field called name; a value
// with a charset nobody knows, or with bytes that are not UTF-8, is kept as well as it
// can be. Structured fields (Received, Message-ID, ...) are kept as sent.
func HeaderText(name, v string) string {
	lname := strings.ToLower(name)
	if !structured[lname] && !strings.HasPrefix(lname, "arc-") && strings.Contains(v, "=?") {
		v = decodeWords(v)
	}
	return ValidUTF8(v)
}

// decodeWords decodes RFC 2047 encoded words. When one of them cannot be decoded (a
// charset nobody knows) the others still are, and that one is kept as sent.
func decodeWords(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	var sb strings.Builder
	pendingSpace := "" // white space after an encoded word, dropped between two of them (section 6.2)
	afterWord := false
	for _, f := range strings.SplitAfter(v, " ") {
		w := strings.TrimRight(f, " ")
		space := f[len(w):]
		d, err := wordDecoder.Decode(w)
		if err != nil || !strings.HasPrefix(w, "=?") {
			sb.WriteString(pendingSpace)
			sb.WriteString(w)
			pendingSpace, afterWord = space, false
			continue
		}
		if !afterWord {
			sb.WriteString(pendingSpace)
		}
		sb.WriteString(d)
		pendingSpace, afterWord = space, true
	}
	sb.WriteString(pendingSpace)
	return sb.String()
}

// ValidUTF8 reads raw 8-bit text that is not UTF-8 as Windows-1252, the charset of
// most mailers that forget to declare one (RFC 6532 makes raw UTF-8 legal, so UTF-8
// is kept as it is).
func ValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	if r, err := charset.Reader("windows-1252", strings.NewReader(s)); err == nil {
		if b, err := io.ReadAll(r); err == nil && utf8.Valid(b) {
			return string(b)
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// firstValue is the first field called name, unfolded; a message with two
// Content-Type fields is read the way most mail readers do.
func firstValue(h textproto.Header, name string) string {
	f := h.FieldsByKey(name)
	if !f.Next() {
		return ""
	}
	raw, _ := f.Raw()
	_, v, _ := bytes.Cut(raw, []byte(":"))
	return unfold(v)
}

// newPart reads the content fields of an entity. defaultType is text/plain, or
// message/rfc822 inside multipart/digest (RFC 2046 section 5.1.5).
func newPart(h textproto.Header, defaultType string) *Part {
	p := &Part{Header: h}
	p.MediaType, p.Params = mediaType(firstValue(h, "Content-Type"), "Content-Type")
	if p.MediaType == "" {
		p.MediaType, p.Params = defaultType, map[string]string{}
	}
	if d := firstValue(h, "Content-Disposition"); d != "" {
		p.Disposition, p.DispParams = mediaType(d, "Content-Disposition")
	}
	if p.DispParams == nil {
		p.DispParams = map[string]string{}
	}
	p.Encoding = strings.ToLower(strings.TrimSpace(firstValue(h, "Content-Transfer-Encoding")))
	p.ContentID = ValidUTF8(strings.Trim(strings.TrimSpace(firstValue(h, "Content-ID")), "<> \t"))
	if strings.HasPrefix(p.MediaType, "text/") {
		p.Charset = strings.ToLower(strings.Trim(strings.TrimSpace(p.Params["charset"]), `"'`))
		if p.Charset == "" && p.MediaType == "text/plain" {
			p.Charset = "us-ascii" // RFC 2046 section 4.1.2; an HTML part's is sniffed from it
		}
	}
	name := p.DispParams["filename"]
	if name == "" {
		name = p.Params["name"]
	}
	p.Filename = ValidUTF8(name)
	return p
}

// mediaType parses a Content-Type or Content-Disposition value as go-message's
// Header.ContentType does (RFC 2045, RFC 2231 parameters, RFC 2047 words in them) and
// falls back to a forgiving reading when the value breaks the grammar, as unquoted
// file names with spaces and repeated parameters do. A Content-Type without a slash
// is "" (RFC 2045 section 5.2: read it as the default).
func mediaType(v, name string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil {
		t, params = looseParams(v)
	} else {
		for k, pv := range params {
			if strings.Contains(pv, "=?") {
				if d, err := wordDecoder.DecodeHeader(pv); err == nil {
					params[k] = d
				}
			}
		}
	}
	t = strings.ToLower(strings.TrimSpace(t))
	if name == "Content-Type" && (!strings.Contains(t, "/") || strings.ContainsAny(t, " \t;")) {
		t = ""
	}
	if params == nil {
		params = map[string]string{}
	}
	return t, params
}

// looseParams splits "type; a=1; b="2"" by hand: first value wins, quotes are
// dropped, RFC 2231 "name*=charset”%xx" and RFC 2047 words are decoded.
func looseParams(v string) (string, map[string]string) {
	t, rest, _ := strings.Cut(v, ";")
	params := map[string]string{}
	for _, kv := range splitParams(rest) {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = strings.ReplaceAll(val[1:len(val)-1], `\"`, `"`)
		}
		if base, ok := strings.CutSuffix(k, "*"); ok {
			k, val = base, decode2231(val)
		}
		if d, err := wordDecoder.DecodeHeader(val); err == nil {
			val = d
		}
		if _, seen := params[k]; !seen && k != "" {
			params[k] = val
		}
	}
	return t, params
}

// splitParams splits at semicolons outside quotes.
func splitParams(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			i++
		case ';':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// decode2231 decodes an RFC 2231 extended value, charset'language'%xx.
func decode2231(v string) string {
	parts := strings.SplitN(v, "'", 3)
	if len(parts) != 3 {
		return v
	}
	raw := make([]byte, 0, len(parts[2]))
	s := parts[2]
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			raw = append(raw, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		raw = append(raw, s[i])
	}
	return decodeCharset(parts[0], raw)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// facts reads the header fields every view shows.
func (m *Message) facts() {
	h := mail.Header{Header: message.Header{Header: m.Header}}
	m.Subject = strings.TrimSpace(HeaderText("Subject", firstValue(m.Header, "Subject")))
	m.From = addresses(h, "From")
	m.Sender = addresses(h, "Sender")
	m.To = addresses(h, "To")
	m.Cc = addresses(h, "Cc")
	m.Bcc = addresses(h, "Bcc")
	m.ReplyTo = addresses(h, "Reply-To")
	m.Date = parseDate(firstValue(m.Header, "Date"))
	if id, err := h.MessageID(); err == nil {
		m.MessageID = ValidUTF8(id)
	}
	m.InReplyTo, _ = h.MsgIDList("In-Reply-To")
	m.References, _ = h.MsgIDList("References")
}

// StrictAddressList reads the address list of the first field key in h by RFC 5322
// alone, with an error where it breaks the grammar: for a check that refuses a message
// or judges its sender (DMARC's From domain), rather than shows what it can of it as
// the header facts do. An encoded word in a charset nobody knows is kept as its
// bytes: the name does not decide where an address points.
func StrictAddressList(h textproto.Header, key string) ([]*mail.Address, error) {
	l, err := strictParser.ParseList(firstValue(h, key))
	for _, a := range l {
		a.Name, a.Address = ValidUTF8(a.Name), ValidUTF8(a.Address)
	}
	return l, err
}

var strictParser = netmail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
		if d, err := charset.Reader(cs, r); err == nil {
			return d, nil
		}
		return r, nil
	},
}}

// dateLayouts are the shapes nearly every mailer writes (RFC 5322 section 3.3), tried
// before net/mail's full parser, which builds an error for each layout it rules out.
var dateLayouts = []string{"Mon, 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 -0700"}

// obsoleteZones are the zone names RFC 5322 section 4.3 still asks readers to know;
// Go's time.Parse would take them as names of unknown offset.
var obsoleteZones = map[string]string{
	"UT": "+0000", "GMT": "+0000", "EST": "-0500", "EDT": "-0400", "CST": "-0600",
	"CDT": "-0500", "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700",
}

// parseDate reads a Date value; zero when it does not parse.
func parseDate(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if i := strings.IndexByte(v, '('); i > 0 { // a trailing "(UTC)" comment
		v = strings.TrimSpace(v[:i])
	}
	if sp := strings.LastIndexByte(v, ' '); sp > 0 {
		if offset, ok := obsoleteZones[v[sp+1:]]; ok {
			v = v[:sp+1] + offset
		}
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	if t, err := netmail.ParseDate(v); err == nil {
		return t
	}
	return time.Time{}
}

// addresses reads an address list; where go-message's strict reading fails, each
// comma-separated piece that parses is kept, and a piece that does not is kept as a
// name, so ENVELOPE and the API still show the sender of a broken From.
func addresses(h mail.Header, key string) []*mail.Address {
	if !h.Has(key) {
		return nil
	}
	if l, err := h.AddressList(key); err == nil {
		for _, a := range l {
			a.Name, a.Address = ValidUTF8(a.Name), ValidUTF8(a.Address)
		}
		return l
	}
	return lenientAddresses(HeaderText(key, firstValue(h.Header.Header, key)))
}

// Addresses reads an address list written as text, such as a listing's From ("Ann
// <ann@x.test>, b@y.test", names decoded): strictly where it parses, else piece by
// piece as the header facts read a broken field. A piece with no address is kept as
// a name alone.
func Addresses(v string) []*mail.Address {
	if l, err := mail.ParseAddressList(v); err == nil {
		return l
	}
	return lenientAddresses(v)
}

// lenientAddresses keeps each comma-separated piece of v that parses, and a piece
// that does not as a name, or the address between its last angle brackets.
func lenientAddresses(v string) []*mail.Address {
	var out []*mail.Address
	for _, piece := range splitAddresses(v) {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		if a, err := mail.ParseAddress(piece); err == nil {
			a.Name, a.Address = ValidUTF8(a.Name), ValidUTF8(a.Address)
			out = append(out, a)
			continue
		}
		a := &mail.Address{Name: piece}
		if lt := strings.LastIndexByte(piece, '<'); lt >= 0 {
			if gt := strings.IndexByte(piece[lt:], '>'); gt > 0 {
				a = &mail.Address{Name: strings.Trim(strings.TrimSpace(piece[:lt]), `"`), Address: piece[lt+1 : lt+gt]}
			}
		} else if strings.Contains(piece, "@") && !strings.ContainsAny(piece, " \t") {
			a = &mail.Address{Address: piece}
		}
		out = append(out, a)
	}
	return out
}

// splitAddresses splits an address list at commas outside quotes and angle brackets.
func splitAddresses(s string) []string {
	var out []string
	quoted, angle, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			i++
		case '<':
			angle = !quoted
		case '>':
			angle = false
		case ',':
			if !quoted && !angle {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// HeaderStart is how many leading bytes of a message belong to no header field by the
// package rule: a byte order mark, an mbox "From " line, indented lines before the
// first field (skipped), and the indentation of a first field written indented. A
// receiver that puts its own fields on top drops these bytes first: left there, they
// would continue its last field, or end the header block early. 0 when the message
// has no field after them: they are then its body.
func HeaderStart(raw []byte) int {
	fields, _, _ := scanHeader(raw, true)
	if len(fields) == 0 {
		return 0
	}
	off := offset(raw, fields[0])
	for off < len(raw) && (raw[off] == ' ' || raw[off] == '\t') {
		off++
	}
	return off
}
