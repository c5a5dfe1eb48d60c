// Package imapd is the IMAP view of every throwaway inbox: go-imap v2's imapserver
// speaks the protocol, and a session of ours adapts it to the store. Each inbox is two
// mailboxes, INBOX for the mail it received and Sent (RFC 6154 \Sent) for the copies
// of the replies it sent, both with the store's UIDVALIDITY, UIDs and flags, and an
// always empty Trash (\Trash) where MOVE and COPY delete; store
// events (from any node, on Redis) reach IDLE clients of the mailbox they concern as
// EXISTS, EXPUNGE and FETCH FLAGS.
package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure the IMAP server. Zero values mean the documented defaults.
type Options struct {
	Addr     string       // listener with STARTTLS; "" = off
	TLSAddr  string       // listener with implicit TLS (IMAPS, 993); "" = off
	Hostname string       // named in the shutdown BYE
	Domains  []string     // a user on another domain never logs in
	Keys     storage.Keys // what opens an inbox: its token or the admin key
	TLS      *tls.Config  // for STARTTLS and TLSAddr; nil = no STARTTLS, no TLSAddr
	// SearchTimeout is how long one SEARCH may take; past it the command gets NO
	// [LIMIT] and the client is told to narrow it. 0 = 2s.
	SearchTimeout time.Duration
	// Options are the connection limits, drain, proxies and metrics every mail
	// listener has; a session refused by them, or told to go at shutdown, gets a BYE.
	limit.Options
}

// store is what the IMAP view needs of storage.Store.
type store interface {
	List(ctx context.Context, inbox string, page storage.Page) ([]storage.Message, error)
	Get(ctx context.Context, inbox, id string) (*storage.Message, error)
	Raw(ctx context.Context, inbox, id string) ([]byte, error)
	SetFlags(ctx context.Context, inbox, id string, add, remove storage.Flags) (storage.Flags, error)
	Delete(ctx context.Context, inbox, id string) error
	Mailbox(ctx context.Context, inbox string) (storage.Mailbox, error)
	Subscribe(ctx context.Context, inbox string) (<-chan storage.Event, error)
}

// Server serves IMAP over a store.
type Server struct {
	opts    Options
	store   store
	logger  *slog.Logger
	metrics *metrics
	domains map[string]bool
	caps    imap.CapSet
	open    atomic.Int64 // connections open on every listener
	perIP   *limit.Conns // connections open per client, on every listener
	// envelopes are shared by every session: many clients, one inbox, same headers.
	envelopes *envelopeCache
	texts     *textCache  // what SEARCH BODY and TEXT read, shared the same way
	parsed    *parseCache // messages as mailparse read them, for FETCH and SEARCH

	// Knobs the tests turn.
	loopback      func(net.Addr) bool // plain-text logins without TLS are let through from these
	authFailDelay time.Duration       // a refused login waits this long before its NO
	opTimeout     time.Duration       // one store call; past it the command gets NO [UNAVAILABLE]
	retryMax      time.Duration       // the longest wait between attempts to resubscribe
	loginTimeout  time.Duration       // before login: the longest wait for a command line, and for its end
	autologout    time.Duration       // after login: the same, IDLE included
}

// New returns an IMAP server over st; Run serves it.
func New(opts Options, st store, logger *slog.Logger) *Server {
	opts.Defaults()
	if opts.Hostname == "" {
		opts.Hostname = "mayfly"
	}
	if opts.SearchTimeout <= 0 {
		opts.SearchTimeout = 2 * time.Second
	}
	return &Server{
		opts:          opts,
		store:         st,
		logger:        logger.With("proto", "imap"),
		metrics:       newMetrics(opts.Metrics),
		domains:       gate.Domains(opts.Domains),
		authFailDelay: gate.Delay,
		caps:          capabilities(),
		perIP:         limit.NewConns(opts.MaxConnectionsPerIP),
		envelopes:     newEnvelopeCache(1024),
		texts:         newTextCache(textCacheSize),
		parsed:        newParseCache(parseCacheSize),
		loopback:      limit.IsLoopback,
		opTimeout:     15 * time.Second,
		retryMax:      5 * time.Second,
		loginTimeout:  time.Minute,
		// RFC 3501 section 5.4: the autologout timer is at least 30 minutes.
		autologout: 30 * time.Minute,
	}
}

// gate is the login gate under the options as they are now.
func (s *Server) gate() gate.Gate {
	return gate.Gate{Domains: s.domains, Keys: s.opts.Keys, Failures: s.opts.LoginFailures, Delay: s.authFailDelay}
}

