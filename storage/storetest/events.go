package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// The event log's and the webhook store's part of the suite (issue 18).
var eventTests = []struct {
	name string
	fn   func(t *testing.T, newStore NewStore)
}{
	{"InboxEvents", testInboxEvents},
	{"InboxEventsBadPosition", testInboxEventsBadPosition},
	{"EventsOfEveryKindInBothLogs", testEventsInBothLogs},
	{"FeedAtLeastOnce", testFeedAtLeastOnce},
	{"FeedGroups", testFeedGroups},
	{"FeedConcurrent", testFeedConcurrent},
	{"FeedBlocks", testFeedBlocks},
	{"WebhookCRUD", testWebhookCRUD},
	{"AddDeliveryIdempotent", testAddDeliveryIdempotent},
	{"ClaimDeliveryLease", testClaimDeliveryLease},
	{"ClaimDeliveriesBatch", testClaimDeliveriesBatch},
	{"AddDeliveries", testAddDeliveries},
	{"UpdateDeliveries", testUpdateDeliveries},
	{"UpdateDeliveryStates", testUpdateDeliveryStates},
	{"DeliveriesTrimmed", testDeliveriesTrimmed},
	{"DeleteWebhookDeliveries", testDeleteWebhookDeliveries},
}

// InboxEvents returns every event of inbox's log after after, or fails t.
func InboxEvents(t testing.TB, st storage.EventLog, inbox, after string) []storage.LoggedEvent {
	t.Helper()
	list, err := st.InboxEvents(ctxFor(t), inbox, after, 0)
	if err != nil {
		t.Fatalf("InboxEvents(%s, %q): %v", inbox, after, err)
	}
	return list
}

func kinds(list []storage.LoggedEvent) string {
	var b strings.Builder
	for i, e := range list {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Type.String())
	}
	return b.String()
}

func testInboxEvents(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox, other := inboxFor(t), "other-"+inboxFor(t)
	before := time.Now().Add(-time.Second)
	if list := InboxEvents(t, st, inbox, ""); len(list) != 0 {
		t.Fatalf("events of a new inbox = %s, want none", kinds(list))
	}
	msgs := putN(t, st, inbox, 3)
	putN(t, st, other, 1)
	if _, err := st.SetFlags(ctx, inbox, msgs[1].ID, storage.FlagFlagged, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, inbox, msgs[0].ID); err != nil {
		t.Fatal(err)
	}
	list := InboxEvents(t, st, inbox, "")
	if got, want := kinds(list), "added added added flags deleted"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	for i, m := range msgs {
		e := list[i]
		if e.ID != m.ID || e.UID != m.UID || e.Inbox != inbox || e.Message == nil {
			t.Fatalf("event %d = %+v, want %s added with its message", i, e, m.ID)
		}
		checkMeta(t, e.Message, m)
	}
	if e := list[3]; e.ID != msgs[1].ID || e.UID != msgs[1].UID || e.Flags != storage.FlagFlagged {
		t.Errorf("flags event = %+v, want %s flagged", e, msgs[1].ID)
	}
	if e := list[4]; e.ID != msgs[0].ID || e.UID != msgs[0].UID {
		t.Errorf("deleted event = %+v, want %s", e, msgs[0].ID)
	}
	seen := map[string]bool{}
	for i, e := range list {
		if e.Seq == "" || seen[e.Seq] {
			t.Errorf("event %d has position %q, not unique", i, e.Seq)
		}
		seen[e.Seq] = true
		if e.Time.Before(before) || e.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("event %d at %v, want about now", i, e.Time)
		}
		if i > 0 && e.Time.Before(list[i-1].Time) {
			t.Errorf("event %d at %v, before the one earlier", i, e.Time)
		}
	}
	// Positions: after each, the rest; a limit takes the oldest.
	for i, e := range list {
		rest := InboxEvents(t, st, inbox, e.Seq)
		if len(rest) != len(list)-i-1 {
			t.Fatalf("after event %d: %d events (%s), want %d", i, len(rest), kinds(rest), len(list)-i-1)
		}
		for j, r := range rest {
			if r.Seq != list[i+1+j].Seq {
				t.Errorf("after event %d: event %d is %q, want %q", i, j, r.Seq, list[i+1+j].Seq)
			}
		}
	}
	limited, err := st.InboxEvents(ctx, inbox, list[0].Seq, 2)
	if err != nil || len(limited) != 2 || limited[0].Seq != list[1].Seq || limited[1].Seq != list[2].Seq {
		t.Errorf("InboxEvents(after the first, limit 2) = %s, %v; want events 1 and 2", kinds(limited), err)
	}
	if o := InboxEvents(t, st, other, ""); kinds(o) != "added" || o[0].Inbox != other {
		t.Errorf("the other inbox's events = %s, want its one added", kinds(o))
	}
	// A later event comes after the last position.
	m := putN(t, st, inbox, 1)[0]
	if more := InboxEvents(t, st, inbox, list[len(list)-1].Seq); len(more) != 1 || more[0].ID != m.ID {
		t.Errorf("after the last position, a new message: %s, want it added", kinds(more))
	}
}

