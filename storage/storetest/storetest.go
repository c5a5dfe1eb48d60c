// Package storetest is the conformance suite every storage.Store passes: the memory
// store always, the Redis store against a real redis-server.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure a store under test.
type Options struct {
	MaxMessages int // per inbox; 0 means the suite's default of 1000
}

// NewStore opens a store for t. Called twice within one test it must open the same
// data when the store is persistent (the restart test), and fresh data otherwise.
// The store is closed by the suite.
type NewStore func(t testing.TB, o Options) storage.Store

// Run runs the whole suite. persistent says whether mail and UIDs outlive Close.
func Run(t *testing.T, newStore NewStore, persistent bool) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore NewStore)
	}{
		{"PutGetRaw", testPutGetRaw},
		{"ListNewestFirst", testListNewestFirst},
		{"Pagination", testPagination},
		{"UIDs", testUIDs},
		{"Flags", testFlags},
		{"Delete", testDelete},
		{"DeleteInbox", testDeleteInbox},
		{"UnknownInbox", testUnknownInbox},
		{"ManyInboxesSharedRaw", testManyInboxes},
		{"Expiry", testExpiry},
		{"InboxTTL", testInboxTTL},
		{"Cap", testCap},
		{"EventsToEverySubscriber", testEventsToEverySubscriber},
		{"SubscriptionEnds", testSubscriptionEnds},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Secret", testSecret},
		{"SentCopy", testSentCopy},
		{"PutKeepsFlags", testPutKeepsFlags},
		{"CountSend", testCountSend},
		{"SettingsRoundTrip", testSettingsRoundTrip},
		{"FaultCounters", testFaultCounters},
		{"FaultAttemptConcurrent", testFaultAttemptConcurrent},
		{"TTLMovesStoredMail", testTTLMovesStoredMail},
		{"BurnAfterRead", testBurnAfterRead},
	}
	tests = append(tests, eventTests...)
	tests = append(tests, namespaceTests...)
	if persistent {
		tests = append(tests, struct {
			name string
			fn   func(t *testing.T, newStore NewStore)
		}{"Restart", testRestart})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore) })
	}
}

