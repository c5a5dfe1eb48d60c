package limit

import (
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options are the settings every mail listener has, set once in main for all of them;
// each server embeds them in its own Options. A refusal below is the protocol's
// temporary one: an IMAP BYE, POP3 -ERR [SYS/TEMP], SMTP 421 4.7.0. Zero values mean
// the defaults Defaults fills.
type Options struct {
	// MaxConnections is how many sessions may be open at once, on all of a server's
	// listeners together; more are refused. 0 = 1000.
	MaxConnections int
	// MaxConnectionsPerIP caps each client's connections at once, on all of a server's
	// listeners together (Front, where a client is an IPv4 address or an IPv6 /64);
	// more are refused at once. 0 = 20; negative = no limit.
	MaxConnectionsPerIP int
	// ShutdownTimeout is how long sessions may finish what they are doing once
	// shutdown begins, before what is left is closed. 0 = 10s.
	ShutdownTimeout time.Duration
	// CommandRate is how fast one connection's commands are served, in bursts of N or
	// PaceBurst, whichever is more; past it the client is slowed (Pacer), and only a
	// flood long past the burst is refused and the connection closed. Zero = 50 a
	// second; N < 0 = no limit.
	CommandRate Rate
	// LoginFailures counts refused logins per client, one bucket for every protocol
	// (gate.Gate.Failures); a client with none left is refused. nil = no limit.
	LoginFailures *Buckets[netip.Addr]
	// TrustedProxies are the load balancers in front of the listeners, whose PROXY
	// header names the client (Front); nil = every peer is its own client.
	TrustedProxies []netip.Prefix
	// Metrics receives the server's metrics; nil = not exported.
	Metrics prometheus.Registerer
}

// Defaults fills o's zero values.
func (o *Options) Defaults() {
	Default(&o.MaxConnections, 1000)
	DefaultIfZero(&o.MaxConnectionsPerIP, 20)
	Default(&o.ShutdownTimeout, 10*time.Second)
	DefaultIfZero(&o.CommandRate, Rate{N: 50, Per: time.Second})
}

// number is what Default fills: a count, a size or a duration.
type number interface {
	~int | ~int64
}

// Default sets *p to v when it is zero or negative: for a size, count or timeout that
// has no meaning below one.
func Default[T number](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// DefaultIfZero sets *p to v when it is the zero value, keeping a negative one (a
// Rate with N < 0, say), which the option's doc gives a meaning: usually no limit.
func DefaultIfZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Front is what a server with o puts in front of its listeners: o's trusted proxies,
// and perClient's cap, refusal being the protocol's line to a client over it and
// refused counting one.
func (o *Options) Front(perClient *Conns, refusal string, refused func()) Front {
	return Front{TrustedProxies: o.TrustedProxies, PerClient: perClient, Refusal: refusal, Refused: refused}
}
