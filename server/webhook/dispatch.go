package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// Feed reading: up to feedBatch events at a time, each waited for up to feedBlock.
const (
	feedBatch = 100
	// feedBlock is short: a Redis read blocked on the feed ends at it, not when Run's
	// context does, and shutdown waits for it.
	feedBlock = time.Second
	// refresh is how old the cached webhooks may get while no event needs them newer.
	refresh = 5 * time.Second
)

const creationGrace = time.Second

// hook is a webhook with its filter ready to match.
type hook struct {
	storage.Webhook
	filter storage.Filter
}

// matches reports whether h wants event typ of message m in inbox, which happened at:
// the events from its creation on, not those the dispatcher had yet to read then. A
// second's grace covers the clocks of nodes and the feed's millisecond times.
func (h *hook) matches(typ, inbox string, m *storage.Message, at time.Time) bool {
	if h.Disabled != "" || !slices.Contains(h.Events, typ) || !h.covers(inbox) || at.Before(h.Created.Add(-creationGrace)) {
		return false
	}
	return typ != EventReceived || h.filter.Match(m)
}

// covers reports whether h is for inbox: a webhook of every inbox, of that inbox, or
// of its namespace (Inbox storage.NamespaceWatch of the namespace's name).
func (h *hook) covers(inbox string) bool {
	return h.Inbox == "" || h.Inbox == inbox || strings.HasPrefix(h.Inbox, "*") && h.Inbox == storage.NamespaceWatch(storage.NamespaceOf(inbox))
}

// subscriptions returns the webhooks, read again from the store when one changed on
// this node, when they were read before an event of the batch happened (so a webhook
// created anywhere before an event is there for it, within the nodes' clock skew), and
// at least every few seconds: not one read per event per webhook.
func (s *Service) subscriptions(ctx context.Context, newest time.Time) ([]hook, error) {
	s.mu.Lock()
	fresh := !s.stale && s.loaded.After(newest) && time.Since(s.loaded) < refresh
	hooks := s.hooks
	s.mu.Unlock()
	if fresh {
		return hooks, nil
	}
	loaded := time.Now()
	list, err := s.store.ListWebhooks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	hooks = make([]hook, len(list))
	for i, w := range list {
		hooks[i] = hook{Webhook: w, filter: filterOf(w.Filters)}
	}
	s.mu.Lock()
	s.hooks, s.loaded, s.stale = hooks, loaded, false
	s.mu.Unlock()
	return hooks, nil
}

// dispatch turns the feed's events into deliveries until ctx ends. An event is
// acknowledged once its deliveries are stored; one that is not (the store failed, the
// node died) is handed out again by the feed after its lease, and its deliveries,
// whose IDs come from the event, are not stored twice.
func (s *Service) dispatch(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		events, err := s.store.ReadFeed(ctx, feedGroup, s.opts.Node, feedBatch, feedBlock, s.opts.Lease)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			s.logger.Warn("read the event feed", "err", err)
			pause(ctx, min(time.Duration(failures)*time.Second, 30*time.Second))
			continue
		}
		failures = 0
		// A batch that fails (the store hiccups) is tried again here a few times
		// before it is left to the feed's lease (Options.Lease, half a minute by default).
		for try := 1; len(events) > 0 && ctx.Err() == nil; try++ {
			if events = s.dispatchBatch(ctx, events); len(events) == 0 || try == dispatchTries {
				break
			}
			pause(ctx, time.Duration(try)*200*time.Millisecond)
		}
	}
}

// dispatchTries is how often a batch's events are tried before they are left to the
// feed's lease.
const dispatchTries = 3

// dispatchBatch dispatches events, acknowledges those done and returns the others.
func (s *Service) dispatchBatch(ctx context.Context, events []storage.LoggedEvent) []storage.LoggedEvent {
	newest := events[0].Time
	for _, e := range events {
		if e.Time.After(newest) {
			newest = e.Time
		}
	}
	hooks, err := s.subscriptions(ctx, newest)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("dispatch", "err", err)
		}
		return events
	}
	done := make([]string, 0, len(events))
	var left []storage.LoggedEvent
	// The deliveries of many events go to the store in one go: on Redis one round trip,
	// not one per delivery, which a single dispatcher could not make 10,000 times a
	// second. At most about maxAdd at a time, so that a batch of events to many global
	// webhooks does not hold them all in memory.
	var ds []*storage.Delivery
	var group []storage.LoggedEvent // the events of ds
	flush := func() {
		if len(ds) > 0 {
			added, err := s.store.AddDeliveries(ctx, ds)
			if err != nil {
				if ctx.Err() == nil {
					s.logger.Warn("dispatch", "err", fmt.Errorf("add deliveries: %w", err))
				}
				// Some may be stored: they are not stored twice when tried again.
				left = append(left, group...)
				ds, group = ds[:0], group[:0]
				return
			}
			queued := 0
			for _, ok := range added {
				if ok {
					queued++
				}
			}
			s.metrics.dispatched.Add(float64(queued))
			s.poke(queued)
		}
		for _, e := range group {
			done = append(done, e.Seq)
		}
		ds, group = ds[:0], group[:0]
	}
	for i := range events {
		eds, err := s.eventDeliveries(ctx, hooks, &events[i])
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("dispatch", "inbox", events[i].Inbox, "id", events[i].ID, "err", err)
			}
			left = append(left, events[i])
			continue
		}
		ds = append(ds, eds...)
		group = append(group, events[i])
		if len(ds) >= maxAdd {
			flush()
		}
	}
	flush()
	if len(done) > 0 {
		if err := s.store.AckFeed(ctx, feedGroup, done...); err != nil && ctx.Err() == nil {
			// Handed out again after the lease: its deliveries are stored already.
			s.logger.Warn("acknowledge events", "err", err)
		}
	}
	return left
}

// maxAdd is about how many deliveries the dispatcher stores at once.
const maxAdd = 1024

// eventDeliveries returns a delivery of e for every webhook that wants it, all with
// the one payload, built once.
func (s *Service) eventDeliveries(ctx context.Context, hooks []hook, e *storage.LoggedEvent) ([]*storage.Delivery, error) {
	typ := eventType(&e.Event)
	if typ == "" {
		return nil, nil
	}
	var want []*hook
	for i := range hooks {
		if hooks[i].matches(typ, e.Inbox, e.Message, e.Time) {
			want = append(want, &hooks[i])
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	data := eventData{Inbox: e.Inbox, ID: e.ID}
	if typ == EventReceived && s.opts.Describe != nil {
		raw, err := s.store.Raw(ctx, e.Inbox, e.ID)
		if errors.Is(err, storage.ErrNotFound) {
			raw = nil // gone already: the summary without codes and links
		} else if err != nil {
			return nil, fmt.Errorf("read message: %w", err)
		}
		data.Message = s.opts.Describe(e.Message, raw)
	}
	body, err := encodePayload(typ, e.Time, data)
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	id := deliveryID(typ, e.Inbox, e.ID)
	now := s.opts.Now()
	ds := make([]*storage.Delivery, len(want))
	for i, h := range want {
		ds[i] = &storage.Delivery{ID: id, Webhook: h.ID, Event: typ, Payload: body, Created: now.UTC(), State: storage.DeliveryPending, Next: now}
	}
	return ds, nil
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
