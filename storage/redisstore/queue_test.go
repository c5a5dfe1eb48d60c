package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// openQueue opens a store, closed when tb ends, on a prefix of tb's own.
func openQueue(tb testing.TB) *Store {
	st := openStore(tb, testPrefix(tb), Options{})
	tb.Cleanup(func() { st.Close() })
	return st
}

func TestQueue(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) {
		storetest.RunQueue(t, func(t *testing.T) storage.Queue { return openQueue(t) })
	})
}

func BenchmarkQueue(b *testing.B) {
	redisURL(b)
	storetest.BenchQueue(b, func(b *testing.B) storage.Queue { return openQueue(b) })
}

// TestQueueNodeStops: a node stopped mid-queue leaves its job to be finished by another
// node.
func TestQueueNodeStops(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testQueueNodeStops(t) })
}

func testQueueNodeStops(t *testing.T) {
	a, b := twoNodes(t)
	ctx := ctxFor(t)

	j := storetest.NewJob("node stops")
	storetest.Enqueue(t, a, j)
	const lease = 300 * time.Millisecond
	taken := time.Now()
	got, err := a.Next(ctx, "node-a", lease)
	if err != nil || got.ID != j.ID {
		t.Fatalf("a: Next = %v, %v; want job %s", got, err, j.ID)
	}
	a.Close()

	got, err = b.Next(ctx, "node-b", time.Minute)
	if err != nil || got.ID != j.ID {
		t.Fatalf("b: Next = %v, %v; want job %s", got, err, j.ID)
	}
	// Redis keeps delivery times in whole milliseconds, so the lease may end up to a
	// millisecond early.
	if d := time.Since(taken); d < lease-time.Millisecond {
		t.Errorf("b got the job %v after a took it, before a's lease of %v ran out", d, lease)
	}
	if err := b.Done(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*lease)
	defer cancel()
	if got, err := b.Next(waitCtx, "node-b", lease); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next after Done = %v, %v; want nothing", got, err)
	}
}

// TestQueueRetryAcrossNodes: a job one node retries for later is taken by another node
// when due, with what the first changed.
func TestQueueRetryAcrossNodes(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testQueueRetryAcrossNodes(t) })
}

func testQueueRetryAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	ctx := ctxFor(t)

	j := storetest.NewJob("across")
	storetest.Enqueue(t, a, j)
	got := storetest.NextJob(t, a, "node-a", time.Minute)
	got.Attempts, got.LastError, got.To = 1, "451 later", got.To[:1]
	at := time.Now().Add(300 * time.Millisecond)
	if err := a.Retry(ctx, got, at); err != nil {
		t.Fatal(err)
	}
	again := storetest.NextJob(t, b, "node-b", time.Minute)
	if time.Now().Before(at) {
		t.Errorf("b got the job before it was due at %v", at)
	}
	if again.ID != j.ID || again.Attempts != 1 || again.LastError != "451 later" || len(again.To) != 1 {
		t.Errorf("b got %+v, want job %s as a retried it", again, j.ID)
	}
	if err := b.Done(ctx, again); err != nil {
		t.Fatal(err)
	}
}

