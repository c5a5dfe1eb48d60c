// Package submission lets a throwaway inbox reply. It is authenticated SMTP submission
// (RFC 6409, STARTTLS of RFC 3207, implicit TLS of RFC 8314) on go-smtp, and the
// outbound side every reply goes through, whether it came over SMTP or the HTTP API:
// the reply-only policy, a per-inbox send limit, DKIM signing, a sent copy kept with
// the inbox's mail, and a durable queue whose workers deliver straight to each
// recipient's MX (or through a relay), retry with backoff and bounce with a DSN.
//
// A throwaway address may write only to its correspondents, the addresses that sent it
// mail still in the store: Mayfly must not become a way to send mail to strangers from
// addresses anyone can make.
package submission

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure the server. Zero values mean the documented defaults.
type Options struct {
	Addr     string   // submission with STARTTLS (port 587); "" = off
	TLSAddr  string   // submission over implicit TLS (RFC 8314, port 465); "" = off
	Hostname string   // in the greeting, our EHLO, Reporting-MTA; "" = "localhost"
	Domains  []string // our domains: only their addresses log in and send
	// Keys decide what opens an inbox: its token or the admin key.
	Keys storage.Keys
	// TLS serves STARTTLS and TLSAddr; nil = no STARTTLS, and TLSAddr is an error.
	TLS            *tls.Config
	MaxMessageSize int64 // advertised as SIZE and enforced, for replies made over HTTP too; 0 = 10MiB
	// MaxRecipients is how many recipients one reply may have, over SMTP and HTTP
	// (MAYFLY_MAX_REPLY_RECIPIENTS); 0 = 10.
	MaxRecipients int
	// SendLimit is how many recipients one inbox may send to per window
	// (MAYFLY_SEND_LIMIT); zero = 20 per hour, N < 0 = no limit.
	SendLimit SendLimit
	// ClientSendLimit is how many recipients one client (its IPv4 address, or its IPv6
	// /64) may send to per window, over every inbox: inboxes cost nothing to make
	// (MAYFLY_CLIENT_SEND_LIMIT); zero = 500 per hour, N < 0 = no limit.
	ClientSendLimit SendLimit
	// OutboundRate is how many recipients the whole service sends to per window, over
	// every node (MAYFLY_OUTBOUND_RATE); zero = 5000 per hour, N < 0 = no limit.
	OutboundRate SendLimit
	// Namespaces applies the teams' send_limit to their inboxes' replies and counts
	// them in the namespace's usage and the activity; nil = no namespaces.
	Namespaces namespaceStore
	// Unverified says received mail was not checked (MAYFLY_VERIFY=false): the
	// correspondents are then the envelope senders, whose SPF nobody checked.
	// Otherwise an address is a correspondent only when the mail naming it proved
	// itself (see correspondents).
	Unverified bool
	// AllowPrivate lets direct delivery dial loopback, private, link-local, CGNAT,
	// multicast and unspecified addresses (MAYFLY_OUTBOUND_ALLOW_PRIVATE): otherwise a
	// domain whose MX points there would have us talk to this machine or its network.
	// The Relay is always allowed: the operator chose it.
	AllowPrivate bool
	// TTL is how long the sent copy and a bounce live, and so how long delivery is
	// tried: a bounce after the inbox is gone would reach nobody; 0 = 1h.
	TTL time.Duration
	// DKIM signs outgoing mail for the sender's domain: an *rsa.PrivateKey or an
	// ed25519.PrivateKey; nil = unsigned.
	DKIM         crypto.Signer
	DKIMSelector string // "" = "mayfly"
	// Relay is a smarthost for every recipient: smtp://[user:pass@]host[:port]
	// (STARTTLS when offered; port 25 by default) or smtps:// (implicit TLS, 465);
	// nil = straight to each recipient domain's MX.
	Relay *url.URL
	// RelayTLS verifies the relay's certificate; nil = the system roots and the
	// relay's host name.
	RelayTLS     *tls.Config
	OutboundPort int    // port of the recipients' MX; 0 = 25
	DNS          string // host:port of the resolver for MX lookups; "" = the servers of /etc/resolv.conf
	// Resolver is the DNS client shared with verification; nil = one of its own on DNS.
	Resolver *dnsclient.Resolver
	// Workers deliver the queue; 0 = 4, negative = none on this node.
	Workers int
	// Lease is how long a worker holds a job before another node may take it; 0 = 5m.
	Lease time.Duration
	// Backoff is the first retry's delay, doubled per attempt up to an hour; 0 = 1m.
	Backoff time.Duration
	Timeout time.Duration // per SMTP command, in and out (RFC 5321 section 4.5.3.2); 0 = 5m
	// Options are the connection limits, drain, proxies and metrics every mail
	// listener has. Here a refusal is 421 4.7.0, a client out of LoginFailures is
	// answered 454 4.7.0, ShutdownTimeout covers deliveries in flight too, and
	// CommandRate counts command lines (AUTH responses included, message data not)
	// with a burst of at least one whole transaction to MaxRecipients sent at once
	// (PIPELINING, RFC 2920), at the same rate.
	limit.Options
}

