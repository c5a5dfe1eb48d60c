package memstore

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unsafe"

	"github.com/mayfly-mail/mayfly/storage"
)

// webhooks is the memory store's storage.WebhookStore: subscriptions, their deliveries
// and a heap of the pending ones by when they are due (a claimed one is due again when
// its lease runs out). What it holds counts against Options.MemoryLimit.
type webhooks struct {
	hooks map[string]*hook
	due   deliveryHeap
}

type hook struct {
	w          storage.Webhook
	cost       int64
	deliveries map[string]*delivery
	finished   int // deliveries not pending
}

type delivery struct {
	d         storage.Delivery
	due       time.Time // d.Next, or the end of its lease once claimed
	heapIndex int       // -1 when not pending
	cost      int64
}

func webhookCost(w *storage.Webhook) int64 {
	n := int64(unsafe.Sizeof(hook{})) + 48 + int64(len(w.ID)+len(w.URL)+len(w.Inbox)+len(w.Secret)+len(w.Disabled)) + 5*stringSlack
	for _, e := range w.Events {
		n += int64(len(e)) + 16 + stringSlack
	}
	for k, v := range w.Filters {
		n += int64(len(k)+len(v)) + 32 + 2*stringSlack
	}
	return n
}

func deliveryCost(d *storage.Delivery) int64 {
	n := int64(unsafe.Sizeof(delivery{})) + 48 + int64(len(d.ID)+len(d.Webhook)+len(d.Event)+len(d.State)+len(d.Payload)) + 5*stringSlack
	for _, a := range d.Attempts {
		n += int64(unsafe.Sizeof(a)) + int64(len(a.Error)+len(a.Response)) + 2*stringSlack
	}
	return n
}

func cloneWebhook(w *storage.Webhook) storage.Webhook {
	c := *w
	c.Events = slices.Clone(w.Events)
	c.Filters = maps.Clone(w.Filters)
	return c
}

func cloneDelivery(d *storage.Delivery) storage.Delivery {
	c := *d
	c.Payload = slices.Clone(d.Payload)
	c.Attempts = slices.Clone(d.Attempts)
	return c
}

func (s *Store) hooksLocked() *webhooks {
	if s.hooks.hooks == nil {
		s.hooks.hooks = make(map[string]*hook)
	}
	return &s.hooks
}

// PutWebhook creates or replaces a webhook.
func (s *Store) PutWebhook(ctx context.Context, w *storage.Webhook) error {
	if w.ID == "" {
		return fmt.Errorf("put webhook: no ID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.hooksLocked()
	h := wh.hooks[w.ID]
	if h == nil {
		h = &hook{deliveries: make(map[string]*delivery)}
		wh.hooks[w.ID] = h
	}
	s.metaBytes -= h.cost
	h.w = cloneWebhook(w)
	h.cost = webhookCost(&h.w)
	s.metaBytes += h.cost
	s.shrinkLocked(nil)
	return nil
}

func webhookNotFound(id string) error {
	return fmt.Errorf("webhook %s: %w", id, storage.ErrNotFound)
}

// GetWebhook returns a webhook.
func (s *Store) GetWebhook(ctx context.Context, id string) (*storage.Webhook, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooksLocked().hooks[id]
	if h == nil {
		return nil, webhookNotFound(id)
	}
	w := cloneWebhook(&h.w)
	return &w, nil
}

// ListWebhooks returns every webhook, oldest first.
func (s *Store) ListWebhooks(ctx context.Context) ([]storage.Webhook, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.hooksLocked()
	list := make([]storage.Webhook, 0, len(wh.hooks))
	for _, h := range wh.hooks {
		list = append(list, cloneWebhook(&h.w))
	}
	storage.SortWebhooks(list)
	return list, nil
}

// DeleteWebhook deletes a webhook and its deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.hooksLocked()
	h := wh.hooks[id]
	if h == nil {
		return webhookNotFound(id)
	}
	for _, d := range h.deliveries {
		s.dropDeliveryLocked(h, d)
	}
	delete(wh.hooks, id)
	s.metaBytes -= h.cost
	return nil
}

func (s *Store) dropDeliveryLocked(h *hook, d *delivery) {
	if d.heapIndex >= 0 {
		heap.Remove(&s.hooks.due, d.heapIndex)
	} else {
		h.finished--
	}
	delete(h.deliveries, d.d.ID)
	s.metaBytes -= d.cost
}

// AddDelivery stores d unless its webhook has one with its ID already.
func (s *Store) AddDelivery(ctx context.Context, d *storage.Delivery) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooksLocked().hooks[d.Webhook]
	if h == nil {
		return false, webhookNotFound(d.Webhook)
	}
	if h.deliveries[d.ID] != nil {
		return false, nil
	}
	nd := &delivery{d: cloneDelivery(d), heapIndex: -1}
	h.deliveries[d.ID] = nd
	if nd.d.State == "" {
		nd.d.State = storage.DeliveryPending
	}
	h.finished++ // placeDeliveryLocked counts it again as what it is
	s.placeDeliveryLocked(h, nd)
	s.shrinkLocked(nil)
	return true, nil
}

