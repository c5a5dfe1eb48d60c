package redisstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// claimCount counts the XAUTOCLAIMs that reach Redis.
type claimCount struct{ n atomic.Int32 }

func (h *claimCount) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *claimCount) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *claimCount) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "xautoclaim" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

// TestReadFeedClaimsEveryQuarterLease: reads that follow each other look for run-out
// leases once a quarter of a lease, not at each read, and an event left unacknowledged
// still comes back within a lease and a quarter.
func TestReadFeedClaimsEveryQuarterLease(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testReadFeedClaims(t) })
}

func testReadFeedClaims(t *testing.T) {
	_, st, _ := storeAndAdmin(t)
	ctx := ctxFor(t)
	h := &claimCount{}
	st.client.AddHook(h)
	const lease = 800 * time.Millisecond
	read := func() int {
		t.Helper()
		evs, err := st.ReadFeed(ctx, "claims", "node1", 10, time.Millisecond, lease)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	read() // makes the group
	feedOn(t, st)
	if err := st.Put(ctx, storetest.NewMessage("claims@mayfly.test", "one")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for got := 0; got == 0; got = read() {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the put's event did not reach the feed within 5s")
		}
	}
	read0 := time.Now()
	before := h.n.Load()
	for range 5 {
		read()
	}
	if d := time.Since(read0); d < lease/4 {
		if n := h.n.Load() - before; n != 0 {
			t.Errorf("5 reads within %v looked for run-out leases %d times, want 0", d, n)
		}
	}
	// Left unacknowledged, the event comes back.
	for read() == 0 {
		if time.Since(read0) > lease+lease/4+time.Second {
			t.Fatalf("the unacknowledged event did not come back within %v", lease+lease/4)
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
}
