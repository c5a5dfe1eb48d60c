package parse

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset" // every charset, for bodies, encoded words and RFC 2231 names
)

// Limits on the MIME walk: a message is data from strangers, and nobody reads the
// thousandth part of a sign-up mail.
const (
	maxParts = 1000
	maxDepth = 50
)

// field is one header field as written: the name untouched, the value unfolded but
// not decoded.
type field struct {
	name, value string
}

// splitHeader reads the header block at the start of b and returns its fields and
// the body after the blank line. It never fails: a line that cannot be a header field
// ends the header and starts the body, the way mail readers show such a message.
func splitHeader(b []byte) ([]field, []byte) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	var fields []field
	var name []byte    // the field being read
	var start, end int // where its value lies in b, continuation lines included
	flush := func() {
		if name != nil {
			fields = append(fields, field{name: string(name), value: unfold(b[start:end])})
			name = nil
		}
	}
	for i := 0; i < len(b); {
		next := len(b)
		if n := bytes.IndexByte(b[i:], '\n'); n >= 0 {
			next = i + n + 1
		}
		line := bytes.TrimRight(b[i:next], "\r\n")
		switch {
		case len(line) == 0:
			flush()
			return fields, b[next:]
		case line[0] == ' ' || line[0] == '\t':
			if name == nil && len(fields) == 0 {
				return nil, b[i:] // RFC 5322 section 2.2.3: no field starts with white space
			}
			if name != nil {
				end = i + len(line) // RFC 5322 section 2.2.3: unfolding keeps the white space
			}
		default:
			colon := bytes.IndexByte(line, ':')
			n := bytes.TrimRight(line[:max(colon, 0)], " \t")
			if colon <= 0 || !validFieldName(n) || looksLikeURL(n, line[colon:]) {
				if i == 0 && bytes.HasPrefix(line, []byte("From ")) {
					break // an mbox separator some exporter left in front of the message
				}
				flush()
				return fields, b[i:]
			}
			flush()
			name, start, end = n, i+colon+1, i+len(line)
		}
		i = next
	}
	flush()
	return fields, nil
}