func testInboxEventsBadPosition(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	inbox := inboxFor(t)
	putN(t, st, inbox, 1)
	for _, bad := range []string{"garbage", "-", "1-x", "\n", "-1-0", "18446744073709551616-0"} {
		if _, err := st.InboxEvents(ctxFor(t), inbox, bad, 10); !errors.Is(err, storage.ErrGone) {
			t.Errorf("InboxEvents after %q: %v, want ErrGone", bad, err)
		}
	}
	// Positions of the right form from no log: past the end there is nothing, no error.
	for _, future := range []string{"18446744073709551615-18446744073709551615", "9999999999999-0"} {
		if list, err := st.InboxEvents(ctxFor(t), inbox, future, 10); err != nil || len(list) != 0 {
			t.Errorf("InboxEvents after %q = %d events, %v; want none, no error", future, len(list), err)
		}
	}
}

// readFeed reads group's feed as consumer until done says it has all it wants or 20s
// pass, acknowledging what it reads when ack is set, and returns all it read.
func readFeed(t *testing.T, st storage.EventLog, group, consumer string, ack bool, done func([]storage.LoggedEvent) bool) []storage.LoggedEvent {
	t.Helper()
	ctx := ctxFor(t)
	var all []storage.LoggedEvent
	deadline := time.Now().Add(20 * time.Second)
	for !done(all) {
		if time.Now().After(deadline) {
			t.Fatalf("feed of %s as %s: after 20s %d events (%s), not all wanted", group, consumer, len(all), kinds(all))
		}
		list, err := st.ReadFeed(ctx, group, consumer, 100, 200*time.Millisecond, time.Minute)
		if err != nil {
			t.Fatalf("ReadFeed: %v", err)
		}
		all = append(all, list...)
		if ack && len(list) > 0 {
			seqs := make([]string, len(list))
			for i, e := range list {
				seqs[i] = e.Seq
			}
			if err := st.AckFeed(ctx, group, seqs...); err != nil {
				t.Fatalf("AckFeed: %v", err)
			}
		}
	}
	return all
}

// eventKey names an event for comparing the two logs.
func eventKey(e storage.LoggedEvent) string {
	return fmt.Sprintf("%s %s %s %d %d", e.Type, e.Inbox, e.ID, e.UID, e.Flags)
}

func testEventsInBothLogs(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{MaxMessages: 2})
	feedOn(t, st)
	ctx := ctxFor(t)
	inbox, burn := inboxFor(t), "burn-"+inboxFor(t)
	if err := st.SetInbox(ctx, burn, storage.InboxSettings{BurnAfterRead: true}); err != nil {
		t.Fatal(err)
	}
	msgs := putN(t, st, inbox, 3) // the first goes over the cap: expired
	sent := NewMessage(inbox, "a reply")
	sent.Sent, sent.Flags = true, storage.FlagSeen
	put(t, st, sent) // message 1 goes over the cap
	if _, err := st.SetFlags(ctx, inbox, msgs[2].ID, storage.FlagAnswered, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, inbox, sent.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	b := putN(t, st, burn, 1)[0]
	if _, err := st.SetFlags(ctx, burn, b.ID, storage.FlagSeen, 0); err != nil {
		t.Fatal(err)
	}
	short := NewMessage(burn, "short")
	short.Expires = time.Now().Add(100 * time.Millisecond)
	put(t, st, short)
	// The sweeper reports it expired.
	deadline := time.Now().Add(10 * time.Second)
	var burnLog []storage.LoggedEvent
	for {
		burnLog = InboxEvents(t, st, burn, "")
		if kinds(burnLog) == "added deleted added expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of the burn inbox = %s, want added deleted added expired", kinds(burnLog))
		}
		time.Sleep(20 * time.Millisecond) // polling the sweeper, with a deadline
	}
	inboxLog := InboxEvents(t, st, inbox, "")
	if got, want := kinds(inboxLog), "added added added expired added expired flags deleted deleted"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	if e := inboxLog[4]; e.ID != sent.ID || e.Message == nil || !e.Message.Sent {
		t.Errorf("the sent copy's event = %+v, want it added as sent", e)
	}
	if e := inboxLog[3]; e.ID != msgs[0].ID {
		t.Errorf("expired over the cap: %s, want %s", e.ID, msgs[0].ID)
	}
	want := map[string]bool{}
	for _, e := range append(inboxLog, burnLog...) {
		want[eventKey(e)] = true
	}
	got := map[string]bool{}
	feed := readFeed(t, st, "all", "c1", true, func(list []storage.LoggedEvent) bool {
		for _, e := range list {
			got[eventKey(e)] = true
		}
		return len(got) >= len(want)
	})
	for k := range want {
		if !got[k] {
			t.Errorf("the feed lacks %s", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("the feed has %s, no inbox's log does", k)
		}
	}
	// The feed keeps the order of each inbox's events, and their messages.
	var order []string
	for _, e := range feed {
		if e.Inbox == inbox {
			order = append(order, eventKey(e))
			if e.Type == storage.EventAdded && (e.Message == nil || e.Message.ID != e.ID) {
				t.Errorf("feed event %+v lacks its message", e)
			}
		}
	}
	var wantOrder []string
	for _, e := range inboxLog {
		wantOrder = append(wantOrder, eventKey(e))
	}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("the feed's events of the inbox:\n%q\nwant\n%q", order, wantOrder)
	}
}

