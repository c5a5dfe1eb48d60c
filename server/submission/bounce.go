package submission

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// bounce puts a delivery status notification (RFC 3464) for the failed recipients of
// job into the inbox that sent it: where its user reads mail, since the envelope
// sender is that very inbox. Its envelope sender is empty (RFC 5321 section 4.5.5),
// so nothing ever answers it.
func (s *Server) bounce(ctx context.Context, job *storage.Job, failed []failure, now time.Time) error {
	domain := storage.Domain(job.Inbox)
	from := "Mail Delivery System <MAILER-DAEMON@" + domain + ">"
	const subject = "Undelivered Mail Returned to Sender"
	raw := dsn(dsnInput{
		from: from, to: job.Inbox, subject: subject, reportingMTA: s.opts.Hostname,
		messageID: newMessageID(domain), arrival: job.Created, now: now,
		failed: failed, header: headerOf(job.Raw),
	})
	m := &storage.Message{
		Inbox:    job.Inbox,
		Envelope: storage.Envelope{Recipients: []string{job.Inbox}},
		From:     from,
		To:       []string{job.Inbox},
		Subject:  subject,
		Date:     now,
		Size:     int64(len(raw)),
		Received: now,
		Expires:  now.Add(s.opts.TTL),
		Auth:     storage.AuthResults{SPF: "none", DKIM: "none", DMARC: "none"},
		Raw:      raw,
	}
	if err := s.store.Put(ctx, m); err != nil {
		return err
	}
	s.metrics.dsns.Inc()
	s.logger.Info("bounce", "id", job.ID, "inbox", job.Inbox, "msg", m.ID, "rcpts", len(failed))
	return nil
}

type dsnInput struct {
	from, to, subject string
	reportingMTA      string
	messageID         string
	arrival, now      time.Time
	failed            []failure
	header            []byte // the original's header section, CRLF line ends
}

// dsn writes a multipart/report; report-type=delivery-status (RFC 3464, RFC 6522):
// a part for people, the machine-readable status per recipient, and the original's
// header (text/rfc822-headers), not its body: the sent copy is in the inbox already.
func dsn(in dsnInput) []byte {
	var rnd [12]byte
	rand.Read(rnd[:])
	boundary := "dsn-" + hex.EncodeToString(rnd[:])
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }

	w("From: %s", in.from)
	w("To: <%s>", in.to)
	w("Subject: %s", in.subject)
	w("Date: %s", in.now.Format(time.RFC1123Z))
	w("Message-ID: %s", in.messageID)
	w("Auto-Submitted: auto-replied") // RFC 3834 section 5
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;")
	w("\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated delivery status notification.")
	w("")

	w("--%s", boundary)
	w("Content-Type: text/plain; charset=us-ascii")
	w("Content-Description: Notification")
	w("")
	w("This is the mail system at %s.", in.reportingMTA)
	w("")
	w("Your message could not be delivered to the following recipients.")
	w("It will not be tried again.")
	w("")
	for _, f := range in.failed {
		w("<%s>: %s", asciiAddr(f.rcpt), explain(f.o))
	}
	w("")

	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("Content-Description: Delivery report")
	w("")
	w("Reporting-MTA: dns; %s", in.reportingMTA)
	if !in.arrival.IsZero() {
		w("Arrival-Date: %s", in.arrival.Format(time.RFC1123Z))
	}
	for _, f := range in.failed {
		w("")
		w("Final-Recipient: rfc822; %s", asciiAddr(f.rcpt))
		w("Action: failed")
		w("Status: %s", f.o.status)
		if f.o.remote != "" {
			w("Remote-MTA: dns; %s", diagText(f.o.remote))
		}
		if f.o.diag != "" {
			w("Diagnostic-Code: %s", f.o.diag)
		}
		w("Last-Attempt-Date: %s", in.now.Format(time.RFC1123Z))
	}
	w("")

	w("--%s", boundary)
	w("Content-Type: text/rfc822-headers")
	w("Content-Description: Undelivered message header")
	w("")
	b.Write(in.header)
	if !bytes.HasSuffix(in.header, []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	w("")
	w("--%s--", boundary)
	return b.Bytes()
}

// explain says in words why a recipient failed.
func explain(o outcome) string {
	_, text, _ := strings.Cut(o.diag, "; ")
	if o.remote != "" && strings.HasPrefix(o.diag, "smtp;") {
		return "host " + diagText(o.remote) + " said: " + text
	}
	return text
}

// asciiAddr keeps an address on its line: a DSN field is ASCII (RFC 3464 without
// RFC 6533) and must not be broken by a stray CR or LF.
func asciiAddr(s string) string {
	return diagText(s)
}
