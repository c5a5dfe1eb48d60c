package imapd

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// putSent stores the copy of a reply the inbox sent, as the submission server does.
func putSent(t testing.TB, st storage.Store, inbox, subject string) *storage.Message {
	t.Helper()
	m := storetest.NewMessage(inbox, subject)
	m.Sent = true
	if err := st.Put(ctxFor(t), m); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return m
}

// login dials and logs in as inbox, with nothing selected.
func login(t testing.TB, addr, inbox string, u *updates) *imapclient.Client {
	t.Helper()
	c := dial(t, addr, u)
	if err := c.Login(inbox, testTokens.Token(inbox)).Wait(); err != nil {
		t.Fatalf("Login(%q) = %v", inbox, err)
	}
	return c
}

// uidsOf returns the UIDs of every message in the selected mailbox, in sequence order.
func uidsOf(t testing.TB, c *imapclient.Client) []imap.UID {
	t.Helper()
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatalf("FETCH 1:* (UID) = %v", err)
	}
	var uids []imap.UID
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	return uids
}

func uidList(msgs ...*storage.Message) []imap.UID {
	var uids []imap.UID
	for _, m := range msgs {
		uids = append(uids, imap.UID(m.UID))
	}
	return uids
}

func TestSentMailbox(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		// Interleaved, as replies go out between arrivals.
		r1 := put(t, st, inbox, "question", nil)
		s1 := putSent(t, st, inbox, "Re: question")
		r2 := put(t, st, inbox, "follow-up", nil)
		s2 := putSent(t, st, inbox, "Re: follow-up")
		if _, err := st.SetFlags(ctxFor(t), inbox, s1.ID, storage.FlagSeen, 0); err != nil {
			t.Fatal(err)
		}
		mb, err := st.Mailbox(ctxFor(t), inbox)
		if err != nil {
			t.Fatal(err)
		}

		c := login(t, srv.addr, inbox, nil)
		caps, err := c.Capability().Wait()
		if err != nil || !caps.Has(imap.CapSpecialUse) {
			t.Errorf("CAPABILITY = %v, %v; want SPECIAL-USE", capList(caps), err)
		}

		// LIST marks Sent \Sent whether asked or not; SPECIAL-USE selects it alone.
		for _, tt := range []struct {
			name    string
			options *imap.ListOptions
			want    map[string]bool // mailbox: has \Sent
		}{
			{"LIST", nil, map[string]bool{"INBOX": false, "Sent": true, "Trash": false}},
			{"LIST RETURN (SPECIAL-USE)", &imap.ListOptions{ReturnSpecialUse: true}, map[string]bool{"INBOX": false, "Sent": true, "Trash": false}},
			{"LIST (SPECIAL-USE)", &imap.ListOptions{SelectSpecialUse: true}, map[string]bool{"Sent": true, "Trash": false}},
		} {
			list, err := c.List("", "*", tt.options).Collect()
			if err != nil {
				t.Fatalf("%s = %v", tt.name, err)
			}
			got := map[string]bool{}
			for _, l := range list {
				got[l.Mailbox] = slices.Contains(l.Attrs, imap.MailboxAttrSent)
			}
			if len(got) != len(tt.want) || len(list) != len(tt.want) {
				t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
			}
			for name, sent := range tt.want {
				if g, ok := got[name]; !ok || g != sent {
					t.Errorf("%s: %s listed %v with \\Sent %v, want listed with \\Sent %v", tt.name, name, ok, g, sent)
				}
			}
		}

		// STATUS counts each mailbox's share of the inbox.
		var inboxSize, sentSize int64 = r1.Size + r2.Size, s1.Size + s2.Size
		for _, tt := range []struct {
			name                   string
			messages, unseen, next uint32
			size                   int64
		}{
			{"INBOX", 2, 2, r2.UID + 1, inboxSize},
			{"Sent", 2, 1, s2.UID + 1, sentSize},
		} {
			status, err := c.Status(tt.name, &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, UIDValidity: true, Size: true}).Wait()
			if err != nil {
				t.Fatalf("STATUS %s = %v", tt.name, err)
			}
			if *status.NumMessages != tt.messages || *status.NumUnseen != tt.unseen || *status.Size != tt.size || status.UIDNext != imap.UID(tt.next) || status.UIDValidity != mb.UIDValidity {
				t.Errorf("STATUS %s = messages %d unseen %d size %d next %d validity %d; want %d %d %d %d %d", tt.name,
					*status.NumMessages, *status.NumUnseen, *status.Size, status.UIDNext, status.UIDValidity,
					tt.messages, tt.unseen, tt.size, tt.next, mb.UIDValidity)
			}
		}
		// STATUS MESSAGES alone, which the store's own count could answer for the whole
		// inbox, is still each mailbox's share.
		status, err := c.Status("Sent", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || *status.NumMessages != 2 {
			t.Errorf("STATUS Sent (MESSAGES) = %+v, %v; want 2", status, err)
		}

		// INBOX is the mail received only.
		data, err := c.Select("INBOX", nil).Wait()
		if err != nil || data.NumMessages != 2 {
			t.Fatalf("SELECT INBOX = %+v, %v; want 2 messages", data, err)
		}
		if got, want := uidsOf(t, c), uidList(r1, r2); !slices.Equal(got, want) {
			t.Errorf("INBOX UIDs = %v, want %v (no sent copies)", got, want)
		}
		if msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(s1.UID)), &imap.FetchOptions{UID: true}).Collect(); err != nil || len(msgs) != 0 {
			t.Errorf("UID FETCH of a sent copy in INBOX = %d messages, %v; want none", len(msgs), err)
		}

		// Sent is the sent copies only, with the store's UIDs and UIDVALIDITY.
		data, err = c.Select("Sent", nil).Wait()
		if err != nil {
			t.Fatalf("SELECT Sent = %v", err)
		}
		if data.NumMessages != 2 || data.UIDValidity != mb.UIDValidity || data.UIDNext != imap.UID(s2.UID+1) {
			t.Errorf("SELECT Sent = EXISTS %d, UIDVALIDITY %d, UIDNEXT %d; want 2, %d, %d",
				data.NumMessages, data.UIDValidity, data.UIDNext, mb.UIDValidity, s2.UID+1)
		}
		if got, want := uidsOf(t, c), uidList(s1, s2); !slices.Equal(got, want) {
			t.Errorf("Sent UIDs = %v, want %v", got, want)
		}
		msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].FindBodySection(&imap.FetchItemBodySection{}), s2.Raw) {
			t.Errorf("FETCH 2 BODY.PEEK[] in Sent = %v; want the bytes of %q", err, s2.Subject)
		}
		search, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "follow-up"}}}, nil).Wait()
		if err != nil || !slices.Equal(search.AllUIDs(), uidList(s2)) {
			t.Errorf("UID SEARCH SUBJECT follow-up in Sent = %v, %v; want %v (not the received one)", search, err, uidList(s2))
		}

		// STORE and EXPUNGE reach the store, and leave INBOX alone.
		if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
			t.Fatalf("STORE +FLAGS \\Deleted in Sent = %v", err)
		}
		if m, err := st.Get(ctxFor(t), inbox, s1.ID); err != nil || m.Flags&storage.FlagDeleted == 0 {
			t.Errorf("after STORE in Sent, the store has %+v, %v; want \\Deleted", m, err)
		}
		expunged, err := c.Expunge().Collect()
		if err != nil || !slices.Equal(expunged, []uint32{1}) {
			t.Errorf("EXPUNGE in Sent = %v, %v; want [1]", expunged, err)
		}
		if _, err := st.Get(ctxFor(t), inbox, s1.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get of the expunged sent copy = %v, want ErrNotFound", err)
		}
		status, err = c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || *status.NumMessages != 2 {
			t.Errorf("STATUS INBOX after EXPUNGE in Sent = %+v, %v; want 2 messages", status, err)
		}

		// Each mailbox's UIDNEXT moves with its own mail only (RFC 3501 section
		// 2.3.1.1): a new sent copy leaves INBOX's where it was, and an expunge takes
		// neither back.
		s3 := putSent(t, st, inbox, "Re: again")
		for name, want := range map[string]uint32{"INBOX": r2.UID + 1, "Sent": s3.UID + 1} {
			status, err := c.Status(name, &imap.StatusOptions{UIDNext: true}).Wait()
			if err != nil || status.UIDNext != imap.UID(want) {
				t.Errorf("STATUS %s (UIDNEXT) after another sent copy = %+v, %v; want %d", name, status, err, want)
			}
		}
		if err := st.Delete(ctxFor(t), inbox, s3.ID); err != nil {
			t.Fatal(err)
		}

		// EXAMINE Sent is read-only like EXAMINE INBOX.
		data, err = c.Select("Sent", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil || data.NumMessages != 1 || data.UIDNext != imap.UID(s3.UID+1) {
			t.Fatalf("EXAMINE Sent = %+v, %v; want 1 message, UIDNEXT %d (of the expunged copy)", data, err, s3.UID+1)
		}
		_, err = c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
		wantCode(t, "STORE after EXAMINE Sent", err, imap.ResponseCodeCannot)

		// Only INBOX is case-insensitive.
		_, err = c.Select("sent", nil).Wait()
		wantCode(t, "SELECT sent", err, imap.ResponseCodeNonExistent)
	})
}

