package parse

import (
	"runtime"
	"strings"
	"testing"
)

// TestTokenizerBounded: 10 MiB of "<" is one text token to x/net/html, which buffered
// it whole and doubled its buffer on the way (6.5 bytes allocated per byte of input
// per pass); bounded, a pass costs near the input's size.
func TestTokenizerBounded(t *testing.T) {
	body := strings.Repeat("<", 10<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := RemoteContent(body)
	runtime.ReadMemStats(&after)
	if n != 0 {
		t.Errorf("RemoteContent = %d, want 0", n)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 3*uint64(len(body)) {
		t.Errorf("RemoteContent of %d bytes allocated %d bytes, want at most 3 times the input", len(body), got)
	}
	text, _ := renderHTML(body)
	if len(text) != len(body) {
		t.Errorf("renderHTML of %d '<' gave %d bytes of text, want all of them", len(body), len(text))
	}
}

// TestTokenizerLongTokens: text longer than the bound is all kept, a tag longer than
// it is dropped, and what follows either is read as usual.
func TestTokenizerLongTokens(t *testing.T) {
	long := strings.Repeat("x", 3*maxToken+17)
	tests := []struct {
		name, in, text string
		hrefs          []string
	}{
		{"long text", "<p>" + long + `</p><a href="https://a.test/">go</a>`, long + "\n\ngo", []string{"https://a.test/"}},
		{"long attribute", `<a title="` + long + `">t</a><a href="https://b.test/">next</a>`, "tnext", []string{"https://b.test/"}},
		{"long style", "<style>" + long + "</style><p>after</p>", "after", nil},
		{"unclosed long tag", `<a title="` + long, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, hrefs := renderHTML(tt.in)
			if text != tt.text || strings.Join(hrefs, " ") != strings.Join(tt.hrefs, " ") {
				t.Errorf("renderHTML = %.40q (%d bytes), %q; want %.40q (%d bytes), %q", text, len(text), hrefs, tt.text, len(tt.text), tt.hrefs)
			}
		})
	}
}

// FuzzRenderHTML runs the HTML readers with a token bound of a few bytes, so that
// every input goes through the restarts that only long tokens take otherwise: they
// must end, never panic, and produce text in proportion to the input.
func FuzzRenderHTML(f *testing.F) {
	for _, s := range []string{"<p>hello <a href='https://a.test/'>x</a>", "<<<<<<<<<<", `<a title="xxxxxxxxxxxxxxxx">t</a>`, "<style>a{b:url(http://x)}</style><p>y", "<!-- long comment -->z", "<script>1<2</script>"} {
		f.Add(s)
	}
	defer func(n int) { maxToken = n }(maxToken)
	maxToken = 8
	f.Fuzz(func(t *testing.T, s string) {
		text, _ := renderHTML(s)
		RemoteContent(s)
		if len(text) > 3*len(s) {
			t.Errorf("renderHTML(%q) = %d bytes of text", s, len(text))
		}
	})
}