// capabilities are what both IMAP4rev1 and IMAP4rev2 clients are offered once logged
// in; imapserver adds IDLE, ENABLE, UNSELECT, SASL-IR, STARTTLS and the AUTH= or
// LOGINDISABLED it decides per connection. It also lists every extension IMAP4rev2
// includes, MOVE among them, which deletes when the destination is Trash and gets
// NO [CANNOT] otherwise: a message's mailbox is fixed by how it came. SPECIAL-USE
// (RFC 6154) tells clients LIST marks Sent and Trash; not CREATE-SPECIAL-USE, as no
// mailbox can be made.
func capabilities() imap.CapSet {
	caps := imap.CapSet{}
	for _, c := range []imap.Cap{
		imap.CapIMAP4rev1, imap.CapIMAP4rev2,
		imap.CapNamespace, imap.CapUIDPlus, imap.CapESearch, imap.CapSearchRes,
		imap.CapListExtended, imap.CapListStatus, imap.CapStatusSize,
		imap.CapBinary, imap.CapChildren, imap.CapSpecialUse, imap.CapID,
	} {
		caps[c] = struct{}{}
	}
	return caps
}

// Run listens on Options.Addr and Options.TLSAddr and serves until ctx ends, then
// says BYE to every session and waits for them, for at most Options.ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	return limit.Run(ctx, "imap", s.opts.Addr, s.opts.TLSAddr, s.opts.TLS, s.Serve)
}

// Serve serves IMAP on ln until ctx ends (implicitTLS: every connection starts with a
// TLS handshake, IMAPS), then closes ln, says BYE to every session and waits for them
// for at most Options.ShutdownTimeout before it closes what is left.
func (s *Server) Serve(ctx context.Context, ln net.Listener, implicitTLS bool) error {
	if implicitTLS && s.opts.TLS == nil {
		ln.Close()
		return errors.New("imaps: implicit TLS needs a certificate")
	}
	l := newListener(s, ln.Addr(), implicitTLS)
	s.logger.Info("listening", "addr", ln.Addr().String(), "implicit_tls", implicitTLS, "starttls", !implicitTLS && s.opts.TLS != nil)
	// A client over its connection limit gets its BYE before any session is made for it.
	ln = s.opts.Front(s.perIP, "* BYE too many connections from your address\r\n",
		func() { s.metrics.refused.WithLabelValues(refusedConnections).Inc() }).Wrap(ln, implicitTLS)

	// imapserver's own accept loops take connections from ours, which has picked for
	// each whether it may log in without TLS: imapserver decides that per server.
	var servers sync.WaitGroup
	servers.Go(func() { l.plain.Serve(l.plainQ) })
	servers.Go(func() { l.strict.Serve(l.strictQ) })

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	err := limit.Accept(ctx, ln, "imap", s.logger, l.accept)
	l.plainQ.Close()
	l.strictQ.Close()
	servers.Wait()
	l.drain()
	return err
}

// handshakeTimeout bounds the TLS handshake of an implicit-TLS connection.
const handshakeTimeout = 30 * time.Second

// listener is the state of one Serve call: its connections and the two imapserver
// servers that run their sessions.
type listener struct {
	srv         *Server
	implicitTLS bool
	// base is the context of every session: it outlives Serve's ctx by the drain, so a
	// command in flight when shutdown begins still gets its answer.
	base       context.Context
	cancelBase context.CancelFunc

	plain, strict   *imapserver.Server // plain-text logins allowed / TLS required first
	plainQ, strictQ *connQueue

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing bool
	wg      sync.WaitGroup // one per connection until its socket and its session are closed
}

func newListener(s *Server, addr net.Addr, implicitTLS bool) *listener {
	l := &listener{
		srv:         s,
		implicitTLS: implicitTLS,
		plainQ:      newConnQueue(addr),
		strictQ:     newConnQueue(addr),
		conns:       make(map[*conn]struct{}),
	}
	l.base, l.cancelBase = context.WithCancel(context.Background())
	newServer := func(insecureAuth bool) *imapserver.Server {
		return imapserver.New(&imapserver.Options{
			NewSession:   l.newSession,
			Caps:         s.caps,
			Logger:       imapLogger{s.logger},
			TLSConfig:    s.opts.TLS,
			InsecureAuth: insecureAuth,
		})
	}
	l.plain, l.strict = newServer(true), newServer(false)
	return l
}

// accept hands a new connection to the imapserver that decides how it may log in.
func (l *listener) accept(raw net.Conn) {
	// A read timeout is final (limit.FinalRead): imapserver answers a command whose
	// arguments timed out with a NO and reads on, so a client that sends each line too
	// slowly would keep its connection for good at the cost of a NO a line.
	c := &conn{Conn: &limit.FinalRead{Conn: raw}, l: l, refs: 1}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		raw.Close()
		return
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	l.srv.open.Add(1)

	var nc net.Conn = c
	q := l.strictQ
	if l.implicitTLS {
		// imapserver sets read deadlines only once it reads commands; the handshake
		// comes first, inside its greeting, and a client that never sends its hello
		// would hold the connection (and the greeting's lock) for good.
		raw.SetReadDeadline(time.Now().Add(handshakeTimeout))
		nc = tls.Server(c, l.srv.opts.TLS)
		q = l.plainQ // the password travels inside TLS already
	} else if l.srv.loopback(raw.RemoteAddr()) {
		// The client's address, behind a trusted proxy the one its header names: a
		// proxy on this machine relays clients from anywhere.
		q = l.plainQ
	}
	if !q.put(nc) {
		c.Close()
	}
}

