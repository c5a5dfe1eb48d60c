package parse

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mayfly-mail/mayfly/server/mailparse"
)

// Links returns the links of a message: the href of every <a> and <area> in html
// (entity-decoded), then the http and https URLs written in text that the HTML did
// not already give, each once, in order of first appearance. javascript:, vbscript:,
// data:, cid: and mid: links and fragment-only links ("#top") are left out; other
// hrefs (mailto:, relative ones) are kept as written.
func Links(text, html string) []string {
	return urls(LinkDetails(text, html))
}

// Link is a link with the text it shows: an anchor's rendered content, "" for a URL
// written in text and for an <area>.
type Link struct {
	URL  string
	Text string
}

// LinkDetails is Links with each link's text. A URL given by several anchors takes
// the text of the first that shows any.
func LinkDetails(text, html string) []Link {
	var anchors []anchor
	if html != "" {
		_, anchors = renderAnchors(html)
	}
	return links(anchors, text)
}

func urls(ls []Link) []string {
	if ls == nil {
		return nil
	}
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.URL
	}
	return out
}

func links(anchors []anchor, text string) []Link {
	var out []Link
	seen := map[string]int{}
	add := func(u, text string) {
		if u == "" {
			return
		}
		if i, ok := seen[u]; ok {
			if out[i].Text == "" {
				out[i].Text = text
			}
			return
		}
		seen[u] = len(out)
		out = append(out, Link{URL: u, Text: text})
	}
	for _, a := range anchors {
		add(cleanHref(a.href), a.text)
	}
	for _, m := range textURLs(text) {
		add(m.url, "")
	}
	return out
}

// cleanHref trims an href the way a browser does before following it (WHATWG URL:
// leading and trailing C0 controls and spaces go, tabs and newlines inside are
// removed, which also rejoins a link a broken mailer wrapped) and drops links that
// lead nowhere a tester wants to go.
func cleanHref(h string) string {
	h = strings.TrimFunc(mailparse.ValidUTF8(h), func(r rune) bool { return r <= ' ' || unicode.IsSpace(r) })
	if strings.ContainsAny(h, "\t\r\n") {
		h = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(h)
	}
	if h == "" || h[0] == '#' {
		return ""
	}
	if scheme, _, ok := strings.Cut(h, ":"); ok {
		switch strings.ToLower(scheme) {
		case "javascript", "vbscript", "data", "cid", "mid":
			return ""
		}
	}
	return h
}

// urlMatch is a URL found in text: where it was written and what it reads.
type urlMatch struct {
	start, end int
	url        string
}

// textURLs finds the http and https URLs in plain text. A URL in angle brackets that
// the sender wrapped across lines, "<https://x.test/very/\n long>", is read with the
// white space removed, as RFC 3986 appendix C suggests.
func textURLs(s string) []urlMatch {
	var out []urlMatch
	for i := 0; i < len(s); {
		j := indexFold(s[i:], "http")
		if j < 0 {
			break
		}
		start := i + j
		i = start + 4
		rest := s[i:]
		switch {
		case hasPrefixFold(rest, "s://"):
			i += 4
		case hasPrefixFold(rest, "://"):
			i += 3
		default:
			continue
		}
		if start > 0 {
			if r, _ := utf8.DecodeLastRuneInString(s[:start]); unicode.IsLetter(r) || unicode.IsDigit(r) {
				continue // "xhttp://" is no URL start
			}
		}
		end := i
		for end < len(s) {
			r, size := utf8.DecodeRuneInString(s[end:])
			if urlStop(r) {
				break
			}
			end += size
		}
		if start > 0 && s[start-1] == '<' && end < len(s) && s[end] != '>' {
			if u, gt := wrappedURL(s, start); gt > 0 {
				out = append(out, urlMatch{start, gt, u})
				i = gt
				continue
			}
		}
		end = trimURL(s, i, end)
		if end > i {
			out = append(out, urlMatch{start, end, s[start:end]})
		}
		i = max(end, i)
	}
	return out
}

// wrappedURL reads a URL starting at start, after a "<", up to the ">" when every run
// of white space before it holds a line break (wrapping, not words of a sentence).
func wrappedURL(s string, start int) (string, int) {
	rest := s[start:min(len(s), start+4096)]
	gt := strings.IndexByte(rest, '>')
	if gt < 0 {
		return "", 0
	}
	inner := rest[:gt]
	// A byte that is not UTF-8 ends a URL in running text (urlStop); inside <...> it
	// makes the whole thing not one.
	if !strings.Contains(inner, "\n") || strings.Contains(inner, "<") || !utf8.ValidString(inner) {
		return "", 0
	}
	for _, run := range strings.FieldsFunc(inner, func(r rune) bool { return !unicode.IsSpace(r) }) {
		if !strings.Contains(run, "\n") {
			return "", 0
		}
	}
	return strings.Join(strings.Fields(inner), ""), start + gt
}

// urlStop reports characters that cannot be part of a URL written in text: white
// space, the delimiters RFC 3986 appendix C suggests (<>, quotes), and the ideographic
// punctuation of CJK sentences, which follows a URL without a space.
func urlStop(r rune) bool {
	switch r {
	case '<', '>', '"', '`', utf8.RuneError, '\u2026', '\u00ab', '\u00bb':
		return true
	}
	return unicode.IsSpace(r) || unicode.IsControl(r) || invisible(r) ||
		(r >= '\u2018' && r <= '\u201f') || // curly quotes
		(r >= '\u3000' && r <= '\u303f') || // CJK punctuation
		(r >= '\uff01' && r <= '\uff0f') || (r >= '\uff1a' && r <= '\uff20') || // full-width punctuation
		(r >= '\uff3b' && r <= '\uff40') || (r >= '\uff5b' && r <= '\uff65')
}

// trimURL drops punctuation that ends the sentence rather than the URL: dots, commas,
// quotes and the like, and a closing bracket without its opening partner inside the
// URL (so Wikipedia's "Go_(programming_language)" keeps its parenthesis, while "(see
// https://x.test)" loses it). hostStart is where the part after "://" begins; a URL
// with nothing left there is no URL.
func trimURL(s string, hostStart, end int) int {
	// Counted once, and kept up to date while trimming, so a URL ending in a
	// thousand ")" costs no more than one ending in one.
	var count [128]int
	for i := hostStart; i < end; i++ {
		if c := s[i]; c < 128 {
			count[c]++
		}
	}
	for end > hostStart {
		c := s[end-1]
		switch c {
		case '.', ',', ';', ':', '!', '?', '\'', '*':
		case ')', ']', '}':
			open := byte('(')
			if c == ']' {
				open = '['
			} else if c == '}' {
				open = '{'
			}
			if count[open] >= count[c] {
				return end
			}
		default:
			return end
		}
		end--
		if c < 128 {
			count[c]--
		}
	}
	return end
}

// indexFold is strings.Index for a lower-case ASCII needle starting with "h",
// ignoring case.
func indexFold(s, lower string) int {
	for i := 0; i+len(lower) <= len(s); i++ {
		k := strings.IndexAny(s[i:], "hH")
		if k < 0 {
			return -1
		}
		i += k
		if hasPrefixFold(s[i:], lower) {
			return i
		}
	}
	return -1
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
