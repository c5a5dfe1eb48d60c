package submission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// backend makes a session per EHLO, for one listener's tracker.
type backend struct {
	s  *Server
	tr *tracker
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	remote := c.Conn().RemoteAddr()
	tc := rawConn(c.Conn())
	if tc != nil {
		tc.smtpConn = c
	}
	return &session{
		s:        b.s,
		tr:       b.tr,
		conn:     tc,
		remote:   remote.String(),
		client:   limit.Key(remote),
		tls:      isTLS,
		loopback: b.s.isLoopback(remote),
	}, nil
}

// session is one client between EHLO and QUIT (or STARTTLS, which starts another).
// go-smtp calls its methods from the connection's goroutine, one at a time; only
// Logout may come from elsewhere (Server.Close), and it touches only the tracker.
type session struct {
	s        *Server
	tr       *tracker
	conn     *trackedConn
	remote   string
	client   netip.Addr // what LoginFailures counts it under
	tls      bool
	loopback bool

	inbox string // after AUTH: the normalized address logged in as
	// revoked is set when the namespace key of the login stops opening its namespace
	// (gate.Watch): the next MAIL is refused and the login dropped.
	revoked atomic.Bool

	// The transaction: MAIL FROM as given, the recipients accepted, and the inbox's
	// correspondents, read once per transaction.
	from  string
	rcpts []string
	corr  map[string]bool
}

var _ smtp.AuthSession = (*session)(nil)

// SMTP replies of ours. RFC 4954 section 6 and RFC 3463 give the codes.
var (
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"}
	errAuthRequired       = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errShuttingDown       = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	errTemporary          = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
	errBadAddress         = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	// RFC 4954 section 6: 454 4.7.0 is a temporary authentication failure.
	errLoginsThrottled = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: gate.ErrThrottled.Error()}
)

// authAllowed says whether a password may cross this connection: over TLS, or from
// this machine.
func (ss *session) authAllowed() bool {
	return ss.tls || ss.loopback
}

