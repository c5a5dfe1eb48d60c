package redisstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// hmgetHook counts the HMGETs of the settings fields that reach Redis and, while hold
// is set, holds the answer of the next until hold is closed.
type hmgetHook struct {
	n    atomic.Int32
	hold atomic.Pointer[chan struct{}]
	held chan struct{}
}

func (h *hmgetHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *hmgetHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *hmgetHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if a := cmd.Args(); cmd.Name() == "hmget" && len(a) == 5 && a[2] == "ttl" {
			h.n.Add(1)
			if gate := h.hold.Swap(nil); gate != nil {
				h.held <- struct{}{}
				<-*gate
			}
		}
		return err
	}
}

// TestSettingsCache: a node asks Redis for an inbox's settings once while the inbox
// has none; a change through the node applies at once, also over a read in flight; a
// change through another node within SettingsCache; and settings that exist are read
// every time, so faults removed through another node are never applied again.
func TestSettingsCache(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testSettingsCache(t) })
}

func testSettingsCache(t *testing.T) {
	prefix := testPrefix(t)
	const ttl = 300 * time.Millisecond
	a := openStore(t, prefix, Options{SettingsCache: ttl})
	b := openStore(t, prefix, Options{SettingsCache: ttl})
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	ctx := ctxFor(t)
	h := &hmgetHook{held: make(chan struct{})}
	b.client.AddHook(h)
	const inbox = "cached@mayfly.test"
	faults := storage.InboxSettings{Faults: []storage.Fault{{Stage: "rcpt", Code: 451}}}
	settings := func(st *Store) storage.InboxSettings {
		t.Helper()
		set, err := st.Settings(ctx, inbox)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}

	for range 3 {
		if set := settings(b); len(set.Faults) != 0 {
			t.Fatalf("settings of a new inbox: %+v", set)
		}
	}
	if n := h.n.Load(); n != 1 {
		t.Fatalf("3 reads of an inbox without settings asked Redis %d times, want 1", n)
	}

	// Through b itself: at once.
	if err := b.SetInbox(ctx, inbox, faults); err != nil {
		t.Fatal(err)
	}
	if set := settings(b); len(set.Faults) != 1 {
		t.Fatalf("right after b's SetInbox, b reads %+v", set)
	}

	// Settings that exist are not kept: removed through a, b applies them no more.
	if err := a.SetInbox(ctx, inbox, storage.InboxSettings{}); err != nil {
		t.Fatal(err)
	}
	if set := settings(b); len(set.Faults) != 0 {
		t.Fatalf("right after a removed the faults, b reads %+v", set)
	}

	// A read that b's SetInbox overtakes is not kept.
	b.settings.forget(inbox) // b kept "none": make it ask Redis
	gate := make(chan struct{})
	h.hold.Store(&gate)
	read := make(chan storage.InboxSettings, 1)
	go func() {
		set, _ := b.Settings(ctx, inbox)
		read <- set
	}()
	<-h.held // b's read has seen no settings, and is on its way back
	if err := b.SetInbox(ctx, inbox, faults); err != nil {
		t.Fatal(err)
	}
	close(gate)
	<-read
	if set := settings(b); len(set.Faults) != 1 {
		t.Fatalf("after b's SetInbox overtook a read, b reads %+v", set)
	}

	// Through a: within SettingsCache.
	if err := a.SetInbox(ctx, inbox, storage.InboxSettings{}); err != nil {
		t.Fatal(err)
	}
	settings(b) // none, kept
	if err := a.SetInbox(ctx, inbox, faults); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for len(settings(b).Faults) == 0 {
		if time.Since(start) > ttl+2*time.Second {
			t.Fatalf("b did not see a's faults within %v", ttl)
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
	if d := time.Since(start); d > ttl+time.Second {
		t.Errorf("b saw a's faults after %v, want within %v", d, ttl)
	}
}
