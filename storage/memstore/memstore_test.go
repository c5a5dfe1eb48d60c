package memstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

func newStore(t testing.TB, o storetest.Options) storage.Store {
	return New(Options{MaxMessages: o.MaxMessages, SweepEvery: 20 * time.Millisecond})
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newStore, false)
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, newStore)
}

func TestSweepWithClock(t *testing.T) {
	c := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	// A sweep interval far beyond the test: only the explicit Sweep calls run.
	st := New(Options{Now: c.Now, SweepEvery: time.Hour})
	defer st.Close()
	ctx := context.Background()
	var msgs []*storage.Message
	for i, ttl := range []time.Duration{3 * time.Minute, time.Minute, 2 * time.Minute} {
		m := storetest.NewMessage("box@mayfly.test", fmt.Sprint(i))
		m.Received, m.Expires = c.Now(), c.Now().Add(ttl)
		if err := st.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	events, _ := st.Subscribe(ctx, "box@mayfly.test")

	c.Add(90 * time.Second)
	if _, err := st.Get(ctx, "box@mayfly.test", msgs[1].ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get past expiry before a sweep: %v, want ErrNotFound", err)
	}
	st.Sweep()
	if e := <-events; e.Type != storage.EventExpired || e.ID != msgs[1].ID {
		t.Errorf("event %+v, want %s expired", e, msgs[1].ID)
	}
	if n, _ := st.Stats(); n != 2 {
		t.Errorf("Stats = %d messages after one expired, want 2", n)
	}
	c.Add(time.Hour)
	st.Sweep()
	if n, b := st.Stats(); n != 0 || b != 0 {
		t.Errorf("Stats = %d messages, %d bytes after all expired, want 0, 0", n, b)
	}
}

func TestMemoryLimitDropsSoonestToExpire(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	put := func(st *Store, inbox string, ttl time.Duration, size int, to ...string) *storage.Message {
		t.Helper()
		m := storetest.NewMessage(inbox, inbox)
		m.Raw, m.Size, m.Expires = make([]byte, size), int64(size), now.Add(ttl)
		msgs := []*storage.Message{m}
		for _, other := range to {
			c := *m
			c.Inbox = other
			msgs = append(msgs, &c)
		}
		if err := st.Put(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := func(st *Store) (late, soon *storage.Message) {
		late = put(st, "late@mayfly.test", 3*time.Hour, 1000)
		soon = put(st, "soon@mayfly.test", time.Hour, 1000)
		// One message to two inboxes is held once.
		put(st, "shared@mayfly.test", 2*time.Hour, 1000, "shared2@mayfly.test")
		return late, soon
	}
	// The limit holds these 3000 bytes of mail with their metadata, as counted.
	probe := New(Options{MemoryLimit: 1 << 30})
	defer probe.Close()
	first(probe)
	meta := probe.Memory().MetadataBytes

	st := New(Options{MemoryLimit: 3000 + meta})
	defer st.Close()
	late, soon := first(st)
	if n, b := st.Stats(); n != 4 || b != 3000 {
		t.Fatalf("Stats = %d messages, %d bytes; want 4 deliveries in 3000 bytes", n, b)
	}
	put(st, "new@mayfly.test", 4*time.Hour, 500)
	if _, err := st.Get(ctx, soon.Inbox, soon.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the soonest to expire is still there (%v) over the limit", err)
	}
	if _, err := st.Get(ctx, late.Inbox, late.ID); err != nil {
		t.Errorf("the latest to expire was dropped: %v", err)
	}
	if _, b := st.Stats(); b != 2500 {
		t.Errorf("bytes = %d after dropping, want 2500", b)
	}
	if m := st.Memory(); m.Bytes+m.MetadataBytes > m.Limit {
		t.Errorf("Memory = %+v, over its limit", m)
	}
}

// BenchmarkMemoryPer10KiB reports the heap held per stored 10 KiB message, metadata
// and the store's indexes included.
func BenchmarkMemoryPer10KiB(b *testing.B) {
	const n = 20000
	for b.Loop() {
		st := New(Options{MaxMessages: 1000, MemoryLimit: 1 << 40})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ctx := context.Background()
		for i := range n {
			m := storetest.NewMessage(fmt.Sprintf("box%d@mayfly.test", i%500), "bench")
			m.Raw = make([]byte, 10<<10)
			m.Size = int64(len(m.Raw))
			if err := st.Put(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/msg")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n*(10<<10)), "heap/raw")
		st.Close()
	}
}

func TestInboxTTLWithClock(t *testing.T) {
	c := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	st := New(Options{Now: c.Now, SweepEvery: time.Hour})
	defer st.Close()
	ctx := context.Background()
	inbox := "box@mayfly.test"
	const ttl = 30 * time.Hour
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	m := storetest.NewMessage(inbox, "no received")
	m.Received = time.Time{}
	if err := st.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	if want := c.Now().Add(ttl); !m.Expires.Equal(want) {
		t.Errorf("Expires of a message without Received = %v, want now + %v = %v", m.Expires, ttl, want)
	}
	if _, err := st.DeleteInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}

	// An emptied inbox keeps its state, and so its TTL, for the TTL and the grace.
	c.Add(ttl + mailboxGrace - time.Minute)
	st.sweepMailboxes()
	if _, err := st.Mailbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	if mb, err := st.Settings(ctx, inbox); err != nil || mb.TTL != ttl {
		t.Errorf("Mailbox %v after the TTL was set = %+v, %v; want TTL %v", ttl+mailboxGrace-time.Minute, mb, err, ttl)
	}
	// Mailbox kept it as long again.
	c.Add(ttl + mailboxGrace - time.Minute)
	st.sweepMailboxes()
	if _, err := st.Mailbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	if mb, err := st.Settings(ctx, inbox); err != nil || mb.TTL != ttl {
		t.Errorf("Mailbox as long after the last Mailbox = %+v, %v; want TTL %v", mb, err, ttl)
	}
	c.Add(ttl + mailboxGrace + time.Minute)
	st.sweepMailboxes()
	if _, err := st.Mailbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	if mb, err := st.Settings(ctx, inbox); err != nil || mb.TTL != 0 {
		t.Errorf("Mailbox after the TTL and the grace passed unused = %+v, %v; want a new inbox, TTL 0", mb, err)
	}
}

// heapAfter runs fn and returns by how much the live heap grew.
func heapAfter(fn func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// smallDelivery is a message with the metadata a real one carries and little body.
func smallDelivery(inbox string, i int) *storage.Message {
	m := storetest.NewMessage(inbox, fmt.Sprintf("Your code is %06d", i))
	m.From = "Example Shop <noreply@shop.example>"
	m.To = []string{inbox, "other@mayfly.test"}
	m.ReplyTo = []string{"support@shop.example"}
	m.Envelope = storage.Envelope{From: "bounce@shop.example", Recipients: []string{inbox}, RemoteIP: "192.0.2.1", Helo: "mail.shop.example"}
	m.Auth = storage.AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass"}
	m.Raw = []byte(fmt.Sprintf("Subject: code\r\n\r\n%06d\r\n", i))
	m.Size = int64(len(m.Raw))
	return m
}

// TestMemoryCountsInboxesAndMetadata checks that what an inbox's state and a
// message's metadata cost is counted in the memory limit: the estimate covers what
// the heap holds for them, and a flood of inboxes with no mail (as POST
// /api/v1/inboxes makes) or of small deliveries stays within the limit.
func TestMemoryCountsInboxesAndMetadata(t *testing.T) {
	const n = 100_000
	ctx := context.Background()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("i%07d-%s@mayfly.test", i, "abcdefghij")
	}

	t.Run("estimate", func(t *testing.T) {
		st := New(Options{MaxMessages: n, MemoryLimit: 1 << 40, SweepEvery: time.Hour})
		defer st.Close()
		grew := heapAfter(func() {
			for _, name := range names {
				st.SetInbox(ctx, name, storage.InboxSettings{TTL: time.Hour})
			}
		})
		counted := st.Memory().MetadataBytes
		t.Logf("%d inboxes: heap +%d B, counted %d B (%.0f B each)", n, grew, counted, float64(counted)/n)
		if grew > 2*counted {
			t.Errorf("%d inboxes grew the heap by %d B, over twice the %d B counted", n, grew, counted)
		}
		before := st.Memory()
		// Made as they are put, so that the heap counts the strings the store keeps.
		grew = heapAfter(func() {
			for i := range n {
				st.Put(ctx, smallDelivery(names[i%1000], i))
			}
		})
		after := st.Memory()
		counted = after.Bytes + after.MetadataBytes - before.Bytes - before.MetadataBytes
		t.Logf("%d deliveries: heap +%d B, counted %d B (%.0f B each)", n, grew, counted, float64(counted)/n)
		if grew > 2*counted {
			t.Errorf("%d deliveries grew the heap by %d B, over twice the %d B counted", n, grew, counted)
		}
	})

	t.Run("limit", func(t *testing.T) {
		const limit = 2 << 20
		st := New(Options{MaxMessages: n, MemoryLimit: limit, SweepEvery: time.Hour})
		defer st.Close()
		first, err := st.Mailbox(ctx, "first@mayfly.test")
		if err != nil {
			t.Fatal(err)
		}
		kept := smallDelivery("kept@mayfly.test", 0)
		kept.Expires = time.Now().Add(time.Hour)
		if err := st.Put(ctx, kept); err != nil {
			t.Fatal(err)
		}
		grew := heapAfter(func() {
			for _, name := range names {
				st.SetInbox(ctx, name, storage.InboxSettings{TTL: time.Hour})
			}
		})
		m := st.Memory()
		t.Logf("after %d inboxes: %+v, heap +%d B", n, m, grew)
		if m.Bytes+m.MetadataBytes > limit || m.Inboxes >= n || m.DroppedInboxes == 0 {
			t.Errorf("after %d inboxes: %+v; want within the limit, some states dropped", n, m)
		}
		if grew > 2*limit {
			t.Errorf("%d inboxes under a %d B limit grew the heap by %d B", n, limit, grew)
		}
		// Inbox states go before mail.
		if _, err := st.Get(ctx, kept.Inbox, kept.ID); err != nil {
			t.Errorf("a message was dropped for empty inboxes' states: %v", err)
		}
		// A dropped state made again never pairs new UIDs with the old UIDVALIDITY.
		again, err := st.Mailbox(ctx, "first@mayfly.test")
		if err != nil || again.UIDValidity <= first.UIDValidity {
			t.Errorf("Mailbox after its state was dropped = %+v, %v; want a UIDVALIDITY above %d", again, err, first.UIDValidity)
		}

		grew = heapAfter(func() {
			for i := range n {
				m := smallDelivery(names[i], i)
				m.Expires = time.Now().Add(2 * time.Hour)
				st.Put(ctx, m)
			}
		})
		m = st.Memory()
		t.Logf("after %d deliveries: %+v, heap +%d B", n, m, grew)
		if m.Bytes+m.MetadataBytes > limit || m.Messages >= n {
			t.Errorf("after %d deliveries: %+v; want within the limit, messages dropped", n, m)
		}
		if grew > 2*limit {
			t.Errorf("%d deliveries under a %d B limit grew the heap by %d B", n, limit, grew)
		}
	})
}

// TestMemoryLimitKeepsWatchedInboxes checks that a flood of new inboxes does not drop
// the state of an empty inbox someone watches (an IMAP client in IDLE would see its
// UIDVALIDITY change and be logged out), nor the one an inbox was just given.
func TestMemoryLimitKeepsWatchedInboxes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := New(Options{MemoryLimit: 64 << 10, SweepEvery: time.Hour})
	defer st.Close()
	watched, err := st.Mailbox(ctx, "watched@mayfly.test")
	if err != nil {
		t.Fatal(err)
	}
	st.Subscribe(ctx, "watched@mayfly.test")
	for i := range 10_000 {
		name := fmt.Sprintf("flood%d@mayfly.test", i)
		if err := st.SetInbox(ctx, name, storage.InboxSettings{TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if mb, _ := st.Settings(ctx, name); mb.TTL != time.Hour {
			t.Fatalf("inbox %s lost its TTL as it was set: %+v", name, mb)
		}
	}
	if m := st.Memory(); m.DroppedInboxes == 0 || m.MetadataBytes > m.Limit {
		t.Errorf("Memory = %+v; want states dropped, within the limit", m)
	}
	if mb, _ := st.Mailbox(ctx, "watched@mayfly.test"); mb.UIDValidity != watched.UIDValidity {
		t.Errorf("watched inbox's UIDVALIDITY went from %d to %d", watched.UIDValidity, mb.UIDValidity)
	}
}

// TestSendCountersCounted: CountSend's counters (one per client address a flood may
// bring) are memory too, counted with the metadata until their window ends.
func TestSendCountersCounted(t *testing.T) {
	c := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	st := New(Options{Now: c.Now, SweepEvery: time.Hour})
	defer st.Close()
	ctx := context.Background()
	for i := range 1000 {
		if _, err := st.CountSend(ctx, fmt.Sprintf("client:198.51.%d.%d", i/256, i%256), 1, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.CountSend(ctx, "client:198.51.0.0", 2, time.Hour); err != nil || n != 3 {
		t.Fatalf("CountSend again = %d, %v; want 3", n, err)
	}
	counted := st.Memory().MetadataBytes
	if counted < 1000*int64(len("client:198.51.0.0")) {
		t.Errorf("1000 counters counted as %d bytes, want at least their keys", counted)
	}
	c.Add(2 * time.Hour)
	st.sweepMailboxes()
	if m := st.Memory().MetadataBytes; m != 0 {
		t.Errorf("after their window ended the counters still count %d bytes, want 0", m)
	}
}

// TestSettingsMakeNoState checks that reading an unknown inbox's settings, as the
// receiver does at every RCPT, holds no memory for it.
func TestSettingsMakeNoState(t *testing.T) {
	st := New(Options{SweepEvery: time.Hour})
	defer st.Close()
	ctx := context.Background()
	for i := range 100 {
		inbox := fmt.Sprintf("unknown%d@mayfly.test", i)
		if set, err := st.Settings(ctx, inbox); err != nil || set.Faults != nil || set.TTL != 0 {
			t.Fatalf("Settings(%s) = %+v, %v", inbox, set, err)
		}
		if _, err := st.FaultAttempt(ctx, inbox, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("FaultAttempt(%s) = %v, want ErrNotFound", inbox, err)
		}
	}
	if m := st.Memory(); m.Inboxes != 0 || m.MetadataBytes != 0 {
		t.Errorf("Memory after reading unknown inboxes' settings = %+v, want nothing held", m)
	}
	// Faults count against the memory limit, and are given back with the inbox.
	faults := []storage.Fault{{Stage: "rcpt", Code: 451, Message: "greylisted, try again later", Times: 1}}
	if err := st.SetInbox(ctx, "faulty@mayfly.test", storage.InboxSettings{Faults: faults}); err != nil {
		t.Fatal(err)
	}
	with := st.Memory().MetadataBytes
	if err := st.SetInbox(ctx, "faulty@mayfly.test", storage.InboxSettings{}); err != nil {
		t.Fatal(err)
	}
	if without := st.Memory().MetadataBytes; without >= with || without != mailboxCost("faulty@mayfly.test") {
		t.Errorf("metadata bytes with a fault %d, without %d; want the mailbox's %d alone", with, without, mailboxCost("faulty@mayfly.test"))
	}
}