// TestQueueCloseEndsNext: Close ends a Next that is waiting, at once.
func TestQueueCloseEndsNext(t *testing.T) {
	st := openQueue(t)
	errc := make(chan error, 1)
	go func() {
		_, err := st.Next(context.Background(), "a", time.Minute)
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Next on an empty queue returned %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	closed := time.Now()
	st.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Next when the store closed: %v, want ErrUnavailable", err)
		}
		// Not interrupted, Next would return when its XREADGROUP ends, queueBlock after
		// it began (just before Close); a loaded machine may take a while at once.
		if d := time.Since(closed); d > queueBlock*3/4 {
			t.Errorf("Next returned %v after Close, want at once, not when its wait ends", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still waiting 5s after Close")
	}
}

// TestQueueStreamDeleted: a queue whose keys are gone (FLUSHDB, a Redis restarted
// without persistence) works again, its consumer group made anew.
func TestQueueStreamDeleted(t *testing.T) {
	st := openQueue(t)
	ctx := ctxFor(t)
	j := storetest.NewJob("before")
	storetest.Enqueue(t, st, j)
	storetest.Done(t, st, storetest.NextJob(t, st, "a", time.Minute))
	stream, delayed := st.queueKeys()
	if err := st.client.Del(ctx, stream, delayed).Err(); err != nil {
		t.Fatal(err)
	}
	j = storetest.NewJob("after")
	storetest.Enqueue(t, st, j)
	got := storetest.NextJob(t, st, "a", time.Minute)
	if got.ID != j.ID {
		t.Fatalf("Next after the stream was deleted = job %s; want job %s", got.ID, j.ID)
	}
	storetest.Done(t, st, got)
}

// TestQueueRedisGoesAway: with Redis gone, queue calls fail with ErrUnavailable within
// seconds, a waiting Next included.
func TestQueueRedisGoesAway(t *testing.T) {
	p, u := proxiedURL(t)
	st := openStore(t, testPrefix(t), Options{URL: u})
	defer st.Close()
	ctx := ctxFor(t)
	j := storetest.NewJob("gone")
	storetest.Enqueue(t, st, j)
	leased := storetest.NextJob(t, st, "a", time.Minute)
	storetest.NextEnds(t, ctx, st, 100*time.Millisecond, 10*time.Second, "after Redis went away", p.close)
	start := time.Now()
	if err := st.Enqueue(ctx, storetest.NewJob("lost")); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Enqueue with Redis gone: %v, want ErrUnavailable", err)
	}
	if _, err := st.Next(ctx, "b", time.Minute); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Next with Redis gone: %v, want ErrUnavailable", err)
	}
	if err := st.Retry(ctx, leased, time.Now()); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Retry with Redis gone: %v, want ErrUnavailable", err)
	}
	if err := st.Done(ctx, leased); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Done with Redis gone: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("queue calls with Redis gone took %v, want each to fail within seconds", d)
	}
}

func TestJobEncoding(t *testing.T) {
	j := storetest.NewJob("encode")
	j.ID, j.Created, j.Attempts, j.LastError = "0123456789abcdef", time.Now(), 3, "451 4.4.1 no answer"
	got, err := decodeJob(string(encodeJob(j)))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != j.ID || got.Inbox != j.Inbox || got.From != j.From || len(got.To) != len(j.To) ||
		got.Attempts != j.Attempts || got.LastError != j.LastError || string(got.Raw) != string(j.Raw) ||
		!got.Created.Equal(j.Created.Truncate(time.Microsecond)) || !got.Expires.Equal(j.Expires.Truncate(time.Microsecond)) {
		t.Errorf("decodeJob(encodeJob(%+v)) = %+v", j, got)
	}
	enc := encodeJob(j)
	for n := range len(enc) - len(j.Raw) {
		if _, err := decodeJob(string(enc[:n])); err == nil {
			t.Errorf("decodeJob of the first %d bytes succeeded, want an error", n)
		}
	}
}

