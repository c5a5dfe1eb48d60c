// Package storemetrics is what Prometheus sees of a store: how long each operation
// takes, and what the memory store holds.
package storemetrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// timedStore is a storage.Store that observes how long each operation takes, so the
// views need not know about metrics.
type timedStore struct {
	storage.Store
	seconds *prometheus.HistogramVec
}

// Timed returns st observed into reg, operation by operation.
func Timed(st storage.Store, reg prometheus.Registerer) storage.Store {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mayfly_store_operation_duration_seconds",
		Help:    "Store operations by name and result.",
		Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, .5, 2},
	}, []string{"op", "result"})
	reg.MustRegister(h)
	return &timedStore{Store: st, seconds: h}
}

// timer starts timing op; the func it returns, deferred, observes the result in *err.
func (s *timedStore) timer(op string, err *error) func() {
	start := time.Now()
	return func() {
		result := "ok"
		if *err != nil {
			result = "error"
		}
		s.seconds.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
	}
}

func (s *timedStore) Put(ctx context.Context, msgs ...*storage.Message) (err error) {
	defer s.timer("put", &err)()
	return s.Store.Put(ctx, msgs...)
}

func (s *timedStore) List(ctx context.Context, inbox string, page storage.Page) (_ []storage.Message, err error) {
	defer s.timer("list", &err)()
	return s.Store.List(ctx, inbox, page)
}

func (s *timedStore) Get(ctx context.Context, inbox, id string) (_ *storage.Message, err error) {
	defer s.timer("get", &err)()
	return s.Store.Get(ctx, inbox, id)
}

func (s *timedStore) Raw(ctx context.Context, inbox, id string) (_ []byte, err error) {
	defer s.timer("raw", &err)()
	return s.Store.Raw(ctx, inbox, id)
}

func (s *timedStore) SetFlags(ctx context.Context, inbox, id string, add, remove storage.Flags) (_ storage.Flags, err error) {
	defer s.timer("set_flags", &err)()
	return s.Store.SetFlags(ctx, inbox, id, add, remove)
}

func (s *timedStore) Delete(ctx context.Context, inbox, id string) (err error) {
	defer s.timer("delete", &err)()
	return s.Store.Delete(ctx, inbox, id)
}

func (s *timedStore) DeleteInbox(ctx context.Context, inbox string) (_ int, err error) {
	defer s.timer("delete_inbox", &err)()
	return s.Store.DeleteInbox(ctx, inbox)
}

func (s *timedStore) Mailbox(ctx context.Context, inbox string) (_ storage.Mailbox, err error) {
	defer s.timer("mailbox", &err)()
	return s.Store.Mailbox(ctx, inbox)
}

func (s *timedStore) SetInbox(ctx context.Context, inbox string, set storage.InboxSettings) (err error) {
	defer s.timer("set_inbox", &err)()
	return s.Store.SetInbox(ctx, inbox, set)
}

func (s *timedStore) Settings(ctx context.Context, inbox string) (_ storage.InboxSettings, err error) {
	defer s.timer("settings", &err)()
	return s.Store.Settings(ctx, inbox)
}

func (s *timedStore) FaultAttempt(ctx context.Context, inbox string, fault int) (_ int, err error) {
	defer s.timer("fault_attempt", &err)()
	return s.Store.FaultAttempt(ctx, inbox, fault)
}

func (s *timedStore) InboxEvents(ctx context.Context, inbox, after string, limit int) (_ []storage.LoggedEvent, err error) {
	defer s.timer("inbox_events", &err)()
	return s.Store.InboxEvents(ctx, inbox, after, limit)
}

// ReadFeed's time includes its wait for events (up to block).
func (s *timedStore) ReadFeed(ctx context.Context, group, consumer string, n int, block, lease time.Duration) (_ []storage.LoggedEvent, err error) {
	defer s.timer("read_feed", &err)()
	return s.Store.ReadFeed(ctx, group, consumer, n, block, lease)
}

func (s *timedStore) AckFeed(ctx context.Context, group string, seqs ...string) (err error) {
	defer s.timer("ack_feed", &err)()
	return s.Store.AckFeed(ctx, group, seqs...)
}