func open(t *testing.T, newStore NewStore, o Options) storage.Store {
	t.Helper()
	if o.MaxMessages == 0 {
		o.MaxMessages = 1000
	}
	st := newStore(t, o)
	t.Cleanup(func() { st.Close() })
	return st
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// NewMessage returns a message for inbox with every metadata field set, so a round trip
// through a store shows which ones it loses.
func NewMessage(inbox, subject string) *storage.Message {
	now := time.Now()
	raw := fmt.Appendf(nil, "Received: from test\r\nFrom: Ann <ann@sender.test>\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n", inbox, subject, subject)
	return &storage.Message{
		Inbox: inbox,
		Tag:   "tag",
		Envelope: storage.Envelope{
			From:       "bounce@sender.test",
			Recipients: []string{inbox},
			RemoteIP:   "192.0.2.7",
			Helo:       "mx.sender.test",
		},
		From:           "Ann <ann@sender.test>",
		To:             []string{inbox, "other@example.org"},
		Subject:        subject,
		Date:           now.Add(-time.Minute).Truncate(time.Second),
		ReplyTo:        []string{"support@sender.test"},
		HasAttachments: true,
		Size:           int64(len(raw)),
		Received:       now,
		Expires:        now.Add(time.Hour),
		Auth:           storage.AuthResults{SPF: "pass", DKIM: "none", DMARC: "fail"},
		Raw:            raw,
	}
}

func put(t *testing.T, st storage.Store, msgs ...*storage.Message) {
	t.Helper()
	if err := st.Put(ctxFor(t), msgs...); err != nil {
		t.Fatalf("Put: %v", err)
	}
	for _, m := range msgs {
		if m.ID == "" || m.UID == 0 {
			t.Fatalf("Put left ID %q, UID %d; want both set", m.ID, m.UID)
		}
	}
}

func inboxFor(t *testing.T) string {
	return fmt.Sprintf("box-%d@mayfly.test", time.Now().UnixNano())
}

func sameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

func checkMeta(t *testing.T, got *storage.Message, want *storage.Message) {
	t.Helper()
	if got.ID != want.ID || got.Inbox != want.Inbox || got.UID != want.UID || got.Tag != want.Tag {
		t.Errorf("identity = %q %q %d %q, want %q %q %d %q", got.ID, got.Inbox, got.UID, got.Tag, want.ID, want.Inbox, want.UID, want.Tag)
	}
	if got.Envelope.From != want.Envelope.From || !slices.Equal(got.Envelope.Recipients, want.Envelope.Recipients) ||
		got.Envelope.RemoteIP != want.Envelope.RemoteIP || got.Envelope.Helo != want.Envelope.Helo {
		t.Errorf("Envelope = %+v, want %+v", got.Envelope, want.Envelope)
	}
	if got.From != want.From || !slices.Equal(got.To, want.To) || got.Subject != want.Subject || got.HasAttachments != want.HasAttachments {
		t.Errorf("summary = %q %q %q %v, want %q %q %q %v", got.From, got.To, got.Subject, got.HasAttachments, want.From, want.To, want.Subject, want.HasAttachments)
	}
	if !sameTime(got.Date, want.Date) || !sameTime(got.Received, want.Received) || !sameTime(got.Expires, want.Expires) {
		t.Errorf("times = %v %v %v, want %v %v %v", got.Date, got.Received, got.Expires, want.Date, want.Received, want.Expires)
	}
	if !slices.Equal(got.ReplyTo, want.ReplyTo) || got.Sent != want.Sent {
		t.Errorf("ReplyTo, Sent = %q %v, want %q %v", got.ReplyTo, got.Sent, want.ReplyTo, want.Sent)
	}
	if got.Size != want.Size || got.Auth != want.Auth {
		t.Errorf("Size, Auth = %d %+v, want %d %+v", got.Size, got.Auth, want.Size, want.Auth)
	}
	if got.Raw != nil {
		t.Errorf("metadata carries %d raw bytes, want none", len(got.Raw))
	}
}

func testPutGetRaw(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	m := NewMessage(inbox, "hello")
	m.Raw = append(m.Raw, "\x00\xff\r\n.leading dot\r\n"...) // bytes, not text
	m.Size = int64(len(m.Raw))
	want := *m
	put(t, st, m)
	want.ID, want.UID = m.ID, m.UID

	got, err := st.Get(ctx, inbox, m.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkMeta(t, got, &want)
	if got.Flags != 0 {
		t.Errorf("Flags = %v, want none", got.Flags)
	}
	raw, err := st.Raw(ctx, inbox, m.ID)
	if err != nil {
		t.Fatalf("Raw: %v", err)
	}
	if !bytes.Equal(raw, want.Raw) {
		t.Errorf("Raw = %q, want %q", raw, want.Raw)
	}
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %d messages, %v; want 1", len(list), err)
	}
	checkMeta(t, &list[0], &want)
	if _, err := st.Get(ctx, "someone-else@mayfly.test", m.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get from another inbox: %v, want ErrNotFound", err)
	}
	if err := st.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func putN(t *testing.T, st storage.Store, inbox string, n int) []*storage.Message {
	t.Helper()
	var msgs []*storage.Message
	for i := range n {
		m := NewMessage(inbox, fmt.Sprintf("message %d", i))
		put(t, st, m)
		msgs = append(msgs, m)
	}
	return msgs
}

func subjects(list []storage.Message) []string {
	var s []string
	for _, m := range list {
		s = append(s, m.Subject)
	}
	return s
}

func testListNewestFirst(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	inbox := inboxFor(t)
	putN(t, st, inbox, 5)
	putN(t, st, "neighbour@mayfly.test", 1)
	list, err := st.List(ctxFor(t), inbox, storage.Page{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"message 4", "message 3", "message 2", "message 1", "message 0"}
	if got := subjects(list); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

func testPagination(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	msgs := putN(t, st, inbox, 7)
	var pages [][]string
	page := storage.Page{Limit: 3}
	for range 5 {
		list, err := st.List(ctx, inbox, page)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		pages = append(pages, subjects(list))
		page.Before = list[len(list)-1].UID
	}
	want := [][]string{
		{"message 6", "message 5", "message 4"},
		{"message 3", "message 2", "message 1"},
		{"message 0"},
	}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Errorf("pages = %q, want %q", pages, want)
	}
	list, err := st.List(ctx, inbox, storage.Page{Before: msgs[3].UID})
	if err != nil {
		t.Fatal(err)
	}
	if got := subjects(list); !slices.Equal(got, []string{"message 2", "message 1", "message 0"}) {
		t.Errorf("List(Before: UID of message 3) = %q", got)
	}
}

func testUIDs(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	before, err := st.Mailbox(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if before.UIDValidity == 0 || before.Messages != 0 {
		t.Errorf("Mailbox of a new inbox = %+v, want a UIDValidity and no messages", before)
	}
	msgs := putN(t, st, inbox, 4)
	for i := 1; i < len(msgs); i++ {
		if msgs[i].UID <= msgs[i-1].UID {
			t.Errorf("UID %d after %d, want strictly increasing", msgs[i].UID, msgs[i-1].UID)
		}
	}
	if err := st.Delete(ctx, inbox, msgs[3].ID); err != nil {
		t.Fatal(err)
	}
	next := NewMessage(inbox, "after delete")
	put(t, st, next)
	if next.UID <= msgs[3].UID {
		t.Errorf("UID after deleting the newest = %d, want above %d: UIDs are never reused", next.UID, msgs[3].UID)
	}
	after, err := st.Mailbox(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	want := storage.Mailbox{UIDValidity: before.UIDValidity, UIDNext: next.UID + 1, LastReceived: next.UID, Messages: 4}
	if after.UIDValidity != want.UIDValidity || after.UIDNext <= next.UID || after.Messages != want.Messages ||
		after.LastReceived != want.LastReceived || after.LastSent != 0 {
		t.Errorf("Mailbox = %+v, want %+v", after, want)
	}

	// Each kind keeps its highest UID: a sent copy moves LastSent alone, and deleting
	// it does not take LastSent back.
	sent := NewMessage(inbox, "Re: after delete")
	sent.Sent = true
	put(t, st, sent)
	if err := st.Delete(ctx, inbox, sent.ID); err != nil {
		t.Fatal(err)
	}
	after, err = st.Mailbox(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if after.LastReceived != next.UID || after.LastSent != sent.UID {
		t.Errorf("Mailbox after a sent copy, deleted = last received %d, last sent %d; want %d, %d",
			after.LastReceived, after.LastSent, next.UID, sent.UID)
	}
}

func testFlags(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	m := putN(t, st, inbox, 1)[0]
	events := Subscribe(t, ctx, st, inbox)
	steps := []struct {
		add, remove, want storage.Flags
	}{
		{storage.FlagSeen, 0, storage.FlagSeen},
		{storage.FlagFlagged | storage.FlagAnswered, 0, storage.FlagSeen | storage.FlagFlagged | storage.FlagAnswered},
		{storage.FlagDeleted, storage.FlagSeen, storage.FlagFlagged | storage.FlagAnswered | storage.FlagDeleted},
		{0, storage.FlagFlagged | storage.FlagAnswered | storage.FlagDeleted, 0},
	}
	for _, s := range steps {
		got, err := st.SetFlags(ctx, inbox, m.ID, s.add, s.remove)
		if err != nil || got != s.want {
			t.Fatalf("SetFlags(+%b -%b) = %b, %v; want %b", s.add, s.remove, got, err, s.want)
		}
		stored, err := st.Get(ctx, inbox, m.ID)
		if err != nil || stored.Flags != s.want {
			t.Fatalf("Get after SetFlags(+%b -%b): flags %b, %v; want %b", s.add, s.remove, stored.Flags, err, s.want)
		}
		e := Next(t, events)
		if e.Type != storage.EventFlags || e.ID != m.ID || e.UID != m.UID || e.Flags != s.want {
			t.Errorf("event = %+v, want flags %b of %s", e, s.want, m.ID)
		}
	}
	if _, err := st.SetFlags(ctx, inbox, "nosuchid", storage.FlagSeen, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetFlags of a missing message: %v, want ErrNotFound", err)
	}
}

// Subscribe subscribes to inbox's events until ctx ends, or fails t.
func Subscribe(t testing.TB, ctx context.Context, st storage.Store, inbox string) <-chan storage.Event {
	t.Helper()
	events, err := st.Subscribe(ctx, inbox)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", inbox, err)
	}
	return events
}

// Next returns the next event of a subscription, failing t if none comes within 10s
// or the channel closes.
func Next(t testing.TB, events <-chan storage.Event) storage.Event {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("event channel closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return storage.Event{}
}

func testDelete(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	msgs := putN(t, st, inbox, 3)
	events := Subscribe(t, ctx, st, inbox)
	if err := st.Delete(ctx, inbox, msgs[1].ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if e := Next(t, events); e.Type != storage.EventDeleted || e.ID != msgs[1].ID || e.UID != msgs[1].UID {
		t.Errorf("event = %+v, want deleted %s", e, msgs[1].ID)
	}
	if _, err := st.Get(ctx, inbox, msgs[1].ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := st.Raw(ctx, inbox, msgs[1].ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Raw after Delete: %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, inbox, msgs[1].ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "someone-else@mayfly.test", msgs[0].ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete from another inbox: %v, want ErrNotFound", err)
	}
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if got := subjects(list); !slices.Equal(got, []string{"message 2", "message 0"}) {
		t.Errorf("List after Delete = %q", got)
	}
}

func testDeleteInbox(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	msgs := putN(t, st, inbox, 3)
	other := putN(t, st, "neighbour-"+inbox, 1)[0]
	events := Subscribe(t, ctx, st, inbox)
	n, err := st.DeleteInbox(ctx, inbox)
	if err != nil || n != 3 {
		t.Fatalf("DeleteInbox = %d, %v; want 3", n, err)
	}
	deleted := map[string]bool{}
	for range 3 {
		e := Next(t, events)
		if e.Type != storage.EventDeleted {
			t.Errorf("event %+v, want deleted", e)
		}
		deleted[e.ID] = true
	}
	for _, m := range msgs {
		if !deleted[m.ID] {
			t.Errorf("no deleted event for %s", m.ID)
		}
		if _, err := st.Raw(ctx, inbox, m.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Raw after DeleteInbox: %v, want ErrNotFound", err)
		}
	}
	if list, err := st.List(ctx, inbox, storage.Page{}); err != nil || len(list) != 0 {
		t.Errorf("List after DeleteInbox = %d messages, %v; want none", len(list), err)
	}
	if _, err := st.Get(ctx, other.Inbox, other.ID); err != nil {
		t.Errorf("the neighbour's message: %v, want it kept", err)
	}
	again := NewMessage(inbox, "again")
	put(t, st, again)
	if again.UID <= msgs[2].UID {
		t.Errorf("UID after DeleteInbox = %d, want above %d", again.UID, msgs[2].UID)
	}
}

func testUnknownInbox(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	if list, err := st.List(ctx, inbox, storage.Page{}); err != nil || len(list) != 0 {
		t.Errorf("List = %d, %v; want empty", len(list), err)
	}
	if _, err := st.Get(ctx, inbox, "0000000000000000"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get: %v, want ErrNotFound", err)
	}
	if n, err := st.DeleteInbox(ctx, inbox); err != nil || n != 0 {
		t.Errorf("DeleteInbox = %d, %v; want 0", n, err)
	}
	a, err := st.Mailbox(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Mailbox(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if a.UIDValidity == 0 || a.UIDValidity != b.UIDValidity || a.UIDNext == 0 {
		t.Errorf("Mailbox twice = %+v then %+v, want one stable UIDValidity", a, b)
	}
}

func testManyInboxes(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	base := inboxFor(t)
	first := NewMessage("a-"+base, "to many")
	var msgs []*storage.Message
	for _, inbox := range []string{"a-" + base, "b-" + base, "c-" + base} {
		m := *first
		m.Inbox = inbox
		m.Envelope.Recipients = []string{inbox}
		msgs = append(msgs, &m)
	}
	put(t, st, msgs...)
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[m.ID] = true
		raw, err := st.Raw(ctx, m.Inbox, m.ID)
		if err != nil || !bytes.Equal(raw, first.Raw) {
			t.Errorf("Raw(%s) = %q, %v; want %q", m.Inbox, raw, err, first.Raw)
		}
		got, err := st.Get(ctx, m.Inbox, m.ID)
		if err != nil || !slices.Equal(got.Envelope.Recipients, []string{m.Inbox}) {
			t.Errorf("Get(%s) = %+v, %v", m.Inbox, got, err)
		}
	}
	if len(ids) != 3 {
		t.Errorf("IDs %v, want 3 distinct", ids)
	}
	// Deleting one delivery must leave the others' shared bytes alone.
	if err := st.Delete(ctx, msgs[0].Inbox, msgs[0].ID); err != nil {
		t.Fatal(err)
	}
	if raw, err := st.Raw(ctx, msgs[1].Inbox, msgs[1].ID); err != nil || !bytes.Equal(raw, first.Raw) {
		t.Errorf("Raw of a sibling after Delete = %q, %v", raw, err)
	}
}

func testExpiry(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	events := Subscribe(t, ctx, st, inbox)
	keep := NewMessage(inbox, "keep")
	put(t, st, keep)
	short := NewMessage(inbox, "short")
	short.Expires = time.Now().Add(300 * time.Millisecond)
	put(t, st, short)
	for range 2 {
		if e := Next(t, events); e.Type != storage.EventAdded {
			t.Fatalf("event %+v, want added", e)
		}
	}
	e := Next(t, events)
	if e.Type != storage.EventExpired || e.ID != short.ID || e.UID != short.UID {
		t.Fatalf("event %+v, want expired %s", e, short.ID)
	}
	if time.Now().Before(short.Expires) {
		t.Errorf("expired event before the message's expiry")
	}
	if _, err := st.Get(ctx, inbox, short.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get of an expired message: %v, want ErrNotFound", err)
	}
	if _, err := st.Raw(ctx, inbox, short.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Raw of an expired message: %v, want ErrNotFound", err)
	}
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if got := subjects(list); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("List after expiry = %q, want [keep]", got)
	}
}

func testInboxTTL(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	other, third, earlier := "other-"+inbox, "third-"+inbox, "earlier-"+inbox
	const ttl = 2 * time.Second

	// Set before any mail, as the API does when it creates an inbox.
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: ttl}); err != nil {
		t.Fatalf("SetInbox: %v", err)
	}
	if mb, err := st.Mailbox(ctx, inbox); err != nil || mb.UIDValidity == 0 || mb.Messages != 0 {
		t.Errorf("Mailbox after SetInbox(TTL %v) = %+v, %v; want a UIDValidity and no messages", ttl, mb, err)
	}
	if set, err := st.Settings(ctx, inbox); err != nil || set.TTL != ttl {
		t.Errorf("Settings after SetInbox(TTL %v) = %+v, %v; want that TTL", ttl, set, err)
	}
	if set, err := st.Settings(ctx, other); err != nil || set.TTL != 0 {
		t.Errorf("Settings of an inbox without a TTL = %+v, %v; want TTL 0", set, err)
	}
	events := Subscribe(t, ctx, st, inbox)
	otherEvents := Subscribe(t, ctx, st, other)
	// wantTTL checks that m, as Put left it and as stored, expires ttl after it arrived.
	wantTTL := func(m *storage.Message) {
		t.Helper()
		want := m.Received.Add(ttl)
		if !sameTime(m.Expires, want) {
			t.Errorf("Put into %s set Expires %v, want Received + %v = %v", m.Inbox, m.Expires, ttl, want)
		}
		if got, err := st.Get(ctx, m.Inbox, m.ID); err != nil {
			t.Errorf("Get(%s) after Put into %s: %v", m.ID, m.Inbox, err)
		} else if !sameTime(got.Expires, want) {
			t.Errorf("Get(%s) after Put into %s: Expires %v, want %v", m.ID, m.Inbox, got.Expires, want)
		}
	}
	// wantOwn checks that m, as Put left it and as stored, kept the expiry it was put with.
	wantOwn := func(m *storage.Message, want time.Time) {
		t.Helper()
		if !m.Expires.Equal(want) {
			t.Errorf("Put into %s set Expires %v, want it kept at %v", m.Inbox, m.Expires, want)
		}
		if got, err := st.Get(ctx, m.Inbox, m.ID); err != nil {
			t.Errorf("Get(%s) after Put into %s: %v", m.ID, m.Inbox, err)
		} else if !sameTime(got.Expires, want) {
			t.Errorf("Get(%s) after Put into %s: Expires %v, want %v", m.ID, m.Inbox, got.Expires, want)
		}
	}

	short := NewMessage(inbox, "inbox ttl")
	keep := NewMessage(other, "default ttl")
	keepUntil := keep.Expires
	put(t, st, short)
	put(t, st, keep)
	wantTTL(short)
	wantOwn(keep, keepUntil)
	if e := Next(t, events); e.Type != storage.EventAdded || e.ID != short.ID || e.Message == nil || !sameTime(e.Message.Expires, short.Expires) {
		t.Errorf("event %+v, want added %s expiring at %v", e, short.ID, short.Expires)
	}

	// One delivery to several inboxes, the one with a TTL in the middle.
	shared := NewMessage(other, "shared")
	sharedUntil := shared.Expires
	var copies []*storage.Message
	for _, to := range []string{other, inbox, third} {
		c := *shared
		c.Inbox = to
		copies = append(copies, &c)
	}
	put(t, st, copies...)
	wantOwn(copies[0], sharedUntil)
	wantTTL(copies[1])
	wantOwn(copies[2], sharedUntil)

	// Removing the TTL restores the receiver's expiry for later mail only.
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{}); err != nil {
		t.Fatalf("SetInbox(TTL 0): %v", err)
	}
	if set, err := st.Settings(ctx, inbox); err != nil || set.TTL != 0 {
		t.Errorf("Settings after SetInbox(TTL 0) = %+v, %v; want TTL 0", set, err)
	}
	if mb, err := st.Mailbox(ctx, inbox); err != nil || mb.Messages != 2 {
		t.Errorf("Mailbox after SetInbox(TTL 0) = %+v, %v; want 2 messages", mb, err)
	}
	after := NewMessage(inbox, "after reset")
	afterUntil := after.Expires
	put(t, st, after)
	wantOwn(after, afterUntil)

	// Removing a TTL leaves the stored mail's expiry alone.
	old := NewMessage(earlier, "before the ttl")
	oldUntil := old.Expires
	put(t, st, old)
	if err := st.SetInbox(ctx, earlier, storage.InboxSettings{}); err != nil {
		t.Fatal(err)
	}
	wantOwn(old, oldUntil)

	// The two messages put while the TTL was set expire after it, not in an hour.
	want := map[string]*storage.Message{short.ID: short, copies[1].ID: copies[1]}
	deadline := time.After(10*time.Second + ttl)
	for len(want) > 0 {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("event channel closed")
			}
			if e.Type == storage.EventAdded {
				continue
			}
			m := want[e.ID]
			if e.Type != storage.EventExpired || m == nil {
				t.Fatalf("event %+v, want %d messages expired", e, len(want))
			}
			if time.Now().Before(m.Expires) {
				t.Errorf("%s reported expired before its expiry %v", m.Subject, m.Expires)
			}
			delete(want, e.ID)
		case <-deadline:
			t.Fatalf("%d messages put into an inbox with a TTL of %v not expired after 10s more", len(want), ttl)
		}
	}
	for _, m := range []*storage.Message{after, keep, copies[0], copies[2], old} {
		if _, err := st.Get(ctx, m.Inbox, m.ID); err != nil {
			t.Errorf("Get(%s) of %q after the TTL passed: %v, want it kept", m.Inbox, m.Subject, err)
		}
	}
	if _, err := st.Get(ctx, inbox, short.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get of a message past its inbox's TTL: %v, want ErrNotFound", err)
	}
	for {
		select {
		case e, ok := <-otherEvents:
			if !ok {
				t.Fatal("event channel of the inbox without a TTL closed")
			}
			if e.Type != storage.EventAdded {
				t.Errorf("inbox without a TTL got event %+v", e)
			}
			continue
		default:
		}
		return
	}
}

func testCap(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{MaxMessages: 3})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	events := Subscribe(t, ctx, st, inbox)
	msgs := putN(t, st, inbox, 5)
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if got := subjects(list); !slices.Equal(got, []string{"message 4", "message 3", "message 2"}) {
		t.Errorf("List over the cap = %q, want the newest 3", got)
	}
	dropped := map[string]bool{}
	for range 7 {
		if e := Next(t, events); e.Type == storage.EventExpired {
			dropped[e.ID] = true
		}
	}
	for _, m := range msgs[:2] {
		if !dropped[m.ID] {
			t.Errorf("no expired event for %s, dropped over the cap", m.Subject)
		}
		if _, err := st.Raw(ctx, inbox, m.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Raw of a message dropped over the cap: %v, want ErrNotFound", err)
		}
	}
	if mb, err := st.Mailbox(ctx, inbox); err != nil || mb.Messages != 3 {
		t.Errorf("Mailbox = %+v, %v; want 3 messages", mb, err)
	}
}

func testEventsToEverySubscriber(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	var subs []<-chan storage.Event
	for range 3 {
		ch, err := st.Subscribe(ctx, inbox)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, ch)
	}
	others := Subscribe(t, ctx, st, "other-"+inbox)
	m := putN(t, st, inbox, 1)[0]
	for i, ch := range subs {
		e := Next(t, ch)
		if e.Type != storage.EventAdded || e.ID != m.ID || e.UID != m.UID || e.Inbox != inbox {
			t.Errorf("subscriber %d got %+v, want added %s", i, e, m.ID)
			continue
		}
		if e.Message == nil || e.Message.Subject != m.Subject || e.Message.Raw != nil {
			t.Errorf("subscriber %d got message %+v, want the metadata of %q", i, e.Message, m.Subject)
		}
	}
	select {
	case e := <-others:
		t.Errorf("another inbox's subscriber got %+v", e)
	default:
	}
}

func testSubscriptionEnds(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx, cancel := context.WithCancel(ctxFor(t))
	ch := Subscribe(t, ctx, st, inboxFor(t))
	cancel()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel still open 10s after its context ended")
		}
	}
}

