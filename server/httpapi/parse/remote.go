package parse

import (
	"bytes"

	"golang.org/x/net/html"
)

// remoteAttrs are the attributes through which an HTML mail makes the reader's
// browser fetch something as soon as it is shown: the tracking pixel's way in.
var remoteAttrs = map[string]bool{"src": true, "background": true, "poster": true, "srcset": true, "style": true}

// RemoteContent counts the references in an HTML body that a browser would fetch
// from elsewhere on display (images, backgrounds, stylesheets, CSS url()), so the page
// can say what it blocked. Links the reader must click are not counted.
func RemoteContent(body string) int {
	z := newTokenizer(body)
	n := 0
	inStyle := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return n
		case html.TextToken:
			if inStyle {
				n += remoteURLs(z.Text())
			}
		case html.EndTagToken:
			if tag, _ := z.TagName(); string(tag) == "style" {
				inStyle = false
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			tag, hasAttr := z.TagName()
			isLink := string(tag) == "link"
			inStyle = string(tag) == "style"
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				switch {
				case string(k) == "style":
					n += remoteURLs(v)
				case isLink && string(k) == "href":
					if isRemote(v) {
						n++
					}
				case remoteAttrs[string(k)]:
					if isRemote(bytes.TrimSpace(v)) {
						n++
					}
				}
			}
		}
	}
}

// remoteURLs counts CSS url(...) and @import references to other hosts.
func remoteURLs(css []byte) int {
	n := 0
	lower := bytes.ToLower(css)
	for _, marker := range [][]byte{[]byte("url("), []byte("@import")} {
		rest := lower
		for {
			i := bytes.Index(rest, marker)
			if i < 0 {
				break
			}
			rest = rest[i+len(marker):]
			if isRemote(bytes.TrimLeft(rest, " \t\r\n'\"")) {
				n++
			}
		}
	}
	return n
}

func isRemote(ref []byte) bool {
	ref = bytes.ToLower(ref)
	return bytes.HasPrefix(ref, []byte("http:")) || bytes.HasPrefix(ref, []byte("https:")) || bytes.HasPrefix(ref, []byte("//"))
}
