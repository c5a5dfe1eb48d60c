package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

const (
	// maxLoginFailures is how many wrong passwords one connection may try. Tokens are
	// 128 random bits, so this is no defence of theirs; it keeps a guessing client
	// paying a connection, and its log, per few guesses of the admin key.
	maxLoginFailures = 3
	// maxBadCommands is how many unknown, malformed or ill-timed commands a connection
	// may send before it is closed: no client errs that often, a confused or hostile one does.
	maxBadCommands = 20
	// handshakeTimeout bounds a TLS handshake, which needs no thought from a person.
	handshakeTimeout = time.Minute
	// goodbyeTimeout bounds the last line written to a client on the way out.
	goodbyeTimeout = time.Second
)

// state is where a session is in RFC 1939's life cycle. UPDATE has no state of its own:
// it is the QUIT of TRANSACTION.
type state uint8

const (
	authorization state = 1 << iota
	transaction
)

// handler is one command: the states it is allowed in, its number of arguments
// (maxArgs -1: any), and what it does. fn returns false when the connection is to close.
type handler struct {
	states           state
	minArgs, maxArgs int
	fn               func(*session, command) bool
}

// commands are the commands this server knows; anything else is unknown.
var commands = map[string]handler{
	"CAPA": {authorization | transaction, 0, 0, (*session).capa},
	"QUIT": {authorization | transaction, 0, 0, (*session).quit},
	"STLS": {authorization, 0, 0, (*session).stls},
	"USER": {authorization, 1, 1, (*session).userCmd},
	"PASS": {authorization, 1, -1, (*session).pass}, // the password is the rest of the line
	"AUTH": {authorization, 0, 2, (*session).auth},
	"STAT": {transaction, 0, 0, (*session).stat},
	"LIST": {transaction, 0, 1, (*session).list},
	"UIDL": {transaction, 0, 1, (*session).uidl},
	"RETR": {transaction, 1, 1, (*session).retr},
	"TOP":  {transaction, 2, 2, (*session).top},
	"DELE": {transaction, 1, 1, (*session).dele},
	"RSET": {transaction, 0, 0, (*session).rset},
	"NOOP": {transaction, 0, 0, (*session).noop},
}

var (
	errLineTooLong = errors.New("line too long")
	errClosing     = errors.New("server shutting down")
)

// session is one connection. Only its own goroutine touches it.
type session struct {
	srv      *Server
	tr       *tracker
	ctx      context.Context // for store calls
	raw      net.Conn        // the TCP connection: deadlines and Close
	r        *bufio.Reader   // from raw, or from TLS over it
	w        *bufio.Writer
	log      *slog.Logger
	secure   bool // TLS, implicit or after STLS
	loopback bool

	state    state
	user     string // given by USER, for the PASS right after it
	inbox    string
	msgs     []message    // the maildrop at login, oldest first
	failures int          // failed logins
	bad      int          // bad commands
	rate     *limit.Pacer // Options.CommandRate; nil = no limit
	// revoked is set when the namespace key the session logged in with stops opening
	// its namespace (gate.Watch): the next command is refused and the session ends.
	revoked atomic.Bool
}

// message is one message of the maildrop snapshot.
type message struct {
	id      string
	size    int64 // octets as RETR sends them, once exact; the stored size before
	exact   bool
	seen    bool
	deleted bool
}

// serveConn runs one session until the client quits or goes, or the server shuts down.
func (s *Server) serveConn(ctx context.Context, tr *tracker, c net.Conn, implicitTLS bool) {
	s.metrics.sessions.Inc()
	defer s.metrics.sessions.Dec()
	defer c.Close()
	// The session's own context ends its gate.Watch with it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ss := &session{
		srv:      s,
		tr:       tr,
		ctx:      ctx,
		raw:      c,
		log:      s.logger.With("remote", c.RemoteAddr().String()),
		loopback: s.isLoopback(c.RemoteAddr()),
		state:    authorization,
		rate:     s.opts.CommandRate.Pacer(s.opts.Timeout),
	}
	// A panic here is a bug of ours; it must cost one connection, not the process.
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("panic in session", "err", p, "stack", string(debug.Stack()))
		}
	}()
	ss.log.Debug("connected", "tls", implicitTLS)
	if implicitTLS {
		if !ss.startTLS() {
			return
		}
	} else {
		ss.r = bufio.NewReaderSize(c, 4096)
		ss.w = bufio.NewWriterSize(c, 16<<10)
	}
	ss.raw.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
	// No APOP timestamp: APOP rests on MD5, and TLS protects the password better.
	ss.reply("+OK " + s.opts.Hostname + " Mayfly POP3 ready")
	for {
		// RFC 2449 PIPELINING: answers to commands already read go out together.
		if ss.r.Buffered() == 0 && !ss.flush() {
			return
		}
		line, err := ss.readLine()
		if err != nil {
			ss.readFailed(err)
			return
		}
		ss.raw.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
		if !ss.handle(line) {
			ss.flush()
			return
		}
	}
}