func testConcurrentPuts(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	const goroutines, each = 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	uids := make(chan uint32, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				m := NewMessage(inbox, fmt.Sprintf("g%d-%d", g, i))
				if err := st.Put(ctx, m); err != nil {
					errs <- err
					return
				}
				uids <- m.UID
			}
		})
	}
	wg.Wait()
	close(errs)
	close(uids)
	for err := range errs {
		t.Fatalf("Put: %v", err)
	}
	seen := map[uint32]bool{}
	for uid := range uids {
		if seen[uid] {
			t.Errorf("UID %d given twice", uid)
		}
		seen[uid] = true
	}
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != goroutines*each || len(seen) != goroutines*each {
		t.Errorf("%d listed, %d distinct UIDs; want %d", len(list), len(seen), goroutines*each)
	}
	for i := 1; i < len(list); i++ {
		if list[i].UID >= list[i-1].UID {
			t.Fatalf("List not in descending UID order at %d: %d then %d", i, list[i-1].UID, list[i].UID)
		}
	}
}

func testSecret(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	a, err := st.Secret(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Secret(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 32 || !bytes.Equal(a, b) {
		t.Errorf("Secret = %x then %x, want one stable key of at least 32 bytes", a, b)
	}
}

func testRestart(t *testing.T, newStore NewStore) {
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	first := newStore(t, Options{MaxMessages: 1000})
	m := NewMessage(inbox, "before restart")
	if err := first.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	mb, err := first.Mailbox(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := first.Secret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := open(t, newStore, Options{})
	raw, err := second.Raw(ctx, inbox, m.ID)
	if err != nil || !bytes.Equal(raw, m.Raw) {
		t.Errorf("Raw after restart = %q, %v; want %q", raw, err, m.Raw)
	}
	after := NewMessage(inbox, "after restart")
	put(t, second, after)
	if after.UID <= m.UID {
		t.Errorf("UID after restart = %d, want above %d", after.UID, m.UID)
	}
	if mb2, err := second.Mailbox(ctx, inbox); err != nil || mb2.UIDValidity != mb.UIDValidity {
		t.Errorf("UIDValidity after restart = %+v, %v; want %d", mb2, err, mb.UIDValidity)
	}
	if s2, err := second.Secret(ctx); err != nil || !bytes.Equal(s2, secret) {
		t.Errorf("Secret changed across a restart: %v", err)
	}
}

// testSentCopy keeps a reply's copy with the inbox's mail, marked as sent.
func testSentCopy(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	inbox := inboxFor(t)
	m := NewMessage(inbox, "Re: hello")
	m.Sent, m.ReplyTo = true, nil
	put(t, st, m)
	got, err := st.Get(ctxFor(t), inbox, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMeta(t, got, m)
}

// testPutKeepsFlags puts messages with flags already set, as submission stores its sent
// copy seen: Get, List and the added event all carry them (issue 14 item 4).
func testPutKeepsFlags(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	events := Subscribe(t, ctx, st, inbox)
	tests := []struct {
		name  string
		flags storage.Flags
	}{
		{"sent copy", storage.FlagSeen},
		{"several", storage.FlagSeen | storage.FlagFlagged | storage.FlagAnswered},
		{"none", 0},
	}
	want := map[string]storage.Flags{}
	for _, tt := range tests {
		m := NewMessage(inbox, tt.name)
		m.Sent, m.Flags = tt.flags != 0, tt.flags
		put(t, st, m)
		want[m.ID] = tt.flags
		if e := Next(t, events); e.Type != storage.EventAdded || e.Message == nil || e.Message.Flags != tt.flags {
			t.Errorf("%s: added event = %+v, want a message with flags %b", tt.name, e, tt.flags)
		}
		got, err := st.Get(ctx, inbox, m.ID)
		if err != nil {
			t.Fatalf("%s: Get: %v", tt.name, err)
		}
		if got.Flags != tt.flags {
			t.Errorf("%s: Get flags = %b, want %b", tt.name, got.Flags, tt.flags)
		}
	}
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil || len(list) != len(tests) {
		t.Fatalf("List = %d messages, %v; want %d", len(list), err, len(tests))
	}
	for _, m := range list {
		if m.Flags != want[m.ID] {
			t.Errorf("List: %q flags = %b, want %b", m.Subject, m.Flags, want[m.ID])
		}
	}
	// The flags put are the message's own: changing them later works as for any other.
	if got, err := st.SetFlags(ctx, inbox, list[0].ID, 0, storage.FlagSeen); err != nil || got != want[list[0].ID]&^storage.FlagSeen {
		t.Errorf("SetFlags -seen after a put with flags = %b, %v; want %b", got, err, want[list[0].ID]&^storage.FlagSeen)
	}
}

// testCountSend counts sends per key and window, the counters the send limits read:
// an inbox's, and keys that are no inbox (a client, the whole service), which count
// apart from any inbox and take a number of sends at once (a reply's recipients).
func testCountSend(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	a, b := inboxFor(t), inboxFor(t)+".b"
	// Windows start at multiples of per since the epoch: with per just over half of
	// now, the current window is the second and ends about two hours from now, so the
	// test never crosses into the next.
	per := time.Duration(time.Now().UnixNano()/2) + time.Hour
	for want := 1; want <= 3; want++ {
		if n, err := st.CountSend(ctxFor(t), a, 1, per); err != nil || n != want {
			t.Fatalf("CountSend #%d = %d, %v; want %d", want, n, err, want)
		}
	}
	if n, err := st.CountSend(ctxFor(t), b, 1, per); err != nil || n != 1 {
		t.Errorf("another inbox's first CountSend = %d, %v; want 1", n, err)
	}
	// Another window length is another window: the counter restarts.
	// A window of just over a third of now is the third: another counter.
	third := time.Duration(time.Now().UnixNano()/3) + time.Hour
	if n, err := st.CountSend(ctxFor(t), a, 1, third); err != nil || n != 1 {
		t.Errorf("CountSend in a fresh window = %d, %v; want 1", n, err)
	}
	// ... and the first length's counter is still there.
	if n, err := st.CountSend(ctxFor(t), a, 1, per); err != nil || n != 4 {
		t.Errorf("CountSend back in the first window = %d, %v; want 4", n, err)
	}
	// Several sends at once; a key that is not an inbox, with braces that must not
	// move it to another key's hash tag.
	client := "client:" + a + "{x}"
	if n, err := st.CountSend(ctxFor(t), client, 10, per); err != nil || n != 10 {
		t.Errorf("CountSend of 10 = %d, %v; want 10", n, err)
	}
	if n, err := st.CountSend(ctxFor(t), client, 7, per); err != nil || n != 17 {
		t.Errorf("CountSend of 7 more = %d, %v; want 17", n, err)
	}
	if n, err := st.CountSend(ctxFor(t), a, 2, per); err != nil || n != 6 {
		t.Errorf("the inbox's CountSend after the client's = %d, %v; want 6", n, err)
	}
	// Counters live as long as their window, whatever the inbox holds: deleting it
	// does not start the count again.
	if _, err := st.DeleteInbox(ctxFor(t), a); err != nil {
		t.Fatal(err)
	}
	if n, err := st.CountSend(ctxFor(t), a, 1, per); err != nil || n != 7 {
		t.Errorf("CountSend after DeleteInbox = %d, %v; want 7", n, err)
	}
}