// placeDeliveryLocked puts d in the due heap when it is pending, or counts it finished
// and trims the webhook's oldest finished deliveries past storage.DeliveriesKept.
func (s *Store) placeDeliveryLocked(h *hook, d *delivery) {
	s.metaBytes -= d.cost
	d.cost = deliveryCost(&d.d)
	s.metaBytes += d.cost
	wasPending := d.heapIndex >= 0
	if !wasPending {
		h.finished--
	}
	if d.d.State == storage.DeliveryPending {
		d.due = d.d.Next
		if wasPending {
			heap.Fix(&s.hooks.due, d.heapIndex)
		} else {
			heap.Push(&s.hooks.due, d)
		}
		return
	}
	if wasPending {
		heap.Remove(&s.hooks.due, d.heapIndex)
	}
	h.finished++
	for h.finished > storage.DeliveriesKept {
		var oldest *delivery
		for _, o := range h.deliveries {
			if o.heapIndex < 0 && (oldest == nil || deliveryBefore(&o.d, &oldest.d)) {
				oldest = o
			}
		}
		s.dropDeliveryLocked(h, oldest)
	}
}

// deliveryBefore orders deliveries by Created, then ID.
func deliveryBefore(a, b *storage.Delivery) bool {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c < 0
	}
	return a.ID < b.ID
}

// AddDeliveries stores each of ds as AddDelivery does; added[i] is false when ds[i]'s
// webhook has a delivery with its ID already or does not exist.
func (s *Store) AddDeliveries(ctx context.Context, ds []*storage.Delivery) ([]bool, error) {
	added := make([]bool, len(ds))
	for i, d := range ds {
		ok, err := s.AddDelivery(ctx, d)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		added[i] = ok
	}
	return added, nil
}

// ClaimDeliveries returns up to n deliveries due, soonest first, each leased for lease.
func (s *Store) ClaimDeliveries(ctx context.Context, n int, lease time.Duration) ([]*storage.Delivery, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("claim deliveries: lease %v", lease)
	}
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &s.hooks.due
	var ds []*storage.Delivery
	for len(ds) < n && len(*q) > 0 && !(*q)[0].due.After(now) {
		d := (*q)[0]
		d.due = now.Add(lease)
		heap.Fix(q, 0)
		c := cloneDelivery(&d.d)
		ds = append(ds, &c)
	}
	return ds, nil
}

// UpdateDelivery saves d after an attempt or a replay.
func (s *Store) UpdateDelivery(ctx context.Context, d *storage.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooksLocked().hooks[d.Webhook]
	if h == nil {
		return webhookNotFound(d.Webhook)
	}
	old := h.deliveries[d.ID]
	if old == nil {
		return fmt.Errorf("delivery %s of webhook %s: %w", d.ID, d.Webhook, storage.ErrNotFound)
	}
	old.d = cloneDelivery(d)
	if old.d.State == "" {
		old.d.State = storage.DeliveryPending
	}
	s.placeDeliveryLocked(h, old)
	s.shrinkLocked(nil)
	return nil
}

// UpdateDeliveries saves each of ds as UpdateDelivery does, skipping those not stored.
func (s *Store) UpdateDeliveries(ctx context.Context, ds []*storage.Delivery) error {
	for _, d := range ds {
		if err := s.UpdateDelivery(ctx, d); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// GetDelivery returns one delivery of a webhook.
func (s *Store) GetDelivery(ctx context.Context, webhook, id string) (*storage.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooksLocked().hooks[webhook]
	if h == nil || h.deliveries[id] == nil {
		return nil, fmt.Errorf("delivery %s of webhook %s: %w", id, webhook, storage.ErrNotFound)
	}
	c := cloneDelivery(&h.deliveries[id].d)
	return &c, nil
}

// Deliveries returns a webhook's latest deliveries, newest first.
func (s *Store) Deliveries(ctx context.Context, webhook string, limit int) ([]storage.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooksLocked().hooks[webhook]
	if h == nil {
		return nil, nil
	}
	all := make([]*delivery, 0, len(h.deliveries))
	for _, d := range h.deliveries {
		all = append(all, d)
	}
	slices.SortFunc(all, func(a, b *delivery) int {
		if deliveryBefore(&a.d, &b.d) {
			return 1
		}
		return -1
	})
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	list := make([]storage.Delivery, len(all))
	for i, d := range all {
		list[i] = cloneDelivery(&d.d)
	}
	return list, nil
}

// deliveryHeap orders pending deliveries by when they are due, soonest first.
type deliveryHeap []*delivery

func (h deliveryHeap) Len() int           { return len(h) }
func (h deliveryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h deliveryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}
func (h *deliveryHeap) Push(x any) {
	d := x.(*delivery)
	d.heapIndex = len(*h)
	*h = append(*h, d)
}
func (h *deliveryHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.heapIndex = -1
	return d
}
