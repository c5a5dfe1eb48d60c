package submission

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// The SMTP client that delivers is our own, on net/textproto: go-smtp's client can
// only STARTTLS by failing when the server does not offer it, and says EHLO as
// "localhost" when it does; opportunistic TLS (RFC 7435) with our own name and a
// result per recipient are the whole job here, so a small client fits better.

// outcome is what became of one recipient in one attempt.
type outcome struct {
	kind   outcomeKind
	status string // RFC 3463 enhanced status, e.g. "5.1.1"
	// diag explains a failure for the DSN: the remote's reply ("smtp; 550 5.1.1 no
	// such user"), or our own account of a failure with no reply ("x-mayfly; ...").
	diag   string
	remote string // the host that answered, if any
}

type outcomeKind uint8

const (
	delivered outcomeKind = iota + 1
	temporary
	permanent
)

// replyOutcome turns a server's refusal into an outcome.
func replyOutcome(code int, msg, remote string) outcome {
	o := outcome{kind: temporary, remote: remote}
	class := "4"
	if code >= 500 {
		o.kind, class = permanent, "5"
	}
	status, _ := enhancedCode(msg)
	if status == "" || status[:1] != class {
		status = class + ".0.0"
	}
	o.status = status
	o.diag = "smtp; " + strconv.Itoa(code) + " " + diagText(msg)
	return o
}

// localOutcome is a failure that no server answered for: DNS, a connection, TLS.
func localOutcome(kind outcomeKind, status, text, remote string) outcome {
	return outcome{kind: kind, status: status, diag: "x-mayfly; " + diagText(text), remote: remote}
}

// enhancedCode splits an RFC 2034 enhanced status code off the front of a reply's
// text, "5.1.1 no such user" -> "5.1.1", "no such user"; "" when there is none.
func enhancedCode(msg string) (code, rest string) {
	first, rest, _ := strings.Cut(msg, " ")
	parts := strings.Split(first, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return "", msg
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return "", msg
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return "", msg
			}
		}
	}
	return first, rest
}

// diagText makes a remote's (multi-line) reply one printable ASCII line of bounded
// length, fit for a DSN field.
func diagText(s string) string {
	if len(s) > 512 {
		s = s[:512]
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// replyError is a reply of the server other than the one wanted.
type replyError struct {
	code int
	msg  string
}

func (e *replyError) Error() string { return fmt.Sprintf("%d %s", e.code, diagText(e.msg)) }

// client is one SMTP connection to a remote server.
type client struct {
	conn    net.Conn
	text    *textproto.Conn
	ext     map[string]string // EHLO keywords, upper case, to their parameters
	tls     bool
	timeout time.Duration
}

func newClient(conn net.Conn, timeout time.Duration) *client {
	_, isTLS := conn.(*tls.Conn)
	return &client{conn: conn, text: textproto.NewConn(conn), tls: isTLS, timeout: timeout}
}

// read reads a reply, which must be of class expect (2 for any 2xx, 354...).
func (c *client) read(expect int) (int, string, error) {
	code, msg, err := c.text.ReadResponse(expect)
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code, te.Msg, &replyError{code: te.Code, msg: te.Msg}
	}
	return code, msg, err
}

// cmd sends a command and reads its reply within the command timeout.
func (c *client) cmd(expect int, format string, args ...any) (int, string, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	if err := c.text.PrintfLine(format, args...); err != nil {
		return 0, "", err
	}
	return c.read(expect)
}

// greet reads the greeting and says EHLO, or HELO to a server that knows no EHLO.
func (c *client) greet(hostname string) error {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	if _, _, err := c.read(220); err != nil {
		return err
	}
	return c.hello(hostname)
}

func (c *client) hello(hostname string) error {
	_, msg, err := c.cmd(250, "EHLO %s", hostname)
	var re *replyError
	if errors.As(err, &re) && (re.code == 500 || re.code == 502) {
		c.ext = map[string]string{}
		_, _, err = c.cmd(250, "HELO %s", hostname)
		return err
	}
	if err != nil {
		return err
	}
	c.ext = parseEHLO(msg)
	return nil
}

// parseEHLO reads the keywords of an EHLO reply (RFC 5321 section 4.1.1.1), its
// first line being the greeting.
func parseEHLO(msg string) map[string]string {
	ext := make(map[string]string)
	lines := strings.Split(msg, "\n")
	for _, line := range lines[1:] {
		kw, param, _ := strings.Cut(strings.TrimSpace(line), " ")
		if kw != "" {
			ext[strings.ToUpper(kw)] = param
		}
	}
	return ext
}

func (c *client) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// maxSize returns the SIZE the server declared (RFC 1870), 0 when none.
func (c *client) maxSize() int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(c.ext["SIZE"]), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// startTLS upgrades the connection and says EHLO again, as RFC 3207 section 4.2
// requires: what the server offered in the clear is forgotten.
func (c *client) startTLS(ctx context.Context, cfg *tls.Config, hostname string) error {
	if _, _, err := c.cmd(220, "STARTTLS"); err != nil {
		return err
	}
	tc := tls.Client(c.conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return &tlsError{err}
	}
	c.conn, c.text, c.tls = tc, textproto.NewConn(tc), true
	return c.hello(hostname)
}

// tlsError is a failed TLS handshake: for opportunistic TLS, a reason to try the
// same server again in the clear.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// authPlain logs in with SASL PLAIN (RFC 4616) in one round trip.
func (c *client) authPlain(user, pass string) error {
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	_, _, err := c.cmd(235, "AUTH PLAIN %s", ir)
	return err
}

// data sends the message after DATA, dot-stuffed, and reads the reply to its end
// within 10 minutes (RFC 5321 section 4.5.3.2.6).
func (c *client) data(raw []byte) (int, string, error) {
	if _, _, err := c.cmd(354, "DATA"); err != nil {
		return 0, "", err
	}
	c.conn.SetDeadline(time.Now().Add(max(c.timeout, 10*time.Minute)))
	w := c.text.DotWriter()
	if _, err := w.Write(raw); err != nil {
		return 0, "", err
	}
	if err := w.Close(); err != nil {
		return 0, "", err
	}
	return c.read(250)
}

// quit says goodbye without waiting long: the message is already handed over.
func (c *client) quit() {
	c.timeout = min(c.timeout, 5*time.Second)
	c.cmd(221, "QUIT")
}
