package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// NewQueue opens an empty queue for t and closes it when t ends.
type NewQueue func(t *testing.T) storage.Queue

// wakeWithin bounds how long a waiting Next may take to see a job enqueued meanwhile. It
// is below the Redis store's longest block, so a store that only polled would fail.
const wakeWithin = 500 * time.Millisecond

// RunQueue runs the conformance suite of storage.Queue.
func RunQueue(t *testing.T, newQueue NewQueue) {
	tests := []struct {
		name string
		fn   func(t *testing.T, q storage.Queue)
	}{
		{"EnqueueNextDone", testQueueRoundTrip},
		{"FIFO", testQueueFIFO},
		{"NextWaitsForEnqueue", testQueueWaits},
		{"RetryLater", testQueueRetryLater},
		{"RetryNow", testQueueRetryNow},
		{"RetryKeepsFields", testQueueRetryKeepsFields},
		{"LeaseExpires", testQueueLeaseExpires},
		{"LongerLeaseHolds", testQueueLongerLease},
		{"DoneIsFinal", testQueueDoneIsFinal},
		{"LargeRaw", testQueueLargeRaw},
		{"NextCancelled", testQueueCancel},
		{"BadLease", testQueueBadLease},
		{"ConcurrentConsumers", testQueueConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newQueue(t)) })
	}
}

// NewJob returns a job with every field a sender sets.
func NewJob(subject string) *storage.Job {
	now := time.Now()
	return &storage.Job{
		Inbox:   "sender@mayfly.test",
		From:    "sender@mayfly.test",
		To:      []string{"ann@example.org", "bob@example.net"},
		Raw:     fmt.Appendf(nil, "From: sender@mayfly.test\r\nTo: ann@example.org\r\nSubject: %s\r\n\r\nbody\r\n.dot\r\n", subject),
		Expires: now.Add(time.Hour),
	}
}

// Enqueue enqueues jobs, failing t unless each gets its ID and Created time.
func Enqueue(t testing.TB, q storage.Queue, jobs ...*storage.Job) {
	t.Helper()
	for _, j := range jobs {
		if err := q.Enqueue(ctxFor(t), j); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if j.ID == "" || j.Created.IsZero() {
			t.Fatalf("Enqueue left ID %q, Created %v; want both set", j.ID, j.Created)
		}
	}
}

// NextJob takes a job, failing t if none comes within 10s.
func NextJob(t testing.TB, q storage.Queue, consumer string, lease time.Duration) *storage.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	j, err := q.Next(ctx, consumer, lease)
	if err != nil {
		t.Fatalf("Next(%q): %v", consumer, err)
	}
	return j
}

