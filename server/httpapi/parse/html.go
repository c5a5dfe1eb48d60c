package parse

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// blockBreak says how a tag breaks the text flow when rendered as plain text: 1 for a
// line break, 2 for a paragraph (a blank line).
var blockBreak = map[string]int{
	"br": 1, "div": 1, "tr": 1, "li": 1, "dt": 1, "dd": 1, "section": 1, "article": 1,
	"header": 1, "footer": 1, "nav": 1, "aside": 1, "main": 1, "form": 1, "center": 1,
	"caption": 1, "figcaption": 1, "option": 1, "tbody": 1, "thead": 1, "tfoot": 1,
	"p": 2, "h1": 2, "h2": 2, "h3": 2, "h4": 2, "h5": 2, "h6": 2, "blockquote": 2,
	"table": 2, "ul": 2, "ol": 2, "dl": 2, "pre": 2, "hr": 2, "address": 2, "figure": 2,
	"fieldset": 2, "body": 2,
}

// hidden names elements whose content a reader never sees as text. The tokenizer
// already reads script, style and the like as raw text; this drops it.
var hidden = map[string]bool{
	"script": true, "style": true, "title": true, "noscript": true, "iframe": true,
	"noembed": true, "noframes": true, "template": true,
}

// renderHTML returns a plain rendering of an HTML body (tags stripped, blocks as line
// breaks, table cells side by side, entities decoded, invisible content dropped) and
// the href of every <a> and <area>, entity-decoded, in document order.
func renderHTML(s string) (string, []string) {
	text, anchors := renderAnchors(s)
	hrefs := make([]string, len(anchors))
	for i, a := range anchors {
		hrefs[i] = a.href
	}
	return text, hrefs
}

// anchor is an <a> or <area> href with the text it shows: what the rendering holds
// between the tag and its end (or the next <a>, which ends an unclosed one as a
// browser's parser does), spaces collapsed. An <area> shows none.
type anchor struct {
	href, text string
}

// maxAnchorText bounds one anchor's text: a link around a whole newsletter is still a
// link, and its text must not copy the body into every answer once more.
const maxAnchorText = 200

// renderAnchors is renderHTML with each href's anchor text.
func renderAnchors(s string) (string, []anchor) {
	z := newTokenizer(s)
	var r renderer
	r.sb.Grow(len(s) / 3)
	var anchors []anchor
	open, openAt := -1, 0 // the <a> whose text is being read, and where it began in r.sb
	closeAnchor := func() {
		if open >= 0 {
			anchors[open].text = anchorText(r.sb.String()[openAt:])
			open = -1
		}
	}
	skip := "" // the hidden element being skipped
	skipDepth := 0
	pre := 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			closeAnchor()
			return r.String(), anchors
		case html.TextToken:
			if skip == "" {
				r.text(z.Text(), pre > 0)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			// string(tag) in comparisons and map indexes does not allocate.
			tag, hasAttr := z.TagName()
			if skip != "" {
				if string(tag) == skip && tt == html.StartTagToken {
					skipDepth++
				}
				continue
			}
			if hidden[string(tag)] && tt == html.StartTagToken {
				skip, skipDepth = string(tag), 1
				continue
			}
			if string(tag) == "a" {
				closeAnchor()
			}
			if (string(tag) == "a" || string(tag) == "area") && hasAttr {
				for {
					k, v, more := z.TagAttr()
					if string(k) == "href" {
						anchors = append(anchors, anchor{href: string(v)})
						if string(tag) == "a" && tt == html.StartTagToken {
							open, openAt = len(anchors)-1, r.sb.Len()
						}
					}
					if !more {
						break
					}
				}
			}
			switch {
			case string(tag) == "td" || string(tag) == "th":
				r.space()
			case string(tag) == "pre" && tt == html.StartTagToken:
				pre++
			}
			if n := blockBreak[string(tag)]; n > 0 {
				r.brk(n)
			}
		case html.EndTagToken:
			tag, _ := z.TagName()
			if skip != "" {
				if string(tag) == skip {
					if skipDepth--; skipDepth == 0 {
						skip = ""
					}
				}
				continue
			}
			switch string(tag) {
			case "a":
				closeAnchor()
			case "td", "th":
				r.space()
			case "pre":
				pre = max(pre-1, 0)
			}
			if n := blockBreak[string(tag)]; n > 0 && string(tag) != "br" {
				r.brk(n)
			}
		}
	}
}

// anchorText is the rendered text of an anchor on one line, cut to maxAnchorText
// bytes on a character boundary.
func anchorText(s string) string {
	if len(s) > 4*maxAnchorText {
		s = s[:4*maxAnchorText] // Fields below need no more than this to fill the cap
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxAnchorText {
		cut := maxAnchorText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimRightFunc(s[:cut], unicode.IsSpace)
	}
	return s
}

// renderer assembles rendered text, collapsing white space the way a browser does.
type renderer struct {
	sb           strings.Builder
	pendingSpace bool
	pendingBreak int // newlines owed before the next text
	lineStart    bool
}

func (r *renderer) space() { r.pendingSpace = true }

func (r *renderer) brk(n int) {
	if r.sb.Len() > 0 {
		r.pendingBreak = max(r.pendingBreak, n)
	}
}

func (r *renderer) text(b []byte, pre bool) {
	for len(b) > 0 {
		if c := b[0]; c < utf8.RuneSelf && c > ' ' {
			r.flush()
			r.sb.WriteByte(c) // the common case, ASCII that is not white space
			r.lineStart = false
			b = b[1:]
			continue
		}
		c, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case invisible(c):
		case pre && c == '\n':
			r.flush()
			r.sb.WriteByte('\n')
			r.lineStart = true
		case pre && unicode.IsSpace(c):
			r.flush()
			r.sb.WriteByte(' ')
		case unicode.IsSpace(c):
			r.pendingSpace = true
		default:
			r.flush()
			r.sb.WriteRune(c)
			r.lineStart = false
		}
	}
}

// flush writes the line breaks or the space owed before the next character: breaks
// win over spaces, and a line never starts with a space.
func (r *renderer) flush() {
	if r.pendingBreak == 0 && !r.pendingSpace {
		return
	}
	if r.pendingBreak > 0 && r.sb.Len() > 0 {
		for range r.pendingBreak {
			r.sb.WriteByte('\n')
		}
		r.lineStart = true
	} else if r.pendingSpace && !r.lineStart && r.sb.Len() > 0 {
		r.sb.WriteByte(' ')
	}
	r.pendingBreak, r.pendingSpace = 0, false
}

func (r *renderer) String() string { return r.sb.String() }

// invisible reports characters that render as nothing: zero-width spaces and joiners,
// soft hyphens, byte-order marks, and the combining grapheme joiner that marketing
// mail pads its preview text with. Left in, they would split a code in two.
func invisible(c rune) bool {
	switch c {
	case '\u00ad', '\u034f', '\u200b', '\u200c', '\u200d', '\u200e', '\u200f', '\u2060', '\ufeff':
		return true
	}
	return false
}
