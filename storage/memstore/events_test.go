package memstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

func clockStore(t *testing.T, o Options) (*Store, *storetest.Clock) {
	c := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	o.Now, o.SweepEvery = c.Now, time.Hour
	st := New(o)
	t.Cleanup(func() { st.Close() })
	return st, c
}

func putAt(t *testing.T, st *Store, c *storetest.Clock, inbox string) *storage.Message {
	t.Helper()
	m := storetest.NewMessage(inbox, "m")
	m.Received, m.Expires = c.Now(), c.Now().Add(24*time.Hour)
	if err := st.Put(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestInboxEventsGoneWithClock: an inbox's events last storage.EventHistory; a position
// before an event trimmed since is gone, one after all that went is not.
func TestInboxEventsGoneWithClock(t *testing.T) {
	st, c := clockStore(t, Options{})
	ctx := context.Background()
	inbox, quiet := "box@mayfly.test", "quiet@mayfly.test"
	putAt(t, st, c, inbox)
	putAt(t, st, c, quiet)
	old := storetest.InboxEvents(t, st, inbox, "")[0].Seq
	oldQuiet := storetest.InboxEvents(t, st, quiet, "")[0].Seq
	c.Add(storage.EventHistory - time.Second)
	m := putAt(t, st, c, inbox)
	if list := storetest.InboxEvents(t, st, inbox, old); len(list) != 1 || list[0].ID != m.ID {
		t.Fatalf("within the history: %d events after the first, want the second", len(list))
	}
	c.Add(2 * time.Second)
	st.Sweep()
	if _, err := st.InboxEvents(ctx, inbox, "", 0); err != nil {
		t.Fatal(err)
	}
	list := storetest.InboxEvents(t, st, inbox, "")
	if len(list) != 1 || list[0].ID != m.ID {
		t.Fatalf("past the first event's history: %d events, want the second alone", len(list))
	}
	// The client saw the event that went: it has missed nothing.
	if got, err := st.InboxEvents(ctx, inbox, old, 0); err != nil || len(got) != 1 {
		t.Errorf("after the event trimmed = %d events, %v; want the one after it", len(got), err)
	}
	// A position before it is gone.
	if _, err := st.InboxEvents(ctx, inbox, "1-0", 0); !errors.Is(err, storage.ErrGone) {
		t.Errorf("before a trimmed event: %v, want ErrGone", err)
	}
	// The quiet inbox's log is gone: its last position is older than the history.
	if _, err := st.InboxEvents(ctx, quiet, oldQuiet, 0); !errors.Is(err, storage.ErrGone) {
		t.Errorf("after the only event of a log gone by time: %v, want ErrGone", err)
	}
	if got, err := st.InboxEvents(ctx, "never@mayfly.test", list[0].Seq, 0); err != nil || len(got) != 0 {
		t.Errorf("an inbox without events, after a recent position = %d, %v; want none, no error", len(got), err)
	}
}

// TestFeedHistoryWithoutWebhooks: with no webhook the feed keeps no more than the
// inboxes' logs (storage.EventHistory) and gives its readers nothing made meanwhile;
// with one, it keeps a day and gives every event.
func TestFeedHistoryWithoutWebhooks(t *testing.T) {
	for _, hooked := range []bool{false, true} {
		st, c := clockStore(t, Options{})
		if hooked {
			if err := st.PutWebhook(context.Background(), storetest.NewWebhook("wh_1", c.Now())); err != nil {
				t.Fatal(err)
			}
		}
		old := putAt(t, st, c, "box@mayfly.test")
		c.Add(storage.EventHistory + time.Minute)
		putAt(t, st, c, "box@mayfly.test")
		st.mu.Lock()
		kept := len(st.log.feed)
		st.mu.Unlock()
		list, err := st.ReadFeed(context.Background(), "g", "c", 10, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !hooked && (kept != 1 || len(list) != 0):
			t.Errorf("no webhook: the feed keeps %d events and gave %d; want 1 (the new one, for its inbox's log) and none", kept, len(list))
		case hooked && (kept != 2 || len(list) != 2 || list[0].ID != old.ID):
			t.Errorf("a webhook: the feed keeps %d events and gave %d; want both, the old one first", kept, len(list))
		}
	}
}

// TestFeedFromTheFirstWebhook: the feed gives what was made after the first webhook
// came, not before.
func TestFeedFromTheFirstWebhook(t *testing.T) {
	st, c := clockStore(t, Options{})
	ctx := context.Background()
	putAt(t, st, c, "box@mayfly.test")
	if list, err := st.ReadFeed(ctx, "g", "c", 10, 0, time.Minute); err != nil || len(list) != 0 {
		t.Fatalf("no webhook: ReadFeed = %d events, %v; want none", len(list), err)
	}
	if err := st.PutWebhook(ctx, storetest.NewWebhook("wh_1", c.Now())); err != nil {
		t.Fatal(err)
	}
	m := putAt(t, st, c, "box@mayfly.test")
	list, err := st.ReadFeed(ctx, "g", "c", 10, 0, time.Minute)
	if err != nil || len(list) != 1 || list[0].ID != m.ID {
		t.Errorf("after the webhook: ReadFeed = %+v, %v; want the message put after it alone", list, err)
	}
}

// TestInboxEventsGoneOverCount: an inbox's log keeps inboxLogMax events; a position before
// the ones it dropped is gone even within the history.
func TestInboxEventsGoneOverCount(t *testing.T) {
	st, c := clockStore(t, Options{})
	ctx := context.Background()
	inbox := "busy@mayfly.test"
	m := putAt(t, st, c, inbox)
	for i := range inboxLogMax + 4 {
		flag := storage.FlagFlagged
		if _, err := st.SetFlags(ctx, inbox, m.ID, flag*storage.Flags(1-i%2), flag*storage.Flags(i%2)); err != nil {
			t.Fatal(err)
		}
	}
	// Five events went: the added one and four flags.
	list := storetest.InboxEvents(t, st, inbox, "")
	if len(list) != inboxLogMax || list[0].Type != storage.EventFlags {
		t.Fatalf("log of %d events (first %v), want %d", len(list), list[0].Type, inboxLogMax)
	}
	first, _ := parseSeq(list[0].Seq)
	n := first.seq
	seqOf := func(n uint64) string { return fmt.Sprintf("%d-%d", c.Now().UnixMilli(), n) }
	if _, err := st.InboxEvents(ctx, inbox, seqOf(n-2), 0); !errors.Is(err, storage.ErrGone) {
		t.Errorf("before the last event dropped: %v, want ErrGone", err)
	}
	if got, err := st.InboxEvents(ctx, inbox, seqOf(n-1), 0); err != nil || len(got) != inboxLogMax {
		t.Errorf("after the last event dropped = %d, %v; want all kept", len(got), err)
	}
	// Delete the inbox's mail and let its log empty: the mark of what went early stays.
	if _, err := st.InboxEvents(ctx, "other@mayfly.test", seqOf(n-2), 0); !errors.Is(err, storage.ErrGone) {
		t.Errorf("an inbox without a log, before an event dropped early: %v, want ErrGone", err)
	}
}

// TestEventLogBounded: however many events, the logs stay within their share of the
// memory limit and their count.
func TestEventLogBounded(t *testing.T) {
	const limit = 1 << 20
	st, c := clockStore(t, Options{MemoryLimit: limit, MaxMessages: 2})
	for i := range 30000 {
		putAt(t, st, c, fmt.Sprintf("b%d@mayfly.test", i%5000))
		if i%1000 == 0 {
			c.Add(time.Second)
		}
	}
	m := st.Memory()
	t.Logf("%+v, feed %d, inbox logs %d", m, len(st.log.feed), len(st.log.inboxes))
	if m.EventLogBytes > limit/logShare || m.EventLogBytes <= 0 {
		t.Errorf("event logs counted %d B, want within %d B", m.EventLogBytes, limit/logShare)
	}
	if m.Bytes+m.MetadataBytes > limit {
		t.Errorf("mail %d B over the limit of %d B", m.Bytes+m.MetadataBytes, limit)
	}
	n := 0
	for _, il := range st.log.inboxes {
		n += len(il.entries)
	}
	if n > len(st.log.feed) {
		t.Errorf("inbox logs hold %d events, the feed %d", n, len(st.log.feed))
	}
	// A day later everything has gone by time, but for the mail's expiry just now.
	c.Add(feedHistory + time.Minute)
	st.Sweep()
	for _, e := range st.log.feed {
		if e.Type != storage.EventExpired || !e.Time.Equal(c.Now()) {
			t.Fatalf("after a day the feed holds %+v", e.LoggedEvent)
		}
	}
	c.Add(feedHistory + time.Minute)
	st.Sweep()
	if len(st.log.feed) != 0 || len(st.log.inboxes) != 0 || st.Memory().EventLogBytes != 0 {
		t.Errorf("after two days: feed %d, inbox logs %d, %d B; want none", len(st.log.feed), len(st.log.inboxes), st.Memory().EventLogBytes)
	}
}

// TestFeedLeaseWithClock: leases end by the store's clock.
func TestFeedLeaseWithClock(t *testing.T) {
	st, c := clockStore(t, Options{})
	ctx := context.Background()
	if err := st.PutWebhook(ctx, storetest.NewWebhook("wh_1", c.Now())); err != nil {
		t.Fatal(err) // the feed keeps an hour's events only while a webhook exists
	}
	m := putAt(t, st, c, "lease@mayfly.test")
	got, err := st.ReadFeed(ctx, "g", "a", 10, 0, time.Hour)
	if err != nil || len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("a read %+v, %v", got, err)
	}
	if got, _ := st.ReadFeed(ctx, "g", "b", 10, 0, time.Hour); len(got) != 0 {
		t.Fatalf("b read %d within a's lease", len(got))
	}
	c.Add(time.Hour)
	got, err = st.ReadFeed(ctx, "g", "b", 10, time.Second, time.Hour)
	if err != nil || len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("b read %+v, %v after a's lease; want the event", got, err)
	}
	// Trimmed while leased: nobody gets it any more. (The mail expires meanwhile: that
	// event is new.)
	c.Add(feedHistory)
	st.Sweep()
	got, _ = st.ReadFeed(ctx, "g", "a", 10, 0, time.Hour)
	for _, e := range got {
		if e.Type == storage.EventAdded {
			t.Errorf("read an event trimmed from the feed: %+v", e)
		}
	}
	if len(st.log.groups["g"].pending) != len(got) {
		t.Errorf("%d leases kept, want the %d just read: those of trimmed events go", len(st.log.groups["g"].pending), len(got))
	}
}