// timeout is how long the client has for its next line, from the moment the server
// waits for it to the line's end: a deadline per line, so that a line sent a byte at a
// time ends there too.
func (ss *session) timeout() time.Duration {
	if ss.state == authorization {
		return min(ss.srv.opts.Timeout, ss.srv.loginTimeout)
	}
	return ss.srv.opts.Timeout
}

// arm sets the read deadline for the next wait on the client, unless the server is
// shutting down, whose deadline in the past it must not overwrite.
func (ss *session) arm(deadline time.Time) bool {
	return ss.tr.Open(func() { ss.raw.SetReadDeadline(deadline) })
}

// readLine reads one line of at most maxAuthLine octets, without its line end. A bare
// LF is taken as a line end: it cannot be anything else in a command.
func (ss *session) readLine() (string, error) {
	if !ss.arm(time.Now().Add(ss.timeout())) {
		return "", errClosing
	}
	line, err := ss.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxAuthLine {
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

// readFailed says goodbye as the reason for a failed read deserves.
func (ss *session) readFailed(err error) {
	switch {
	case errors.Is(err, errLineTooLong):
		ss.goodbye("-ERR line too long")
	case ss.tr.Closing():
		// No QUIT, so RFC 1939 section 6: no UPDATE; marked messages stay.
		ss.goodbye("-ERR server shutting down")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// RFC 1939 section 3: autologout, without entering UPDATE.
		ss.goodbye("-ERR autologout: idle for too long")
	default:
		ss.log.Debug("connection ended", "err", err)
	}
}

func (ss *session) goodbye(text string) {
	ss.log.Debug("closing", "reason", text)
	ss.raw.SetWriteDeadline(time.Now().Add(goodbyeTimeout))
	ss.reply(text)
	ss.flush()
}

func (ss *session) reply(line string) {
	ss.w.WriteString(line)
	ss.w.WriteString("\r\n")
}

func (ss *session) flush() bool {
	if err := ss.w.Flush(); err != nil {
		ss.log.Debug("write", "err", err)
		return false
	}
	return true
}

// handle runs one command line and reports whether the session goes on.
func (ss *session) handle(line string) bool {
	if ss.revoked.Load() {
		ss.reply("-ERR [AUTH] " + gate.ErrRevoked.Error())
		return false
	}
	// Every line counts, bad ones too: those cost the client its connection only after
	// maxBadCommands, and a flood of them is still a flood. Past the rate the line
	// waits for its turn, and the next is not read before, so a pipelining client is
	// slowed; only clear abuse (limit.Pacer) is cut.
	if err := ss.rate.Wait(ss.ctx); err != nil {
		if !errors.Is(err, limit.ErrTooFast) {
			ss.reply("-ERR server shutting down")
			return false
		}
		ss.srv.metrics.limited.WithLabelValues(limitedCommands).Inc()
		ss.log.Warn("too many commands, closing the connection")
		ss.reply("-ERR [SYS/TEMP] too many commands (MAYFLY_COMMAND_RATE), slow down")
		return false
	}
	c, err := parseCommand(line)
	if c.name != "PASS" {
		ss.user = "" // RFC 1939 section 7: PASS only right after USER
	}
	if err != nil {
		ss.srv.metrics.commands.WithLabelValues("unknown").Inc()
		return ss.fail("-ERR " + err.Error())
	}
	h, ok := commands[c.name]
	if !ok {
		ss.srv.metrics.commands.WithLabelValues("unknown").Inc()
		return ss.fail("-ERR unknown command")
	}
	ss.srv.metrics.commands.WithLabelValues(c.name).Inc()
	var bad string
	switch {
	case len(line)+len("\r\n") > maxCommandLine && c.name != "AUTH":
		bad = "-ERR line too long"
	case h.states&ss.state == 0:
		bad = "-ERR " + c.name + " is not valid in this state"
	case len(c.args) < h.minArgs:
		bad = "-ERR " + c.name + ": missing argument"
	case h.maxArgs >= 0 && len(c.args) > h.maxArgs:
		bad = "-ERR " + c.name + ": too many arguments"
	}
	if bad != "" {
		ss.user = ""
		return ss.fail(bad)
	}
	return h.fn(ss, c)
}

// fail answers a bad command and closes the connection once there were too many.
func (ss *session) fail(text string) bool {
	ss.bad++
	if ss.bad > maxBadCommands {
		ss.reply("-ERR too many bad commands, closing")
		return false
	}
	ss.reply(text)
	return true
}

// plaintextOK says whether a password may be sent: over TLS, or from this machine.
func (ss *session) plaintextOK() bool {
	return ss.secure || ss.loopback
}

func (ss *session) stlsOK() bool {
	return ss.srv.opts.TLS != nil && !ss.secure
}

// refusePlaintext answers a password offered on a connection that could be overheard,
// with RFC 3206's [AUTH], as Dovecot does. USER and AUTH count the refusal in the
// metrics; a PASS after a refused USER is the same attempt.
func (ss *session) refusePlaintext() bool {
	ss.log.Debug("plaintext login refused")
	if ss.stlsOK() {
		return ss.fail("-ERR [AUTH] plaintext authentication is not allowed without TLS: use STLS first")
	}
	return ss.fail("-ERR [AUTH] plaintext authentication is not allowed without TLS: use POP3S")
}

func (ss *session) capa(command) bool {
	ss.reply("+OK capability list follows")
	for _, c := range []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} {
		ss.reply(c)
	}
	// RFC 2449 section 5: what AUTHORIZATION offers is announced in both states.
	if ss.plaintextOK() {
		ss.reply("USER")
		ss.reply("SASL PLAIN")
	}
	if ss.stlsOK() {
		ss.reply("STLS")
	}
	ss.reply("IMPLEMENTATION mayfly")
	ss.reply(".")
	return true
}

func (ss *session) stls(command) bool {
	if !ss.stlsOK() {
		if ss.secure {
			return ss.fail("-ERR already using TLS")
		}
		return ss.fail("-ERR STLS not available")
	}
	// Anything the client sent after STLS arrived in plaintext and could be an
	// attacker's (the STARTTLS injection of CVE-2011-0411): refuse it all.
	if ss.r.Buffered() > 0 {
		ss.reply("-ERR nothing may follow STLS before the TLS handshake")
		return false
	}
	ss.reply("+OK begin TLS negotiation")
	if !ss.flush() {
		return false
	}
	return ss.startTLS()
}

// startTLS runs the server side of a TLS handshake on the connection and forgets what
// was said before it (RFC 2595 section 4).
func (ss *session) startTLS() bool {
	if !ss.arm(time.Now().Add(min(ss.timeout(), handshakeTimeout))) {
		return false
	}
	ss.raw.SetWriteDeadline(time.Now().Add(min(ss.srv.opts.Timeout, handshakeTimeout)))
	tc := tls.Server(ss.raw, ss.srv.opts.TLS)
	if err := tc.HandshakeContext(ss.ctx); err != nil {
		ss.log.Debug("tls handshake", "err", err)
		return false
	}
	ss.secure = true
	if ss.r == nil {
		ss.r = bufio.NewReaderSize(tc, 4096)
		ss.w = bufio.NewWriterSize(tc, 16<<10)
	} else {
		ss.r.Reset(tc)
		ss.w.Reset(tc)
	}
	ss.user = ""
	return true
}

func (ss *session) userCmd(c command) bool {
	if !ss.plaintextOK() {
		ss.srv.metrics.logins.WithLabelValues(loginRefusedPlaintext).Inc()
		return ss.refusePlaintext()
	}
	ss.user = c.args[0]
	ss.reply("+OK send PASS")
	return true
}

// pass takes the password from the rest of the line: RFC 1939 section 7 lets a
// password hold spaces.
func (ss *session) pass(c command) bool {
	user := ss.user
	ss.user = ""
	if !ss.plaintextOK() {
		return ss.refusePlaintext()
	}
	if user == "" {
		return ss.fail("-ERR USER first")
	}
	return ss.login(user, c.rest)
}

// auth runs AUTH PLAIN (RFC 5034), with the initial response on the command line or
// after a "+ " continuation. AUTH alone lists the mechanisms, as many servers do for
// clients from before CAPA.
func (ss *session) auth(c command) bool {
	if len(c.args) == 0 {
		ss.reply("+OK mechanisms follow")
		if ss.plaintextOK() {
			ss.reply("PLAIN")
		}
		ss.reply(".")
		return true
	}
	if !strings.EqualFold(c.args[0], "PLAIN") {
		return ss.fail("-ERR unsupported authentication mechanism")
	}
	if !ss.plaintextOK() {
		ss.srv.metrics.logins.WithLabelValues(loginRefusedPlaintext).Inc()
		return ss.refusePlaintext()
	}
	var resp string
	if len(c.args) == 2 {
		resp = c.args[1]
		if resp == "=" { // RFC 5034 section 4: an empty initial response
			resp = ""
		}
	} else {
		ss.reply("+ ")
		if !ss.flush() {
			return false
		}
		line, err := ss.readLine()
		if err != nil {
			ss.readFailed(err)
			return false
		}
		resp = line
	}
	if resp == "*" {
		ss.reply("-ERR authentication cancelled")
		return true
	}
	user, pass, err := decodePlain(resp)
	if err != nil {
		ss.log.Debug("login failed", "err", err)
		return ss.loginFailed()
	}
	return ss.login(user, pass)
}

// login opens the inbox of user if pass opens it and takes the maildrop's snapshot.
func (ss *session) login(user, pass string) bool {
	remote := ss.raw.RemoteAddr()
	inbox, err := ss.srv.gate().Login(ss.ctx, ss.srv.logger, remote.String(), limit.Key(remote), user, pass)
	if errors.Is(err, gate.ErrThrottled) {
		return ss.loginThrottled()
	}
	if err != nil {
		return ss.loginFailed()
	}
	ctx, cancel := context.WithTimeout(ss.ctx, storeTimeout)
	defer cancel()
	list, err := ss.srv.store.List(ctx, inbox, storage.Page{})
	if err != nil {
		ss.srv.metrics.logins.WithLabelValues(loginUnavailable).Inc()
		ss.storeFailed("list", inbox, err)
		ss.reply("-ERR [SYS/TEMP] the mailbox is unavailable, try again later")
		return true
	}
	// List is newest first; message 1 is the oldest (ascending UID). The copies of
	// replies the inbox sent are kept with its mail but are not mail it received: IMAP
	// shows them in Sent, and a POP3 client, which has only the inbox, never sees them.
	ss.msgs = make([]message, 0, len(list))
	for _, m := range slices.Backward(list) {
		if !m.Sent {
			ss.msgs = append(ss.msgs, message{id: m.ID, size: m.Size, seen: m.Flags&storage.FlagSeen != 0})
		}
	}
	ss.inbox, ss.state = inbox, transaction
	ss.srv.gate().Watch(ss.ctx, pass, func() { ss.revoked.Store(true) })
	ss.log = ss.log.With("inbox", inbox)
	ss.srv.metrics.logins.WithLabelValues(loginOK).Inc()
	ss.log.Debug("login", "messages", len(ss.msgs))
	ss.reply("+OK " + strconv.Itoa(len(ss.msgs)) + " messages")
	return true
}

func (ss *session) loginFailed() bool {
	ss.srv.metrics.logins.WithLabelValues(loginFailed).Inc()
	ss.failures++
	if ss.failures >= maxLoginFailures {
		ss.reply("-ERR [AUTH] too many failed logins, closing")
		return false
	}
	ss.reply("-ERR [AUTH] invalid user name or password")
	return true
}

// loginThrottled refuses a login from a client address that has used up its
// LoginFailures, before the password is looked at: a guesser learns nothing, and the
// right password waits too. RFC 3206's [SYS/TEMP], not [AUTH]: the password may well be
// right, and a client told [AUTH] asks its user for another. It counts against the
// connection's maxLoginFailures as a wrong password does.
func (ss *session) loginThrottled() bool {
	ss.srv.metrics.limited.WithLabelValues(limitedLogins).Inc()
	ss.failures++
	ss.reply("-ERR [SYS/TEMP] " + gate.ErrThrottled.Error())
	return ss.failures < maxLoginFailures
}

// storeFailed logs a store error; the reply is the caller's.
func (ss *session) storeFailed(op, inbox string, err error) {
	if errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		ss.log.Warn("store unavailable", "op", op, "inbox", inbox, "err", err)
		return
	}
	ss.log.Error("store", "op", op, "inbox", inbox, "err", err)
}

