package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mayfly-mail/mayfly/storage"
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
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mayfly_store_memory_limit_bytes", Help: "MAYFLY_MEMORY_LIMIT: beyond it the soonest to expire go first."},
				func() float64 { return float64(memoryLimit) }),
		)
	}
	return reg
}