// feedOn makes a webhook, so that st's feed has the events made from now on (a store
// may leave out those made while no webhook exists: see storage.EventLog).
func feedOn(t *testing.T, st storage.Store) {
	t.Helper()
	putWebhook(t, st, NewWebhook("wh_feed", time.Now()))
}

func feedOnce(t *testing.T, st storage.EventLog, group, consumer string, block, lease time.Duration) []storage.LoggedEvent {
	t.Helper()
	list, err := st.ReadFeed(ctxFor(t), group, consumer, 10, block, lease)
	if err != nil {
		t.Fatalf("ReadFeed(%s, %s): %v", group, consumer, err)
	}
	return list
}

func testFeedAtLeastOnce(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	feedOn(t, st)
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	const lease = 700 * time.Millisecond
	m := putN(t, st, inbox, 1)[0]
	// Consumer a reads it and never acknowledges: its node died.
	var got []storage.LoggedEvent
	deadline := time.Now().Add(10 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		got = feedOnce(t, st, "hooks", "a", 200*time.Millisecond, lease)
	}
	read := time.Now()
	if len(got) != 1 || got[0].ID != m.ID || got[0].Type != storage.EventAdded {
		t.Fatalf("a read %s, want %s added", kinds(got), m.ID)
	}
	// Within the lease nobody else gets it.
	if again := feedOnce(t, st, "hooks", "b", 0, lease); len(again) != 0 && time.Since(read) < lease {
		t.Fatalf("b read %s within a's lease, want nothing", kinds(again))
	}
	// After it, b does.
	var b []storage.LoggedEvent
	for len(b) == 0 {
		if time.Since(read) > 10*time.Second {
			t.Fatal("b never got the event a did not acknowledge")
		}
		b = feedOnce(t, st, "hooks", "b", 100*time.Millisecond, lease)
	}
	if since := time.Since(read); since < lease-50*time.Millisecond {
		t.Errorf("b got the event %v after a read it, within the lease of %v", since, lease)
	}
	if len(b) != 1 || b[0].ID != m.ID || b[0].Seq != got[0].Seq {
		t.Fatalf("b read %+v, want the event a read", b)
	}
	if err := st.AckFeed(ctx, "hooks", b[0].Seq); err != nil {
		t.Fatal(err)
	}
	// Acknowledged, it never comes back, to anyone.
	if again := feedOnce(t, st, "hooks", "a", 2*lease, lease); len(again) != 0 {
		t.Errorf("after AckFeed, a read %s, want nothing", kinds(again))
	}
	// A new event goes to one consumer.
	m2 := putN(t, st, inbox, 1)[0]
	got = readFeed(t, st, "hooks", "c", true, func(l []storage.LoggedEvent) bool { return len(l) > 0 })
	if len(got) != 1 || got[0].ID != m2.ID {
		t.Errorf("then c read %s, want the new event alone", kinds(got))
	}
	if err := st.AckFeed(ctx, "hooks"); err != nil {
		t.Errorf("AckFeed of nothing: %v", err)
	}
}

func testFeedGroups(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	feedOn(t, st)
	inbox := inboxFor(t)
	msgs := putN(t, st, inbox, 5)
	ids := func(list []storage.LoggedEvent) []string {
		var out []string
		for _, e := range list {
			out = append(out, e.ID)
		}
		return out
	}
	var want []string
	for _, m := range msgs {
		want = append(want, m.ID)
	}
	for _, group := range []string{"one", "two"} {
		got := readFeed(t, st, group, "c", true, func(l []storage.LoggedEvent) bool { return len(l) >= len(msgs) })
		if !slices.Equal(ids(got), want) {
			t.Errorf("group %s read %q, want every event in order %q", group, ids(got), want)
		}
	}
}

