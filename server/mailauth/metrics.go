package mailauth

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics is nil-safe: a Verifier without a registry counts nothing.
type metrics struct {
	results *prometheus.CounterVec // kind, result
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_auth_results_total", Help: "Verdicts of received messages, by kind (spf, dkim, dmarc) and result.",
		}, []string{"kind", "result"}),
	}
	reg.MustRegister(m.results)
	return m
}

func (m *metrics) result(kind, result string) {
	if m != nil {
		m.results.WithLabelValues(kind, result).Inc()
	}
}