// validFieldName follows RFC 5322 section 3.6.8: printable US-ASCII except colon.
func validFieldName(n []byte) bool {
	if len(n) == 0 {
		return false
	}
	for _, c := range n {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// looksLikeURL catches a headerless part whose first line is a link, which would
// otherwise read as a field named "https".
func looksLikeURL(name, rest []byte) bool {
	n := string(name)
	return (strings.EqualFold(n, "http") || strings.EqualFold(n, "https")) && bytes.HasPrefix(rest, []byte("://"))
}

// unfold drops the line breaks of a folded field (RFC 5322 section 2.2.3) and the
// white space around the value.
func unfold(v []byte) string {
	if !bytes.ContainsAny(v, "\r\n") {
		return string(bytes.TrimSpace(v))
	}
	var sb strings.Builder
	sb.Grow(len(v))
	for _, c := range bytes.TrimSpace(v) {
		if c != '\r' && c != '\n' {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// get returns the first field called name; a message with two Content-Type fields is
// read the way most mail readers do.
func get(fields []field, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
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

// headerText decodes encoded words in a text field; a value with a charset nobody
// knows, or with bytes that are not UTF-8, is kept as well as it can be.
func headerText(name, v string) string {
	lname := strings.ToLower(name)
	if !structured[lname] && !strings.HasPrefix(lname, "arc-") && strings.Contains(v, "=?") {
		v = decodeWords(v)
	}
	return validUTF8(v)
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

// validUTF8 reads raw 8-bit text that is not UTF-8 as Windows-1252, the charset of
// most mailers that forget to declare one (RFC 6532 makes raw UTF-8 legal, so UTF-8
// is kept as it is).
func validUTF8(s string) string {
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

// part is one MIME entity with the header fields the walk needs already parsed.
type part struct {
	fields      []field
	body        []byte // as sent, still transfer-encoded
	mediaType   string // lower case, e.g. "text/plain"
	params      map[string]string
	disposition string // lower case, "" when absent
	dispParams  map[string]string
	encoding    string // Content-Transfer-Encoding, lower case
	contentID   string // without angle brackets
}

// newPart parses the content fields of an entity. defaultType is text/plain, or
// message/rfc822 inside multipart/digest (RFC 2046 section 5.1.5).
func newPart(fields []field, body []byte, defaultType string) *part {
	p := &part{fields: fields, body: body}
	p.mediaType, p.params = mediaType(get(fields, "Content-Type"), "Content-Type")
	if p.mediaType == "" {
		p.mediaType = defaultType
	}
	if d := get(fields, "Content-Disposition"); d != "" {
		p.disposition, p.dispParams = mediaType(d, "Content-Disposition")
	}
	p.encoding = strings.ToLower(strings.TrimSpace(get(fields, "Content-Transfer-Encoding")))
	p.contentID = strings.Trim(strings.TrimSpace(get(fields, "Content-ID")), "<> \t")
	return p
}

// mediaType parses a Content-Type or Content-Disposition value with go-message (RFC
// 2045, RFC 2231 parameters, RFC 2047 words in them) and falls back to a forgiving
// reading when the value breaks the grammar, as unquoted file names with spaces and
// repeated parameters do. A Content-Type without a slash is "" (RFC 2045 section 5.2:
// read it as the default).
func mediaType(v, name string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	var h message.Header
	h.Set(name, v)
	var t string
	var params map[string]string
	var err error
	if name == "Content-Type" {
		t, params, err = h.ContentType()
	} else {
		t, params, err = h.ContentDisposition()
	}
	if err != nil {
		t, params = looseParams(v)
	}
	t = strings.ToLower(strings.TrimSpace(t))
	if name == "Content-Type" && !strings.Contains(t, "/") {
		t = ""
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

// splitMultipart cuts a multipart body into its parts (RFC 2046 section 5.1.1) by
// looking for delimiter lines in the bytes we already hold. Unlike a streaming reader
// it shrugs off what real mail gets wrong: LF-only lines, a missing close delimiter
// (the last part runs to the end), junk between parts, a boundary that does not
// match the parameter (it guesses the one the body uses). ok is false when no
// delimiter at all could be found.
func splitMultipart(body []byte, boundary string, limit int) (parts [][]byte, ok bool) {
	if boundary != "" {
		if parts, ok = splitAt(body, boundary, limit); ok {
			return parts, true
		}
	}
	if guess := guessBoundary(body); guess != "" && guess != boundary {
		return splitAt(body, guess, limit)
	}
	return nil, false
}

func splitAt(body []byte, boundary string, limit int) ([][]byte, bool) {
	delim := []byte("--" + boundary)
	var parts [][]byte
	found := false
	start := -1 // where the current part's content begins
	for i := 0; i <= len(body); {
		n := bytes.Index(body[i:], delim)
		if n < 0 {
			break
		}
		at := i + n
		i = at + len(delim)
		if at > 0 && body[at-1] != '\n' {
			continue // not at the start of a line
		}
		rest := body[i:]
		closing := bytes.HasPrefix(rest, []byte("--"))
		if !closing {
			rest = bytes.TrimLeft(rest, " \t")
			if len(rest) > 0 && rest[0] != '\r' && rest[0] != '\n' {
				continue // a longer boundary that merely starts with ours
			}
		}
		found = true
		if start >= 0 {
			parts = append(parts, trimDelimiterEOL(body[start:at]))
			if len(parts) >= limit {
				return parts, true
			}
		}
		if closing {
			return parts, true
		}
		// The part starts after the rest of the delimiter line.
		if nl := bytes.IndexByte(body[i:], '\n'); nl >= 0 {
			start = i + nl + 1
		} else {
			start = len(body)
		}
		i = start
	}
	if start >= 0 && start < len(body) {
		parts = append(parts, body[start:]) // no close delimiter: the part runs to the end
	}
	return parts, found
}

// trimDelimiterEOL removes the line break that belongs to the next delimiter (RFC 2046
// section 5.1.1: the CRLF before "--boundary" is part of the delimiter).
func trimDelimiterEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// guessBoundary returns the boundary of the first line that looks like a delimiter
// and is followed by a header field, for mail whose boundary parameter is missing or
// does not match its body.
func guessBoundary(body []byte) string {
	for i, lines := 0, 0; i < len(body) && lines < 200; lines++ {
		next := len(body)
		if n := bytes.IndexByte(body[i:], '\n'); n >= 0 {
			next = i + n + 1
		}
		line := bytes.TrimRight(body[i:next], " \t\r\n")
		if len(line) > 2 && len(line) <= 72 && line[0] == '-' && line[1] == '-' &&
			!bytes.ContainsAny(line, " \t") {
			if f, _ := splitHeader(body[next:]); len(f) > 0 {
				return string(bytes.TrimSuffix(line[2:], []byte("--")))
			}
		}
		i = next
	}
	return ""
}

// decodeTransfer undoes the Content-Transfer-Encoding. It never fails: broken base64
// or quoted-printable decodes as far as it makes sense, and an encoding nobody knows
// (uuencode, x-token) leaves the bytes as sent.
func decodeTransfer(enc string, b []byte) []byte {
	switch enc {
	case "base64":
		return decodeBase64(b)
	case "quoted-printable":
		return decodeQP(b)
	}
	return b
}

// decodedSize is len(decodeTransfer(enc, b)) without holding a copy of a large
// base64 attachment just to measure it.
func decodedSize(enc string, b []byte) int64 {
	switch enc {
	case "base64":
		return int64(base64Chars(b) * 6 / 8)
	case "quoted-printable":
		return int64(len(decodeQP(b)))
	}
	return int64(len(b))
}

func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '+' || c == '/' || c == '-' || c == '_'
}

// base64Chars is how many characters of b decodeBase64 decodes: those of the
// alphabet up to the padding, less a lone last sextet.
func base64Chars(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '=' {
			break
		}
		if isBase64(c) {
			n++
		}
	}
	if n%4 == 1 {
		n--
	}
	return n
}

// base64Text reads the first left characters of the base64 alphabet in b, in the
// standard alphabet, as decodeBase64 cleans them.
type base64Text struct {
	b    []byte
	left int
}

func (r *base64Text) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n < len(p) && r.left > 0 && len(r.b) > 0 {
		c := r.b[0]
		r.b = r.b[1:]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
		case c == '-':
			c = '+'
		case c == '_':
			c = '/'
		default:
			continue
		}
		p[n] = c
		n++
		r.left--
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// decodeBase64 skips everything outside the base64 alphabet (line breaks, the
// indentation some mailers add) and decodes up to the padding, after which mailers
// put only junk: a footer, a signature line.
func decodeBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		if c == '=' {
			break
		}
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '-':
			clean = append(clean, '+') // the URL-safe alphabet, seen from a few web mailers
		case c == '_':
			clean = append(clean, '/')
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1] // a lone sextet carries no whole byte
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

// decodeQP decodes quoted-printable (RFC 2045 section 6.7) forgivingly: "=XX" in
// either case is a byte, "=" before a line break is a soft break that joins the lines
// (which is what puts a URL split across lines back together), any other "=" is kept.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '=' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]):
			out = append(out, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
		case c == '=':
			j := i + 1
			for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
				j++ // transport padding after a soft break
			}
			if j < len(b) && b[j] == '\r' {
				j++
			}
			if j == len(b) {
				i = j - 1
			} else if b[j] == '\n' {
				i = j
			} else {
				out = append(out, c)
			}
		case c == ' ' || c == '\t':
			// Rule 3: white space at the end of an encoded line is padding.
			j := i
			for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
				j++
			}
			if j < len(b) && b[j] != '\r' && b[j] != '\n' {
				out = append(out, b[i:j]...)
			}
			i = j - 1
		default:
			out = append(out, c)
		}
	}
	return out
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

// decodeCharset converts text to UTF-8. UTF-8 and US-ASCII labels are trusted when
// the bytes agree; undeclared 8-bit text is read as Windows-1252; a charset go-message
// does not know keeps the bytes, with invalid sequences replaced.
func decodeCharset(cs string, b []byte) string {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	cs = strings.ToLower(strings.Trim(strings.TrimSpace(cs), `"'`))
	switch cs {
	case "", "us-ascii", "ascii", "utf-8", "utf8":
		if utf8.Valid(b) {
			return string(b)
		}
		if cs == "utf-8" || cs == "utf8" {
			return strings.ToValidUTF8(string(b), "\uFFFD")
		}
		return validUTF8(string(b))
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	out, err := io.ReadAll(r)
	if err != nil && len(out) == 0 {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

// sniffHTMLCharset finds a <meta charset> or http-equiv charset near the top of an
// HTML body, for HTML parts whose Content-Type names none.
func sniffHTMLCharset(b []byte) string {
	head := b[:min(len(b), 2048)]
	i := bytes.Index(bytes.ToLower(head), []byte("charset="))
	if i < 0 {
		return ""
	}
	v := head[i+len("charset="):]
	v = bytes.TrimLeft(v, `"' `)
	end := bytes.IndexFunc(v, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == ':' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	})
	if end < 0 {
		end = len(v)
	}
	return string(v[:end])
}
