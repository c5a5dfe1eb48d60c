// Package mx is the catch-all receiver: go-guerrilla speaks SMTP, a backend of ours
// turns each accepted message into one storage.Put for all its recipient inboxes.
package mx

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	guerrilla "github.com/flashmob/go-guerrilla"
	"github.com/flashmob/go-guerrilla/backends"
	"github.com/flashmob/go-guerrilla/mail"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure the receiver. Zero values mean the documented defaults.
type Options struct {
	Addr           string   // host:port to listen on
	Hostname       string   // in the banner, EHLO reply and Received header
	Domains        []string // accepted recipient domains; anything else is refused at RCPT
	MaxMessageSize int64    // advertised as SIZE and enforced; 0 = 10MiB
	MaxRecipients  int      // per message; 0 = 100
	// MaxStalledCommands is how many commands in a row may make no progress (all but
	// an accepted DATA, accepted recipients not counted: MAIL, NOOP, RSET, HELO, VRFY,
	// HELP, refused recipients...) before the session is answered 421 4.7.0 and closed: every
	// command restarts Timeout, so without a bound a NOOP loop holds its slot for
	// ever. 0 = 50, more than a real sender's retries within a session; negative =
	// no limit.
	MaxStalledCommands int
	// Timeout is per command, from our reply to the client's next line, and for the
	// whole DATA transfer: a client that sends a line a byte at a time is cut off
	// when it runs out. 0 = 5m.
	Timeout time.Duration
	// RecipientRate is how many recipients one client address (IPv4, or IPv6 /64) may
	// name per window on this node, counted at every RCPT for our domains; over it a
	// RCPT is answered 452 4.7.1 and the sender retries later. Zero = 600 a minute,
	// bursts of 600: a provider's outbound host, or an application under test sending
	// straight to us, may send a lot from one address, and this still cuts a flood to
	// a fraction of what the receiver takes. N < 0 = no limit.
	RecipientRate limit.Rate
	// ReceiveRate is how many messages one inbox may be sent per window on this node,
	// counted as they are stored; once an inbox has had them, RCPT to it is answered
	// 452 4.7.1 until its bucket refills, while other inboxes receive. Zero = 120 a
	// minute, bursts of 120: more than a test suite hammering one inbox needs, and a
	// flood cannot cycle an inbox's MaxMessages (200 in the store's default) in one
	// burst. N < 0 = no limit.
	ReceiveRate  limit.Rate
	TTL          time.Duration // how long a message lives; 0 = 1h
	StoreTimeout time.Duration // how long a store write may take before 451; 0 = 15s
	TLS          *tls.Config   // offered with STARTTLS; nil = no STARTTLS
	// Namespaces applies the teams' TTL and limits to their addresses and records
	// their mail in the store's activity (namespaces.go); nil = no namespaces.
	Namespaces namespaceStore
	// Verifier tags each message with SPF, DKIM and DMARC verdicts and prepends its
	// Authentication-Results header; nil = no verification, verdicts "none".
	Verifier verifier
	// Options are the connection limits, drain, proxies and metrics every mail
	// listener has, with two differences: sessions over MaxConnections wait in the
	// backlog rather than being refused, and CommandRate and LoginFailures do not
	// apply (no login here; MaxStalledCommands and RecipientRate pace a sender). A
	// trusted proxy's client is also the one SPF and the trace header see, and
	// MaxConnectionsPerIP keeps one sender from holding every one of MaxConnections.
	limit.Options
}

// verifier is what the receiver needs of mailauth.Verifier.
type verifier interface {
	Verify(ctx context.Context, in mailauth.Input) mailauth.Result
}

// store is what the receiver needs of storage.Store.
type store interface {
	Put(ctx context.Context, msgs ...*storage.Message) error
	// Settings and FaultAttempt apply an inbox's faults (faults.go).
	Settings(ctx context.Context, inbox string) (storage.InboxSettings, error)
	FaultAttempt(ctx context.Context, inbox string, fault int) (int, error)
}

// Server receives mail for Options.Domains into a store.
type Server struct {
	opts    Options
	store   store
	logger  *slog.Logger
	now     func() time.Time
	metrics metrics
	// Token buckets by client address (RecipientRate) and by inbox (ReceiveRate).
	clients *limit.Buckets[netip.Addr]
	inboxes *limit.Buckets[string]
	conns   *limit.Conns // MaxConnectionsPerIP
}

