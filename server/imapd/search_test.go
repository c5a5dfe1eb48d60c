package imapd

import (
	"fmt"
	"slices"
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
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		srv := startServer(t, st, false)
		inbox, _ := newInbox()
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
