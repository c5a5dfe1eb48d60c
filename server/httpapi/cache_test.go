package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
)

func TestParseCacheLRU(t *testing.T) {
	entry := func(n int) *cached {
		p := &parse.Parsed{Text: strings.Repeat("x", n)}
		return &cached{p: p}
	}
	later := time.Now().Add(time.Hour)
	pc := newParseCache(10 << 10)
	pc.put("a@x", "1", entry(4<<10), later)
	pc.put("a@x", "2", entry(4<<10), later)
	pc.get("a@x", "1") // 2 is now the least recently used
	pc.put("b@x", "1", entry(4<<10), later)
	pc.put("a@x", "big", entry(6<<10), later) // over half the cache: not kept
	for _, tt := range []struct {
		inbox, id string
		want      bool
	}{{"a@x", "1", true}, {"a@x", "2", false}, {"b@x", "1", true}, {"a@x", "big", false}} {
		if _, ok := pc.get(tt.inbox, tt.id); ok != tt.want {
			t.Errorf("get(%q, %q) = %v, want %v", tt.inbox, tt.id, ok, tt.want)
		}
	}
	if n := pc.bytes(); n > 10<<10 {
		t.Errorf("bytes() = %d, over the limit", n)
	}
	pc.dropInbox("a@x")
	if _, ok := pc.get("b@x", "1"); !ok || pc.bytes() != entry(4<<10).size() {
		t.Errorf("dropInbox(a@x) took b@x's entry or left bytes: %d", pc.bytes())
	}
}

// TestCacheSizeCountsLinkText: an anchor's text is held beside its URL, and a message
// of many long-texted links must weigh what it holds.
func TestCacheSizeCountsLinkText(t *testing.T) {
	p, err := parse.Message([]byte("Content-Type: text/html\r\n\r\n" +
		strings.Repeat(`<a href="https://a.test/">`+strings.Repeat("words ", 30)+`</a>`, 2)))
	if err != nil {
		t.Fatal(err)
	}
	without := &cached{p: &parse.Parsed{Text: p.Text, HTML: p.HTML, Links: p.Links}}
	if got, want := (&cached{p: p}).size(), without.size()+int64(len(p.LinkDetails[0].Text)); got < want {
		t.Errorf("size() = %d, want at least %d with the link's text", got, want)
	}
}
