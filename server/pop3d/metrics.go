package pop3d

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
)

// Login results, the values of mayfly_pop3_logins_total's result label.
const (
	loginOK               = "ok"
	loginFailed           = "failed"            // wrong address, domain or password
	loginRefusedPlaintext = "refused_plaintext" // a password offered without TLS
	loginUnavailable      = "unavailable"       // right password, but the store did not answer
)

// Reasons of mayfly_pop3_refused_total: the per-client limits.
const (
	limitedConnections = "connections" // MaxConnectionsPerIP open already
	limitedCommands    = "commands"    // over CommandRate
	limitedLogins      = "logins"      // LoginFailures used up
)

type metrics struct {
	sessions prometheus.Gauge
	refused  prometheus.Counter     // connections over MaxConnections
	limited  *prometheus.CounterVec // refused by a per-client limit, by reason
	logins   *prometheus.CounterVec // by result
	commands *prometheus.CounterVec // by command
	sent     prometheus.Counter     // message octets sent by RETR and TOP
	deleted  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	lm := limit.NewMetrics(reg, "pop3", "POP3 sessions open now.",
		[2]string{"mayfly_pop3_connections_refused_total", "Connections turned away because MaxConnections sessions were open."},
		limit.Series{Help: "POP3 clients refused by a per-client limit, by reason: connections (too many open from one address; -ERR [SYS/TEMP], or a close on POP3S), commands (a connection flooding past the command rate, which slows it first; -ERR [SYS/TEMP] and a close), logins (too many failed logins from one address; -ERR [SYS/TEMP] before the password is checked).", Values: []string{limitedConnections, limitedCommands, limitedLogins}},
		limit.Series{Help: "Login attempts (USER/PASS and AUTH PLAIN) by result: ok, failed, refused_plaintext (no TLS), unavailable (store down).", Values: []string{loginOK, loginFailed, loginRefusedPlaintext, loginUnavailable}})
	// Labels come from this fixed list only: a client's typo must not make a series.
	names := []string{"unknown"}
	for name := range commands {
		names = append(names, name)
	}
	m := metrics{
		sessions: lm.Sessions, refused: lm.Full, limited: lm.Refused, logins: lm.Logins,
		commands: limit.CounterVec(reg, "mayfly_pop3_commands_total", "command", limit.Series{Help: "Commands received, by name; anything not a POP3 command counts as unknown.", Values: names}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_pop3_sent_bytes_total", Help: "Message octets sent by RETR and TOP, as LIST counts them (before byte-stuffing).",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_pop3_deleted_total", Help: "Messages deleted from the store at QUIT.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.deleted)
	}
	return m
}
