package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/gorilla/websocket"
)

// The soak's clients of the views other than the REST API: the WebSocket watchers, and
// the IMAP and POP3 sessions. Each reports to the soak's tracker what it saw, and
// counts as an error whatever a correct server would not have done.

// Pauses after a session, so a server refusing every one is not asked in a hot loop,
// and so POP3 sessions, which take a millisecond, do not dominate the load.
const (
	failPause = time.Second
	pop3Pause = 250 * time.Millisecond
)

// insecureTLS is for STARTTLS to a Mayfly with its self-signed certificate: the soak
// tests the service, not its certificate.
var insecureTLS = &tls.Config{InsecureSkipVerify: true}

// dialWS opens box's WebSocket. A 429 for too many requests is waited out as in
// soak.do; one for too many connections (MAYFLY_HTTP_MAX_CONNECTIONS_PER_IP, each
// WebSocket is one) is not, but neither can it be told apart before the last attempt.
func (s *soak) dialWS(ctx context.Context, box soakInbox) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: s.cfg.Timeout, TLSClientConfig: insecureTLS}
	u := "ws" + strings.TrimPrefix(s.api, "http") + "/api/v1/inboxes/" + box.address + "/ws?token=" + url.QueryEscape(box.token)
	for attempt := 1; ; attempt++ {
		conn, resp, err := d.DialContext(ctx, u, nil)
		if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
			return conn, err
		}
		if resp.StatusCode != http.StatusTooManyRequests || attempt == maxThrottled {
			return nil, fmt.Errorf("%w: %s", err, resp.Status)
		}
		s.rec.count("api throttled")
		if !pause(ctx, time.Second) {
			return nil, ctx.Err()
		}
	}
}

// watch reads box's WebSocket events until ctx ends. A connection the server drops is
// an error; the watcher reconnects as the page does, and the events it missed meanwhile
// are counted as missed.
func (s *soak) watch(ctx context.Context, box soakInbox, conn *websocket.Conn) {
	for {
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		err := s.readEvents(box, conn)
		stop()
		_ = conn.Close()
		if ctx.Err() != nil {
			return
		}
		s.rec.fail("ws", fmt.Errorf("websocket of inbox %d: %w", box.index, err))
		for {
			if !pause(ctx, failPause) {
				return
			}
			if conn, err = s.dialWS(ctx, box); err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.rec.fail("ws", fmt.Errorf("redial websocket of inbox %d: %w", box.index, err))
		}
		s.rec.count("ws reconnects")
	}
}

func (s *soak) readEvents(box soakInbox, conn *websocket.Conn) error {
	for {
		var ev wsEvent
		if err := conn.ReadJSON(&ev); err != nil {
			return err
		}
		if err := s.tr.event(box.index, ev, time.Now()); err != nil {
			s.rec.fail("ws", err)
		}
	}
}

// pause waits d, or less if ctx ends first; it reports whether ctx goes on.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// imapLoop runs IMAP sessions one after another, each on the next inbox in turn.
func (s *soak) imapLoop(ctx context.Context, next *atomic.Int64) {
	for ctx.Err() == nil {
		box := s.inboxes[int(next.Add(1)-1)%len(s.inboxes)]
		err := s.imapSession(ctx, box)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.rec.fail("imap", fmt.Errorf("inbox %d: %w", box.index, err))
			pause(ctx, failPause)
		default:
			s.rec.count("imap sessions")
		}
	}
}

