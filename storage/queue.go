package storage

import (
	"context"
	"time"
)

// Job is one outgoing message waiting for delivery: the reply an inbox sent, to the
// recipients not yet done with.
type Job struct {
	ID    string // set by Enqueue; unique in the queue
	Inbox string // the inbox that sent it, where a bounce goes
	From  string // envelope sender
	To    []string
	Raw   []byte // the message as signed, CRLF line ends

	Attempts int       // deliveries tried so far
	Created  time.Time // set by Enqueue when zero
	// Expires is when the sender stops trying: the message would have expired in the
	// inbox by then, so a bounce would reach nobody.
	Expires time.Time
	// LastError is the last temporary failure, for the bounce when the job gives up.
	LastError string
}

// Queue is a durable queue of outgoing messages, shared by every node of a store: a
// job taken by a node that dies before Done is taken again by another once its lease
// runs out. Both stores implement it.
type Queue interface {
	// Enqueue adds a job, due at once; it sets ID and Created.
	Enqueue(ctx context.Context, job *Job) error
	// Next waits until a job is due and leases it to consumer for lease: until Done or
	// Retry, or until the lease runs out, no other call of Next returns it. It returns
	// ctx's error when ctx ends first.
	Next(ctx context.Context, consumer string, lease time.Duration) (*Job, error)
	// Done removes a leased job for good: delivered, or given up on.
	Done(ctx context.Context, job *Job) error
	// Retry puts a leased job back, due at at, with its Attempts, To and LastError as
	// the caller has updated them.
	Retry(ctx context.Context, job *Job, at time.Time) error
}
