package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run; run checks it.
type Config struct {
	Addr     string        // host:port of the SMTP server
	N        int           // messages to attempt; ignored when Duration > 0
	Duration time.Duration // when > 0, start messages for this long instead of N
	Size     int           // approximate bytes per message, header block included
	Conns    int           // concurrent sessions
	PerConn  int           // messages per connection; 0: each session keeps one connection
	To       string        // recipient; the first "%d" becomes the inbox number
	Inboxes  int           // recipients are To with %d in [0, Inboxes), round-robin
	From     string        // envelope and header sender
	EHLO     string        // name sent in EHLO
	PID      int           // server process whose CPU and RSS to report; 0: none
	Timeout  time.Duration // deadline for dialing and for each command and its reply
	WaitAPI  string        // Mayfly's HTTP base URL: measure 250-to-wait latency instead of load
	DNSStub  string        // serve DNS for the sender's domain here instead of loading
	WSAPI    string        // Mayfly's HTTP base URL: measure 250-to-WebSocket-event latency instead of load
	// IdleSockets WebSockets (or event streams) are held open on other inboxes during
	// the WSAPI (SSEAPI) measure.
	IdleSockets int
	SSEAPI      string // Mayfly's HTTP base URL: measure 250-to-SSE-event latency, and the WebSocket's
	// WebhookAPI is Mayfly's HTTP base URL: measure 250-to-webhook-POST latency over
	// Subscribers webhooks, then, with Rate, a fan-out at Rate messages a second.
	WebhookAPI  string
	Subscribers int
	Rate        float64
}

func (c Config) check() error {
	switch {
	case c.Addr == "":
		return errors.New("check config: empty address")
	case c.Duration < 0:
		return errors.New("check config: negative duration")
	case c.Duration == 0 && c.N < 1:
		return errors.New("check config: need at least one message or a duration")
	case c.Size < 1 || c.Size > maxSize:
		return fmt.Errorf("check config: size %d out of range [1, %d]", c.Size, maxSize)
	case c.Conns < 1:
		return errors.New("check config: need at least one session")
	case c.PerConn < 0:
		return errors.New("check config: negative messages per connection")
	case c.Inboxes < 1:
		return errors.New("check config: need at least one inbox")
	case c.Timeout <= 0:
		return errors.New("check config: timeout must be positive")
	case c.PID < 0:
		return errors.New("check config: negative pid")
	}
	// These go into commands and headers verbatim: one CR or LF would desynchronize the
	// session, one space or bracket would make a malformed path.
	for _, f := range []struct{ name, v string }{{"recipient", c.To}, {"sender", c.From}, {"ehlo name", c.EHLO}} {
		if f.v == "" || strings.ContainsAny(f.v, " \t\r\n<>") {
			return fmt.Errorf("check config: %s %q is empty or has spaces, brackets or line breaks", f.name, f.v)
		}
	}
	return nil
}

// Report is what a run measured.
type Report struct {
	Addr        string
	Size        int // bytes of each message (header block and body), as the server should store it
	Conns       int
	PerConn     int
	Sent        int64            // messages the server accepted
	Bytes       int64            // their total size
	Errors      map[string]int64 // failed messages by reply code, or "net", "timeout", "proto"
	FirstError  string           // the first failure's text, to tell "net" causes apart
	Connections int64            // connections opened
	Wall        time.Duration
	Latency     Latency
	ClientCPU   time.Duration // this process's user+system CPU during the run
	Server      *ServerStats  // nil without Config.PID
	Interrupted bool          // the context ended before the run did
}

// Latency summarizes, over accepted messages, the time from the flush of the final
// ".\r\n" to the end of the server's reply: the server's cost of taking a message.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// ServerStats is what the server process used during the run.
type ServerStats struct {
	CPU time.Duration // user+system, in clockTicks resolution
	RSS int64         // bytes resident after the run
}

// ErrorCount sums r.Errors.
func (r Report) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// MsgPerSec is accepted messages per second of wall time.
func (r Report) MsgPerSec() float64 { return perSec(float64(r.Sent), r.Wall) }

// MBPerSec is accepted megabytes (10^6 bytes) per second of wall time.
func (r Report) MBPerSec() float64 { return perSec(float64(r.Bytes)/1e6, r.Wall) }

func perSec(v float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return v / d.Seconds()
}

// PerMsg divides d over the accepted messages; 0 when none was.
func (r Report) PerMsg(d time.Duration) time.Duration {
	if r.Sent == 0 {
		return 0
	}
	return d / time.Duration(r.Sent)
}