// nothingFor checks that Next returns no job within d.
func nothingFor(t *testing.T, q storage.Queue, consumer string, lease, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	j, err := q.Next(ctx, consumer, lease)
	if err == nil {
		t.Fatalf("Next(%q) = job %s (%q), want none within %v", consumer, j.ID, j.Raw, d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next(%q) with nothing due: %v, want context.DeadlineExceeded", consumer, err)
	}
}

func checkJob(t *testing.T, got, want *storage.Job) {
	t.Helper()
	if got.ID != want.ID || got.Inbox != want.Inbox || got.From != want.From || !slices.Equal(got.To, want.To) {
		t.Errorf("job = %q %q %q %q, want %q %q %q %q", got.ID, got.Inbox, got.From, got.To, want.ID, want.Inbox, want.From, want.To)
	}
	if got.Attempts != want.Attempts || got.LastError != want.LastError {
		t.Errorf("Attempts, LastError = %d %q, want %d %q", got.Attempts, got.LastError, want.Attempts, want.LastError)
	}
	if !sameTime(got.Created, want.Created) || !sameTime(got.Expires, want.Expires) {
		t.Errorf("Created, Expires = %v %v, want %v %v", got.Created, got.Expires, want.Created, want.Expires)
	}
	if !bytes.Equal(got.Raw, want.Raw) {
		t.Errorf("Raw = %d bytes %.40q, want %d bytes %.40q", len(got.Raw), got.Raw, len(want.Raw), want.Raw)
	}
}

// Done marks j done, or fails t.
func Done(t testing.TB, q storage.Queue, j *storage.Job) {
	t.Helper()
	if err := q.Done(ctxFor(t), j); err != nil {
		t.Fatalf("Done(%s): %v", j.ID, err)
	}
}

func retry(t *testing.T, q storage.Queue, j *storage.Job, at time.Time) {
	t.Helper()
	if err := q.Retry(ctxFor(t), j, at); err != nil {
		t.Fatalf("Retry(%s): %v", j.ID, err)
	}
}

func testQueueRoundTrip(t *testing.T, q storage.Queue) {
	j := NewJob("round trip")
	want := *j
	Enqueue(t, q, j)
	if time.Since(j.Created) > time.Minute || time.Until(j.Created) > time.Second {
		t.Errorf("Created = %v, want about now", j.Created)
	}
	want.ID, want.Created = j.ID, j.Created

	got := NextJob(t, q, "a", time.Minute)
	checkJob(t, got, &want)
	Done(t, q, got)
	nothingFor(t, q, "a", time.Minute, 200*time.Millisecond)

	// Created set by the caller stays; IDs differ.
	created := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	j2 := NewJob("created before")
	j2.Created = created
	Enqueue(t, q, j2)
	if !j2.Created.Equal(created) || j2.ID == j.ID {
		t.Errorf("Enqueue set Created %v, ID %q; want Created kept at %v and a new ID", j2.Created, j2.ID, created)
	}
	got = NextJob(t, q, "a", time.Minute)
	if got.ID != j2.ID || !sameTime(got.Created, created) {
		t.Errorf("Next = %s created %v, want %s created %v", got.ID, got.Created, j2.ID, created)
	}
	Done(t, q, got)
}

func testQueueFIFO(t *testing.T, q storage.Queue) {
	var ids []string
	for i := range 5 {
		j := NewJob(fmt.Sprint(i))
		Enqueue(t, q, j)
		ids = append(ids, j.ID)
	}
	var got []string
	for range ids {
		j := NextJob(t, q, "a", time.Minute)
		got = append(got, j.ID)
		Done(t, q, j)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("Next order = %q, want the order of Enqueue %q", got, ids)
	}
}

type nextResult struct {
	job *storage.Job
	err error
	at  time.Time
}

// nextAsync runs Next in a goroutine that t waits for.
func nextAsync(t *testing.T, ctx context.Context, q storage.Queue, consumer string, lease time.Duration) <-chan nextResult {
	ch := make(chan nextResult, 1)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		j, err := q.Next(ctx, consumer, lease)
		ch <- nextResult{j, err, time.Now()}
	})
	return ch
}

func testQueueWaits(t *testing.T, q storage.Queue) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for round := range 3 { // the first wait, and those after a job came
		ch := nextAsync(t, ctx, q, "a", time.Minute)
		// Not synchronization: Enqueue may come before or after Next starts waiting.
		select {
		case r := <-ch:
			t.Fatalf("round %d: Next returned %v, %v with the queue empty", round, r.job, r.err)
		case <-time.After(100 * time.Millisecond):
		}
		j := NewJob(fmt.Sprint(round))
		Enqueue(t, q, j)
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("round %d: Next: %v", round, r.err)
			}
			if r.job.ID != j.ID {
				t.Errorf("round %d: Next = %s, want %s", round, r.job.ID, j.ID)
			}
			Done(t, q, r.job)
		case <-time.After(wakeWithin):
			t.Fatalf("round %d: Next still waiting %v after Enqueue", round, wakeWithin)
		}
	}
}

func testQueueRetryLater(t *testing.T, q storage.Queue) {
	j := NewJob("later")
	Enqueue(t, q, j)
	got := NextJob(t, q, "a", time.Minute)
	at := time.Now().Add(300 * time.Millisecond)
	got.Attempts++
	retry(t, q, got, at)
	// Redis judges what is due by its own clock; on this host that is ours.
	nothingFor(t, q, "a", time.Minute, time.Until(at)-50*time.Millisecond)
	again := NextJob(t, q, "b", time.Minute)
	if now := time.Now(); now.Before(at) {
		t.Errorf("job retried for %v came at %v, %v early", at, now, at.Sub(now))
	}
	if again.ID != j.ID || again.Attempts != 1 {
		t.Errorf("Next = %s attempt %d, want %s attempt 1", again.ID, again.Attempts, j.ID)
	}
	Done(t, q, again)
}

// testQueueRetryNow: a job retried for now (or the past) is due at once, before later
// jobs.
func testQueueRetryNow(t *testing.T, q storage.Queue) {
	first, second := NewJob("first"), NewJob("second")
	Enqueue(t, q, first)
	got := NextJob(t, q, "a", time.Minute)
	retry(t, q, got, time.Now().Add(-time.Minute))
	start := time.Now()
	again := NextJob(t, q, "a", time.Minute)
	if again.ID != first.ID {
		t.Errorf("Next = %s, want the retried %s", again.ID, first.ID)
	}
	if d := time.Since(start); d > wakeWithin {
		t.Errorf("a job retried for the past came after %v, want at once", d)
	}
	Enqueue(t, q, second)
	retry(t, q, again, time.Time{})
	// Both are due; which comes first is the store's choice, but both come.
	seen := map[string]bool{}
	for range 2 {
		j := NextJob(t, q, "a", time.Minute)
		seen[j.ID] = true
		Done(t, q, j)
	}
	if !seen[first.ID] || !seen[second.ID] {
		t.Errorf("after Retry and Enqueue got %v, want %s and %s", seen, first.ID, second.ID)
	}
}

