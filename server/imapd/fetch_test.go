package imapd

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mayfly-mail/mayfly/storage"
)

// invoicePDF is the attachment of testdata/invoice.eml.
func invoicePDF(t *testing.T, raw []byte) []byte {
	t.Helper()
	start := bytes.Index(raw, []byte("JVBER"))
	end := bytes.Index(raw, []byte("--outer-b--"))
	pdf, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(raw[start:end]), "\r\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return pdf
}

func TestFetch(t *testing.T) {
	raw := readFile(t, "testdata/invoice.eml")
	pdf := invoicePDF(t, raw)
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		plain := put(t, st, inbox, "plain", nil)
		invoice := put(t, st, inbox, "invoice", raw)
		c, _ := open(t, srv.addr, inbox, nil)

		attachment := &imap.FetchItemBodySection{Part: []int{2}, Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 10}}
		whole := &imap.FetchItemBodySection{Peek: true}
		subject := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
		mime := &imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierMIME, Peek: true}
		binary := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
		msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(invoice.UID)), &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
			BodyStructure:     &imap.FetchItemBodyStructure{Extended: true},
			BodySection:       []*imap.FetchItemBodySection{attachment, whole, subject, mime},
			BinarySection:     []*imap.FetchItemBinarySection{binary},
			BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
		}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("UID FETCH = %d messages, %v; want 1", len(msgs), err)
		}
		m := msgs[0]
		if m.SeqNum != 2 || m.UID != imap.UID(invoice.UID) {
			t.Errorf("FETCH seq %d UID %d, want 2, %d", m.SeqNum, m.UID, invoice.UID)
		}
		if m.RFC822Size != int64(len(raw)) {
			t.Errorf("RFC822.SIZE = %d, want %d", m.RFC822Size, len(raw))
		}
		if len(m.Flags) != 0 {
			t.Errorf("FLAGS = %v, want none", m.Flags)
		}
		if !m.InternalDate.Equal(invoice.Received.Truncate(time.Second)) {
			t.Errorf("INTERNALDATE = %v, want %v", m.InternalDate, invoice.Received.Truncate(time.Second))
		}
		env := m.Envelope
		if env == nil || env.Subject != "Your invoice n°7" || env.MessageID != "invoice-7@shop.test" ||
			len(env.From) != 1 || env.From[0].Name != "Renée Shop" || env.From[0].Addr() != "orders@shop.test" ||
			len(env.Cc) != 1 || env.Cc[0].Addr() != "audit@shop.test" || !env.Date.Equal(time.Date(2026, 3, 2, 9, 59, 58, 0, time.UTC)) {
			t.Errorf("ENVELOPE = %+v", env)
		}
		mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
		if !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
			t.Fatalf("BODYSTRUCTURE = %#v, want multipart/mixed of 2", m.BodyStructure)
		}
		text, _ := mp.Children[0].(*imap.BodyStructureSinglePart)
		att, _ := mp.Children[1].(*imap.BodyStructureSinglePart)
		if text == nil || text.MediaType() != "text/plain" || !strings.EqualFold(text.Encoding, "quoted-printable") || text.Params["charset"] != "utf-8" {
			t.Errorf("part 1 = %#v, want text/plain quoted-printable utf-8", text)
		}
		if att == nil || att.MediaType() != "application/pdf" || att.Filename() != "invoice-7.pdf" || att.Disposition().Value != "attachment" {
			t.Errorf("part 2 = %#v, want the application/pdf attachment invoice-7.pdf", att)
		}
		if got := string(m.FindBodySection(attachment)); got != "JVBERi0xLj" {
			t.Errorf("BODY[2]<0.10> = %q, want %q", got, "JVBERi0xLj")
		}
		if got := m.FindBodySection(whole); !bytes.Equal(got, raw) {
			t.Errorf("BODY[] differs from the stored message: %d bytes, want %d", len(got), len(raw))
		}
		if got := string(m.FindBodySection(subject)); got != "Subject: Your invoice =?UTF-8?Q?n=C2=B07?=\r\n\r\n" {
			t.Errorf("BODY[HEADER.FIELDS (SUBJECT)] = %q", got)
		}
		if got := string(m.FindBodySection(mime)); !strings.Contains(got, "Content-Disposition: attachment") {
			t.Errorf("BODY[2.MIME] = %q, want the part's header", got)
		}
		if got := m.FindBinarySection(binary); !bytes.Equal(got, pdf) {
			t.Errorf("BINARY[2] = %q, want the decoded PDF %q", got, pdf)
		}
		if n, ok := m.FindBinarySectionSize([]int{2}); !ok || n != uint32(len(pdf)) {
			t.Errorf("BINARY.SIZE[2] = %d, %v; want %d", n, ok, len(pdf))
		}
		// Nothing above was without .PEEK.
		if got, _ := st.Get(ctxFor(t), inbox, invoice.ID); got.Flags != 0 {
			t.Errorf("flags after BODY.PEEK = %v, want none", got.Flags)
		}

		// BODY[...] without .PEEK sets \Seen, in the store, and says so.
		msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("FETCH 1 BODY[TEXT] = %v", err)
		}
		if !slices.Equal(msgs[0].Flags, []imap.Flag{imap.FlagSeen}) {
			t.Errorf("FLAGS with BODY[TEXT] = %v, want \\Seen", msgs[0].Flags)
		}
		if got := string(msgs[0].BodySection[0].Bytes); got != "body of plain\r\n" {
			t.Errorf("BODY[TEXT] = %q", got)
		}
		if got, _ := st.Get(ctxFor(t), inbox, plain.ID); got.Flags&storage.FlagSeen == 0 {
			t.Errorf("store flags after BODY[TEXT] = %v, want \\Seen (the API's seen)", got.Flags)
		}

		// Sequence sets as clients write them. ("*" alone, "2:1" and "n:*" past the
		// end are in TestRawProtocol: imapclient drops answers it cannot match.)
		for _, tt := range []struct {
			set  imap.NumSet
			want []uint32
		}{
			{imap.SeqSet{{Start: 1, Stop: 0}}, []uint32{1, 2}},
			{imap.SeqSetNum(3), nil},
			{imap.UIDSet{{Start: imap.UID(invoice.UID), Stop: 0}}, []uint32{2}},
			{imap.UIDSetNum(imap.UID(invoice.UID + 1)), nil},
		} {
			msgs, err := c.Fetch(tt.set, &imap.FetchOptions{Flags: true}).Collect()
			if err != nil {
				t.Fatalf("FETCH %v = %v", tt.set, err)
			}
			var got []uint32
			for _, m := range msgs {
				got = append(got, m.SeqNum)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("FETCH %v FLAGS = seqs %v, want %v", tt.set, got, tt.want)
			}
		}
	})
}