// SendLimit is a number of recipients per window; windows start at multiples of Per
// since the Unix epoch (storage.Store.CountSend).
type SendLimit struct {
	N   int
	Per time.Duration
}

// store is what submission needs of storage.Store.
type store interface {
	Put(ctx context.Context, msgs ...*storage.Message) error
	List(ctx context.Context, inbox string, page storage.Page) ([]storage.Message, error)
	Get(ctx context.Context, inbox, id string) (*storage.Message, error)
	Raw(ctx context.Context, inbox, id string) ([]byte, error)
	Delete(ctx context.Context, inbox, id string) error
	CountSend(ctx context.Context, key string, n int, per time.Duration) (int, error)
}

// The keys of the send limits that are not an inbox's (storage.Store.CountSend).
const (
	clientSendKey = "client:" // + the client's address
	outboundKey   = "outbound"
)

// storeTimeout bounds each store and queue call, so a hung store ends in 451 rather
// than a client waiting on a silent server.
const storeTimeout = 15 * time.Second

// authFailDelay is how late a refused login is answered (the login gate's Delay); a
// variable for tests, most of which have no second to spare per wrong password.
var authFailDelay = gate.Delay

// Server accepts replies over SMTP and Reply, and delivers them.
type Server struct {
	opts     Options
	store    store
	queue    storage.Queue
	logger   *slog.Logger
	metrics  metrics
	domains  map[string]bool
	relay    *relay // nil = direct to MX
	resolver *dnsclient.Resolver
	consumer string // this node's name in the queue, before the worker's number
	slots    limit.Slots
	conns    *limit.Conns // per client, over both listeners
	now      func() time.Time
	// preAuthTimeout bounds each command line read before AUTH has succeeded: a client
	// that has not logged in may not hold a connection for the full Timeout. Tests
	// shorten it.
	preAuthTimeout time.Duration
	// isLoopback says whether a peer may authenticate without TLS: a client on this
	// machine has no network to be overheard on. Behind a trusted proxy
	// (Options.TrustedProxies) it is asked about the client the proxy names, not the
	// proxy. Tests replace it to see what a remote client gets.
	isLoopback func(net.Addr) bool
	// authFailDelay is how late a refused login is answered; tests shorten it.
	authFailDelay time.Duration
}

// gate is the login gate under the options as they are now.
func (s *Server) gate() gate.Gate {
	return gate.Gate{Domains: s.domains, Keys: s.opts.Keys, Failures: s.opts.LoginFailures, Delay: s.authFailDelay}
}

