package imapd

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// testView returns a view whose client knows uids, all live.
func testView(uids ...imap.UID) *view {
	v := &view{live: make(map[imap.UID]*msgMeta), keywords: make(map[imap.UID][]imap.Flag), notify: make(chan struct{}, 1)}
	for _, uid := range uids {
		v.live[uid] = &msgMeta{id: fmt.Sprint("id", uid), uid: uid}
		v.client = append(v.client, uid)
		v.maxUID = uid
	}
	return v
}

func TestViewUpdates(t *testing.T) {
	v := testView(10, 20, 30)
	v.addLocked(&msgMeta{uid: 40})
	v.addLocked(&msgMeta{uid: 50})
	v.addLocked(&msgMeta{uid: 40}) // again: nothing new
	if v.addLocked(&msgMeta{uid: 25}) {
		t.Errorf("addLocked(25) below the highest UID = true, want false")
	}
	v.goneLocked(50) // before the client heard of it: its EXISTS is taken back
	v.goneLocked(20)
	v.goneLocked(20) // again: nothing
	v.flagsLocked(30, storage.FlagSeen)
	v.flagsLocked(30, storage.FlagSeen) // unchanged
	v.flagsLocked(30, storage.FlagSeen|storage.FlagFlagged)
	v.flagsLocked(40, storage.FlagSeen) // the client has not seen 40 yet
	want := []update{{updExists, 40}, {updExpunge, 20}, {updFlags, 30}}
	if !slices.Equal(v.pending, want) {
		t.Errorf("pending = %v, want %v", v.pending, want)
	}
	if got := flagList(v.live[30].flags, nil); !slices.Equal(got, []imap.Flag{imap.FlagSeen, imap.FlagFlagged}) {
		t.Errorf("flags of 30 = %v", got)
	}
	v.setOwnFlags(30, storage.FlagAnswered)
	if !slices.Equal(v.pending, want[:2]) {
		t.Errorf("pending after the session's own STORE = %v, want %v", v.pending, want[:2])
	}
}

func TestResolve(t *testing.T) {
	v := testView(10, 20, 30)
	delete(v.live, 20) // expired; its EXPUNGE not told yet
	v.searchRes = imap.UIDSetNum(10, 30)
	tests := []struct {
		set  imap.NumSet
		want []uint32 // sequence numbers
	}{
		{imap.SeqSet{{Start: 1, Stop: 0}}, []uint32{1, 3}},
		{imap.SeqSet{{Start: 0, Stop: 0}}, []uint32{3}},
		{imap.SeqSet{{Start: 3, Stop: 1}}, []uint32{1, 3}},
		{imap.SeqSet{{Start: 5, Stop: 0}}, []uint32{3}},
		{imap.SeqSetNum(2), nil},
		{imap.SeqSetNum(4), nil},
		{imap.UIDSet{{Start: 25, Stop: 0}}, []uint32{3}},
		{imap.UIDSet{{Start: 40, Stop: 0}}, []uint32{3}},
		{imap.UIDSetNum(20), nil},
		{imap.UIDSetNum(31), nil},
		{imap.SearchRes(), []uint32{1, 3}},
	}
	for _, tt := range tests {
		var got []uint32
		for _, tg := range v.resolve(tt.set) {
			got = append(got, tg.seq)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("resolve(%v) = %v, want %v", tt.set, got, tt.want)
		}
	}
	if got := testView().resolve(imap.SeqSet{{Start: 1, Stop: 0}}); len(got) != 0 {
		t.Errorf("resolve(1:*) on an empty view = %v", got)
	}
}