// pick returns the message that arg numbers and its number, or answers -ERR and
// returns nil.
func (ss *session) pick(arg string) (*message, string) {
	n, ok := parseNumber(arg)
	if !ok || n < 1 || n > len(ss.msgs) {
		ss.reply("-ERR no such message")
		return nil, ""
	}
	m, num := &ss.msgs[n-1], strconv.Itoa(n)
	if m.deleted {
		ss.reply("-ERR message " + num + " already deleted")
		return nil, ""
	}
	return m, num
}

// fetch returns a message's bytes and learns its exact size, or answers -ERR and
// returns nil.
func (ss *session) fetch(m *message, n string) []byte {
	raw, err := ss.rawOf(m)
	if errors.Is(err, storage.ErrNotFound) {
		ss.reply("-ERR message " + n + " is gone: it expired or was deleted elsewhere")
		return nil
	}
	if err != nil {
		ss.reply("-ERR [SYS/TEMP] the mailbox is unavailable, try again later")
		return nil
	}
	if !m.exact {
		m.size, m.exact = wireSize(raw), true
	}
	return raw
}

// learnSize makes m's size exact, or answers -ERR and returns false. The store knows
// the size as stored; what RETR sends differs when a message has bare LFs, which only
// reading it tells. A message gone since login keeps its stored size: RETR says the rest.
func (ss *session) learnSize(m *message) bool {
	if m.exact {
		return true
	}
	raw, err := ss.rawOf(m)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		ss.reply("-ERR [SYS/TEMP] the mailbox is unavailable, try again later")
		return false
	default:
		m.size = wireSize(raw)
	}
	m.exact = true
	return true
}

