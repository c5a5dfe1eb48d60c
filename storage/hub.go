package storage

import (
	"context"
	"sync"
)

// subscriberBuffer is how many events a subscriber may fall behind before it is dropped.
const subscriberBuffer = 64

// Hub fans events out to the subscribers of each inbox in this process. Both stores use
// it: the memory store publishes into it directly, the Redis store from Pub/Sub.
// Publish never blocks: a subscriber whose buffer is full has its channel closed.
type Hub struct {
	mu     sync.Mutex
	subs   map[string]map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch   chan Event
	stop func() bool // unregisters the context callback
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	return &Hub{subs: make(map[string]map[*subscriber]struct{})}
}

// Subscribe returns a channel of inbox's events that is closed when ctx ends, when the
// subscriber falls behind, or when the hub closes.
func (h *Hub) Subscribe(ctx context.Context, inbox string) <-chan Event {
	s := &subscriber{ch: make(chan Event, subscriberBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.ch)
		return s.ch
	}
	set := h.subs[inbox]
	if set == nil {
		set = make(map[*subscriber]struct{})
		h.subs[inbox] = set
	}
	set[s] = struct{}{}
	s.stop = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.dropLocked(inbox, s)
	})
	return s.ch
}

// Publish delivers e to every subscriber of e.Inbox without waiting for any of them.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[e.Inbox] {
		select {
		case s.ch <- e:
		default:
			h.dropLocked(e.Inbox, s)
		}
	}
}

// Watched reports whether anyone in this process listens to inbox.
func (h *Hub) Watched(inbox string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[inbox]) > 0
}

// Close closes every subscriber's channel; later subscriptions get a closed channel.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for inbox, set := range h.subs {
		for s := range set {
			h.dropLocked(inbox, s)
		}
	}
}

func (h *Hub) dropLocked(inbox string, s *subscriber) {
	set := h.subs[inbox]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(h.subs, inbox)
	}
	if s.stop != nil {
		s.stop()
	}
	close(s.ch)
}
