package parse

import (
	"golang.org/x/net/html"
)

// HTMLFacts is what the deliverability report reads from an HTML body.
type HTMLFacts struct {
	TextChars     int // characters of the rendered text, spaces collapsed
	Images        int // <img> elements
	ImagesWithout int // <img> elements with no alt attribute at all (alt="" marks a decorative one)
}

// Facts renders an HTML body as the API's text does and counts its images and the
// images without an alt attribute. Nothing is fetched.
func Facts(body string) HTMLFacts {
	text, _ := renderHTML(body)
	f := HTMLFacts{}
	for _, r := range text {
		if r != ' ' && r != '\n' && r != '\t' {
			f.TextChars++
		}
	}
	z := newTokenizer(body)
	for {
		switch z.Next() {
		case html.ErrorToken:
			return f
		case html.StartTagToken, html.SelfClosingTagToken:
			tag, hasAttr := z.TagName()
			if string(tag) != "img" {
				continue
			}
			f.Images++
			alt := false
			for hasAttr {
				var k []byte
				k, _, hasAttr = z.TagAttr()
				alt = alt || string(k) == "alt"
			}
			if !alt {
				f.ImagesWithout++
			}
		}
	}
}
