package mailparse

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
)

// Decoded is p's body with its transfer encoding undone (base64, quoted-printable;
// any other encoding leaves the bytes as sent). Broken encodings decode as far as
// they make sense. Reading it costs the body's size and no second walk.
func (p *Part) Decoded() io.Reader { return Decode(p.Encoding, p.Body) }

// DecodedSize is the number of bytes Decoded reads, without decoding a base64 body.
func (p *Part) DecodedSize() int64 { return DecodedSize(p.Encoding, p.Body) }

// Decode undoes a Content-Transfer-Encoding (enc, any case) on body with go-message.
// It never fails: base64 is read the way mail readers read it (white space, junk
// and the URL-safe alphabet skipped, decoding stopped at the padding, after which
// mailers put footers), and an error partway through quoted-printable ends the text
// there.
func Decode(enc string, body []byte) io.Reader {
	enc = strings.ToLower(strings.TrimSpace(enc))
	var in io.Reader = bytes.NewReader(body)
	switch enc {
	case "base64":
		n := base64Chars(body)
		in = io.MultiReader(&base64Text{b: body, left: n}, strings.NewReader(base64Pad[n%4]))
	case "quoted-printable":
		in = &qpControls{b: body}
	default:
		return bytes.NewReader(body) // 7bit, 8bit, binary, and what nobody knows (uuencode, x-token)
	}
	var h message.Header
	h.Set("Content-Transfer-Encoding", enc)
	e, err := message.New(h, in)
	if err != nil || e == nil {
		return bytes.NewReader(body)
	}
	return &forgiving{r: e.Body}
}

// qpControls reads a quoted-printable body with its control bytes written as =XX,
// which go-message's decoder (mime/quotedprintable) stops at: an ISO-2022-JP escape or
// a stray NUL would otherwise end the text there. It escapes as it is read, so a
// reader that stops early (SEARCH's 256 KiB of text) does not scan the whole body.
type qpControls struct {
	b   []byte
	esc [3]byte
	pen int // bytes of esc still to send, from its end
}

func isControl(c byte) bool { return c < ' ' && c != '\t' && c != '\r' && c != '\n' || c == 0x7f }

func (r *qpControls) Read(p []byte) (int, error) {
	const hex = "0123456789ABCDEF"
	n := 0
	for n < len(p) {
		if r.pen > 0 {
			c := copy(p[n:], r.esc[3-r.pen:])
			n, r.pen = n+c, r.pen-c
			continue
		}
		if len(r.b) == 0 {
			break
		}
		i, m := 0, min(len(r.b), len(p)-n)
		for i < m {
			if c := r.b[i]; (c < ' ' || c == 0x7f) && isControl(c) {
				break
			}
			i++
		}
		copy(p[n:], r.b[:i])
		n, r.b = n+i, r.b[i:]
		if i == m {
			continue
		}
		c := r.b[0]
		r.esc, r.pen, r.b = [3]byte{'=', hex[c>>4], hex[c&15]}, 3, r.b[1:]
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// base64Pad completes a base64 text of n%4 characters (a lone sextet is dropped
// before: it carries no whole byte).
var base64Pad = [4]string{"", "", "==", "="}

// DecodedSize is how many bytes Decode(enc, body) reads.
func DecodedSize(enc string, body []byte) int64 {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		return int64(base64Chars(body) * 6 / 8)
	case "quoted-printable":
		n, _ := io.Copy(io.Discard, Decode(enc, body))
		return n
	}
	return int64(len(body))
}

// forgiving turns a decoding error into the end of the text: what was decoded
// before it is kept.
type forgiving struct {
	r   io.Reader
	err error
}

func (f *forgiving) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	if err != nil {
		f.err = io.EOF
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	}
	return n, nil
}

// base64Std maps each byte of the base64 alphabets (standard and URL-safe) to the
// standard alphabet's; 0 for a byte outside them.
var base64Std = func() (t [256]byte) {
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = std[i]
	}
	t['-'], t['_'] = '+', '/'
	return t
}()

// base64Chars is how many characters of the base64 alphabet b holds up to the
// padding, less a lone last one.
func base64Chars(b []byte) int {
	if i := bytes.IndexByte(b, '='); i >= 0 {
		b = b[:i]
	}
	n := 0
	for _, c := range b {
		if base64Std[c] != 0 {
			n++
		}
	}
	if n%4 == 1 {
		n--
	}
	return n
}

// base64Text feeds go-message the first left characters of the base64 alphabet in
// b, in the standard alphabet: what a mail reader makes of a base64 body that line
// breaks, indentation, a footer after the padding or a web mailer's URL-safe
// alphabet made invalid.
type base64Text struct {
	b    []byte
	left int
}

func (r *base64Text) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, i := 0, 0
	for ; n < len(p) && r.left > 0 && i < len(r.b); i++ {
		if c := base64Std[r.b[i]]; c != 0 {
			p[n] = c
			n++
			r.left--
		}
	}
	r.b = r.b[i:]
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Text is p's body decoded to UTF-8: transfer encoding undone, then its charset (a
// text/html part without one is read in the charset its <meta> names). Text in a
// charset nobody knows, or that breaks it, keeps its bytes made valid UTF-8;
// undeclared 8-bit text is read as Windows-1252.
func (p *Part) Text() string {
	b := readAll(p.Decoded(), len(p.Body))
	cs := p.Charset
	if cs == "" && p.MediaType == "text/html" {
		cs = sniffHTMLCharset(b)
	}
	return decodeCharset(cs, b)
}

// readAll is io.ReadAll into a buffer of size bytes, which a decoded body never
// exceeds: one allocation where io.ReadAll makes a dozen for a large one.
func readAll(r io.Reader, size int) []byte {
	b := make([]byte, 0, size+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			return b
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow: more than promised, keep reading
		}
	}
}

// decodeCharset converts text to UTF-8 with go-message's charsets. UTF-8 and US-ASCII
// labels are trusted when the bytes agree.
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
		return ValidUTF8(string(b))
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		return ValidUTF8(string(b))
	}
	out, err := io.ReadAll(r)
	if err != nil && len(out) == 0 {
		return ValidUTF8(string(b))
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