// Reasons of mayfly_smtp_rejected_total.
const (
	rejectTooManyRecipients = "too_many_recipients" // over MaxRecipients in one message
	rejectRecipientRate     = "recipient_rate"      // a client address over RecipientRate
	rejectReceiveRate       = "receive_rate"        // an inbox over ReceiveRate
	rejectConnections       = "connections"         // a client over MaxConnectionsPerIP, refused a session
	rejectStore             = "store"               // the inbox's settings (its faults) could not be read or counted
)

type metrics struct {
	messages   *prometheus.CounterVec // by result: stored, failed
	deliveries prometheus.Counter     // one per inbox a message was stored in
	rejected   *prometheus.CounterVec // recipients refused by reason
	bytes      prometheus.Counter
	faults     *prometheus.CounterVec // by stage and class (faults.go)
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		messages: limit.CounterVec(nil, "mayfly_smtp_messages_total", "result", limit.Series{
			Help: "Messages at the end of DATA, by result: stored (250) or failed (451).", Values: []string{"stored", "failed"},
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_smtp_deliveries_total", Help: "Inbox deliveries stored: a message to three inboxes counts three.",
		}),
		rejected: limit.CounterVec(nil, "mayfly_smtp_rejected_total", "reason", limit.Series{
			Help:   "Recipients refused by our checks, by reason: too_many_recipients (in one message), recipient_rate (a client address over its rate), receive_rate (an inbox over its rate), store (451 4.3.0: the inbox's settings could not be read); and connections refused because their client had MaxConnectionsPerIP open (reason connections). Foreign domains and oversized DATA are refused inside go-guerrilla and not counted.",
			Values: []string{rejectTooManyRecipients, rejectRecipientRate, rejectReceiveRate, rejectConnections, rejectStore},
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_smtp_stored_bytes_total", Help: "Bytes of messages stored, trace header included, once per message.",
		}),
		faults: newFaultsMetric(),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.deliveries, m.rejected, m.bytes, m.faults)
	}
	return m
}

// New returns a receiver; Run serves it.
func New(opts Options, st store, logger *slog.Logger) *Server {
	limit.Default(&opts.MaxMessageSize, 10<<20)
	limit.Default(&opts.MaxRecipients, 100)
	limit.DefaultIfZero(&opts.MaxStalledCommands, 50)
	limit.Default(&opts.Timeout, 5*time.Minute)
	limit.Default(&opts.TTL, time.Hour)
	limit.Default(&opts.StoreTimeout, 15*time.Second)
	limit.DefaultIfZero(&opts.RecipientRate, limit.Rate{N: 600, Per: time.Minute})
	limit.DefaultIfZero(&opts.ReceiveRate, limit.Rate{N: 120, Per: time.Minute})
	opts.Defaults()
	return &Server{
		opts:    opts,
		store:   st,
		logger:  logger.With("proto", "smtp"),
		now:     time.Now,
		metrics: newMetrics(opts.Metrics),
		clients: limit.NewBuckets[netip.Addr](opts.RecipientRate),
		inboxes: limit.NewBuckets[string](opts.ReceiveRate),
		conns:   limit.NewConns(opts.MaxConnectionsPerIP),
	}
}

