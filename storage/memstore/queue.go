package memstore

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// The memory store's queue lives in this process: its jobs die with it, as its mail
// does, and only this process's consumers take them. It runs on the real clock, not
// Options.Now, because Next waits with timers.

var _ storage.Queue = (*Store)(nil)

// queue is the state of the Store's storage.Queue.
type queue struct {
	mu   sync.Mutex
	jobs map[string]*queued
	due  dueHeap // every job, the soonest takeable first
	seq  uint64
	// changed is closed, and a new one made, when a job becomes takeable sooner than
	// waiting Next calls may think: they wait on it besides their timer.
	changed chan struct{}
}

// queued is a job in the queue.
type queued struct {
	job storage.Job
	// at is when the job may be taken: when it is due, or while it is leased, when the
	// lease ends.
	at  time.Time
	seq uint64 // order of Enqueue among jobs with the same at
	// holder is the *Job the current lease's Next returned, nil when none: Retry takes
	// only that one, so a consumer whose lease ran out cannot put back a job another
	// has taken since.
	holder *storage.Job
	index  int
}

var errClosed = fmt.Errorf("%w: store closed", storage.ErrUnavailable)

// Enqueue adds a job, due at once, and sets its ID and, when zero, Created. The job
// lives in this process only, and dies with it. The queue keeps Raw without copying it:
// the caller must not change it afterwards.
func (s *Store) Enqueue(ctx context.Context, job *storage.Job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	job.ID = storage.NewID(now)
	if job.Created.IsZero() {
		job.Created = now
	}
	q := &s.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.jobs == nil {
		q.jobs = make(map[string]*queued)
	}
	q.seq++
	e := &queued{job: *job, at: now, seq: q.seq}
	e.job.To = slices.Clone(job.To)
	q.jobs[job.ID] = e
	heap.Push(&q.due, e)
	q.changedLocked()
	return nil
}

// Next waits for a job that is due, or whose lease has run out, and leases it to
// consumer. It returns a copy: Done and Retry take that copy, the same pointer.
func (s *Store) Next(ctx context.Context, consumer string, lease time.Duration) (*storage.Job, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("next: lease %v", lease)
	}
	q := &s.queue
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-s.stop:
			return nil, fmt.Errorf("next: %w", errClosed)
		default:
		}
		q.mu.Lock()
		now := time.Now()
		// ctx's own timer may run late on a busy machine: a job due after the deadline
		// is not Next's to take, whenever ctx gets to say so.
		if deadline, ok := ctx.Deadline(); ok && !now.Before(deadline) {
			q.mu.Unlock()
			return nil, context.DeadlineExceeded
		}
		if len(q.due) > 0 && !q.due[0].at.After(now) {
			e := q.due[0]
			j := e.job
			j.To = slices.Clone(e.job.To) // the caller may change it in place
			e.holder = &j
			e.at = now.Add(lease)
			heap.Fix(&q.due, 0)
			q.mu.Unlock()
			return &j, nil
		}
		if q.changed == nil {
			q.changed = make(chan struct{})
		}
		changed := q.changed
		var wake <-chan time.Time
		if len(q.due) > 0 {
			d := q.due[0].at.Sub(now)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			wake = timer.C
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stop:
			return nil, fmt.Errorf("next: %w", errClosed)
		case <-changed:
		case <-wake:
		}
	}
}

// Done removes a leased job: one whose lease is this job's, or whose lease ran out and
// went to another consumer (the job is finished all the same). A job not leased, done
// already or put back by Retry, is left alone.
func (s *Store) Done(ctx context.Context, job *storage.Job) error {
	q := &s.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.jobs[job.ID]
	if e == nil || e.holder == nil {
		return nil
	}
	delete(q.jobs, job.ID)
	heap.Remove(&q.due, e.index)
	return nil
}

// Retry puts job, as the caller has changed it, back into the queue, due at at. It fails
// when job is not the one the job's current lease handed out: its lease ran out and
// another consumer has it now.
func (s *Store) Retry(ctx context.Context, job *storage.Job, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q := &s.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.jobs[job.ID]
	if e == nil || e.holder != job {
		return fmt.Errorf("retry %s: %w", job.ID, errLeaseLost)
	}
	e.job = *job
	e.job.To = slices.Clone(job.To)
	e.holder = nil
	e.at = at
	heap.Fix(&q.due, e.index)
	q.changedLocked()
	return nil
}

var errLeaseLost = errors.New("not leased by this caller: its lease ran out, or it is done")

// changedLocked wakes every waiting Next to look again.
func (q *queue) changedLocked() {
	if q.changed != nil {
		close(q.changed)
		q.changed = nil
	}
}

// dueHeap orders jobs by when they may be taken, then by Enqueue.
type dueHeap []*queued

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *dueHeap) Push(x any) {
	e := x.(*queued)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