// TestClaimDeliveryWithClock: a claimed delivery is due again when its lease ends by the
// store's clock.
func TestClaimDeliveryWithClock(t *testing.T) {
	st, c := clockStore(t, Options{})
	ctx := context.Background()
	if err := st.PutWebhook(ctx, storetest.NewWebhook("wh_1", c.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDelivery(ctx, storetest.NewDelivery("wh_1", "msg_1", c.Now(), c.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if d, _ := claimOne(ctx, st, time.Hour); d != nil {
		t.Fatal("claimed before it was due")
	}
	c.Add(time.Minute)
	if d, _ := claimOne(ctx, st, time.Hour); d == nil {
		t.Fatal("not claimed when due")
	}
	c.Add(time.Hour - time.Second)
	if d, _ := claimOne(ctx, st, time.Hour); d != nil {
		t.Fatal("claimed again within the lease")
	}
	c.Add(time.Second)
	if d, _ := claimOne(ctx, st, time.Hour); d == nil || d.ID != "msg_1" {
		t.Fatal("not claimed again when the lease ended")
	}
}

// TestWebhooksCountAgainstLimit: deliveries count with the metadata, and go with their
// webhook.
func TestWebhooksCountAgainstLimit(t *testing.T) {
	st, c := clockStore(t, Options{})
	ctx := context.Background()
	base := st.Memory().MetadataBytes
	if err := st.PutWebhook(ctx, storetest.NewWebhook("wh_1", c.Now())); err != nil {
		t.Fatal(err)
	}
	withHook := st.Memory().MetadataBytes
	for i := range 50 {
		d := storetest.NewDelivery("wh_1", fmt.Sprint(i), c.Now(), c.Now())
		d.Payload = make([]byte, 10<<10)
		if _, err := st.AddDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if got := st.Memory().MetadataBytes - withHook; got < 50*10<<10 {
		t.Errorf("50 deliveries of 10 KiB counted %d B", got)
	}
	if err := st.DeleteWebhook(ctx, "wh_1"); err != nil {
		t.Fatal(err)
	}
	if got := st.Memory().MetadataBytes; got != base {
		t.Errorf("after DeleteWebhook %d B counted, want %d as before", got, base)
	}
}

// claimOne claims one delivery; nil when none is due.
func claimOne(ctx context.Context, st *Store, lease time.Duration) (*storage.Delivery, error) {
	ds, err := st.ClaimDeliveries(ctx, 1, lease)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	return ds[0], nil
}