// imapSession logs in to box, selects INBOX, fetches its newest messages (at most
// five) in full, idles for IMAPIdle and logs out, as a mail client checking mail does.
func (s *soak) imapSession(ctx context.Context, box soakInbox) error {
	var idling atomic.Bool
	opts := &imapclient.Options{
		TLSConfig: insecureTLS,
		Dialer:    &net.Dialer{Timeout: s.cfg.Timeout},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil && idling.Load() {
					s.rec.count("imap idle pushes")
				}
			},
		},
	}
	dial := imapclient.DialInsecure
	if s.cfg.StartTLS {
		dial = imapclient.DialStartTLS
	}
	c, err := dial(s.cfg.IMAP, opts)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	// imapclient takes no context: closing the connection is what ends a command.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	if err := c.Login(box.address, box.token).Wait(); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	t0 := time.Now()
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return fmt.Errorf("select: %w", err)
	}
	t1 := time.Now()
	s.rec.observe("imap select", t1.Sub(t0))
	if want := s.tr.mustHave(box.index, t0, t1); int(sel.NumMessages) < want {
		return fmt.Errorf("select: %d messages, want %d or more (accepted, not expired)", sel.NumMessages, want)
	}
	if n := sel.NumMessages; n > 0 {
		var set imap.SeqSet
		set.AddRange(max(n, 5)-4, n)
		start := time.Now()
		msgs, err := c.Fetch(set, &imap.FetchOptions{
			UID:         true,
			Envelope:    true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			return fmt.Errorf("fetch %s: %w", set, err)
		}
		s.rec.observe("imap fetch", time.Since(start))
		for _, m := range msgs {
			if m.Envelope == nil || len(m.BodySection) != 1 {
				return fmt.Errorf("fetch %s: message %d without envelope or body", set, m.SeqNum)
			}
			if err := s.checkBody(box, m.Envelope.Subject, m.BodySection[0].Bytes); err != nil {
				return fmt.Errorf("fetch %s: message %d: %w", set, m.SeqNum, err)
			}
		}
	}
	if s.cfg.IMAPIdle > 0 {
		idling.Store(true)
		idle, err := c.Idle()
		if err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		pause(ctx, s.cfg.IMAPIdle)
		idling.Store(false)
		if err := idle.Close(); err != nil {
			return fmt.Errorf("done: %w", err)
		}
		if err := idle.Wait(); err != nil {
			return fmt.Errorf("idle: %w", err)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// checkBody checks that a message a view of box returned is one the generator sent to
// box, whole: its Subject names a message of box and it has the size sent.
func (s *soak) checkBody(box soakInbox, subject string, body []byte) error {
	seq, ok := parseSubject(subject)
	if !ok {
		return fmt.Errorf("subject %q is not one of ours", subject)
	}
	if int(seq%int64(len(s.inboxes))) != box.index {
		return fmt.Errorf("message %q belongs to another inbox", subject)
	}
	// The server prepends its own header fields, so the message is no smaller.
	if len(body) < s.cfg.Size*9/10 {
		return fmt.Errorf("message %q has %d bytes, sent about %d", subject, len(body), s.cfg.Size)
	}
	return nil
}

// pop3Loop runs POP3 sessions one after another, each on the next inbox in turn.
func (s *soak) pop3Loop(ctx context.Context, next *atomic.Int64) {
	for ctx.Err() == nil {
		box := s.inboxes[int(next.Add(1)-1)%len(s.inboxes)]
		err := s.pop3Session(ctx, box)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.rec.fail("pop3", fmt.Errorf("inbox %d: %w", box.index, err))
			pause(ctx, failPause)
		default:
			s.rec.count("pop3 sessions")
			pause(ctx, pop3Pause)
		}
	}
}

// pop3Session logs in to box, asks STAT, retrieves the newest message and quits
// without deleting anything (RFC 1939).
func (s *soak) pop3Session(ctx context.Context, box soakInbox) error {
	d := net.Dialer{Timeout: s.cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", s.cfg.POP3)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	var conn net.Conn = raw
	tp := textproto.NewConn(conn)
	// cmd sends line, unless empty, and reads a +OK reply. The line (a password, say)
	// is not part of the error.
	cmd := func(step, line string) (string, error) {
		if err := conn.SetDeadline(time.Now().Add(s.cfg.Timeout)); err != nil {
			return "", fmt.Errorf("%s: %w", step, err)
		}
		if line != "" {
			if err := tp.PrintfLine("%s", line); err != nil {
				return "", fmt.Errorf("%s: %w", step, err)
			}
		}
		reply, err := tp.ReadLine()
		if err != nil {
			return "", fmt.Errorf("%s: %w", step, err)
		}
		if !strings.HasPrefix(reply, "+OK") {
			return "", fmt.Errorf("%s: %q", step, reply)
		}
		return reply, nil
	}
	if _, err := cmd("greeting", ""); err != nil {
		return err
	}
	if s.cfg.StartTLS {
		// RFC 2595 section 4: after the +OK to STLS, the TLS negotiation.
		if _, err := cmd("stls", "STLS"); err != nil {
			return err
		}
		tc := tls.Client(raw, insecureTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("stls: %w", err)
		}
		conn, tp = tc, textproto.NewConn(tc)
	}
	if _, err := cmd("user", "USER "+box.address); err != nil {
		return err
	}
	// RFC 1939 section 4: the maildrop is the one at PASS.
	t0 := time.Now()
	if _, err := cmd("pass", "PASS "+box.token); err != nil {
		return err
	}
	t1 := time.Now()
	reply, err := cmd("stat", "STAT")
	if err != nil {
		return err
	}
	fields := strings.Fields(reply)
	n := -1
	if len(fields) >= 3 {
		n, _ = strconv.Atoi(fields[1])
	}
	if n < 0 {
		return fmt.Errorf("stat: %q", reply)
	}
	if want := s.tr.mustHave(box.index, t0, t1); n < want {
		return fmt.Errorf("stat: %d messages, want %d or more (accepted, not expired)", n, want)
	}
	if n > 0 {
		start := time.Now()
		if _, err := cmd("retr", "RETR "+strconv.Itoa(n)); err != nil {
			return err
		}
		msg, err := tp.ReadDotBytes()
		if err != nil {
			return fmt.Errorf("retr: %w", err)
		}
		s.rec.observe("pop3 retr", time.Since(start))
		// ReadDotBytes has turned CRLF into LF.
		_, subject, _ := bytes.Cut(msg, []byte("\nSubject: "))
		subject, _, _ = bytes.Cut(subject, []byte("\n"))
		if err := s.checkBody(box, string(subject), msg); err != nil {
			return fmt.Errorf("retr %d: %w", n, err)
		}
	}
	if _, err := cmd("quit", "QUIT"); err != nil {
		return err
	}
	return nil
}