func TestStoreFlags(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		a := put(t, st, inbox, "a", nil)
		b := put(t, st, inbox, "b", nil)
		c, _ := open(t, srv.addr, inbox, nil)
		store := func(set imap.NumSet, op imap.StoreFlagsOp, flags ...imap.Flag) []*imapclient.FetchMessageBuffer {
			t.Helper()
			msgs, err := c.Store(set, &imap.StoreFlags{Op: op, Flags: flags}, nil).Collect()
			if err != nil {
				t.Fatalf("STORE %v %v %v = %v", set, op, flags, err)
			}
			return msgs
		}
		storeFlags := func(m *storage.Message) storage.Flags {
			t.Helper()
			got, err := st.Get(ctxFor(t), inbox, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Flags
		}

		msgs := store(imap.SeqSetNum(1), imap.StoreFlagsAdd, `\seen`)
		if len(msgs) != 1 || !slices.Equal(msgs[0].Flags, []imap.Flag{imap.FlagSeen}) || msgs[0].UID != imap.UID(a.UID) {
			t.Errorf("STORE +FLAGS \\Seen answered %+v", msgs)
		}
		if got := storeFlags(a); got != storage.FlagSeen {
			t.Errorf("store flags = %v, want seen", got)
		}
		store(imap.UIDSetNum(imap.UID(b.UID)), imap.StoreFlagsSet, imap.FlagFlagged, imap.FlagAnswered, "$Junk")
		if got := storeFlags(b); got != storage.FlagFlagged|storage.FlagAnswered {
			t.Errorf("store flags = %v, want flagged, answered", got)
		}
		store(imap.SeqSetNum(1, 2), imap.StoreFlagsDel, imap.FlagSeen, imap.FlagAnswered)
		if got := storeFlags(a); got != 0 {
			t.Errorf("store flags of a after -FLAGS = %v, want none", got)
		}
		msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Flags: true}).Collect()
		if err != nil || len(msgs) != 1 || !slices.Equal(msgs[0].Flags, []imap.Flag{imap.FlagFlagged, "$Junk"}) {
			t.Errorf("FETCH 2 FLAGS = %+v, %v; want \\Flagged $Junk", msgs, err)
		}
		// Keywords last as long as the session: another one does not see them.
		c2, _ := open(t, srv.addr, inbox, nil)
		msgs, err = c2.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Flags: true}).Collect()
		if err != nil || len(msgs) != 1 || !slices.Equal(msgs[0].Flags, []imap.Flag{imap.FlagFlagged}) {
			t.Errorf("FETCH 2 FLAGS in another session = %+v, %v; want \\Flagged", msgs, err)
		}
		data, err := c2.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, nil).Wait()
		if err != nil || !slices.Equal(data.AllUIDs(), []imap.UID{imap.UID(b.UID)}) {
			t.Errorf("UID SEARCH FLAGGED = %v, %v", data, err)
		}
		// .SILENT answers nothing.
		silent, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
		if err != nil || len(silent) != 0 {
			t.Errorf("STORE +FLAGS.SILENT = %+v, %v; want no FETCH", silent, err)
		}
		if got := storeFlags(a); got != storage.FlagDeleted {
			t.Errorf("store flags = %v, want deleted", got)
		}
	})
}