// Run listens on Options.Addr and serves until ctx ends, then lets the sessions in
// flight finish their current message, for at most Options.ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("smtp listen %s: %w", s.opts.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener of the caller's, which it closes.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// The PROXY header comes first, so that the limit, SPF and the trace header see
	// the client a trusted proxy relays rather than the proxy.
	refusal := fmt.Sprintf("421 4.7.0 %s too many connections from your address (MAYFLY_MAX_CONNECTIONS_PER_IP)\r\n", s.opts.Hostname)
	ln = s.opts.Front(s.conns, refusal, func() { s.metrics.rejected.WithLabelValues(rejectConnections).Inc() }).Wrap(ln, false)
	domains := make([]string, len(s.opts.Domains))
	for i, d := range s.opts.Domains {
		domains[i] = strings.ToLower(d)
	}
	maxStalled := max(s.opts.MaxStalledCommands, 0) // 0: no limit, in go-guerrilla's terms
	sc := guerrilla.ServerConfig{
		Hostname: s.opts.Hostname,
		// The listener is ours; its address only names the server in go-guerrilla.
		ListenInterface:    ln.Addr().String(),
		Listener:           ln,
		MaxStalledCommands: maxStalled,
		MaxSize:            s.opts.MaxMessageSize,
		// go-guerrilla takes whole seconds and sets one deadline per reply, which then
		// covers reading the next command or the whole DATA transfer.
		Timeout:    int(max(s.opts.Timeout/time.Second, 1)),
		MaxClients: s.opts.MaxConnections,
		IsEnabled:  true,
	}
	var (
		keyDir  string
		written *tls.Certificate
	)
	if s.opts.TLS != nil {
		var err error
		if written, err = currentCertificate(s.opts.TLS); err != nil {
			ln.Close()
			return fmt.Errorf("smtp tls: %w", err)
		}
		if keyDir, err = writeKeyPair("", written); err != nil {
			ln.Close()
			return fmt.Errorf("smtp tls: %w", err)
		}
		dir := keyDir
		defer removeKeyPair(dir)
		sc.TLS = guerrilla.ServerTLSConfig{
			StartTLSOn:     true,
			PublicKeyFile:  dir + "/cert.pem",
			PrivateKeyFile: dir + "/key.pem",
		}
	}
	glog := newGuerrillaLogger(s.logger)
	backends.Svc.SetMainlog(glog)
	g, err := guerrilla.New(&guerrilla.AppConfig{
		Servers:      []guerrilla.ServerConfig{sc},
		AllowedHosts: domains,
	}, &backend{s: s, stop: ctx.Done()}, glog)
	if err != nil {
		ln.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	if err := g.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("smtp serve %s: %w", ln.Addr(), err)
	}
	s.logger.Info("listening", "addr", ln.Addr().String(), "domains", strings.Join(domains, ","), "starttls", s.opts.TLS != nil)
	var watcher sync.WaitGroup
	if s.opts.TLS != nil && s.opts.TLS.GetConfigForClient != nil {
		watcher.Go(func() { s.followCertificate(ctx, g, sc, keyDir, written) })
	}
	<-ctx.Done()
	watcher.Wait()

	drained := make(chan struct{})
	go func() {
		defer close(drained)
		g.Shutdown()
	}()
	// go-guerrilla has no way to cut its sessions: past the timeout they are left to
	// their own Timeout.
	limit.Drain(drained, s.opts.ShutdownTimeout, s.logger, "sessions still open after the shutdown timeout", func() {})
	return nil
}

// backend is our go-guerrilla backend: no gateway, no worker pool, no processors. Each
// session's goroutine calls Process itself, so the path from the end of DATA to the
// 250 is the parse and one store write.
type backend struct {
	s    *Server
	stop <-chan struct{} // closed when the server shuts down: cuts a fault's delay short
}

var _ backends.Backend = (*backend)(nil)

// Refusals of ValidateRcpt: go-guerrilla replies with the code of its canned
// FailRcptCmd (guerrilla.go), a space, and the error's text.
var (
	errTooManyRecipients = errors.New("4.5.3 Too many recipients")
	errRecipientRate     = errors.New("4.7.1 too many recipients from your address (MAYFLY_RECIPIENT_RATE), slow down")
)

func errReceiveRate(inbox string) error {
	return fmt.Errorf("4.7.1 <%s> receives too much mail (MAYFLY_RECEIVE_RATE), try later", headerSafe(inbox))
}

// ValidateRcpt is called for each RCPT to one of our domains, the recipient last in
// e.RcptTo. Rate refusals are logged at Debug only: a flood would flood the log, and
// mayfly_smtp_rejected_total counts them.
func (b *backend) ValidateRcpt(e *mail.Envelope) backends.RcptError {
	s := b.s
	// go-guerrilla's own check lets one recipient too many through.
	if len(e.RcptTo) > s.opts.MaxRecipients {
		s.metrics.rejected.WithLabelValues(rejectTooManyRecipients).Inc()
		return errTooManyRecipients
	}
	ip, _ := netip.ParseAddr(e.RemoteIP)
	if !s.clients.Allow(limit.KeyIP(ip)) {
		s.metrics.rejected.WithLabelValues(rejectRecipientRate).Inc()
		s.logger.Debug("recipient refused", "remote", e.RemoteIP, "reason", rejectRecipientRate)
		return errRecipientRate
	}
	rcpt := e.RcptTo[len(e.RcptTo)-1]
	inbox, _, err := storage.ParseAddress(rcpt.User + "@" + rcpt.Host)
	if err != nil {
		return nil
	}
	// Only peek: the inbox's token is taken when a message is stored (deliver), so a
	// RCPT that never reaches DATA costs the inbox nothing. Sessions that pass here
	// together may overshoot the rate by one message each.
	if s.inboxes.Empty(inbox) {
		s.metrics.rejected.WithLabelValues(rejectReceiveRate).Inc()
		s.logger.Debug("recipient refused", "remote", e.RemoteIP, "inbox", inbox, "reason", rejectReceiveRate)
		return errReceiveRate(inbox)
	}
	if err := b.namespaceAtRcpt(e, inbox); err != nil {
		return err
	}
	return b.faultsAtRcpt(e, inbox)
}

