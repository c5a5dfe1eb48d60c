package imapd

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
)

type metrics struct {
	sessions prometheus.Gauge
	logins   *prometheus.CounterVec // by result: ok, failed
	commands *prometheus.CounterVec // by command, a fixed set
	rejected prometheus.Counter
	refused  *prometheus.CounterVec // by reason: the refused* constants
}

// Reasons of mayfly_imap_refused_total: the per-client limits.
const (
	refusedConnections = "connections" // MaxConnectionsPerIP open already
	refusedCommands    = "commands"    // over CommandRate
	refusedLogins      = "logins"      // LoginFailures used up
	refusedSearches    = "searches"    // a SEARCH over SearchTimeout or the key limits
)

// commandNames are the labels of mayfly_imap_commands_total. imapserver parses the
// commands and calls the session, so the count is taken where it calls us: commands
// imapserver answers alone (CAPABILITY, NOOP, LOGOUT, STARTTLS, ENABLE) are not seen,
// AUTHENTICATE PLAIN counts as login, CLOSE as expunge and unselect, LSUB as list.
var commandNames = []string{
	"login", "select", "examine", "create", "delete", "rename",
	"subscribe", "unsubscribe", "list", "status", "namespace", "append", "idle",
	"unselect", "expunge", "uid expunge", "search", "uid search", "fetch", "uid fetch",
	"store", "uid store", "copy", "uid copy", "move", "uid move",
}

func newMetrics(reg prometheus.Registerer) *metrics {
	lm := limit.NewMetrics(reg, "imap", "IMAP sessions open now.",
		[2]string{"mayfly_imap_rejected_connections_total", "IMAP connections turned away with a BYE because MaxConnections were open."},
		limit.Series{Help: "IMAP clients refused by a per-client limit, by reason: connections (too many open from one address; a BYE, or a close on IMAPS), commands (a connection flooding past the command rate, which slows it first; a BYE), logins (too many failed logins from one address; a NO before the password is checked), searches (a SEARCH with too many keys or past its time; a NO [LIMIT]).", Values: []string{refusedConnections, refusedCommands, refusedLogins, refusedSearches}},
		limit.Series{Help: "IMAP logins (LOGIN and AUTHENTICATE) by result: ok, or failed (unknown address, foreign domain, wrong token).", Values: []string{"ok", "failed"}})
	return &metrics{
		sessions: lm.Sessions, rejected: lm.Full, refused: lm.Refused, logins: lm.Logins,
		commands: limit.CounterVec(reg, "mayfly_imap_commands_total", "command", limit.Series{
			Help:   "IMAP commands that reached the session, by command (CAPABILITY, NOOP, LOGOUT, STARTTLS and ENABLE never do).",
			Values: commandNames,
		}),
	}
}
