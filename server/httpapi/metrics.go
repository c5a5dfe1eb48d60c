package httpapi

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
)

type metrics struct {
	requests     *prometheus.HistogramVec
	waiters      prometheus.Gauge
	websockets   prometheus.Gauge
	eventStreams prometheus.Gauge
	authFailures prometheus.Counter
	refused      *prometheus.CounterVec
	burned       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mayfly_http_request_duration_seconds",
			Help:    "HTTP requests by route, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30, 120},
		}, []string{"route", "method", "status"}),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mayfly_http_waiters",
			Help: "Long-poll waits open now.",
		}),
		websockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mayfly_http_websockets",
			Help: "WebSocket connections open now.",
		}),
		eventStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mayfly_http_event_streams",
			Help: "Server-Sent Event streams (GET .../events) open now.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_http_auth_failures_total",
			Help: "Requests refused for a wrong token.",
		}),
		refused: limit.CounterVec(nil, "mayfly_http_refused_total", "reason", limit.Series{
			Help:   "Connections and requests refused by a per-client limit: connections at once, request rate, inbox creations, wrong tokens, reads of messages at once.",
			Values: []string{"connections", "rate", "create_rate", "failures", "reads"},
		}),
		burned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_http_burned_total",
			Help: "Messages of burn-after-read inboxes deleted as the API answered them read (IMAP and POP3 burn theirs in the store, uncounted here).",
		}),
	}
	reg.MustRegister(m.requests, m.waiters, m.websockets, m.eventStreams, m.authFailures, m.refused, m.burned)
	return m
}

// middleware observes every request under its route pattern, never its raw path: an
// address in a label would make one time series per inbox.
func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(c.Response().Status)).Observe(time.Since(start).Seconds())
		return nil
	}
}