// run sends cfg's messages over cfg.Conns concurrent sessions and reports. It returns
// early, with what it has, when ctx ends; failed messages are counted, not returned:
// an error means the run could not start or the server process could not be measured.
func run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.check(); err != nil {
		return Report{}, err
	}
	tmpl := newTemplate(cfg, time.Now())
	rep := Report{Addr: cfg.Addr, Size: tmpl.size, Conns: cfg.Conns, PerConn: cfg.PerConn, Errors: map[string]int64{}}

	var serverBefore time.Duration
	if cfg.PID > 0 {
		var err error
		if serverBefore, err = readCPU(cfg.PID); err != nil {
			return Report{}, fmt.Errorf("measure server: %w", err)
		}
	}
	clientBefore := selfCPU()

	// stop ends the handing out of messages; only ctx aborts messages under way, so a
	// -duration run lets its last messages finish and closes its connections with QUIT.
	stop := ctx
	start := time.Now() // before -duration's clock starts: Wall spans all of it
	q := &queue{limit: -1}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		stop, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	} else {
		q.limit = int64(cfg.N)
	}
	q.done = stop.Done()
	// Each session appends its own samples, so none waits on a lock; this capacity
	// usually means no session grows its slice during a -n run.
	capacity := 4096
	if cfg.Duration == 0 {
		capacity = cfg.N/cfg.Conns + 1
	}

	sessions := make([]*session, cfg.Conns)
	var wg sync.WaitGroup
	for i := range sessions {
		s := newSession(&cfg, tmpl, capacity)
		sessions[i] = s
		wg.Go(func() { s.run(ctx, q) })
	}
	wg.Wait()
	rep.Wall = time.Since(start)
	rep.ClientCPU = selfCPU() - clientBefore
	rep.Interrupted = ctx.Err() != nil

	var total int
	for _, s := range sessions {
		total += len(s.samples)
	}
	samples := make([]time.Duration, 0, total)
	var firstErrAt time.Time
	for _, s := range sessions {
		samples = append(samples, s.samples...)
		rep.Sent += s.sent
		rep.Bytes += s.bytes
		rep.Connections += s.conns
		for k, v := range s.errs {
			rep.Errors[k] += v
		}
		if s.firstErr != nil && (firstErrAt.IsZero() || s.firstErrAt.Before(firstErrAt)) {
			rep.FirstError, firstErrAt = s.firstErr.Error(), s.firstErrAt
		}
	}
	slices.Sort(samples)
	rep.Latency = Latency{
		P50: percentile(samples, 50),
		P90: percentile(samples, 90),
		P99: percentile(samples, 99),
		Max: percentile(samples, 100),
	}

	if cfg.PID > 0 {
		after, err := readCPU(cfg.PID)
		if err != nil {
			return rep, fmt.Errorf("measure server: %w", err)
		}
		rss, err := readRSS(cfg.PID)
		if err != nil {
			return rep, fmt.Errorf("measure server: %w", err)
		}
		rep.Server = &ServerStats{CPU: after - serverBefore, RSS: rss}
	}
	return rep, nil
}

// queue hands out message numbers. One shared counter is what makes -n exact however
// the sessions interleave, and what numbers Subjects and picks inboxes round-robin.
type queue struct {
	next  atomic.Int64
	limit int64 // numbers below it are handed out; negative: no limit
	done  <-chan struct{}
	// With every > 0, number n is handed out no earlier than start + n*every: an open
	// loop at a fixed rate, which catches up after a slow reply instead of slowing down.
	start time.Time
	every time.Duration
}

func (q *queue) take() (int64, bool) {
	select {
	case <-q.done:
		return 0, false
	default:
	}
	seq := q.next.Add(1) - 1
	if q.limit >= 0 && seq >= q.limit {
		return 0, false
	}
	if q.every > 0 {
		if wait := time.Until(q.start.Add(time.Duration(seq) * q.every)); wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-q.done:
				return 0, false
			case <-t.C:
			}
		}
	}
	return seq, true
}

var (
	dataCmd = []byte("DATA\r\n")
	quitCmd = []byte("QUIT\r\n")

	errMalformed = errors.New("malformed reply")
)

// replyError is a reply whose class was not the one the step expects.
type replyError struct {
	step string
	code int
}

func (e *replyError) Error() string { return fmt.Sprintf("%s: unexpected reply %d", e.step, e.code) }

// session is one SMTP client goroutine. Its reader, writer and header buffer live
// across connections, so a new connection allocates only what net.Dial does.
type session struct {
	cfg    *Config
	t      *template
	dialer net.Dialer
	conn   net.Conn
	unhook func() bool // stops the interrupt hook of conn
	onConn int         // messages attempted on conn
	r      *bufio.Reader
	w      *bufio.Writer
	hdr    []byte
	// accepted, when set, is told of each message the server took, as its 250 arrives.
	accepted func(seq int64, at time.Time)

	// Results, read by run once the session has ended.
	samples    []time.Duration
	sent       int64
	bytes      int64
	conns      int64
	errs       map[string]int64
	firstErr   error
	firstErrAt time.Time
}

func newSession(cfg *Config, t *template, capacity int) *session {
	return &session{
		cfg:     cfg,
		t:       t,
		dialer:  net.Dialer{Timeout: cfg.Timeout},
		r:       bufio.NewReaderSize(nil, 4<<10),
		w:       bufio.NewWriterSize(nil, 32<<10),
		hdr:     make([]byte, 0, 512),
		samples: make([]time.Duration, 0, capacity),
		errs:    map[string]int64{},
	}
}