func testFeedBlocks(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	feedOn(t, st)
	inbox := inboxFor(t)
	// Drain what there is, then wait for a message put meanwhile.
	feedOnce(t, st, "wait", "c", 0, time.Minute)
	done := make(chan []storage.LoggedEvent, 1)
	go func() {
		list, _ := st.ReadFeed(ctxFor(t), "wait", "c", 10, 10*time.Second, time.Minute)
		done <- list
	}()
	start := time.Now()
	time.Sleep(100 * time.Millisecond) // let the read wait; it must not matter if it does not
	m := putN(t, st, inbox, 1)[0]
	select {
	case list := <-done:
		if len(list) != 1 || list[0].ID != m.ID {
			t.Errorf("a waiting ReadFeed returned %s, want the new message", kinds(list))
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("a waiting ReadFeed returned %v after the put, want at once", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a waiting ReadFeed did not return")
	}
	// ctx's end ends a wait too: its deadline, or its cancellation (a dispatcher
	// shutting down).
	ctx, cancel := context.WithTimeout(ctxFor(t), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	list, err := st.ReadFeed(ctx, "wait", "c", 10, 10*time.Second, time.Minute)
	if len(list) != 0 || time.Since(start) > 5*time.Second {
		t.Errorf("ReadFeed with ctx ending after 300ms = %s, %v after %v", kinds(list), err, time.Since(start))
	}
	ctx, cancel = context.WithCancel(ctxFor(t))
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	list, err = st.ReadFeed(ctx, "wait", "c", 10, 10*time.Second, time.Minute)
	if len(list) != 0 || !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Errorf("ReadFeed with ctx cancelled after 300ms = %s, %v after %v; want context.Canceled at once", kinds(list), err, time.Since(start))
	}
}

func testFeedConcurrent(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	feedOn(t, st)
	const writers, each = 4, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	for w := range writers {
		wg.Go(func() {
			inbox := fmt.Sprintf("w%d-%s", w, inboxFor(t))
			for i := range each {
				m := NewMessage(inbox, fmt.Sprint(i))
				if err := st.Put(context.Background(), m); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				mu.Lock()
				ids = append(ids, m.ID)
				mu.Unlock()
			}
		})
	}
	seen := make(map[string]int)
	var seenMu sync.Mutex
	stop := make(chan struct{})
	var readers sync.WaitGroup
	stopReaders := sync.OnceFunc(func() {
		close(stop)
		readers.Wait()
	})
	defer stopReaders() // also after a Fatal: no reader may report once the test ended
	for _, c := range []string{"c1", "c2"} {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				list, err := st.ReadFeed(ctxFor(t), "concurrent", c, 7, 100*time.Millisecond, time.Minute)
				if err != nil {
					t.Errorf("ReadFeed: %v", err)
					return
				}
				seqs := make([]string, 0, len(list))
				seenMu.Lock()
				for _, e := range list {
					seen[e.ID]++
					seqs = append(seqs, e.Seq)
				}
				seenMu.Unlock()
				if err := st.AckFeed(ctxFor(t), "concurrent", seqs...); err != nil {
					t.Errorf("AckFeed: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		seenMu.Lock()
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
		}
		seenMu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s the consumers have not read %d of %d events", missing, len(ids))
		}
		time.Sleep(20 * time.Millisecond) // polling the readers, with a deadline
	}
	stopReaders()
	for id, n := range seen {
		if n > 1 {
			// Leases are a minute, and every event was acknowledged.
			t.Errorf("event of %s read %d times by one group", id, n)
		}
	}
}

// NewWebhook returns a webhook with every field set.
func NewWebhook(id string, created time.Time) *storage.Webhook {
	return &storage.Webhook{
		ID: id, URL: "https://hooks.example/" + id, Events: []string{"message.received", "message.deleted"},
		Inbox: "box@mayfly.test", Filters: map[string]string{"from": "ann", "subject": "code"},
		Secret: "whsec_c2VjcmV0", Created: created.Truncate(time.Millisecond),
	}
}

func checkWebhook(t *testing.T, got, want *storage.Webhook) {
	t.Helper()
	if got.ID != want.ID || got.URL != want.URL || !slices.Equal(got.Events, want.Events) || got.Inbox != want.Inbox ||
		fmt.Sprint(got.Filters) != fmt.Sprint(want.Filters) || got.Secret != want.Secret || !got.Created.Equal(want.Created) ||
		got.Disabled != want.Disabled || !got.FailingSince.Equal(want.FailingSince) {
		t.Errorf("webhook = %+v, want %+v", got, want)
	}
}

func putWebhook(t *testing.T, st storage.WebhookStore, w *storage.Webhook) {
	t.Helper()
	if err := st.PutWebhook(ctxFor(t), w); err != nil {
		t.Fatalf("PutWebhook: %v", err)
	}
}

func testWebhookCRUD(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now()
	w2, w1 := NewWebhook("wh_b", now), NewWebhook("wh_a", now.Add(time.Second))
	w1.Inbox, w1.Filters = "", nil
	putWebhook(t, st, w2)
	putWebhook(t, st, w1)
	got, err := st.GetWebhook(ctx, "wh_b")
	if err != nil {
		t.Fatal(err)
	}
	checkWebhook(t, got, w2)
	list, err := st.ListWebhooks(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "wh_b" || list[1].ID != "wh_a" {
		t.Fatalf("ListWebhooks = %+v, %v; want wh_b then wh_a, oldest first", list, err)
	}
	checkWebhook(t, &list[1], w1)
	// Replace.
	w2.Disabled, w2.FailingSince = "failing for 5 days", now.Add(-5*24*time.Hour).Truncate(time.Millisecond)
	putWebhook(t, st, w2)
	if got, err = st.GetWebhook(ctx, "wh_b"); err != nil {
		t.Fatal(err)
	}
	checkWebhook(t, got, w2)
	if err := st.DeleteWebhook(ctx, "wh_b"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetWebhook(ctx, "wh_b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetWebhook after delete: %v, want ErrNotFound", err)
	}
	if err := st.DeleteWebhook(ctx, "wh_b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteWebhook again: %v, want ErrNotFound", err)
	}
	if list, err := st.ListWebhooks(ctx); err != nil || len(list) != 1 || list[0].ID != "wh_a" {
		t.Errorf("ListWebhooks after delete = %+v, %v; want wh_a", list, err)
	}
}

// NewDelivery returns a pending delivery for webhook, due at next.
func NewDelivery(webhook, id string, created, next time.Time) *storage.Delivery {
	return &storage.Delivery{
		ID: id, Webhook: webhook, Event: "message.received", Payload: []byte(`{"type":"message.received","id":"` + id + `"}`),
		Created: created.Truncate(time.Millisecond), State: storage.DeliveryPending, Next: next.Truncate(time.Millisecond),
	}
}

func addDelivery(t *testing.T, st storage.WebhookStore, d *storage.Delivery) {
	t.Helper()
	if ok, err := st.AddDelivery(ctxFor(t), d); err != nil || !ok {
		t.Fatalf("AddDelivery(%s) = %v, %v; want true", d.ID, ok, err)
	}
}

func checkDelivery(t *testing.T, got, want *storage.Delivery) {
	t.Helper()
	if got == nil {
		t.Fatalf("delivery = nil, want %s", want.ID)
	}
	same := len(got.Attempts) == len(want.Attempts)
	for i := 0; same && i < len(got.Attempts); i++ {
		a, b := got.Attempts[i], want.Attempts[i]
		same = a.At.Equal(b.At) && a.Status == b.Status && a.Latency == b.Latency && a.Error == b.Error && a.Response == b.Response
	}
	if got.ID != want.ID || got.Webhook != want.Webhook || got.Event != want.Event || string(got.Payload) != string(want.Payload) ||
		!got.Created.Equal(want.Created) || got.State != want.State || !got.Next.Equal(want.Next) || !same {
		t.Errorf("delivery = %+v, want %+v", got, want)
	}
}

func testAddDeliveryIdempotent(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now()
	putWebhook(t, st, NewWebhook("wh_1", now))
	putWebhook(t, st, NewWebhook("wh_2", now))
	d := NewDelivery("wh_1", "msg_1", now, now.Add(time.Hour))
	addDelivery(t, st, d)
	again := *d
	again.Payload = []byte(`{"other":true}`)
	if ok, err := st.AddDelivery(ctx, &again); err != nil || ok {
		t.Errorf("AddDelivery of the same ID again = %v, %v; want false", ok, err)
	}
	got, err := st.GetDelivery(ctx, "wh_1", "msg_1")
	if err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, got, d)
	// The same ID for another webhook is another delivery.
	addDelivery(t, st, NewDelivery("wh_2", "msg_1", now, now.Add(time.Hour)))
	if _, err := st.AddDelivery(ctx, NewDelivery("wh_none", "msg_1", now, now)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("AddDelivery for a missing webhook: %v, want ErrNotFound", err)
	}
	if _, err := st.GetDelivery(ctx, "wh_1", "msg_2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetDelivery of a missing delivery: %v, want ErrNotFound", err)
	}
	if c, err := claimOne(ctx, st, time.Minute); err != nil || c != nil {
		t.Errorf("a claim with nothing due = %+v, %v; want nil", c, err)
	}
}

