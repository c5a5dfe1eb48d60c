package parse

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLinks(t *testing.T) {
	tests := []struct {
		name       string
		text, html string
		want       []string
	}{
		{name: "entity-encoded href",
			html: `<a href="https://example.com/confirm?user=1&amp;token=abc&#x26;x=&quot;y&quot;">Confirm</a>`,
			want: []string{`https://example.com/confirm?user=1&token=abc&x="y"`}},
		{name: "trailing punctuation",
			text: "Confirm here: https://example.com/c?t=1. Thanks, or https://example.com/x, or (https://example.com/y)! Or \"https://example.com/q\" and 'https://example.com/s';",
			want: []string{"https://example.com/c?t=1", "https://example.com/x", "https://example.com/y", "https://example.com/q", "https://example.com/s"}},
		{name: "parentheses that belong to the url",
			text: "See https://en.wikipedia.org/wiki/Go_(programming_language) and (https://en.wikipedia.org/wiki/Email_(disambiguation)).",
			want: []string{"https://en.wikipedia.org/wiki/Go_(programming_language)", "https://en.wikipedia.org/wiki/Email_(disambiguation)"}},
		{name: "html first then text-only, each once",
			html: `<a href="https://a.test/1">one</a> <a href="https://a.test/2">two</a> <a href="https://a.test/1">again</a>`,
			text: "https://a.test/2 https://a.test/3 https://a.test/1 https://a.test/3",
			want: []string{"https://a.test/1", "https://a.test/2", "https://a.test/3"}},
		{name: "links that lead nowhere are ignored",
			html: `<a href="javascript:alert(1)">x</a><a href="  JavaScript:alert(1)">x</a><a href="java` + "\n" + `script:alert(1)">x</a>` +
				`<a href="data:text/html,hi">x</a><a href="cid:logo@x">x</a><a href="#top">top</a><a href="">empty</a><a name="anchor">no href</a>` +
				`<a href="mailto:help@example.com">mail</a><area href="https://example.com/map" alt="map">`,
			want: []string{"mailto:help@example.com", "https://example.com/map"}},
		{name: "href wrapped by a broken mailer",
			html: "<a href=\"\n https://example.com/a?b=1\n&amp;c=2 \">x</a>",
			want: []string{"https://example.com/a?b=1&c=2"}},
		{name: "angle brackets",
			text: "Open <https://example.com/a> now.",
			want: []string{"https://example.com/a"}},
		{name: "url wrapped inside angle brackets",
			text: "Open <https://example.com/very/long/path?\n  token=abc> now, or https://example.com/b",
			want: []string{"https://example.com/very/long/path?token=abc", "https://example.com/b"}},
		{name: "only http and https in text",
			text: "Write to mailto:ann@x.test or ftp://x.test/a or www.example.com, not xhttp://nope.test; HTTPS://EXAMPLE.COM/A is fine",
			want: []string{"HTTPS://EXAMPLE.COM/A"}},
		{name: "cjk punctuation ends a url",
			text: "こちら：https://example.com/verify?t=abc。次に「https://example.com/b」を開いてください",
			want: []string{"https://example.com/verify?t=abc", "https://example.com/b"}},
		{name: "url with non-ascii path",
			text: "https://de.wikipedia.org/wiki/Straße…",
			want: []string{"https://de.wikipedia.org/wiki/Straße"}},
		{name: "scheme with nothing after it", text: "http:// and https://.", want: nil},
		{name: "nothing", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Links(tt.text, tt.html)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Links(%q, %q) = %q, want %q", tt.text, tt.html, got, tt.want)
			}
		})
	}
}