// sizeAll makes the size of every message not marked deleted exact, or answers -ERR
// and returns false.
func (ss *session) sizeAll() bool {
	for i := range ss.msgs {
		if m := &ss.msgs[i]; !m.deleted && !ss.learnSize(m) {
			return false
		}
	}
	return true
}

// rawOf returns the bytes of m from the store, and logs a failure other than
// storage.ErrNotFound.
func (ss *session) rawOf(m *message) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ss.ctx, storeTimeout)
	defer cancel()
	raw, err := ss.srv.store.Raw(ctx, ss.inbox, m.id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		ss.storeFailed("raw", ss.inbox, err)
	}
	return raw, err
}

// totals returns the number and octets of the messages not marked deleted.
func (ss *session) totals() (n int, size int64) {
	for _, m := range ss.msgs {
		if !m.deleted {
			n++
			size += m.size
		}
	}
	return n, size
}

func (ss *session) stat(command) bool {
	if !ss.sizeAll() {
		return true
	}
	n, size := ss.totals()
	ss.reply("+OK " + strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
	return true
}

func (ss *session) list(c command) bool {
	if len(c.args) == 1 {
		m, n := ss.pick(c.args[0])
		if m == nil || !ss.learnSize(m) {
			return true
		}
		ss.reply("+OK " + n + " " + strconv.FormatInt(m.size, 10))
		return true
	}
	if !ss.sizeAll() {
		return true
	}
	n, size := ss.totals()
	ss.reply("+OK " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
	for i, m := range ss.msgs {
		if !m.deleted {
			ss.reply(strconv.Itoa(i+1) + " " + strconv.FormatInt(m.size, 10))
		}
	}
	ss.reply(".")
	return true
}

// uidl answers the message ID, so a client that leaves mail on the server recognises it
// in the next session (RFC 1939 section 7): unique for good, where the store's UID is
// unique only while the inbox's UID state lives (24 hours after its last message).
func (ss *session) uidl(c command) bool {
	if len(c.args) == 1 {
		if m, n := ss.pick(c.args[0]); m != nil {
			ss.reply("+OK " + n + " " + m.id)
		}
		return true
	}
	ss.reply("+OK unique-id listing follows")
	for i, m := range ss.msgs {
		if !m.deleted {
			ss.reply(strconv.Itoa(i+1) + " " + m.id)
		}
	}
	ss.reply(".")
	return true
}

// retr sends a message and then marks it \Seen, so the page and IMAP show it as read,
// as they would had it been read there. TOP does not: it is a peek.
func (ss *session) retr(c command) bool {
	m, n := ss.pick(c.args[0])
	if m == nil {
		return true
	}
	raw := ss.fetch(m, n)
	if raw == nil {
		return true
	}
	ss.reply("+OK " + strconv.FormatInt(m.size, 10) + " octets")
	ss.srv.metrics.sent.Add(float64(writeMessage(ss.w, raw, 0, -1)))
	if m.seen {
		return true
	}
	// The message first, then the store write, not the other way round.
	if !ss.flush() {
		return false
	}
	ctx, cancel := context.WithTimeout(ss.ctx, storeTimeout)
	defer cancel()
	if _, err := ss.srv.store.SetFlags(ctx, ss.inbox, m.id, storage.FlagSeen, 0); err != nil && !errors.Is(err, storage.ErrNotFound) {
		ss.storeFailed("set seen", ss.inbox, err)
		return true
	}
	m.seen = true
	return true
}

func (ss *session) top(c command) bool {
	m, n := ss.pick(c.args[0])
	if m == nil {
		return true
	}
	lines, ok := parseNumber(c.args[1])
	if !ok {
		ss.reply("-ERR invalid number of lines")
		return true
	}
	raw := ss.fetch(m, n)
	if raw == nil {
		return true
	}
	ss.reply("+OK top of message follows")
	ss.srv.metrics.sent.Add(float64(writeMessage(ss.w, raw, mailparse.Parse(raw).HeaderEnd, lines)))
	return true
}

func (ss *session) dele(c command) bool {
	if m, n := ss.pick(c.args[0]); m != nil {
		m.deleted = true
		ss.reply("+OK message " + n + " deleted")
	}
	return true
}

func (ss *session) rset(command) bool {
	for i := range ss.msgs {
		ss.msgs[i].deleted = false
	}
	ss.reply("+OK maildrop has " + strconv.Itoa(len(ss.msgs)) + " messages")
	return true
}

func (ss *session) noop(command) bool {
	ss.reply("+OK")
	return true
}

// quit ends the session; after a login it is RFC 1939's UPDATE, and the messages marked
// deleted go from the store. One already gone (expired, or deleted over IMAP or the API)
// is what the client wanted anyway.
func (ss *session) quit(command) bool {
	if ss.state == authorization {
		ss.reply("+OK " + ss.srv.opts.Hostname + " Mayfly POP3 signing off")
		return false
	}
	failed, left := 0, 0
	for _, m := range ss.msgs {
		if !m.deleted {
			left++
			continue
		}
		ctx, cancel := context.WithTimeout(ss.ctx, storeTimeout)
		err := ss.srv.store.Delete(ctx, ss.inbox, m.id)
		cancel()
		switch {
		case err == nil:
			ss.srv.metrics.deleted.Inc()
			ss.log.Info("deleted", "id", m.id)
		case errors.Is(err, storage.ErrNotFound):
		default:
			failed++
			ss.storeFailed("delete", ss.inbox, err)
		}
	}
	if failed > 0 {
		// RFC 1939 section 6 has this text for it; [SYS/TEMP] says a retry may work.
		ss.reply("-ERR [SYS/TEMP] some deleted messages not removed")
		return false
	}
	ss.reply("+OK " + ss.srv.opts.Hostname + " Mayfly POP3 signing off (" + strconv.Itoa(left) + " messages left)")
	return false
}
