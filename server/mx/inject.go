package mx

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// InjectRefusal is why Inject refused a message: what the SMTP receiver would have
// answered with a 4xx or 5xx, as an error that names its setting.
type InjectRefusal struct {
	msg        string
	retryAfter time.Duration // 0: retrying does not help
}

func (e *InjectRefusal) Error() string { return e.msg }

// RetryAfter is how long until a retry may succeed; 0 when none will.
func (e *InjectRefusal) RetryAfter() time.Duration { return e.retryAfter }

// TooLarge reports whether the message is over MaxMessageSize.
func (e *InjectRefusal) TooLarge() bool { return e.retryAfter == 0 }

// Inject stores raw, one RFC 5322 message handed over HTTP rather than SMTP, in inbox
// as the receiver stores what it accepts: under the inbox's ReceiveRate and
// MaxMessageSize, with a trace header saying it came from remoteIP over HTTP, an
// Authentication-Results field saying so (SPF and DMARC none, DKIM verified from the
// content when a Verifier is set), the summary mailparse reads, and the TTL. The
// store's events carry it to waits, webhooks and IMAP like any other message. Per-inbox
// SMTP faults do not apply: there is no SMTP session to fail.
func (s *Server) Inject(ctx context.Context, inbox, remoteIP string, raw []byte) (*storage.Message, error) {
	if int64(len(raw)) > s.opts.MaxMessageSize {
		return nil, &InjectRefusal{msg: fmt.Sprintf("message over %d bytes (MAYFLY_MAX_MESSAGE_SIZE)", s.opts.MaxMessageSize)}
	}
	addr := inbox
	inbox, tag, err := storage.ParseAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("inject: %w", err)
	}
	if s.inboxes.Empty(inbox) {
		s.metrics.rejected.WithLabelValues(rejectReceiveRate).Inc()
		r := s.opts.ReceiveRate
		return nil, &InjectRefusal{msg: fmt.Sprintf("%s receives too much mail (MAYFLY_RECEIVE_RATE), try later", inbox), retryAfter: max(time.Second, r.Per/time.Duration(max(r.N, 1)))}
	}
	start := s.now()
	txID := storage.NewID(start)
	received := injectedHeader(remoteIP, s.opts.Hostname, txID, inbox, start)
	data := raw[mailparse.HeaderStart(raw):]
	if len(data) > 0 && (data[0] == ' ' || data[0] == '\t') {
		received = append(received, "\r\n"...) // as in compose: the body stays a body
	}
	var res mailauth.Result
	var facts *mailparse.Message
	if s.opts.Verifier == nil {
		res, facts = mailauth.Injected(s.opts.Hostname), mailparse.ParseFacts(data)
	} else {
		// RFC 8601 section 5: results claiming to be ours that arrive from outside are forged.
		data = mailauth.StripOwn(data, s.opts.Hostname)
		facts = mailparse.ParseFacts(data)
		res = s.opts.Verifier.Verify(ctx, mailauth.Input{RemoteIP: net.ParseIP(remoteIP), Message: data, Header: facts, Injected: true})
	}
	msg := make([]byte, 0, len(res.Header)+len(received)+len(data))
	msg = append(append(append(msg, res.Header...), received...), data...)
	sum := facts.Summary()
	m := &storage.Message{
		Inbox: inbox, Tag: tag,
		Envelope: storage.Envelope{Recipients: []string{addr}, RemoteIP: remoteIP, Helo: "HTTP"},
		Received: start, Expires: start.Add(s.opts.TTL),
		Raw: msg, Size: int64(len(msg)), Auth: res.Verdicts,
		From: sum.From, To: sum.To, ReplyTo: sum.ReplyTo, Subject: sum.Subject, Date: sum.Date, HasAttachments: sum.HasAttachments,
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	ns, err := s.namespaceOf(ctx, inbox)
	if err != nil {
		return nil, fmt.Errorf("inject: %w", err)
	}
	if ns != nil {
		m.Expires = start.Add(s.ttlOf(ns)) // the namespace's, as for mail over SMTP
	}
	if err := s.store.Put(ctx, m); err != nil {
		s.metrics.messages.WithLabelValues("failed").Inc()
		return nil, fmt.Errorf("inject: %w", err)
	}
	s.metrics.messages.WithLabelValues("stored").Inc()
	s.metrics.deliveries.Inc()
	s.metrics.bytes.Add(float64(len(msg)))
	s.inboxes.Allow(inbox)
	s.logger.Info("received", "remote", remoteIP, "inbox", inbox, "id", m.ID, "uid", m.UID, "size", m.Size, "via", "http", "dur", s.now().Sub(start))
	return m, nil
}

// injectedHeader is the trace field of a message injected over HTTP, shaped as RFC
// 5321 section 4.4 shapes ours for SMTP; "with HTTP" is no registered protocol
// keyword, but says plainly how the message came.
func injectedHeader(remoteIP, hostname, id, forRcpt string, at time.Time) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "Received: from HTTP client (["...)
	b = append(b, headerSafe(remoteIP)...)
	b = append(b, "])\r\n\tby "...)
	b = append(b, headerSafe(hostname)...)
	b = append(b, " (Mayfly) with HTTP id "...)
	b = append(b, id...)
	b = append(b, "\r\n\tfor <"...)
	b = append(b, headerSafe(forRcpt)...)
	b = append(b, ">; "...)
	b = at.AppendFormat(b, time.RFC1123Z)
	return append(b, "\r\n"...)
}