// claimOne claims one delivery; nil when none is due.
func claimOne(ctx context.Context, st storage.WebhookStore, lease time.Duration) (*storage.Delivery, error) {
	ds, err := st.ClaimDeliveries(ctx, 1, lease)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	if len(ds) > 1 {
		return nil, fmt.Errorf("ClaimDeliveries(1) returned %d", len(ds))
	}
	return ds[0], nil
}

// claimWithin polls claimOne until it returns a delivery or d passes.
func claimWithin(t *testing.T, st storage.WebhookStore, lease, d time.Duration) *storage.Delivery {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := claimOne(ctxFor(t), st, lease)
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		if c != nil || time.Now().After(deadline) {
			return c
		}
		time.Sleep(10 * time.Millisecond) // polling the lease's end, with a deadline
	}
}

func testClaimDeliveryLease(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now()
	putWebhook(t, st, NewWebhook("wh_1", now))
	d := NewDelivery("wh_1", "msg_1", now, now.Add(-time.Second))
	addDelivery(t, st, d)
	addDelivery(t, st, NewDelivery("wh_1", "msg_later", now, now.Add(time.Hour)))
	const lease = 700 * time.Millisecond
	c, err := claimOne(ctx, st, lease)
	claimed := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, c, d)
	// Leased: hidden; and the later one is not due.
	if again, err := claimOne(ctx, st, lease); err != nil || again != nil && time.Since(claimed) < lease {
		t.Fatalf("a claim within the lease = %+v, %v; want nil", again, err)
	}
	// The claimer died: due again when its lease runs out.
	again := claimWithin(t, st, lease, 10*time.Second)
	if again == nil {
		t.Fatal("a delivery whose lease ran out never came due again")
	}
	if since := time.Since(claimed); since < lease-50*time.Millisecond {
		t.Errorf("claimed again %v after the first claim, within its lease of %v", since, lease)
	}
	checkDelivery(t, again, d)
}