func (s *timedStore) PutWebhook(ctx context.Context, w *storage.Webhook) (err error) {
	defer s.timer("put_webhook", &err)()
	return s.Store.PutWebhook(ctx, w)
}

func (s *timedStore) GetWebhook(ctx context.Context, id string) (_ *storage.Webhook, err error) {
	defer s.timer("get_webhook", &err)()
	return s.Store.GetWebhook(ctx, id)
}

func (s *timedStore) ListWebhooks(ctx context.Context) (_ []storage.Webhook, err error) {
	defer s.timer("list_webhooks", &err)()
	return s.Store.ListWebhooks(ctx)
}

func (s *timedStore) DeleteWebhook(ctx context.Context, id string) (err error) {
	defer s.timer("delete_webhook", &err)()
	return s.Store.DeleteWebhook(ctx, id)
}

func (s *timedStore) AddDelivery(ctx context.Context, d *storage.Delivery) (_ bool, err error) {
	defer s.timer("add_delivery", &err)()
	return s.Store.AddDelivery(ctx, d)
}

func (s *timedStore) AddDeliveries(ctx context.Context, ds []*storage.Delivery) (_ []bool, err error) {
	defer s.timer("add_deliveries", &err)()
	return s.Store.AddDeliveries(ctx, ds)
}

func (s *timedStore) ClaimDeliveries(ctx context.Context, n int, lease time.Duration) (_ []*storage.Delivery, err error) {
	defer s.timer("claim_deliveries", &err)()
	return s.Store.ClaimDeliveries(ctx, n, lease)
}

func (s *timedStore) UpdateDelivery(ctx context.Context, d *storage.Delivery) (err error) {
	defer s.timer("update_delivery", &err)()
	return s.Store.UpdateDelivery(ctx, d)
}

func (s *timedStore) UpdateDeliveries(ctx context.Context, ds []*storage.Delivery) (err error) {
	defer s.timer("update_deliveries", &err)()
	return s.Store.UpdateDeliveries(ctx, ds)
}

func (s *timedStore) GetDelivery(ctx context.Context, webhook, id string) (_ *storage.Delivery, err error) {
	defer s.timer("get_delivery", &err)()
	return s.Store.GetDelivery(ctx, webhook, id)
}

func (s *timedStore) Deliveries(ctx context.Context, webhook string, limit int) (_ []storage.Delivery, err error) {
	defer s.timer("deliveries", &err)()
	return s.Store.Deliveries(ctx, webhook, limit)
}

// Register adds to reg what the memory store holds (it counts as it goes, so reading
// it is cheap); st of another kind adds nothing.
func Register(reg prometheus.Registerer, st storage.Store, memoryLimit int64) {
	if s, ok := st.(interface{ Stats() (int, int64) }); ok {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mayfly_store_messages", Help: "Messages the memory store holds."},
				func() float64 { n, _ := s.Stats(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mayfly_store_bytes", Help: "Message bytes the memory store holds, a copy shared by several inboxes counted once."},
				func() float64 { _, b := s.Stats(); return float64(b) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mayfly_store_memory_limit_bytes", Help: "MAYFLY_MEMORY_LIMIT: mayfly_store_bytes plus mayfly_store_metadata_bytes stay under it; beyond it the states of empty inboxes go first, then the messages soonest to expire."},
				func() float64 { return float64(memoryLimit) }),
		)
	}
	if s, ok := st.(interface{ Memory() memstore.Memory }); ok {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mayfly_store_metadata_bytes", Help: "Estimated bytes of the memory store's message metadata and inbox states, counted with mayfly_store_bytes against MAYFLY_MEMORY_LIMIT."},
				func() float64 { return float64(s.Memory().MetadataBytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mayfly_store_inboxes", Help: "Inbox states (UIDVALIDITY, UIDNEXT, TTL) the memory store holds, empty inboxes included."},
				func() float64 { return float64(s.Memory().Inboxes) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mayfly_store_inboxes_dropped_total", Help: "States of empty inboxes the memory store dropped to stay under MAYFLY_MEMORY_LIMIT (the inbox gets a new UIDVALIDITY when used again)."},
				func() float64 { return float64(s.Memory().DroppedInboxes) }),
		)
	}
}
