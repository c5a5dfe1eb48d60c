package dnsclient

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is nil-safe: a Resolver without a registry counts nothing.
type metrics struct {
	queries   *prometheus.HistogramVec // type, result
	cacheHits *prometheus.CounterVec   // type
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		queries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mayfly_dns_query_duration_seconds", Help: "DNS queries sent for SPF/DKIM/DMARC and outbound MX and address lookups, by record type and result (ok, nxdomain incl. NODATA, error).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"type", "result"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_dns_cache_hits_total", Help: "DNS lookups answered from the cache, by record type.",
		}, []string{"type"}),
	}
	reg.MustRegister(m.queries, m.cacheHits)
	return m
}

func (m *metrics) query(qtype, result string, d time.Duration) {
	if m != nil {
		m.queries.WithLabelValues(qtype, result).Observe(d.Seconds())
	}
}

func (m *metrics) cacheHit(qtype string) {
	if m != nil {
		m.cacheHits.WithLabelValues(qtype).Inc()
	}
}
