// Package pop3d is the POP3 view of the store (RFC 1939, with CAPA of RFC 2449, STLS of
// RFC 2595 and AUTH PLAIN of RFC 5034), for mail clients and scripts that only download.
//
// It is our own small server rather than a library because POP3 is small, and the parts
// that matter here are policy: who may log in (an inbox's token or the admin key), that
// a password never crosses the network unencrypted, and that deletions reach the shared
// store only at QUIT, as RFC 1939 section 6 wants, so a dropped connection loses nothing.
//
// A session works on a snapshot of the inbox taken at login: message numbers must not
// shift under a client while new mail arrives (RFC 1939 section 3). There is no lock on
// the maildrop: the same messages are open to IMAP, the API and the page at once anyway,
// so two POP3 sessions on one inbox are no worse, and a message that expires or is
// deleted elsewhere meanwhile gets a plain -ERR from RETR and is no error at QUIT.
package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure the server. Zero values mean the documented defaults.
type Options struct {
	Addr     string   // listener offering STLS; "" = off
	TLSAddr  string   // implicit-TLS listener (POP3S, port 995); "" = off
	Hostname string   // in the greeting; "" = "localhost"
	Domains  []string // a user on any other domain never logs in
	// Keys decide what opens an inbox: its token or the admin key.
	Keys storage.Keys
	// TLS serves STLS and TLSAddr; nil = no STLS, and TLSAddr is an error.
	TLS *tls.Config
	// Timeout is how long a session may sit idle before a command; 0 = 10m, the least
	// RFC 1939 section 3 allows for its autologout timer.
	Timeout time.Duration
	// Options are the connection limits, drain, proxies and metrics every mail
	// listener has; a refusal is -ERR [SYS/TEMP], and at shutdown a session may
	// finish its command.
	limit.Options
}

// store is what the POP3 view needs of storage.Store.
type store interface {
	List(ctx context.Context, inbox string, page storage.Page) ([]storage.Message, error)
	Raw(ctx context.Context, inbox, id string) ([]byte, error)
	SetFlags(ctx context.Context, inbox, id string, add, remove storage.Flags) (storage.Flags, error)
	Delete(ctx context.Context, inbox, id string) error
}

// storeTimeout bounds each store call, so a hung store ends in [SYS/TEMP] rather than
// a client waiting on a silent server.
const storeTimeout = 15 * time.Second

// authFailDelay is how late a refused login is answered (the login gate's Delay); a
// variable for tests, most of which have no second to spare per wrong password.
var authFailDelay = gate.Delay

// Server serves POP3 over a store.
type Server struct {
	opts    Options
	store   store
	logger  *slog.Logger
	metrics metrics
	domains map[string]bool
	// slots holds one token per open session, across listeners.
	slots limit.Slots
	perIP *limit.Conns // connections open per client, across listeners
	// loginTimeout is the longest wait for a line before login (Timeout, if shorter,
	// still applies); tests shorten it.
	loginTimeout time.Duration
	// authFailDelay is how late a refused login is answered; tests shorten it.
	authFailDelay time.Duration
	// isLoopback says whether a peer may send a password without TLS: a client on this
	// machine has no network to be overheard on, and local testing stays easy. Behind
	// a trusted proxy (Options.TrustedProxies) it is asked about the client the proxy
	// names, not the proxy; a TCP proxy on this machine left out of TrustedProxies
	// makes every client look local, so it must do the TLS itself. Tests replace it to
	// see the refusal a remote client gets.
	isLoopback func(net.Addr) bool
}

// New returns a POP3 server over st; Run or Serve serves it.
func New(opts Options, st store, logger *slog.Logger) *Server {
	limit.Default(&opts.Timeout, 10*time.Minute)
	opts.Defaults()
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	return &Server{
		opts:          opts,
		store:         st,
		logger:        logger.With("proto", "pop3"),
		metrics:       newMetrics(opts.Metrics),
		domains:       gate.Domains(opts.Domains),
		slots:         limit.NewSlots(opts.MaxConnections),
		perIP:         limit.NewConns(opts.MaxConnectionsPerIP),
		isLoopback:    limit.IsLoopback,
		authFailDelay: authFailDelay,
		// Before login the client is a program, not a person typing: a minute is
		// room for a slow network.
		loginTimeout: time.Minute,
	}
}