func (s *session) run(ctx context.Context, q *queue) {
	defer func() { s.hangUp(ctx.Err() == nil) }()
	for {
		if s.conn != nil && s.cfg.PerConn > 0 && s.onConn >= s.cfg.PerConn {
			s.hangUp(true)
		}
		seq, ok := q.take()
		if !ok {
			return
		}
		err := s.deliver(ctx, seq)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return // interrupted: the failure is ours, not the server's
		}
		s.fail(err)
	}
}

// deliver sends message seq, on a new connection if the session has none.
func (s *session) deliver(ctx context.Context, seq int64) error {
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	s.onConn++
	inbox := int(seq % int64(len(s.t.rcptCmds)))
	// After a 250 to the end of data the session is back in its initial state (RFC 5321
	// section 4.1.1.4), so the next MAIL needs no RSET.
	if err := s.exchange("mail", s.t.mailCmd, 2); err != nil {
		return err
	}
	if err := s.exchange("rcpt", s.t.rcptCmds[inbox], 2); err != nil {
		return err
	}
	if err := s.exchange("data", dataCmd, 3); err != nil {
		return err
	}
	s.hdr = s.t.appendHeader(s.hdr[:0], seq, inbox, time.Now())
	if err := s.conn.SetDeadline(time.Now().Add(s.cfg.Timeout)); err != nil {
		return fmt.Errorf("send message: %w", err)
	}
	// bufio.Writer errors are sticky, so Flush reports a failed Write.
	_, _ = s.w.Write(s.hdr)
	_, _ = s.w.Write(s.t.wire)
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("send message: %w", err)
	}
	start := time.Now()
	code, err := readReply(s.r)
	latency := time.Since(start)
	if err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	if code/100 != 2 {
		return &replyError{step: "end of data", code: code}
	}
	if s.accepted != nil {
		s.accepted(seq, start.Add(latency))
	}
	s.samples = append(s.samples, latency)
	s.sent++
	s.bytes += int64(len(s.hdr) + len(s.t.body))
	return nil
}

func (s *session) dial(ctx context.Context) error {
	conn, err := s.dialer.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	s.conns++
	s.conn, s.onConn = conn, 0
	// Closing the connection is what unblocks a read or write in progress when the run
	// is interrupted; a deadline in the past would be overwritten by the next step's.
	s.unhook = context.AfterFunc(ctx, func() { _ = conn.Close() })
	s.r.Reset(conn)
	s.w.Reset(conn)
	if err := s.exchange("greeting", nil, 2); err != nil {
		return err
	}
	return s.exchange("ehlo", s.t.ehloCmd, 2)
}

// hangUp closes the session's connection, if any, after a QUIT when polite. A failed
// QUIT is not counted: the message before it has been counted already.
func (s *session) hangUp(polite bool) {
	if s.conn == nil {
		return
	}
	if polite {
		// Waiting for the 221 (RFC 5321 section 4.1.1.10) lets the server close first, as
		// a real client would, instead of seeing a reset.
		_ = s.exchange("quit", quitCmd, 2)
	}
	s.unhook()
	_ = s.conn.Close()
	s.conn = nil
}

// fail counts err against the message it ended and drops the connection: the next
// message starts on a new one, as a real MTA would retry.
func (s *session) fail(err error) {
	var re *replyError
	isReply := errors.As(err, &re)
	key := "net"
	switch {
	case isReply:
		key = strconv.Itoa(re.code)
	case errors.Is(err, errMalformed):
		key = "proto"
	case errors.Is(err, os.ErrDeadlineExceeded):
		key = "timeout"
	}
	s.errs[key]++
	if s.firstErr == nil {
		s.firstErr, s.firstErrAt = err, time.Now()
	}
	// After a reply the server is waiting for a command, so QUIT is still understood.
	s.hangUp(isReply)
}

// exchange sends cmd, unless nil, and reads the reply, which must be of class (2 for
// 2xx, 3 for 3xx).
func (s *session) exchange(step string, cmd []byte, class int) error {
	if err := s.conn.SetDeadline(time.Now().Add(s.cfg.Timeout)); err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	if cmd != nil {
		_, _ = s.w.Write(cmd)
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
	}
	code, err := readReply(s.r)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	if code/100 != class {
		return &replyError{step: step, code: code}
	}
	return nil
}

// readReply reads one reply, which may span lines "250-..." up to "250 ..." (RFC 5321
// section 4.2.1), and returns its code. It reads lines in place, without allocating.
func readReply(r *bufio.Reader) (int, error) {
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, fmt.Errorf("%w: line longer than %d bytes", errMalformed, r.Size())
		}
		if err != nil {
			return 0, err
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) < 3 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
			return 0, fmt.Errorf("%w: %q", errMalformed, line)
		}
		code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		switch {
		case len(line) == 3 || line[3] == ' ':
			return code, nil
		case line[3] != '-':
			return 0, fmt.Errorf("%w: %q", errMalformed, line)
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