// TestSentIdle checks that new mail reaches the IDLE client of its own mailbox only.
// The copies and the mail are stored so that a message that leaked into the wrong
// mailbox would come before the one that belongs there, and show in the UIDs the
// client holds once it has been told of the one it waits for.
func TestSentIdle(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, node func() storage.Store) {
		srv := startServer(t, st, false)
		inbox, _ := newInbox()
		r0 := put(t, st, inbox, "question", nil)
		s0 := putSent(t, st, inbox, "Re: question")

		uIn, uSent := newUpdates(), newUpdates()
		cIn := login(t, srv.addr, inbox, uIn)
		if data, err := cIn.Select("INBOX", nil).Wait(); err != nil || data.NumMessages != 1 {
			t.Fatalf("SELECT INBOX = %+v, %v; want 1 message", data, err)
		}
		cSent := login(t, srv.addr, inbox, uSent)
		if data, err := cSent.Select("Sent", nil).Wait(); err != nil || data.NumMessages != 1 {
			t.Fatalf("SELECT Sent = %+v, %v; want 1 message", data, err)
		}
		doneIn, doneSent := idle(t, cIn), idle(t, cSent)

		// On Redis the mail comes from another node.
		other := node()
		s1 := putSent(t, other, inbox, "Re: again")
		r1 := put(t, other, inbox, "thanks", nil)
		s2 := putSent(t, other, inbox, "Re: thanks")

		if n := next(t, uIn.exists, 2*time.Second, "EXISTS on INBOX"); n != 2 {
			t.Errorf("first EXISTS on INBOX = %d, want 2 (the received message only)", n)
		}
		waitFor(t, uSent.exists, 3, 2*time.Second, "EXISTS on Sent")
		doneIn()
		doneSent()

		if got, want := uidsOf(t, cIn), uidList(r0, r1); !slices.Equal(got, want) {
			t.Errorf("INBOX UIDs after IDLE = %v, want %v", got, want)
		}
		if got, want := uidsOf(t, cSent), uidList(s0, s1, s2); !slices.Equal(got, want) {
			t.Errorf("Sent UIDs after IDLE = %v, want %v", got, want)
		}
		// Nothing more was told: a sent copy given to INBOX would have come as a later
		// EXISTS by now.
		select {
		case n := <-uIn.exists:
			t.Errorf("INBOX got another EXISTS %d, want none", n)
		default:
		}
	})
}