// New returns a server over st and q; Run serves it.
func New(opts Options, st store, q storage.Queue, logger *slog.Logger) (*Server, error) {
	if opts.Keys.Tokens == nil {
		return nil, errors.New("submission: no token key")
	}
	if len(opts.Domains) == 0 {
		return nil, errors.New("submission: no domains")
	}
	if q == nil {
		return nil, errors.New("submission: no queue")
	}
	limit.DefaultIfZero(&opts.Hostname, "localhost")
	limit.Default(&opts.MaxMessageSize, 10<<20)
	limit.Default(&opts.MaxRecipients, 10)
	for _, l := range []struct {
		l   *SendLimit
		def SendLimit
	}{
		{&opts.SendLimit, SendLimit{N: 20, Per: time.Hour}},
		{&opts.ClientSendLimit, SendLimit{N: 500, Per: time.Hour}},
		{&opts.OutboundRate, SendLimit{N: 5000, Per: time.Hour}},
	} {
		if *l.l == (SendLimit{}) {
			*l.l = l.def
		}
		if l.l.N >= 0 && l.l.Per <= 0 {
			return nil, fmt.Errorf("submission: send limit %d per %v", l.l.N, l.l.Per)
		}
	}
	limit.Default(&opts.TTL, time.Hour)
	limit.DefaultIfZero(&opts.DKIMSelector, "mayfly")
	switch opts.DKIM.(type) {
	case nil, *rsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("submission: DKIM key %T: want RSA or Ed25519", opts.DKIM)
	}
	limit.Default(&opts.OutboundPort, 25)
	limit.DefaultIfZero(&opts.Workers, 4)
	limit.Default(&opts.Lease, 5*time.Minute)
	limit.Default(&opts.Backoff, time.Minute)
	limit.Default(&opts.Timeout, 5*time.Minute)
	opts.Defaults()
	if r := opts.CommandRate; r.N > 0 && r.N < opts.MaxRecipients+10 {
		// A client may pipeline a whole transaction: MAIL, one RCPT per recipient and
		// DATA, right after its EHLO and AUTH. Cutting it off halfway would refuse a
		// reply-all that the LIMITS RCPTMAX we advertise allows: the burst grows to
		// one such transaction, the rate stays.
		n := opts.MaxRecipients + 10
		opts.CommandRate = limit.Rate{N: n, Per: r.Per * time.Duration(n) / time.Duration(r.N)}
	}
	if opts.Resolver == nil {
		var err error
		if opts.Resolver, err = dnsclient.New(dnsclient.Options{Server: opts.DNS}); err != nil {
			return nil, fmt.Errorf("submission: %w", err)
		}
	}
	s := &Server{
		opts:          opts,
		store:         st,
		queue:         q,
		logger:        logger.With("proto", "submission"),
		metrics:       newMetrics(opts.Metrics),
		domains:       gate.Domains(opts.Domains),
		resolver:      opts.Resolver,
		slots:         limit.NewSlots(opts.MaxConnections),
		conns:         limit.NewConns(opts.MaxConnectionsPerIP),
		authFailDelay: authFailDelay,
		now:           time.Now,
		isLoopback:    limit.IsLoopback,

		preAuthTimeout: time.Minute,
	}
	if opts.Relay != nil {
		r, err := parseRelay(opts.Relay)
		if err != nil {
			return nil, fmt.Errorf("submission: %w", err)
		}
		s.relay = r
	}
	if opts.Unverified {
		s.logger.Warn("replies are unverified: received mail is not checked (MAYFLY_VERIFY=false), so any envelope sender counts as a correspondent")
	}
	host, err := os.Hostname()
	if err != nil {
		host = opts.Hostname
	}
	// Two Servers in one process (tests, or two stores) must not share a name.
	var nonce [3]byte
	rand.Read(nonce[:])
	s.consumer = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(nonce[:]))
	return s, nil
}

// Run listens on Options.Addr and Options.TLSAddr, runs the delivery workers, and
// serves until ctx ends; then it drains as Serve and RunWorkers do.
func (s *Server) Run(ctx context.Context) error {
	return limit.Run(ctx, "submission", s.opts.Addr, s.opts.TLSAddr, s.opts.TLS, s.Serve, s.RunWorkers)
}