// gate is the login gate under the options as they are now.
func (s *Server) gate() gate.Gate {
	return gate.Gate{Domains: s.domains, Keys: s.opts.Keys, Failures: s.opts.LoginFailures, Delay: s.authFailDelay}
}

// Run listens on Options.Addr and Options.TLSAddr and serves until ctx ends, then
// drains as Serve does. With neither address set it returns at once.
func (s *Server) Run(ctx context.Context) error {
	return limit.Run(ctx, "pop3", s.opts.Addr, s.opts.TLSAddr, s.opts.TLS, s.Serve)
}

// Serve serves on ln until ctx ends, then closes ln and tells idle sessions goodbye.
// A session busy with a command finishes it first (QUIT's deletions included), for at
// most Options.ShutdownTimeout; then the rest are cut. Deletions a client marked but
// never confirmed with QUIT are not applied. implicitTLS makes ln a POP3S listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener, implicitTLS bool) error {
	defer ln.Close()
	if implicitTLS && s.opts.TLS == nil {
		return errors.New("pop3: a TLS listener needs a certificate")
	}
	if s.opts.Keys.Tokens == nil {
		return errors.New("pop3: no token key")
	}
	s.logger.Info("listening", "addr", ln.Addr().String(), "tls", implicitTLS, "stls", !implicitTLS && s.opts.TLS != nil)
	ln = s.opts.Front(s.perIP, "-ERR [SYS/TEMP] too many connections from your address\r\n",
		func() { s.metrics.limited.WithLabelValues(limitedConnections).Inc() }).Wrap(ln, implicitTLS)

	// Store calls outlive ctx so that a QUIT in progress still deletes; they end only
	// when the drain gives up.
	storeCtx, cutStore := context.WithCancel(context.WithoutCancel(ctx))
	defer cutStore()
	tr := &tracker{}
	var wg sync.WaitGroup

	acceptDone := make(chan struct{})
	lnClosed := make(chan struct{})
	go func() {
		defer close(lnClosed)
		select {
		case <-ctx.Done():
		case <-acceptDone:
		}
		ln.Close()
	}()
	err := limit.Accept(ctx, ln, "pop3", s.logger, func(c net.Conn) {
		if !s.slots.Take() {
			s.refuse(c, implicitTLS)
			return
		}
		tr.Add(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.slots.Give()
			defer tr.Remove(c)
			s.serveConn(storeCtx, tr, c, implicitTLS)
		}()
	})
	close(acceptDone)
	<-lnClosed

	// Wake every session that waits for a command; a session running one sees the
	// shutdown when it next waits.
	for _, c := range tr.Shutdown() {
		c.SetReadDeadline(longAgo)
	}
	drained := limit.Waited(&wg)
	if !limit.Drain(drained, s.opts.ShutdownTimeout, s.logger, "sessions still busy after the shutdown timeout, closing them", func() {
		cutStore()
		for _, c := range tr.All() {
			c.Close()
		}
	}) {
		<-drained
	}
	return err
}

// refuse turns a connection away when MaxConnections sessions are open. RFC 2449's
// [SYS/TEMP] tells the client to try again later rather than give up; a POP3S client
// would need a handshake first, so it just sees the connection close.
func (s *Server) refuse(c net.Conn, implicitTLS bool) {
	s.metrics.refused.Inc()
	s.logger.Warn("too many sessions, connection refused", "remote", c.RemoteAddr().String(), "max", s.opts.MaxConnections)
	line := "-ERR [SYS/TEMP] too many connections, try again later\r\n"
	if implicitTLS {
		line = ""
	}
	limit.Refuse(c, line)
}

// tracker knows a listener's open connections, so shutdown can reach the idle ones.
type tracker = limit.Tracker[net.Conn]

// longAgo is a deadline that has passed: it wakes a read that waits on the client.
var longAgo = time.Unix(1, 0)