// TestSentIdleQuiet checks that an IDLE on INBOX hears nothing of a sent copy alone:
// no new mail is coming there after it to tell the two apart by order.
func TestSentIdleQuiet(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, node func() storage.Store) {
		srv := startServer(t, st, false)
		inbox, _ := newInbox()
		put(t, st, inbox, "question", nil)
		uIn, uSent := newUpdates(), newUpdates()
		cIn, _ := open(t, srv.addr, inbox, uIn)
		cSent := login(t, srv.addr, inbox, uSent)
		if data, err := cSent.Select("Sent", nil).Wait(); err != nil || data.NumMessages != 0 {
			t.Fatalf("SELECT Sent = %+v, %v; want 0 messages", data, err)
		}
		doneIn, doneSent := idle(t, cIn), idle(t, cSent)
		putSent(t, node(), inbox, "Re: question")
		// The Sent client hearing of it first means the event has gone out to every
		// session; the INBOX client then gets a moment more to show it did not listen.
		waitFor(t, uSent.exists, 1, 2*time.Second, "EXISTS on Sent")
		select {
		case n := <-uIn.exists:
			t.Errorf("IDLE on INBOX got EXISTS %d for a sent copy, want nothing", n)
		case <-time.After(200 * time.Millisecond):
		}
		doneIn()
		doneSent()
		if got := uidsOf(t, cIn); len(got) != 1 {
			t.Errorf("INBOX UIDs = %v, want only the received message", got)
		}
	})
}

// cutStore ends every subscription when told to, as the store does to a subscriber
// that fell behind, so that sessions must list the inbox again to catch up.
type cutStore struct {
	*quietStore
	mu   sync.Mutex
	subs []context.CancelFunc
}