// Serve serves SMTP submission on ln until ctx ends. Then it closes ln and the idle
// sessions at once; a session in a mail transaction may finish it (its 250 or error
// to DATA) for at most Options.ShutdownTimeout, after which the rest are cut. A cut
// transaction was never answered 250, so the client still has the message.
// implicitTLS makes ln a submissions listener (RFC 8314).
func (s *Server) Serve(ctx context.Context, ln net.Listener, implicitTLS bool) error {
	if implicitTLS && s.opts.TLS == nil {
		ln.Close()
		return errors.New("submission: a TLS listener needs a certificate")
	}
	tr := &tracker{}
	// On a submissions listener the TLS handshake (in limitListener) follows.
	refusal := fmt.Sprintf("421 4.7.0 %s too many connections from your address\r\n", s.opts.Hostname)
	perClient := s.opts.Front(s.conns, refusal, func() { s.metrics.refused.WithLabelValues(refusedConnections).Inc() }).Wrap(ln, implicitTLS)
	l := &limitListener{Listener: perClient, s: s, tr: tr, implicitTLS: implicitTLS}
	srv := smtp.NewServer(&backend{s: s, tr: tr})
	srv.Domain = s.opts.Hostname
	srv.TLSConfig = s.opts.TLS
	srv.MaxMessageBytes = s.opts.MaxMessageSize
	// Not go-smtp's MaxRecipients: Rcpt refuses the one too many itself, naming the
	// setting, and counts a recipient named twice once.
	srv.ReadTimeout = s.opts.Timeout
	srv.WriteTimeout = s.opts.Timeout
	// go-smtp decides this for the whole server; we decide per connection (TLS, or a
	// loopback peer) in AuthMechanisms and Auth.
	srv.AllowInsecureAuth = true
	srv.ErrorLog = slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)
	s.logger.Info("listening", "addr", ln.Addr().String(), "tls", implicitTLS, "starttls", !implicitTLS && s.opts.TLS != nil)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		srv.Close()
		return fmt.Errorf("submission serve: %w", err)
	case <-ctx.Done():
	}
	for _, c := range tr.Shutdown() {
		c.Close()
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		s.logger.Warn("transactions still open after the shutdown timeout, closing them", "timeout", s.opts.ShutdownTimeout, "err", err)
		srv.Close()
	}
	// Shutdown closes only the listeners that srv.Serve has registered, which it may not
	// have done yet if ctx ended at once.
	l.Close()
	if err := <-errc; err != nil {
		return fmt.Errorf("submission serve: %w", err)
	}
	return nil
}

// limitListener hands go-smtp at most MaxConnections connections at once, each
// tracked so that shutdown can reach the idle ones, and each under the TLS layer on
// an implicit-TLS listener.
type limitListener struct {
	net.Listener
	s           *Server
	tr          *tracker
	implicitTLS bool
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.s.slots.Take() {
			l.s.refuse(c, l.implicitTLS)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		tc := &trackedConn{FinalRead: &limit.FinalRead{Conn: c}, s: l.s, tr: l.tr, commands: l.s.opts.CommandRate.Pacer(l.s.opts.Timeout), ctx: ctx, cancel: cancel}
		l.s.metrics.sessions.Inc()
		if !l.tr.Add(tc) {
			tc.Close()
			continue
		}
		if l.implicitTLS {
			tc.tls = tls.Server(tc, l.s.opts.TLS)
			return tc.tls, nil
		}
		return tc, nil
	}
}

// refuse turns a connection away when MaxConnections are open. RFC 5321 section
// 3.8: 421 tells the client to try later rather than give up; a TLS client would need
// a handshake first, so it just sees the connection close.
func (s *Server) refuse(c net.Conn, implicitTLS bool) {
	s.metrics.full.Inc()
	s.logger.Warn("too many sessions, connection refused", "remote", c.RemoteAddr().String(), "max", s.opts.MaxConnections)
	line := fmt.Sprintf("421 4.7.0 %s too many connections, try again later\r\n", s.opts.Hostname)
	if implicitTLS {
		line = ""
	}
	limit.Refuse(c, line)
}

