package webhook

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	attempts   *prometheus.CounterVec // by result: delivered, retry, failed
	latency    prometheus.Histogram
	dispatched prometheus.Counter
	inflight   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_webhook_attempts_total",
			Help: "Webhook delivery attempts by result: delivered (2xx), retry (failed, tried again later), failed (failed, schedule spent or webhook disabled).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mayfly_webhook_attempt_seconds",
			Help:    "Time from dialing a webhook's URL to its answer read, per attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_webhook_deliveries_queued_total",
			Help: "Deliveries queued for webhooks by this node's dispatcher (one per matching webhook per event).",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mayfly_webhook_attempts_in_flight",
			Help: "Webhook attempts this node is making now.",
		}),
	}
	for _, r := range []string{"delivered", "retry", "failed"} {
		m.attempts.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.latency, m.dispatched, m.inflight)
	}
	return m
}
