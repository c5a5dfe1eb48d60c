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
// The subscribers of NamespaceWatch of the inbox's namespace get it too.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, key := range [2]string{e.Inbox, namespaceWatchOf(e.Inbox)} {
		for s := range h.subs[key] {
			select {
			case s.ch <- e:
			default:
				h.dropLocked(key, s)
			}
		}
	}
}

// Watched reports whether anyone in this process listens to inbox, or to its namespace.
func (h *Hub) Watched(inbox string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[inbox]) > 0 || len(h.subs[namespaceWatchOf(inbox)]) > 0
}

// NamespaceWatch is what to Subscribe to for the events of every inbox of namespace
// name: no inbox (it has no "@"), so it meets none.
func NamespaceWatch(name string) string { return "*" + name }

// namespaceWatchOf is NamespaceWatch of inbox's namespace; "" (which nobody
// subscribes to) for an inbox of none.
func namespaceWatchOf(inbox string) string {
	if ns := NamespaceOf(inbox); ns != "" {
		return NamespaceWatch(ns)
	}
	return ""
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