// newSession is imapserver's NewSession: it runs first thing in each connection's
// goroutine, before the greeting.
func (l *listener) newSession(ic *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	c := connOf(ic)
	if c == nil {
		return nil, nil, errors.New("imap: connection of unknown type") // unreachable
	}
	s := l.srv
	l.mu.Lock()
	if l.closing || c.closed {
		l.mu.Unlock()
		return nil, nil, bye("Server shutting down")
	}
	if s.open.Load() > int64(s.opts.MaxConnections) {
		l.mu.Unlock()
		s.metrics.rejected.Inc()
		s.logger.Warn("too many connections", "remote", c.RemoteAddr().String(), "max", s.opts.MaxConnections)
		return nil, nil, bye("Too many connections, try again later")
	}
	c.imap = ic
	c.refs++ // released by the session's Close
	l.mu.Unlock()
	return newSession(l, c), nil, nil
}

// drain says BYE to every session and waits for them to end, for at most
// ShutdownTimeout; then it cancels their store calls and closes their sockets.
func (l *listener) drain() {
	s := l.srv
	l.mu.Lock()
	l.closing = true
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()

	// imapserver writes the BYE between two responses, never inside one, and then
	// closes the connection; a client that does not read holds it up to its write
	// timeout, which the forced close below cuts short.
	var byes sync.WaitGroup
	text := s.opts.Hostname + " IMAP shutting down"
	for _, c := range conns {
		if ic := c.imapConn(); ic != nil {
			byes.Go(func() { ic.Bye(text) })
		} else {
			c.Close() // still in its TLS handshake or greeting
		}
	}
	done := limit.Waited(&l.wg)
	if !limit.Drain(done, s.opts.ShutdownTimeout, s.logger, "sessions still open after the shutdown timeout; closing them", func() {
		l.cancelBase()
		l.mu.Lock()
		for c := range l.conns {
			c.Conn.Close() // Close itself runs when imapserver lets go of it
		}
		l.mu.Unlock()
	}) {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.logger.Error("sessions did not end after their sockets were closed")
		}
	}
	l.cancelBase()
	byes.Wait()
}

// conn is an accepted socket. Its listener waits for it until both the socket is
// closed and the session on it (if one was made) has closed.
type conn struct {
	net.Conn
	l         *listener
	closeOnce sync.Once

	// loggedIn moves the read deadlines from the login timeout to the autologout one.
	loggedIn atomic.Bool

	// Guarded by l.mu.
	imap   *imapserver.Conn
	refs   int // the socket, and the session while open
	closed bool
}

// SetReadDeadline applies the slow-client rule. imapserver sets a read deadline
// before it waits for a command and again once the command has begun, never per read,
// so a line sent a byte at a time still ends at the deadline. Its timeouts are fixed
// (30s for the next line before login and for the rest of any line, 35min for the
// next line after login and for IDLE's DONE, 5min for an APPEND literal); the socket
// gets the earlier of its deadline and ours, loginTimeout from now before login and
// autologout after. TLS passes deadlines down to here.
func (c *conn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.capDeadline(t))
}

// SetDeadline caps the read half as SetReadDeadline does.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(c.capDeadline(t))
}

func (c *conn) capDeadline(t time.Time) time.Time {
	d := c.l.srv.loginTimeout
	if c.loggedIn.Load() {
		d = c.l.srv.autologout
	}
	if latest := time.Now().Add(d); t.IsZero() || latest.Before(t) {
		return latest
	}
	return t
}

func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.l.srv.open.Add(-1)
		c.l.mu.Lock()
		c.closed = true
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.release()
	})
	return err
}

func (c *conn) release() {
	c.l.mu.Lock()
	c.refs--
	last := c.refs == 0
	c.l.mu.Unlock()
	if last {
		c.l.wg.Done()
	}
}

func (c *conn) imapConn() *imapserver.Conn {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return c.imap
}

// connOf returns our conn under an imapserver connection: the socket itself, or under
// the TLS of an implicit-TLS listener.
func connOf(ic *imapserver.Conn) *conn {
	nc := ic.NetConn()
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	c, _ := nc.(*conn)
	return c
}

// connQueue is a net.Listener that hands imapserver the connections our accept loop
// passes it.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// imapLogger takes imapserver's log lines: panics it recovered are errors; the rest
// (clients that went away mid-command, read timeouts) is everyday noise.
type imapLogger struct{ logger *slog.Logger }

func (l imapLogger) Printf(format string, args ...any) {
	level := slog.LevelDebug
	if strings.HasPrefix(format, "panic") {
		level = slog.LevelError
	}
	l.logger.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func bye(text string) error {
	return &imap.Error{Type: imap.StatusResponseTypeBye, Text: text}
}