func TestExpunge(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		var msgs []*storage.Message
		for _, s := range []string{"a", "b", "c", "d"} {
			msgs = append(msgs, put(t, st, inbox, s, nil))
		}
		c, _ := open(t, srv.addr, inbox, nil)
		if _, err := c.Store(imap.SeqSetNum(2, 3, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
			t.Fatal(err)
		}
		// UID EXPUNGE takes only the UIDs named.
		seqs, err := c.UIDExpunge(imap.UIDSetNum(imap.UID(msgs[2].UID))).Collect()
		if err != nil || !slices.Equal(seqs, []uint32{3}) {
			t.Fatalf("UID EXPUNGE = %v, %v; want [3]", seqs, err)
		}
		if _, err := st.Get(ctxFor(t), inbox, msgs[2].ID); err == nil {
			t.Errorf("message c is still in the store after UID EXPUNGE")
		}
		seqs, err = c.Expunge().Collect()
		if err != nil || !slices.Equal(seqs, []uint32{2, 2}) {
			t.Fatalf("EXPUNGE = %v, %v; want [2 2]", seqs, err)
		}
		list, err := st.List(ctxFor(t), inbox, storage.Page{})
		if err != nil || len(list) != 1 || list[0].ID != msgs[0].ID {
			t.Errorf("store after EXPUNGE = %d messages, %v; want only a", len(list), err)
		}
		// CLOSE expunges too, and says nothing.
		if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
			t.Fatal(err)
		}
		if err := c.UnselectAndExpunge().Wait(); err != nil {
			t.Fatalf("CLOSE = %v", err)
		}
		if list, _ := st.List(ctxFor(t), inbox, storage.Page{}); len(list) != 0 {
			t.Errorf("store after CLOSE = %d messages, want none", len(list))
		}
	})
}