// trackedConn is one accepted connection; closing it frees its slot once. A read
// past its deadline is final (limit.FinalRead): go-smtp reads commands with bufio's
// ReadLine, which hands back the bytes of a line cut off by the deadline as if they
// were a whole line and drops the error, so a client dripping a line a byte at a time
// would have each piece served as a command, under a fresh deadline, for ever. Its
// piece is still answered; then SetReadDeadline ends the session.
type trackedConn struct {
	*limit.FinalRead
	s    *Server
	tr   *tracker
	once sync.Once

	// Only the connection's goroutine (go-smtp's handler, our session) touches these.
	commands *limit.Pacer // nil = no command rate
	// ctx ends when the connection closes (shutdown closes idle ones): a command
	// waiting for its turn under CommandRate waits no longer.
	ctx      context.Context
	cancel   context.CancelFunc
	authed   bool       // a login has succeeded: the full Timeout applies
	tls      *tls.Conn  // on an implicit-TLS listener, the layer go-smtp uses
	smtpConn *smtp.Conn // from the first EHLO on; its Conn follows STARTTLS
}

// SetReadDeadline is the one place that sees every command line: go-smtp sets the
// read deadline before each line it reads (commands and AUTH responses, not message
// data), through the TLS layer when there is one, so a flood of NOOP, RSET or junk,
// which never reaches the session, is counted here. A client not logged in gets at
// most preAuthTimeout per line, not the full Timeout; the deadline is set once per
// line, so sending it a byte at a time gains nothing. Past CommandRate the read waits
// here for its turn, so a pipelining client is slowed; only clear abuse is cut.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if c.TimedOut() {
		// go-smtp answers this with its 421 4.4.2 and ends the session.
		return os.ErrDeadlineExceeded
	}
	if err := c.commands.Wait(c.ctx); err != nil {
		if !errors.Is(err, limit.ErrTooFast) {
			return net.ErrClosed // closed while it waited
		}
		c.tooManyCommands()
		// go-smtp ends the session quietly on a closed connection, after our 421.
		return net.ErrClosed
	}
	if !c.authed && !t.IsZero() {
		if latest := time.Now().Add(c.s.preAuthTimeout); t.After(latest) {
			t = latest
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// tooManyCommands answers a client over CommandRate and closes its connection. The
// reply goes through the TLS layer when there is one: the implicit-TLS listener's, or
// the one STARTTLS put under the session's conn. (A client that sends STARTTLS before
// any EHLO, where it cannot have seen the extension offered, gets the reply in the
// clear, which its TLS layer discards; it is closed all the same.)
func (c *trackedConn) tooManyCommands() {
	c.s.metrics.refused.WithLabelValues(refusedCommands).Inc()
	c.s.logger.Warn("too many commands, connection closed", "remote", c.RemoteAddr().String())
	var w net.Conn = c
	switch {
	case c.smtpConn != nil:
		w = c.smtpConn.Conn()
	case c.tls != nil:
		w = c.tls
	}
	// A flooding client may not read its replies, so its window may be full.
	w.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(w, "421 4.7.0 too many commands (MAYFLY_COMMAND_RATE), slow down\r\n")
	w.Close()
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.tr.Remove(c)
		c.s.metrics.sessions.Dec()
		c.s.slots.Give()
	})
	return c.Conn.Close()
}

// tracker knows a listener's connections and which are in a mail transaction, so
// that shutdown closes the idle ones at once and the busy ones when they finish.
type tracker = limit.Tracker[*trackedConn]

// endTransaction marks c's transaction over, and closes c if the server is shutting
// down. go-smtp ends a transaction (Reset) after it has written the reply to DATA, so
// the client has its answer before the connection goes.
func endTransaction(t *tracker, c *trackedConn) {
	if c != nil && t.End(c) {
		c.Close()
	}
}

// rawConn returns the tracked connection under c, the TLS layer taken off.
func rawConn(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*trackedConn)
	return t
}
