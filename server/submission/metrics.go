package submission

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
)

// Login results, the values of mayfly_submission_logins_total's result label.
const (
	loginOK               = "ok"
	loginFailed           = "failed"            // wrong address, domain or password
	loginRefusedPlaintext = "refused_plaintext" // AUTH tried without TLS from a remote peer
)

// Reasons of mayfly_submission_refused_total: the per-client limits.
const (
	refusedConnections = "connections" // MaxConnectionsPerIP open already
	refusedCommands    = "commands"    // over CommandRate
	refusedLogins      = "logins"      // LoginFailures used up
)

// Message results, the values of mayfly_submission_messages_total's result label.
const (
	resultAccepted          = "accepted"
	resultNotCorrespondent  = "not_correspondent" // a recipient that never wrote to the inbox
	resultSendLimit         = "send_limit"
	resultTooLarge          = "too_large"
	resultTooManyRecipients = "too_many_recipients" // over MaxRecipients
	resultSender            = "sender_mismatch"     // MAIL FROM, From: or Sender: not the inbox
	resultMalformed         = "malformed"           // a header we cannot read, a bare CR or LF
	resultFailed            = "failed"              // the store or queue did not answer
)

// Delivery results per recipient, the values of mayfly_outbound_deliveries_total.
const (
	deliveryDelivered = "delivered"
	deliveryDeferred  = "deferred" // a temporary failure; the job is retried
	deliveryBounced   = "bounced"  // a permanent failure, or given up on at the job's expiry
)

type metrics struct {
	sessions prometheus.Gauge
	full     prometheus.Counter     // connections over MaxConnections
	refused  *prometheus.CounterVec // by reason: the refused* constants
	logins   *prometheus.CounterVec // by result
	messages *prometheus.CounterVec // by via (smtp, http) and result
	delivery *prometheus.CounterVec // per recipient, by result
	latency  prometheus.Histogram   // from submission to a recipient's 250
	dsns     prometheus.Counter     // bounce messages put into inboxes
}

func newMetrics(reg prometheus.Registerer) metrics {
	lm := limit.NewMetrics(reg, "submission", "Submission connections open now, on both listeners.",
		[2]string{"mayfly_submission_connections_refused_total", "Connections turned away because MaxConnections were open."},
		limit.Series{Help: "Submission clients refused by a per-client limit, by reason: connections (too many open from one address; 421, or a close on the TLS listener), commands (a connection flooding past the command rate, which slows it first; 421 and a close), logins (too many failed logins from one address; 454 before the password is checked).", Values: []string{refusedConnections, refusedCommands, refusedLogins}},
		limit.Series{Help: "AUTH attempts by result: ok, failed, refused_plaintext (no TLS from a remote peer).", Values: []string{loginOK, loginFailed, loginRefusedPlaintext}})
	m := metrics{
		sessions: lm.Sessions, full: lm.Full, refused: lm.Refused, logins: lm.Logins,
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_submission_messages_total", Help: "Messages submitted over SMTP or the HTTP reply route, by result: accepted, or the reason for refusing (a refused recipient counts once).",
		}, []string{"via", "result"}),
		delivery: limit.CounterVec(nil, "mayfly_outbound_deliveries_total", "result", limit.Series{
			Help:   "Delivery attempts per recipient, by result: delivered, deferred (temporary failure, retried) or bounced (permanent, or given up).",
			Values: []string{deliveryDelivered, deliveryDeferred, deliveryBounced},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mayfly_outbound_delivery_latency_seconds",
			Help:    "Time from a message entering the queue to a recipient's server accepting it, retries included.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		dsns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_outbound_bounces_total", Help: "Delivery status notifications put into inboxes.",
		}),
	}
	for _, via := range []string{"smtp", "http"} {
		for _, r := range []string{resultAccepted, resultNotCorrespondent, resultSendLimit, resultTooLarge, resultSender, resultMalformed, resultFailed} {
			m.messages.WithLabelValues(via, r)
		}
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.delivery, m.latency, m.dsns)
	}
	return m
}