func (c *cutStore) Subscribe(ctx context.Context, inbox string) (<-chan storage.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.subs = append(c.subs, cancel)
	c.mu.Unlock()
	return c.quietStore.Subscribe(ctx, inbox)
}

func (c *cutStore) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cancel := range c.subs {
		cancel()
	}
	c.subs = nil
}

// TestSentResync checks that mail a session learns of by listing the inbox again, not
// by its events, also goes to its own mailbox only.
func TestSentResync(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		cs := &cutStore{quietStore: &quietStore{Store: st}}
		srv := startServer(t, cs, false)
		inbox, _ := newInbox()
		r0 := put(t, st, inbox, "question", nil)
		uIn, uSent := newUpdates(), newUpdates()
		cIn, _ := open(t, srv.addr, inbox, uIn)
		cSent := login(t, srv.addr, inbox, uSent)
		if _, err := cSent.Select("Sent", nil).Wait(); err != nil {
			t.Fatalf("SELECT Sent = %v", err)
		}
		doneIn, doneSent := idle(t, cIn), idle(t, cSent)

		cs.quiet.Store(true)
		s1 := putSent(t, st, inbox, "Re: question")
		r1 := put(t, st, inbox, "thanks", nil)
		cs.cut()

		waitFor(t, uIn.exists, 2, 2*time.Second, "EXISTS on INBOX")
		waitFor(t, uSent.exists, 1, 2*time.Second, "EXISTS on Sent")
		doneIn()
		doneSent()
		if got, want := uidsOf(t, cIn), uidList(r0, r1); !slices.Equal(got, want) {
			t.Errorf("INBOX UIDs after a resync = %v, want %v", got, want)
		}
		if got, want := uidsOf(t, cSent), uidList(s1); !slices.Equal(got, want) {
			t.Errorf("Sent UIDs after a resync = %v, want %v", got, want)
		}
	})
}

// A message of the other mailbox is nothing to tell, but its UID still tells whether
// the inbox's UID state was made anew.
func TestApplyOtherMailbox(t *testing.T) {
	tests := []struct {
		name    string
		mailbox mailbox
		msg     storage.Message
		ok      bool
	}{
		{"sent copy in INBOX", mailboxInbox, storage.Message{UID: 40, Sent: true}, true},
		{"received mail in Sent", mailboxSent, storage.Message{UID: 40}, true},
		{"sent copy below INBOX's UIDs", mailboxInbox, storage.Message{UID: 5, Sent: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := testView(10, 20, 30)
			v.mailbox = tt.mailbox
			if ok := v.apply(storage.Event{Type: storage.EventAdded, UID: tt.msg.UID, Message: &tt.msg}); ok != tt.ok {
				t.Errorf("apply(%+v) = %v, want %v", tt.msg, ok, tt.ok)
			}
			if len(v.pending) != 0 || len(v.live) != 3 {
				t.Errorf("after apply(%+v): pending %v, %d live; want nothing new", tt.msg, v.pending, len(v.live))
			}
		})
	}
}

// olderStateStore answers Mailbox as a store that kept no LastReceived or LastSent (an
// inbox whose state was written before they existed).
type olderStateStore struct{ storage.Store }

func (s olderStateStore) Mailbox(ctx context.Context, inbox string) (storage.Mailbox, error) {
	mb, err := s.Store.Mailbox(ctx, inbox)
	mb.LastReceived, mb.LastSent = 0, 0
	return mb, err
}

// TestUIDNextWithOlderState: without the store's highest UIDs, UIDNEXT is still above
// every UID the mailbox holds.
func TestUIDNextWithOlderState(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	inbox, _ := newInbox()
	r := put(t, st, inbox, "question", nil)
	s := putSent(t, st, inbox, "Re: question")
	srv := startServer(t, olderStateStore{st}, false)
	c := login(t, srv.addr, inbox, nil)
	for name, want := range map[string]uint32{"INBOX": r.UID + 1, "Sent": s.UID + 1} {
		status, err := c.Status(name, &imap.StatusOptions{UIDNext: true}).Wait()
		if err != nil || status.UIDNext != imap.UID(want) {
			t.Errorf("STATUS %s (UIDNEXT) = %+v, %v; want %d", name, status, err, want)
		}
		data, err := c.Select(name, nil).Wait()
		if err != nil || data.UIDNext != imap.UID(want) {
			t.Errorf("SELECT %s = %+v, %v; want UIDNEXT %d", name, data, err, want)
		}
	}
}