// TestQueueWaitersLeavePoolFree: Next calls waiting hold at most half the connection
// pool, so the rest of the node still gets connections, and every waiter gets a job.
func TestQueueWaitersLeavePoolFree(t *testing.T) {
	u := redisURL(t)
	if strings.Contains(u, ",") || strings.Contains(u, "master_name") {
		t.Skip("needs MAYFLY_TEST_REDIS_URL to name one node")
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	st := openStore(t, testPrefix(t), Options{URL: u + sep + "pool_size=4"})
	defer st.Close()
	ctx := ctxFor(t)
	const consumers = 6
	got := make(chan string, consumers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for c := range consumers {
		wg.Go(func() {
			j, err := st.Next(ctx, fmt.Sprintf("c%d", c), time.Minute)
			if err != nil {
				t.Errorf("consumer %d: Next: %v", c, err)
				got <- ""
				return
			}
			got <- j.ID
		})
	}
	select {
	case id := <-got:
		t.Fatalf("Next returned %q with the queue empty", id)
	case <-time.After(200 * time.Millisecond):
	}
	if n := st.queue.waiters.Load(); n > 2 {
		t.Errorf("%d Next calls hold a connection to wait on, want at most 2 of a pool of 4", n)
	}
	pingCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := st.Ping(pingCtx); err != nil {
		t.Errorf("Ping while %d Next calls wait: %v", consumers, err)
	}
	want := map[string]bool{}
	for i := range consumers {
		j := storetest.NewJob(fmt.Sprint(i))
		storetest.Enqueue(t, st, j)
		want[j.ID] = true
	}
	for range consumers {
		select {
		case id := <-got:
			if !want[id] {
				t.Errorf("Next = %q, want one of the jobs, each once", id)
			}
			delete(want, id)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d jobs not taken 10s after Enqueue", len(want))
		}
	}
}

// TestQueueBadEntry: an entry that is no job (written by something else, or damaged)
// is dropped, not handed out, nor left to come back each lease.
func TestQueueBadEntry(t *testing.T) {
	st := openQueue(t)
	ctx := ctxFor(t)
	stream, _ := st.queueKeys()
	for _, values := range [][]any{{"job", "\x01garbage"}, {"other", "field"}} {
		if err := st.client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	j := storetest.NewJob("good")
	storetest.Enqueue(t, st, j)
	got := storetest.NextJob(t, st, "a", time.Minute)
	if got.ID != j.ID {
		t.Fatalf("Next = job %s; want job %s", got.ID, j.ID)
	}
	storetest.Done(t, st, got)
	if n, err := st.client.XLen(ctx, stream).Result(); err != nil || n != 0 {
		t.Errorf("stream holds %d entries (%v) after the good job was done, want 0", n, err)
	}
}

// TestQueuePrunesIdleConsumers: a starting node deletes the group's consumers that
// hold nothing and have been idle, and keeps one that holds a job.
func TestQueuePrunesIdleConsumers(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testQueuePrunesIdleConsumers(t) })
}

// consumerIdleMu serializes the subtests of TestQueuePrunesIdleConsumers, which run
// in parallel on each Redis and set the package's consumerIdle.
var consumerIdleMu sync.Mutex

func testQueuePrunesIdleConsumers(t *testing.T) {
	consumerIdleMu.Lock()
	t.Cleanup(consumerIdleMu.Unlock) // the last cleanup: after consumerIdle's restore
	prefix := testPrefix(t)
	ctx := ctxFor(t)
	a := openStore(t, prefix, Options{})
	defer a.Close()
	for _, n := range []string{"gone-1", "gone-2"} {
		j := storetest.NewJob(n)
		storetest.Enqueue(t, a, j)
		got := storetest.NextJob(t, a, n, time.Minute)
		if err := a.Done(ctx, got); err != nil {
			t.Fatal(err)
		}
	}
	held := storetest.NewJob("held")
	storetest.Enqueue(t, a, held)
	if _, err := a.Next(ctx, "holder", time.Minute); err != nil {
		t.Fatal(err)
	}
	stream, _ := a.queueKeys()
	names := func() []string {
		cs, err := a.client.XInfoConsumers(ctx, stream, queueGroup).Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if n := len(names()); n != 3 {
		t.Fatalf("%d consumers before, want 3: %q", n, names())
	}
	old := consumerIdle
	consumerIdle = 0 // every consumer counts as idle: only holding a job keeps one
	t.Cleanup(func() { consumerIdle = old })
	b := openStore(t, prefix, Options{})
	defer b.Close()
	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	b.Next(waitCtx, "starter", time.Minute) // makes the group known, which prunes
	got := names()
	gone := slices.ContainsFunc(got, func(n string) bool { return strings.Contains(n, ":gone-") })
	if gone || !slices.ContainsFunc(got, func(n string) bool { return strings.HasSuffix(n, ":holder") }) {
		t.Errorf("consumers after a node started: %q, want the holder's kept and the idle ones gone", got)
	}
}