func testQueueRetryKeepsFields(t *testing.T, q storage.Queue) {
	j := NewJob("fields")
	Enqueue(t, q, j)
	want := *j
	want.To = slices.Clone(j.To)
	for attempt := 1; attempt <= 3; attempt++ {
		got := NextJob(t, q, "a", time.Minute)
		checkJob(t, got, &want)
		// As a sender does: the recipients that took it are done with.
		got.To = got.To[1:]
		got.To = append(got.To, fmt.Sprintf("new%d@example.org", attempt))
		got.Attempts = attempt
		got.LastError = fmt.Sprintf("451 4.3.0 try %d", attempt)
		want.To, want.Attempts, want.LastError = slices.Clone(got.To), got.Attempts, got.LastError
		retry(t, q, got, time.Now())
	}
	got := NextJob(t, q, "a", time.Minute)
	checkJob(t, got, &want)
	Done(t, q, got)
}

// testQueueLeaseExpires: a job whose consumer took it and went quiet comes back, as it
// was last stored, to another consumer once the lease runs out, and no sooner.
func testQueueLeaseExpires(t *testing.T, q storage.Queue) {
	const lease = 300 * time.Millisecond
	j := NewJob("lease")
	Enqueue(t, q, j)
	a := NextJob(t, q, "a", time.Minute)
	a.Attempts, a.LastError = 1, "421 busy"
	retry(t, q, a, time.Now())
	taken := time.Now() // before Next: the lease starts within it
	a = NextJob(t, q, "a", lease)
	want := *a
	want.To = slices.Clone(a.To)
	// a's own changes, never given back, are not the queue's.
	a.Attempts, a.LastError = 7, "changed by a"
	a.To[0] = "changed@example.org"

	// b's own lease is longer: a's is the one that counts.
	nothingFor(t, q, "b", time.Minute, lease/2)
	b := NextJob(t, q, "b", time.Minute)
	if d := time.Since(taken); d < lease {
		t.Errorf("b got the job %v after a took it, before a's lease of %v ran out", d, lease)
	}
	checkJob(t, b, &want)

	// a wakes up late: its Retry must not make a second copy of b's job.
	if err := q.Retry(ctxFor(t), a, time.Now()); err == nil {
		t.Errorf("Retry by a after b took the job = nil, want an error: the lease was lost")
	}
	nothingFor(t, q, "c", time.Minute, 200*time.Millisecond)
	Done(t, q, b)
	nothingFor(t, q, "c", lease, 2*lease)
}

// testQueueLongerLease: a consumer that waits with a short lease does not take a job
// another holds with a longer one.
func testQueueLongerLease(t *testing.T, q storage.Queue) {
	Enqueue(t, q, NewJob("long"))
	a := NextJob(t, q, "a", time.Minute)
	nothingFor(t, q, "b", 100*time.Millisecond, 500*time.Millisecond)
	Done(t, q, a)
}

func testQueueDoneIsFinal(t *testing.T, q storage.Queue) {
	const lease = 200 * time.Millisecond
	Enqueue(t, q, NewJob("done"))
	j := NextJob(t, q, "a", lease)
	Done(t, q, j)
	nothingFor(t, q, "b", lease, 3*lease)
	// Done again, as a consumer unsure whether the first went through would.
	if err := q.Done(ctxFor(t), j); err != nil {
		t.Errorf("second Done: %v, want nil", err)
	}
	nothingFor(t, q, "b", lease, lease)
}

func testQueueLargeRaw(t *testing.T, q storage.Queue) {
	j := NewJob("large")
	j.Raw = make([]byte, 1<<20)
	rand.Read(j.Raw)
	copy(j.Raw, "Subject: big\r\n\r\n")
	j.Raw[len(j.Raw)-2], j.Raw[len(j.Raw)-1] = '\r', '\n'
	want := *j
	want.Raw = bytes.Clone(j.Raw)
	Enqueue(t, q, j)
	want.ID, want.Created = j.ID, j.Created
	got := NextJob(t, q, "a", time.Minute)
	checkJob(t, got, &want)
	retry(t, q, got, time.Now())
	got = NextJob(t, q, "a", time.Minute)
	checkJob(t, got, &want)
	Done(t, q, got)
}