func (b *backend) Process(e *mail.Envelope) (result backends.Result) {
	// go-guerrilla runs sessions without a recover: a panic here, in our parsing of a
	// stranger's message, would take the whole process down with every session in it.
	defer func() {
		if p := recover(); p != nil {
			b.s.logger.Error("panic delivering a message", "remote", e.RemoteIP, "err", p, "stack", string(debug.Stack()))
			b.s.metrics.messages.WithLabelValues("failed").Inc()
			result = backends.NewResult("451 4.3.0 Error: internal error, try again later")
		}
	}()
	if reply := b.faultsAtData(e); reply != "" {
		return backends.NewResult(reply)
	}
	return backends.NewResult(b.s.deliver(e))
}

func (b *backend) Initialize(backends.BackendConfig) error { return nil }
func (b *backend) Reinitialize() error                     { return nil }
func (b *backend) Shutdown() error                         { return nil }
func (b *backend) Start() error                            { return nil }

// deliver stores one received message in each of its recipients' inboxes and returns
// the SMTP reply to the end of DATA.
func (s *Server) deliver(e *mail.Envelope) string {
	start := s.now()
	data := e.Data.Bytes()
	txID := storage.NewID(start)

	msgs := s.recipients(e, start)
	if len(msgs) == 0 {
		// Unreachable: go-guerrilla refuses DATA without an accepted recipient.
		return "554 5.5.1 Error: no valid recipients"
	}
	var forRcpt string
	if len(msgs) == 1 {
		forRcpt = msgs[0].Envelope.Recipients[0]
	}
	received := receivedHeader(e, s.opts.Hostname, txID, forRcpt, start)
	raw, auth, facts := s.compose(e, received, data)
	// raw is a copy: the message as read need not wait for the store write, which
	// may take StoreTimeout, so a session there holds its message once, not twice.
	// (go-guerrilla reads the session's next message into the same buffer when we
	// did not take it: nothing here keeps data past Process.)
	e.Data = bytes.Buffer{}
	sum := facts.Summary()
	for _, m := range msgs {
		m.Raw = raw
		m.Size = int64(len(raw))
		m.From, m.To, m.ReplyTo, m.Subject, m.Date, m.HasAttachments = sum.From, sum.To, sum.ReplyTo, sum.Subject, sum.Date, sum.HasAttachments
		m.Auth = auth
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StoreTimeout)
	defer cancel()
	if reply := s.namespacesAtData(ctx, e, msgs, int64(len(raw))); reply != "" {
		return reply
	}
	if err := s.store.Put(ctx, msgs...); err != nil {
		s.logger.Error("store", "remote", e.RemoteIP, "id", txID, "size", len(raw), "err", err)
		s.metrics.messages.WithLabelValues("failed").Inc()
		return "451 4.3.0 Error: temporary storage failure, try again later"
	}
	s.metrics.messages.WithLabelValues("stored").Inc()
	s.metrics.deliveries.Add(float64(len(msgs)))
	s.metrics.bytes.Add(float64(len(raw)))
	for _, m := range msgs {
		s.inboxes.Allow(m.Inbox)
		s.logger.Info("received", "remote", e.RemoteIP, "inbox", m.Inbox, "id", m.ID, "uid", m.UID, "size", m.Size, "dur", s.now().Sub(start))
	}
	s.received(ctx, e, msgs)
	return "250 2.0.0 OK: queued as " + txID
}

