package imapd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mayfly-mail/mayfly/storage"
)

func TestSearch(t *testing.T) {
	invoiceRaw := readFile(t, "testdata/invoice.eml")
	resetRaw := []byte("From: Bob <bob@other.test>\r\nTo: box@mayfly.test\r\nSubject: Reset your password\r\n" +
		"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<p>Gr=FC=DFe, click <a href=3D\"https://x.test/reset\">here</a></p>\r\n")
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		welcome := put(t, st, inbox, "welcome", nil)
		invoice := put(t, st, inbox, "invoice", invoiceRaw)
		reset := put(t, st, inbox, "reset", resetRaw)
		if _, err := st.SetFlags(ctxFor(t), inbox, welcome.ID, storage.FlagSeen, 0); err != nil {
			t.Fatal(err)
		}
		c, _ := open(t, srv.addr, inbox, nil)
		uid := func(m *storage.Message) imap.UID { return imap.UID(m.UID) }
		day := 24 * time.Hour
		today := time.Now().Truncate(day)

		tests := []struct {
			name     string
			criteria imap.SearchCriteria
			want     []*storage.Message
		}{
			{"ALL", imap.SearchCriteria{}, []*storage.Message{welcome, invoice, reset}},
			{"FROM domain", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "shop.test"}}}, []*storage.Message{invoice}},
			{"FROM any case", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "ANN"}}}, []*storage.Message{welcome}},
			{"FROM encoded name", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "renée"}}}, []*storage.Message{invoice}},
			{"SUBJECT", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "invoice"}}}, []*storage.Message{invoice}},
			{"SUBJECT in UTF-8", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "n°7"}}}, []*storage.Message{invoice}},
			{"TO", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "box@mayfly"}}}, []*storage.Message{invoice, reset}},
			{"HEADER present", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Cc", Value: ""}}}, []*storage.Message{invoice}},
			{"HEADER Message-ID", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "invoice-7@"}}}, []*storage.Message{invoice}},
			{"BODY code", imap.SearchCriteria{Body: []string{"482913"}}, []*storage.Message{invoice}},
			{"BODY decoded quoted-printable", imap.SearchCriteria{Body: []string{"RENÉE"}}, []*storage.Message{invoice}},
			{"BODY decoded Latin-1", imap.SearchCriteria{Body: []string{"grüße"}}, []*storage.Message{reset}},
			{"BODY not in attachments", imap.SearchCriteria{Body: []string{"PDF"}}, nil},
			{"BODY not in header", imap.SearchCriteria{Body: []string{"password"}}, nil},
			{"TEXT in header", imap.SearchCriteria{Text: []string{"password"}}, []*storage.Message{reset}},
			{"SEEN", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, []*storage.Message{welcome}},
			{"UNSEEN", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []*storage.Message{invoice, reset}},
			{"UID set", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: uid(invoice), Stop: 0}}}}, []*storage.Message{invoice, reset}},
			{"sequence set", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(1, 3)}}, []*storage.Message{welcome, reset}},
			{"NOT", imap.SearchCriteria{Not: []imap.SearchCriteria{{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "ann"}}}}}, []*storage.Message{invoice, reset}},
			{"OR", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{
				{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "welcome"}}},
				{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "reset"}}},
			}}}, []*storage.Message{welcome, reset}},
			{"SINCE yesterday", imap.SearchCriteria{Since: today.Add(-day)}, []*storage.Message{welcome, invoice, reset}},
			{"BEFORE yesterday", imap.SearchCriteria{Before: today.Add(-day)}, nil},
			{"SENTBEFORE tomorrow", imap.SearchCriteria{SentBefore: today.Add(2 * day)}, []*storage.Message{welcome, invoice, reset}},
			{"LARGER", imap.SearchCriteria{Larger: 500}, []*storage.Message{invoice}},
			{"SMALLER", imap.SearchCriteria{Smaller: 500}, []*storage.Message{welcome, reset}},
			{"UNSEEN and BODY", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}, Body: []string{"here"}}, []*storage.Message{reset}},
		}
		for _, tt := range tests {
			data, err := c.UIDSearch(&tt.criteria, nil).Wait()
			if err != nil {
				t.Errorf("UID SEARCH %s = %v", tt.name, err)
				continue
			}
			var want []imap.UID
			for _, m := range tt.want {
				want = append(want, uid(m))
			}
			if got := data.AllUIDs(); !slices.Equal(got, want) {
				t.Errorf("UID SEARCH %s = %v, want %v", tt.name, got, want)
			}
		}

		data, err := c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
		if err != nil || !slices.Equal(data.AllSeqNums(), []uint32{2, 3}) {
			t.Errorf("SEARCH UNSEEN = %v, %v; want [2 3]", data, err)
		}
		data, err = c.UIDSearch(&imap.SearchCriteria{}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
		if err != nil || data.Min != uint32(welcome.UID) || data.Max != uint32(reset.UID) || data.Count != 3 {
			t.Errorf("UID SEARCH RETURN (MIN MAX COUNT) ALL = %+v, %v", data, err)
		}
		data, err = c.Search(&imap.SearchCriteria{Body: []string{"nothing like this"}}, nil).Wait()
		if err != nil || len(data.AllSeqNums()) != 0 {
			t.Errorf("SEARCH with no match = %v, %v; want empty", data, err)
		}
	})
}

