package memstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
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

// clock is a settable time source for the sweeper.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestSweepWithClock(t *testing.T) {
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
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
	st := New(Options{MemoryLimit: 3000})
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	put := func(inbox string, ttl time.Duration, size int, to ...string) *storage.Message {
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
	late := put("late@mayfly.test", 3*time.Hour, 1000)
	soon := put("soon@mayfly.test", time.Hour, 1000)
	// One message to two inboxes is held once.
	put("shared@mayfly.test", 2*time.Hour, 1000, "shared2@mayfly.test")
	if n, b := st.Stats(); n != 4 || b != 3000 {
		t.Fatalf("Stats = %d messages, %d bytes; want 4 deliveries in 3000 bytes", n, b)
	}
	put("new@mayfly.test", 4*time.Hour, 500)
	if _, err := st.Get(ctx, soon.Inbox, soon.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the soonest to expire is still there (%v) over the limit", err)
	}
	if _, err := st.Get(ctx, late.Inbox, late.ID); err != nil {
		t.Errorf("the latest to expire was dropped: %v", err)
	}
	if _, b := st.Stats(); b != 2500 {
		t.Errorf("bytes = %d after dropping, want 2500", b)
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
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := New(Options{Now: c.Now, SweepEvery: time.Hour})
	defer st.Close()
	ctx := context.Background()
	inbox := "box@mayfly.test"
	const ttl = 30 * time.Hour
	if err := st.SetInboxTTL(ctx, inbox, ttl); err != nil {
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
	if mb, err := st.Mailbox(ctx, inbox); err != nil || mb.TTL != ttl {
		t.Errorf("Mailbox %v after the TTL was set = %+v, %v; want TTL %v", ttl+mailboxGrace-time.Minute, mb, err, ttl)
	}
	// Mailbox kept it as long again.
	c.Add(ttl + mailboxGrace - time.Minute)
	st.sweepMailboxes()
	if mb, err := st.Mailbox(ctx, inbox); err != nil || mb.TTL != ttl {
		t.Errorf("Mailbox as long after the last Mailbox = %+v, %v; want TTL %v", mb, err, ttl)
	}
	c.Add(ttl + mailboxGrace + time.Minute)
	st.sweepMailboxes()
	if mb, err := st.Mailbox(ctx, inbox); err != nil || mb.TTL != 0 {
		t.Errorf("Mailbox after the TTL and the grace passed unused = %+v, %v; want a new inbox, TTL 0", mb, err)
	}
}
