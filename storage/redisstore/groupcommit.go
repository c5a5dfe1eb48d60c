package redisstore

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Group commit: the Puts of concurrent SMTP sessions share round trips. A Put that
// finds no Put's round trip in flight sends at once, so an idle store adds no latency;
// one that finds one in flight waits in a queue, and when that round trip returns the
// whole queue goes in the next, sent by the first Put queued. Each Put keeps its own
// commands and so its own errors: one that fails fails only its own messages. Every
// round trip costs both sides a write and a read (system calls, Redis's event loop),
// which under load were most of a Put's cost (docs/benchmarks.md, issue 23).

// groupMax and groupBytes bound what one round trip carries, so a burst of large
// messages does not make one pipeline of them all; the rest go in the next.
const (
	groupMax   = 64
	groupBytes = 4 << 20
)

// putReq is one Put's share of a group commit.
type putReq struct {
	ctx   context.Context
	calls []*call
	zadds []redis.Z       // the messages' expiry index entries
	index []*redis.IntCmd // their results
	size  int             // the messages' bytes
	next  chan []*putReq  // a queued Put's turn: the batch it sends, or nil when sent
}

type groupCommit struct {
	mu    sync.Mutex
	busy  bool // a round trip is in flight
	queue []*putReq
}

// commit sends r's commands, alone when nothing is in flight, otherwise with the Puts
// queued behind the round trip in flight, and returns when they are answered.
func (s *Store) commit(r *putReq) {
	g := &s.group
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		s.sendPuts([]*putReq{r})
		return
	}
	r.next = make(chan []*putReq, 1)
	g.queue = append(g.queue, r)
	g.mu.Unlock()
	if batch := <-r.next; batch != nil {
		s.sendPuts(batch) // r is batch[0]
	}
}

// sendPuts sends batch in one round trip, hands the queue that formed meanwhile to its
// first Put, and then tells batch's others theirs are answered.
func (s *Store) sendPuts(batch []*putReq) {
	ctx := batch[0].ctx
	if len(batch) > 1 {
		// One Put's end must not fail the others' commands; each waits at most this.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
		defer cancel()
	}
	var calls []*call
	for _, r := range batch {
		calls = append(calls, r.calls...)
	}
	s.pipeline(ctx, calls, func(p redis.Pipeliner) {
		for _, r := range batch {
			for i, z := range r.zadds {
				r.index[i] = p.ZAdd(ctx, s.expiryKey, z)
			}
		}
	})
	g := &s.group
	g.mu.Lock()
	n, bytes := 0, 0
	for n < len(g.queue) && n < groupMax && (n == 0 || bytes+g.queue[n].size <= groupBytes) {
		bytes += g.queue[n].size
		n++
	}
	next := g.queue[:n:n]
	g.queue = append([]*putReq(nil), g.queue[n:]...)
	g.busy = n > 0
	g.mu.Unlock()
	if n > 0 {
		next[0].next <- next
	}
	for _, r := range batch[1:] {
		r.next <- nil
	}
}
