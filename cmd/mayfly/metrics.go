package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// newRegistry returns the registry /metrics serves: the Go runtime, the process, and
// what the memory store holds (it counts as it goes, so reading it is cheap).
func newRegistry(st storage.Store, memoryLimit int64) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
	return reg
}
