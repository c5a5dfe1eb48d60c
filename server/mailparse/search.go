package mailparse

import (
	"io"
	"strings"
	"unicode/utf8"
)

// Fold is how SearchText folds case; fold a search string with it too.
func Fold(s string) string { return strings.ToLower(s) }

// SearchText is the text IMAP SEARCH looks in, decoded and folded (Fold) once, at
// most limit bytes in all: header is the header fields of the message and of its
// parts ("Name: value"), body the text/* parts (transfer encoding and charset undone)
// and the header fields of attached messages. Fields and parts are separated by NUL,
// which no search string holds, so a match never spans two of them. Text past the
// limit is not searched.
func (m *Message) SearchText(limit int) (header, body string) {
	x := &textExtract{left: limit}
	x.fields(&x.header, m)
	x.message(m)
	return x.header.String(), x.body.String()
}

type textExtract struct {
	header, body strings.Builder
	left         int
}

// add appends folded text to b, as much of it as the budget leaves; false once the
// budget is spent.
func (x *textExtract) add(b *strings.Builder, text string) bool {
	if x.left <= 0 {
		return false
	}
	text = Fold(text)
	if len(text)+1 > x.left {
		// Cut at a rune's start: text is valid UTF-8, and so stays without a second
		// scan of up to 256 KiB.
		cut := x.left - 1
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	b.WriteString(text)
	b.WriteByte(0)
	x.left -= len(text) + 1
	return x.left > 0
}

func (x *textExtract) fields(b *strings.Builder, m *Message) bool {
	for _, f := range m.Headers() {
		if !x.add(b, f.Name+": "+f.Value) {
			return false
		}
	}
	return true
}

func (x *textExtract) message(m *Message) bool {
	return x.part(m.Root, true)
}

// part adds p's text; its MIME header too, unless it is a message's root, whose
// header is the message's, added with it.
func (x *textExtract) part(p *Part, root bool) bool {
	if !root {
		for _, f := range fieldsOf(p.Header) {
			if !x.add(&x.header, f.Name+": "+f.Value) {
				return false
			}
		}
	}
	switch {
	case len(p.Children) > 0:
		for _, c := range p.Children {
			if !x.part(c, false) {
				return false
			}
		}
	case p.Message != nil:
		// The header of an attached message is its text, for BODY too.
		if !x.fields(&x.body, p.Message) {
			return false
		}
		return x.message(p.Message)
	case strings.HasPrefix(p.MediaType, "text/"):
		b := readAll(io.LimitReader(p.Decoded(), int64(x.left)), min(len(p.Body), x.left))
		if len(b) >= x.left {
			b = cutRune(b) // the limit cut the text, perhaps inside a character
		}
		cs := p.Charset
		if cs == "" && p.MediaType == "text/html" {
			cs = sniffHTMLCharset(b)
		}
		return x.add(&x.body, decodeCharset(cs, b))
	}
	return true
}

// cutRune drops an incomplete UTF-8 sequence at the end of b, which would otherwise
// make the whole text invalid UTF-8 and be copied to be made valid.
func cutRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
