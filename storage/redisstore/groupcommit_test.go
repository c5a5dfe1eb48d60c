package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// putHold holds the first Put round trip until gate closes and counts the Put round
// trips (pipelines that run the put script).
type putHold struct {
	gate   chan struct{}
	held   atomic.Bool
	trips  atomic.Int32
	script string
}

func (h *putHold) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *putHold) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *putHold) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if a := c.Args(); len(a) > 1 && c.Name() == "evalsha" && a[1] == h.script {
				h.trips.Add(1)
				if h.held.CompareAndSwap(false, true) {
					<-h.gate
				}
				break
			}
		}
		return next(ctx, cmds)
	}
}

var _ redis.Hook = (*putHold)(nil)

// TestGroupCommit: the Puts that come while one is in flight go together in the next
// round trip, in the order they came (so their UIDs), and one that fails there fails
// alone.
func TestGroupCommit(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testGroupCommit(t) })
}

func testGroupCommit(t *testing.T) {
	_, st, admin := storeAndAdmin(t)
	ctx := ctxFor(t)
	const inbox, bad = "group@mayfly.test", "bad@mayfly.test"
	// A state that is no hash makes the put script fail for bad alone.
	if err := admin.Set(ctx, st.keys(bad).state, "not a hash", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	h := &putHold{gate: make(chan struct{}), script: putScript.Hash()}
	st.client.AddHook(h)

	var wg sync.WaitGroup
	errs := make([]error, 7)
	msgs := make([]*storage.Message, 7)
	put := func(i int, to string) {
		msgs[i] = storetest.NewMessage(to, "m"+string(rune('0'+i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Put(ctx, msgs[i])
		}()
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10s", what)
			}
			time.Sleep(time.Millisecond) // polling, bounded by the deadline
		}
	}
	queued := func() int {
		st.group.mu.Lock()
		defer st.group.mu.Unlock()
		return len(st.group.queue)
	}
	put(0, inbox)
	waitFor("held round trip", h.held.Load)
	for i, to := range []string{inbox, inbox, bad, inbox, inbox, inbox} {
		put(i+1, to)
		waitFor("queued put", func() bool { return queued() == i+1 })
	}
	close(h.gate)
	wg.Wait()

	if got := h.trips.Load(); got != 2 {
		t.Errorf("put round trips: %d, want 2 (one, then the six queued behind it)", got)
	}
	for i, err := range errs {
		if (err != nil) != (i == 3) {
			t.Errorf("put %d (%s): err %v", i, msgs[i].Inbox, err)
		}
	}
	want := uint32(1)
	for i, m := range msgs {
		if i == 3 {
			continue
		}
		if m.UID != want {
			t.Errorf("put %d: UID %d, want %d (the order it came in)", i, m.UID, want)
		}
		want++
	}
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil || len(list) != 6 {
		t.Fatalf("list: %d messages, err %v; want 6", len(list), err)
	}
	if n, err := admin.Exists(ctx, st.keys(bad).msg(msgs[3].ID)).Result(); err != nil || n != 0 {
		t.Errorf("the failed put's message: exists %d, err %v", n, err)
	}
}