func testQueueCancel(t *testing.T, q storage.Queue) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if j, err := q.Next(ctx, "a", time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with its context cancelled = %v, %v; want context.Canceled", j, err)
	}

	ctx, cancel = context.WithCancel(t.Context())
	ch := nextAsync(t, ctx, q, "a", time.Minute)
	select {
	case r := <-ch:
		t.Fatalf("Next returned %v, %v with the queue empty", r.job, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	cancelled := time.Now()
	select {
	case r := <-ch:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("Next when its context was cancelled = %v, %v; want context.Canceled", r.job, r.err)
		}
		if d := r.at.Sub(cancelled); d > wakeWithin {
			t.Errorf("Next returned %v after its context was cancelled, want at once", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next still waiting 10s after its context was cancelled")
	}

	// A job enqueued now is not lost to the cancelled wait.
	Enqueue(t, q, NewJob("after cancel"))
	j := NextJob(t, q, "b", time.Minute)
	Done(t, q, j)
}

func testQueueBadLease(t *testing.T, q storage.Queue) {
	Enqueue(t, q, NewJob("bad lease"))
	for _, lease := range []time.Duration{0, -time.Second} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		j, err := q.Next(ctx, "a", lease)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Next(lease %v) = %v, %v; want an error at once", lease, j, err)
		}
	}
	j := NextJob(t, q, "a", time.Minute)
	Done(t, q, j)
}

// testQueueConcurrent: consumers racing for jobs enqueued while they wait each get
// different ones, and every job is done exactly once.
func testQueueConcurrent(t *testing.T, q storage.Queue) {
	const consumers, jobs = 8, 200
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		seen = make(map[string]int)
		all  = make(chan struct{})
	)
	var wg sync.WaitGroup
	for c := range consumers {
		wg.Go(func() {
			for {
				j, err := q.Next(ctx, fmt.Sprintf("consumer%d", c), time.Minute)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("consumer %d: Next: %v", c, err)
					}
					return
				}
				if err := q.Done(context.WithoutCancel(ctx), j); err != nil {
					t.Errorf("consumer %d: Done(%s): %v", c, j.ID, err)
				}
				mu.Lock()
				seen[j.ID]++
				if len(seen) == jobs {
					close(all)
				}
				mu.Unlock()
			}
		})
	}
	ids := make([]string, 0, jobs)
	for i := range jobs {
		j := NewJob(fmt.Sprint(i))
		if err := q.Enqueue(ctx, j); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
		ids = append(ids, j.ID)
	}
	select {
	case <-all:
	case <-ctx.Done():
	}
	// Any job handed out twice would be handed out by now: nothing is left to wait for.
	nothingFor(t, q, "late", time.Minute, 200*time.Millisecond)
	cancel()
	wg.Wait()
	for _, id := range ids {
		if n := seen[id]; n != 1 {
			t.Errorf("job %s taken %d times, want once", id, n)
		}
	}
	if len(seen) != jobs {
		t.Errorf("%d jobs taken, want %d", len(seen), jobs)
	}
}

// BenchQueue measures a job's round trip through a queue: Enqueue, Next, Done. Run it
// with go test -bench Queue -benchmem ./storage/...
func BenchQueue(b *testing.B, newQueue func(b *testing.B) storage.Queue) {
	for _, size := range []int{1 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("RoundTrip/%dKiB", size>>10), func(b *testing.B) {
			q := newQueue(b)
			ctx := context.Background()
			raw := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				j := NewJob("bench")
				j.Raw = raw
				if err := q.Enqueue(ctx, j); err != nil {
					b.Fatal(err)
				}
				got, err := q.Next(ctx, "bench", time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if err := q.Done(ctx, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// NextEnds checks that a Next waiting on q's empty queue "b" keeps waiting for at least
// pause, and that once end has run it returns ErrUnavailable within d: a store that
// goes away must not leave a worker blocked for good. what names the going away.
func NextEnds(t *testing.T, ctx context.Context, q storage.Queue, pause, d time.Duration, what string, end func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := q.Next(ctx, "b", time.Minute)
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Next on an empty queue returned %v", err)
	case <-time.After(pause):
	}
	end()
	select {
	case err := <-errc:
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("waiting Next %s: %v, want ErrUnavailable", what, err)
		}
	case <-time.After(d):
		t.Fatalf("Next still waiting %v %s", d, what)
	}
}