// TestSearchRev2 runs searches as an IMAP4rev2 client does: ENABLE IMAP4rev2 makes
// every answer an ESEARCH, including the empty one.
func TestSearchRev2(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		srv := startServer(t, st, false)
		inbox, token := newInbox()
		for i := range 3 {
			put(t, st, inbox, fmt.Sprintf("m%d", i), nil)
		}
		c := dial(t, srv.addr, nil)
		if err := c.Login(inbox, token).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
			t.Fatalf("ENABLE IMAP4rev2 = %v", err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		data, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "m1"}}}, nil).Wait()
		if err != nil || !slices.Equal(data.AllSeqNums(), []uint32{2}) {
			t.Errorf("SEARCH SUBJECT m1 = %v, %v; want [2]", data, err)
		}
		data, err = c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "none"}}}, nil).Wait()
		if err != nil || len(data.AllSeqNums()) != 0 {
			t.Errorf("SEARCH with no match = %v, %v; want empty", data, err)
		}
		msgs, err := c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{Envelope: true}).Collect()
		if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "m2" {
			t.Errorf("FETCH 3 ENVELOPE = %v", err)
		}
	})
}

// TestSearchTextReused checks that SEARCH BODY and TEXT read a message for its text
// once, whatever the number of searches, keys and sessions, and that what they find
// does not change with it.
func TestSearchTextReused(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		for i := range 3 {
			put(t, st, inbox, fmt.Sprintf("Subject number %d", i), nil)
		}
		before := srv.texts.extracts.Load()
		for range 2 {
			c, _ := open(t, srv.addr, inbox, nil)
			for _, tt := range []struct {
				criteria imap.SearchCriteria
				want     []uint32
			}{
				{imap.SearchCriteria{Text: []string{"NUMBER 1"}}, []uint32{2}},
				{imap.SearchCriteria{Text: []string{"number"}, Body: []string{"nothing"}}, nil},
				{imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Text: []string{"number 0"}}, {Text: []string{"number 2"}}}}}, []uint32{1, 3}},
			} {
				data, err := c.Search(&tt.criteria, nil).Wait()
				if err != nil || !slices.Equal(data.AllSeqNums(), tt.want) {
					t.Errorf("SEARCH %+v = %v, %v; want %v", tt.criteria, data, err, tt.want)
				}
			}
		}
		if n := srv.texts.extracts.Load() - before; n != 3 {
			t.Errorf("6 searches of 3 messages in 2 sessions read %d texts, want 3", n)
		}
	})
}

// TestSearchTextBounded checks that text past maxSearchText is not searched, and what
// comes before it is.
func TestSearchTextBounded(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		raw := "Subject: long\r\n\r\nearly-word " + strings.Repeat("x", maxSearchText) + " late-word\r\n"
		put(t, st, inbox, "long", []byte(raw))
		c, _ := open(t, srv.addr, inbox, nil)
		for word, want := range map[string][]uint32{"EARLY-WORD": {1}, "late-word": nil} {
			data, err := c.Search(&imap.SearchCriteria{Body: []string{word}}, nil).Wait()
			if err != nil || !slices.Equal(data.AllSeqNums(), want) {
				t.Errorf("SEARCH BODY %s = %v, %v; want %v", word, data, err, want)
			}
		}
	})
}

// TestSearchLimits checks that a SEARCH too big to be cheap is refused before any
// message is read, and that one over its time gets NO [LIMIT] at its time, not when it
// would have ended.
func TestSearchLimits(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		const timeout = 10 * time.Millisecond
		srv := startServer(t, st, false, func(o *Options, _ *Server) { o.SearchTimeout = timeout })
		inbox, _ := newInbox()
		// 2MiB newsletters: reading each for its text takes milliseconds, the inbox
		// seconds (tens under the race detector).
		raw := largeMail()
		for i := range 40 {
			put(t, st, inbox, fmt.Sprint(i), raw)
		}
		c, _ := open(t, srv.addr, inbox, nil)

		many := imap.SearchCriteria{}
		for i := range maxSearchKeys + 1 {
			many.Header = append(many.Header, imap.SearchCriteriaHeaderField{Key: "Subject", Value: fmt.Sprint(i)})
		}
		_, err := c.Search(&many, nil).Wait()
		wantCode(t, fmt.Sprintf("SEARCH of %d keys", maxSearchKeys+1), err, imap.ResponseCodeLimit)
		deep := imap.SearchCriteria{Text: []string{"x"}}
		for range maxSearchDepth {
			deep = imap.SearchCriteria{Not: []imap.SearchCriteria{deep}}
		}
		_, err = c.Search(&deep, nil).Wait()
		wantCode(t, fmt.Sprintf("SEARCH of %d NOTs", maxSearchDepth), err, imap.ResponseCodeLimit)
		if n := srv.texts.extracts.Load(); n != 0 {
			t.Errorf("refused searches read %d texts, want 0", n)
		}

		start := time.Now()
		_, err = c.Search(&imap.SearchCriteria{Text: []string{"unsubscribe"}}, nil).Wait()
		took := time.Since(start)
		wantCode(t, "SEARCH TEXT of a slow inbox", err, imap.ResponseCodeLimit)
		if e := imapErr(err); e == nil || !strings.Contains(e.Text, "MAYFLY_IMAP_SEARCH_TIMEOUT") {
			t.Errorf("SEARCH past its time = %v, want a text naming MAYFLY_IMAP_SEARCH_TIMEOUT", err)
		}
		// One message may be read past the deadline; under the race detector that is
		// a fraction of a second.
		if took > timeout+2*time.Second {
			t.Errorf("SEARCH past its time answered after %v, want about %v", took, timeout)
		}
		// The session goes on, and a cheap search still answers.
		data, err := c.Search(&imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(2)}}, nil).Wait()
		if err != nil || !slices.Equal(data.AllSeqNums(), []uint32{2}) {
			t.Errorf("SEARCH 2 after a refused one = %v, %v", data, err)
		}
	})
}