func TestBodyStructureLimits(t *testing.T) {
	depth := func(bs imap.BodyStructure) int {
		d := 0
		for {
			switch b := bs.(type) {
			case *imap.BodyStructureMultiPart:
				bs = b.Children[0]
			case *imap.BodyStructureSinglePart:
				if b.MessageRFC822 == nil {
					return d
				}
				bs = b.MessageRFC822.BodyStructure
			}
			d++
		}
	}
	// imapserver.ExtractBodyStructure spends most of a minute and 14GB on this one.
	nested := []byte(strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 20000) + "Subject: deep\r\n\r\nx\r\n")
	if d := depth(bodyStructure(mailparse.Parse(nested))); d != mailparse.MaxDepth {
		t.Errorf("depth of 20000 nested messages = %d, want %d", d, mailparse.MaxDepth)
	}
	var multi []byte
	for i := range 200 {
		multi = fmt.Appendf(multi, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	multi = append(multi, "\r\nx\r\n"...)
	if d := depth(bodyStructure(mailparse.Parse(multi))); d != mailparse.MaxDepth {
		t.Errorf("depth of 200 nested multiparts = %d, want %d", d, mailparse.MaxDepth)
	}
	wide := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n\r\nx\r\n", 5000) + "--b--\r\n")
	if mp, ok := bodyStructure(mailparse.Parse(wide)).(*imap.BodyStructureMultiPart); !ok || len(mp.Children) != mailparse.MaxParts-1 {
		t.Errorf("5000 parts = %T with %d children, want %d", mp, len(mp.Children), mailparse.MaxParts-1)
	}

	tests := []struct {
		name, raw, want string
	}{
		{"no content type", "Subject: x\r\n\r\nhi\r\n", "text/plain"},
		{"multipart without boundary", "Content-Type: multipart/mixed\r\n\r\nhi\r\n", "text/plain"},
		{"unparsable", "Content-Type: ;;;\r\n\r\nhi\r\n", "text/plain"},
		{"multipart without parts", "Content-Type: multipart/mixed; boundary=b\r\n\r\nnothing\r\n", "text/plain"}, // mailparse: no delimiter, read as text
		{"digest", "Content-Type: multipart/digest; boundary=b\r\n\r\n--b\r\n\r\nSubject: in\r\n\r\nx\r\n--b--\r\n", "multipart/digest[message/rfc822]"},
	}
	for _, tt := range tests {
		bs := bodyStructure(mailparse.Parse([]byte(tt.raw)))
		got := bs.MediaType()
		if mp, ok := bs.(*imap.BodyStructureMultiPart); ok {
			var kids []string
			for _, c := range mp.Children {
				kids = append(kids, c.MediaType())
			}
			got += "[" + strings.Join(kids, ",") + "]"
		}
		if got != tt.want {
			t.Errorf("%s: structure %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestEnvelopeCache(t *testing.T) {
	c := newEnvelopeCache(2)
	e := func(s string) *imap.Envelope { return &imap.Envelope{Subject: s} }
	c.put("a", e("a"))
	c.put("b", e("b"))
	c.put("c", e("c")) // a and b are now the old generation
	if c.get("a") == nil {
		t.Errorf("a is gone after one turn; want it in the old generation")
	}
	c.put("d", e("d"))
	c.put("e", e("e"))
	if c.get("b") != nil {
		t.Errorf("b outlived two generations")
	}
	c.put("big", &imap.Envelope{Subject: strings.Repeat("x", maxCachedEnvelope+1)})
	if c.get("big") != nil {
		t.Errorf("an envelope over the size limit was cached")
	}
}

// TestHeaderEnvelope holds headerEnvelope, which reads the header alone, to the
// envelope of the whole parse over every message of mailparse's corpus.
func TestHeaderEnvelope(t *testing.T) {
	files, _ := filepath.Glob("../mailparse/testdata/corpus/*.eml")
	if len(files) < 80 {
		t.Fatalf("%d corpus messages, want mailparse's corpus", len(files))
	}
	for _, name := range append(files, "testdata/invoice.eml") {
		raw := readFile(t, name)
		if env, head := envelope(mailparse.Parse(raw)), headerEnvelope(raw); !reflect.DeepEqual(env, head) {
			t.Errorf("%s: ENVELOPE from the header alone = %+v, from the message %+v", name, head, env)
		}
	}
}

func TestParseCache(t *testing.T) {
	msg := func(n int) *mailparse.Message {
		return mailparse.Parse([]byte("Subject: s\r\n\r\n" + strings.Repeat("x", n)))
	}
	c := newParseCache(64 << 10)
	c.put("a", msg(10<<10))
	if c.get("a") == nil {
		t.Fatal("a message was not kept")
	}
	c.put("big", msg(20<<10)) // over a quarter of the cache
	if c.get("big") != nil {
		t.Error("a message over a quarter of the cache was kept")
	}
	for i := range 20 {
		c.put(fmt.Sprint(i), msg(10<<10))
	}
	if c.bytes > c.max || len(c.m) > 6 {
		t.Errorf("cache holds %d bytes in %d entries, over its %d", c.bytes, len(c.m), c.max)
	}
}