// TestLinksQuotedPrintable checks that a URL split across quoted-printable lines, in
// the text and in an href, comes out whole.
func TestLinksQuotedPrintable(t *testing.T) {
	raw := "Content-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Confirm: https://example.com/confirm?user=3Dann&token=3D0123456789abcdef0123=\r\n" +
		"456789abcdef0123456789 \r\nor https://example.com/text-=\nonly=\r\n\r\n" +
		"--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<a href=3D\"https://example.com/confirm?user=3Dann&amp;token=3D0123456789abcdef=\r\n" +
		"0123456789abcdef0123456789\">Confirm</a>\r\n--b--\r\n"
	p, err := Message([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"https://example.com/confirm?user=ann&token=0123456789abcdef0123456789abcdef0123456789",
		"https://example.com/text-only",
	}
	if !slices.Equal(p.Links, want) {
		t.Errorf("Message(%q).Links = %q, want %q", raw, p.Links, want)
	}
}

func TestRenderHTML(t *testing.T) {
	tests := []struct {
		name, html, want string
	}{
		{"blocks and breaks", "<h1>Hi</h1><p>one<br>two</p><div>three</div>four", "Hi\n\none\ntwo\n\nthree\nfour"},
		{"white space collapses", "<p>  a \n\t b  </p>", "a b"},
		{"table cells side by side", "<table><tr><td>Code</td><td><b>1234</b></td></tr><tr><td>x</td></tr></table>", "Code 1234\nx"},
		{"entities", "<p>Tom &amp; Jerry &lt;3 &nbsp;&euro;5 &#x41;&#66;</p>", "Tom & Jerry <3 €5 AB"},
		{"hidden content dropped", "<head><title>T</title><style>p{color:red}</style></head><body><script>var a='<p>x</p>';</script><p>seen</p><noscript>no</noscript><template><p>t</p></template></body>", "seen"},
		{"pre keeps its lines", "<pre>a  b\n  c</pre>after", "a  b\n  c\n\nafter"},
		{"invisible padding dropped", "<p>4&#8203;8&zwnj;2&shy;917</p>", "482917"},
		{"unclosed tags", "<p>one<p>two<div>three", "one\n\ntwo\nthree"},
		{"not html at all", "just text", "just text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := renderHTML(tt.html); got != tt.want {
				t.Errorf("renderHTML(%q) = %q, want %q", tt.html, got, tt.want)
			}
		})
	}
}

// FuzzLinks: no panic, and every link is valid UTF-8 without white space at its ends.
func FuzzLinks(f *testing.F) {
	f.Add("see https://x.test/a_(b)). <https://x.test/\n c>", `<a href="https://x.test/&amp;">x</a><area href=" #x">`)
	f.Fuzz(func(t *testing.T, text, html string) {
		links := Links(text, html)
		for _, l := range links {
			if l == "" || !utf8.ValidString(l) || strings.TrimSpace(l) != l {
				t.Errorf("Links(%q, %q) has %q", text, html, l)
			}
		}
		details := LinkDetails(text, html)
		if !slices.Equal(urls(details), links) {
			t.Errorf("LinkDetails(%q, %q) = %q, not the links %q", text, html, details, links)
		}
		for _, d := range details {
			if len(d.Text) > maxAnchorText || !utf8.ValidString(d.Text) || strings.TrimSpace(d.Text) != d.Text {
				t.Errorf("LinkDetails(%q, %q) has text %q", text, html, d.Text)
			}
		}
	})
}

func TestLinkDetails(t *testing.T) {
	long := strings.Repeat("é", 300)
	tests := []struct {
		name, text, html string
		want             []Link
	}{
		{"markup inside", "", `<p>Please <a href="https://a.test/x">confirm <b>your</b>
			address</a> now</p>`, []Link{{"https://a.test/x", "confirm your address"}}},
		{"unclosed anchor ends at the next", "", `<a href="https://a.test/1">one<a href="https://a.test/2">two`,
			[]Link{{"https://a.test/1", "one"}, {"https://a.test/2", "two"}}},
		{"image link, then the same URL with text", "", `<a href="https://a.test/x"><img src="cid:l"></a> <a href="https://a.test/x">Open</a>`,
			[]Link{{"https://a.test/x", "Open"}}},
		{"area shows no text", "", `<map><area href="https://a.test/m" alt="Map"></map>`, []Link{{"https://a.test/m", ""}}},
		{"hidden text is no text", "", `<a href="https://a.test/s"><style>p{}</style>Go</a>`, []Link{{"https://a.test/s", "Go"}}},
		{"bare URL in text", "see https://a.test/t.", "", []Link{{"https://a.test/t", ""}}},
		{"long text cut on a character", "", `<a href="https://a.test/l">` + long + `</a>`,
			[]Link{{"https://a.test/l", strings.Repeat("é", maxAnchorText/2)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LinkDetails(tt.text, tt.html)
			if !slices.Equal(got, tt.want) {
				t.Errorf("LinkDetails = %q, want %q", got, tt.want)
			}
			if urls := Links(tt.text, tt.html); len(urls) != len(got) {
				t.Errorf("Links = %q, not one per detail", urls)
			}
		})
	}
}