// compose returns the bytes to store: our Authentication-Results header when we verify,
// our trace header, then the message as it crossed the wire, less what mailparse says
// belongs to no header field at its start (an indented first line would otherwise
// continue our Received field, and take the sender's first field with it). One
// exact-size slice, shared by every inbox. facts is the message as mailparse reads it
// for the listing (ParseFacts), read once for the listing and DMARC's From.
func (s *Server) compose(e *mail.Envelope, received, data []byte) (raw []byte, auth storage.AuthResults, facts *mailparse.Message) {
	data = data[mailparse.HeaderStart(data):]
	if len(data) > 0 && (data[0] == ' ' || data[0] == '\t') {
		// No field at all, and a body that starts indented: the blank line that ends
		// our fields keeps it a body.
		received = append(received[:len(received):len(received)], "\r\n"...)
	}
	if s.opts.Verifier == nil {
		return wireBytes(received, data), storage.AuthResults{SPF: "none", DKIM: "none", DMARC: "none"}, mailparse.ParseFacts(data)
	}
	// RFC 8601 section 5: results claiming to be ours that arrive from outside are forged.
	msg := mailauth.StripOwn(data, s.opts.Hostname)
	from := ""
	if !e.MailFrom.NullPath {
		from = e.MailFrom.String()
	}
	facts = mailparse.ParseFacts(msg)
	res := s.opts.Verifier.Verify(context.Background(), mailauth.Input{
		RemoteIP: net.ParseIP(e.RemoteIP), Helo: e.Helo, MailFrom: from, Message: msg, Header: facts,
	})
	if res.Pending {
		// The DKIM check outlived the budget and still reads msg: go-guerrilla must
		// not read the next message into it.
		e.TakeData()
	}
	raw = make([]byte, 0, len(res.Header)+len(received)+len(msg))
	raw = append(append(append(raw, res.Header...), received...), msg...)
	return raw, res.Verdicts, facts
}

// recipients returns one message per distinct inbox among the envelope's recipients.
func (s *Server) recipients(e *mail.Envelope, now time.Time) []*storage.Message {
	msgs := make([]*storage.Message, 0, len(e.RcptTo))
	byInbox := make(map[string]*storage.Message, len(e.RcptTo))
	from := ""
	if !e.MailFrom.NullPath {
		from = e.MailFrom.String()
	}
	for _, rcpt := range e.RcptTo {
		addr := rcpt.User + "@" + rcpt.Host
		inbox, tag, err := storage.ParseAddress(addr)
		if err != nil {
			continue
		}
		if m := byInbox[inbox]; m != nil {
			m.Envelope.Recipients = append(m.Envelope.Recipients, addr)
			if m.Tag == "" {
				m.Tag = tag
			}
			continue
		}
		m := &storage.Message{
			Inbox: inbox,
			Tag:   tag,
			Envelope: storage.Envelope{
				From:       from,
				Recipients: []string{addr},
				RemoteIP:   e.RemoteIP,
				Helo:       e.Helo,
			},
			Received: now,
			Expires:  now.Add(s.opts.TTL),
		}
		byInbox[inbox] = m
		msgs = append(msgs, m)
	}
	return msgs
}

// wireBytes returns trace followed by the message as it crossed the wire (our
// go-guerrilla keeps its CRLFs and makes each bare LF one), in one exact-size slice
// that every inbox shares and the store keeps as is.
func wireBytes(trace, data []byte) []byte {
	raw := make([]byte, 0, len(trace)+len(data))
	return append(append(raw, trace...), data...)
}

// certificatePoll is how often the SMTP listener looks for a new certificate.
var certificatePoll = 5 * time.Second

// followCertificate keeps go-guerrilla's certificate files in step with the one the
// other listeners serve (which reloads without a restart): when it changes, the files
// are rewritten and go-guerrilla told to load them again, as it does on a config reload.
func (s *Server) followCertificate(ctx context.Context, g guerrilla.Guerrilla, sc guerrilla.ServerConfig, dir string, written *tls.Certificate) {
	tick := time.NewTicker(certificatePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cert, err := currentCertificate(s.opts.TLS)
		if err != nil || cert == written {
			continue
		}
		if _, err := writeKeyPair(dir, cert); err != nil {
			s.logger.Error("new tls certificate not written for SMTP; the previous one stays", "err", err)
			continue
		}
		written = cert
		g.Publish(guerrilla.EventConfigServerTLSConfig, &sc)
		s.logger.Info("tls certificate reloaded")
	}
}