func testUpdateDeliveryStates(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now()
	putWebhook(t, st, NewWebhook("wh_1", now))
	d := NewDelivery("wh_1", "msg_1", now, now)
	addDelivery(t, st, d)
	c := claimWithin(t, st, time.Minute, 5*time.Second)
	checkDelivery(t, c, d)
	// A failed attempt: pending, due in an hour.
	c.Attempts = append(c.Attempts, storage.Attempt{At: now.Truncate(time.Millisecond), Status: 503, Latency: 12 * time.Millisecond, Error: "503 Service Unavailable", Response: "busy"})
	c.Next = now.Add(time.Hour).Truncate(time.Millisecond)
	if err := st.UpdateDelivery(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GetDelivery(ctx, "wh_1", "msg_1"); err != nil {
		t.Fatal(err)
	} else {
		checkDelivery(t, got, c)
	}
	if got, err := claimOne(ctx, st, time.Minute); err != nil || got != nil {
		t.Errorf("a claim of one due in an hour = %+v, %v; want nil", got, err)
	}
	// Due now again (a retry or a replay), then delivered: out of the queue.
	c.Next = time.Now().Add(-time.Millisecond).Truncate(time.Millisecond)
	if err := st.UpdateDelivery(ctx, c); err != nil {
		t.Fatal(err)
	}
	c2 := claimWithin(t, st, time.Millisecond, 5*time.Second)
	checkDelivery(t, c2, c)
	c2.State = storage.DeliveryDelivered
	c2.Attempts = append(c2.Attempts, storage.Attempt{At: time.Now().Truncate(time.Millisecond), Status: 204, Latency: time.Millisecond})
	if err := st.UpdateDelivery(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if got := claimWithin(t, st, time.Millisecond, 100*time.Millisecond); got != nil {
		t.Errorf("a claim after it was delivered = %+v, want nil (its lease ended meanwhile too)", got)
	}
	list, err := st.Deliveries(ctx, "wh_1", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("Deliveries = %+v, %v; want the one", list, err)
	}
	checkDelivery(t, &list[0], c2)
	// Failed: out of the queue too; a replay puts it back.
	c2.State = storage.DeliveryFailed
	if err := st.UpdateDelivery(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if got := claimWithin(t, st, time.Minute, 100*time.Millisecond); got != nil {
		t.Errorf("a claim of a failed one = %+v, want nil", got)
	}
	c2.State, c2.Next = storage.DeliveryPending, time.Now().Truncate(time.Millisecond)
	if err := st.UpdateDelivery(ctx, c2); err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, claimWithin(t, st, time.Minute, 5*time.Second), c2)
	// Unknown ones.
	missing := NewDelivery("wh_1", "msg_none", now, now)
	if err := st.UpdateDelivery(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UpdateDelivery of a missing delivery: %v, want ErrNotFound", err)
	}
	missing.Webhook = "wh_none"
	if err := st.UpdateDelivery(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UpdateDelivery for a missing webhook: %v, want ErrNotFound", err)
	}
}

func testDeliveriesTrimmed(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	putWebhook(t, st, NewWebhook("wh_1", start))
	putWebhook(t, st, NewWebhook("wh_2", start))
	const pending, finished = 3, storage.DeliveriesKept + 5
	var all []*storage.Delivery
	for i := range pending + finished {
		d := NewDelivery("wh_1", fmt.Sprintf("msg_%03d", i), start.Add(time.Duration(i)*time.Second), start.Add(time.Hour*24))
		addDelivery(t, st, d)
		if i >= pending {
			d.State = storage.DeliveryDelivered
			if i%2 == 0 {
				d.State = storage.DeliveryFailed
			}
			if err := st.UpdateDelivery(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, d)
	}
	addDelivery(t, st, NewDelivery("wh_2", "msg_other", start, start.Add(time.Hour*24)))
	list, err := st.Deliveries(ctx, "wh_1", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Newest first: the last DeliveriesKept finished, then the pending ones, which are oldest.
	var want []string
	for i := len(all) - 1; i >= pending+finished-storage.DeliveriesKept; i-- {
		want = append(want, all[i].ID)
	}
	for i := pending - 1; i >= 0; i-- {
		want = append(want, all[i].ID)
	}
	var got []string
	for _, d := range list {
		got = append(got, d.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Deliveries = %d %q\nwant %d %q", len(got), got, len(want), want)
	}
	for _, d := range all[pending : pending+finished-storage.DeliveriesKept] {
		if _, err := st.GetDelivery(ctx, "wh_1", d.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetDelivery of %s, finished and older than the kept ones: %v, want ErrNotFound", d.ID, err)
		}
	}
	if list, err := st.Deliveries(ctx, "wh_1", 5); err != nil || len(list) != 5 || list[0].ID != want[0] {
		t.Errorf("Deliveries(limit 5) = %d, %v; want the newest 5", len(list), err)
	}
	if list, err := st.Deliveries(ctx, "wh_2", 0); err != nil || len(list) != 1 {
		t.Errorf("the other webhook's deliveries = %d, %v; want its one", len(list), err)
	}
}

func testDeleteWebhookDeliveries(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now()
	putWebhook(t, st, NewWebhook("wh_1", now))
	putWebhook(t, st, NewWebhook("wh_2", now))
	addDelivery(t, st, NewDelivery("wh_1", "msg_1", now, now))
	addDelivery(t, st, NewDelivery("wh_1", "msg_2", now, now.Add(time.Hour)))
	kept := NewDelivery("wh_2", "msg_3", now, now.Add(time.Hour))
	addDelivery(t, st, kept)
	if err := st.DeleteWebhook(ctx, "wh_1"); err != nil {
		t.Fatal(err)
	}
	if c := claimWithin(t, st, time.Minute, 100*time.Millisecond); c != nil {
		t.Errorf("a claim after its webhook was deleted = %+v, want nil", c)
	}
	if _, err := st.GetDelivery(ctx, "wh_1", "msg_1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetDelivery of a deleted webhook's: %v, want ErrNotFound", err)
	}
	putWebhook(t, st, NewWebhook("wh_1", now))
	if list, err := st.Deliveries(ctx, "wh_1", 0); err != nil || len(list) != 0 {
		t.Errorf("Deliveries of a webhook made again = %+v, %v; want none", list, err)
	}
	if got, err := st.GetDelivery(ctx, "wh_2", "msg_3"); err != nil {
		t.Errorf("the other webhook's delivery: %v", err)
	} else {
		checkDelivery(t, got, kept)
	}
}

// testClaimDeliveriesBatch: a claim of n takes the n due soonest, each leased; a claimer
// that dies holding them has every one of them claimed again after the lease, and none
// before.
func testClaimDeliveriesBatch(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now()
	putWebhook(t, st, NewWebhook("wh_1", now))
	putWebhook(t, st, NewWebhook("wh_2", now))
	var want []string
	for i := range 5 {
		d := NewDelivery([]string{"wh_1", "wh_2"}[i%2], fmt.Sprintf("msg_%d", i), now, now.Add(time.Duration(i-10)*time.Second))
		addDelivery(t, st, d)
		want = append(want, d.Webhook+"/"+d.ID)
	}
	addDelivery(t, st, NewDelivery("wh_1", "msg_later", now, now.Add(time.Hour)))
	const lease = 700 * time.Millisecond
	ids := func(ds []*storage.Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Webhook+"/"+d.ID)
		}
		return out
	}
	// The leases start during the claim, after this: a claim that takes long on a loaded
	// machine must not make the deliveries' return look early.
	claimed := time.Now()
	first, err := st.ClaimDeliveries(ctx, 3, lease)
	if err != nil || !slices.Equal(ids(first), want[:3]) {
		t.Fatalf("ClaimDeliveries(3) = %q, %v; want %q, the soonest due", ids(first), err, want[:3])
	}
	rest, err := st.ClaimDeliveries(ctx, 10, lease)
	if err != nil || !slices.Equal(ids(rest), want[3:]) {
		t.Fatalf("ClaimDeliveries(10) = %q, %v; want %q: the others due, not the leased or the later", ids(rest), err, want[3:])
	}
	if none, err := st.ClaimDeliveries(ctx, 10, lease); err != nil || len(none) != 0 && time.Since(claimed) < lease {
		t.Fatalf("ClaimDeliveries within the leases = %q, %v; want none", ids(none), err)
	}
	// Both claimers died: every delivery comes back after its lease.
	var again []string
	deadline := time.Now().Add(10 * time.Second)
	for len(again) < len(want) && time.Now().Before(deadline) {
		ds, err := st.ClaimDeliveries(ctx, 10, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) > 0 && time.Since(claimed) < lease-50*time.Millisecond {
			t.Fatalf("claimed %q again %v after the first claim, within its lease of %v", ids(ds), time.Since(claimed), lease)
		}
		again = append(again, ids(ds)...)
		time.Sleep(10 * time.Millisecond) // polling the leases' end, with a deadline
	}
	slices.Sort(again)
	if sorted := slices.Sorted(slices.Values(want)); !slices.Equal(again, sorted) {
		t.Errorf("claimed again after the leases: %q, want %q", again, sorted)
	}
	if ds, err := st.ClaimDeliveries(ctx, 0, lease); err != nil || len(ds) != 0 {
		t.Errorf("ClaimDeliveries(0) = %q, %v; want none", ids(ds), err)
	}
}

// testAddDeliveries: a batch stores each delivery as AddDelivery does, and says which.
func testAddDeliveries(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now()
	putWebhook(t, st, NewWebhook("wh_1", now))
	putWebhook(t, st, NewWebhook("wh_2", now))
	old := NewDelivery("wh_1", "msg_1", now, now.Add(time.Hour))
	addDelivery(t, st, old)
	again := *old
	again.Payload = []byte(`{"other":true}`)
	batch := []*storage.Delivery{&again, NewDelivery("wh_2", "msg_1", now, now), NewDelivery("wh_none", "msg_1", now, now), NewDelivery("wh_1", "msg_2", now, now.Add(time.Hour))}
	added, err := st.AddDeliveries(ctx, batch)
	if err != nil || !slices.Equal(added, []bool{false, true, false, true}) {
		t.Fatalf("AddDeliveries = %v, %v; want [false true false true]", added, err)
	}
	for _, d := range []*storage.Delivery{old, batch[1], batch[3]} {
		got, err := st.GetDelivery(ctx, d.Webhook, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkDelivery(t, got, d)
	}
	if c := claimWithin(t, st, time.Minute, 5*time.Second); c == nil || c.Webhook != "wh_2" {
		t.Errorf("claimed %+v, want the batch's one due now", c)
	}
	if added, err := st.AddDeliveries(ctx, nil); err != nil || len(added) != 0 {
		t.Errorf("AddDeliveries(nil) = %v, %v", added, err)
	}
}

// testUpdateDeliveries: a batch saves each delivery as UpdateDelivery does, skipping
// those not stored.
func testUpdateDeliveries(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now()
	putWebhook(t, st, NewWebhook("wh_1", now))
	a := NewDelivery("wh_1", "msg_1", now, now)
	b := NewDelivery("wh_1", "msg_2", now, now)
	addDelivery(t, st, a)
	addDelivery(t, st, b)
	a.State = storage.DeliveryDelivered
	a.Attempts = []storage.Attempt{{At: now.Truncate(time.Millisecond), Status: 204, Latency: time.Millisecond}}
	b.Next = now.Add(time.Hour).Truncate(time.Millisecond)
	b.Attempts = []storage.Attempt{{At: now.Truncate(time.Millisecond), Status: 500, Latency: time.Millisecond, Response: "oops"}}
	if err := st.UpdateDeliveries(ctx, []*storage.Delivery{a, NewDelivery("wh_1", "msg_none", now, now), NewDelivery("wh_none", "msg_1", now, now), b}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*storage.Delivery{a, b} {
		got, err := st.GetDelivery(ctx, d.Webhook, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkDelivery(t, got, d)
	}
	if c := claimWithin(t, st, time.Minute, 100*time.Millisecond); c != nil {
		t.Errorf("claimed %+v; want none: one delivered, one due in an hour", c)
	}
	if _, err := st.GetDelivery(ctx, "wh_1", "msg_none"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetDelivery of one skipped: %v, want ErrNotFound", err)
	}
	if err := st.UpdateDeliveries(ctx, nil); err != nil {
		t.Errorf("UpdateDeliveries(nil): %v", err)
	}
}