// AuthMechanisms lists nothing on a connection where AUTH is not allowed yet, so a
// client's EHLO shows it must STARTTLS first (RFC 3207 section 4.2, RFC 4954 section 4).
func (ss *session) AuthMechanisms() []string {
	if !ss.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, "LOGIN"}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !ss.authAllowed() {
		ss.s.metrics.logins.WithLabelValues(loginRefusedPlaintext).Inc()
		return nil, errEncryptionRequired
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(ss.login), nil
	case "LOGIN":
		return &loginServer{auth: func(user, password string) error { return ss.login("", user, password) }}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// login checks user (an address of ours, tag allowed), password (its token or the
// admin key) and identity, which must be empty or the user: RFC 4616, an
// authorization identity other than the user would be acting as someone else, which
// nobody may. A client out of LoginFailures is refused before anything is checked.
func (ss *session) login(identity, user, password string) error {
	var inbox string
	err := ss.s.gate().Check(ss.ctx(), ss.s.logger, ss.remote, ss.client, func() bool {
		var ok bool
		inbox, ok = ss.s.gate().Inbox(ss.ctx(), user, password)
		return ok && (identity == "" || sameInbox(identity, user))
	})
	if errors.Is(err, gate.ErrThrottled) {
		ss.s.metrics.refused.WithLabelValues(refusedLogins).Inc()
		return errLoginsThrottled
	}
	if err != nil {
		ss.s.metrics.logins.WithLabelValues(loginFailed).Inc()
		return smtp.ErrAuthFailed
	}
	ss.s.metrics.logins.WithLabelValues(loginOK).Inc()
	ss.s.logger.Debug("login", "remote", ss.remote, "inbox", inbox)
	ss.inbox = inbox
	if ss.conn != nil {
		ss.conn.authed = true
		ss.s.gate().Watch(ss.conn.ctx, password, func() { ss.revoked.Store(true) })
	}
	return nil
}

// ctx ends when the connection closes, which ends a refused login's delay.
func (ss *session) ctx() context.Context {
	if ss.conn == nil {
		return context.Background()
	}
	return ss.conn.ctx
}

func sameInbox(a, b string) bool {
	ia, _, errA := storage.ParseAddress(a)
	ib, _, errB := storage.ParseAddress(b)
	return errA == nil && errB == nil && ia == ib
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.inbox == "" {
		return errAuthRequired
	}
	if ss.revoked.Load() {
		ss.inbox = ""
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: gate.ErrRevoked.Error()}
	}
	// RFC 6409 section 6.1: the submission server may insist the sender is the
	// user. A throwaway address sends as itself, with any of its tags.
	if inbox, _, err := storage.ParseAddress(from); err != nil || inbox != ss.inbox {
		ss.s.metrics.messages.WithLabelValues("smtp", resultSender).Inc()
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address <" + printable(from) + "> is not " + ss.inbox + " or one of its +tag forms"}
	}
	if !ss.tr.Begin(ss.conn) {
		return errShuttingDown
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if _, _, err := storage.ParseAddress(to); err != nil {
		return errBadAddress
	}
	if ss.corr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		corr, err := ss.s.correspondents(ctx, ss.inbox)
		if err != nil {
			ss.s.logger.Error("correspondents", "remote", ss.remote, "inbox", ss.inbox, "err", err)
			return errTemporary
		}
		ss.corr = corr
	}
	// A recipient named twice gets the message once, and counts once.
	if slices.ContainsFunc(ss.rcpts, func(r string) bool { return addressKey(r) == addressKey(to) }) {
		return nil
	}
	if len(ss.rcpts) >= ss.s.opts.MaxRecipients {
		// RFC 5321 section 4.5.3.1.10: 452 for too many recipients; the client may
		// send the rest in another transaction, where the send limits count them.
		ss.s.metrics.messages.WithLabelValues("smtp", resultTooManyRecipients).Inc()
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: fmt.Sprintf("Too many recipients: a reply goes to at most %d (MAYFLY_MAX_REPLY_RECIPIENTS)", ss.s.opts.MaxRecipients)}
	}
	if !ss.corr[addressKey(to)] {
		ss.s.metrics.messages.WithLabelValues("smtp", resultNotCorrespondent).Inc()
		ss.s.logger.Info("rejected", "remote", ss.remote, "inbox", ss.inbox, "reason", resultNotCorrespondent)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: printable(to) + " has not written to this inbox; a throwaway address may only reply"}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			ss.s.metrics.messages.WithLabelValues("smtp", resultTooLarge).Inc()
		}
		// go-smtp's own errors (552 too large, an aborted transfer) say it best.
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*storeTimeout)
	defer cancel()
	_, err = ss.s.submit(ctx, outgoing{via: "smtp", client: ss.client, inbox: ss.inbox, from: ss.from, to: ss.rcpts, raw: raw})
	return smtpError(err)
}

// smtpError chooses the reply to the end of DATA for an error of submit.
func smtpError(err error) error {
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return se
	case errors.Is(err, ErrSendLimit):
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: printable(err.Error())}
	case errors.Is(err, ErrTooLarge):
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too large"}
	case errors.Is(err, ErrNotCorrespondent):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: printable(err.Error())}
	case errors.Is(err, errSender):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: printable(err.Error())}
	case errors.Is(err, errMalformed):
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: printable(err.Error())}
	}
	return errTemporary
}

func (ss *session) Reset() {
	endTransaction(ss.tr, ss.conn)
	ss.from, ss.rcpts, ss.corr = "", nil, nil
}

// Logout reads no field the connection's goroutine writes: Server.Close calls it
// from another.
func (ss *session) Logout() error {
	endTransaction(ss.tr, ss.conn)
	return nil
}

// printable keeps a client's string fit for one line of a reply.
func printable(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// loginServer is the server side of the LOGIN mechanism (draft-murchison-sasl-login),
// which go-sasl offers only as a client: many clients (Outlook, older Thunderbird,
// curl) still use it.
type loginServer struct {
	auth func(user, password string) error
	user string
	step int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		// A client may send the user name as the initial response.
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.user, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}
