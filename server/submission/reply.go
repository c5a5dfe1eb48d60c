package submission

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail" // writing the reply

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// Reply sends a reply from inbox to the sender of its message id, under the same
// policy, send limits, signing and queue as SMTP submission, and returns the sent
// copy (Raw nil). client is who asks, for the per-client send limit. text is the
// reply's plain text, above the quoted original; html, when not empty, makes the
// reply multipart/alternative with it. Errors wrap ErrNotCorrespondent,
// ErrTooManyRecipients, ErrSendLimit, ErrBareLineEnd or ErrTooLarge for a reply that
// will not be sent, and storage.ErrNotFound for a message that does not exist.
func (s *Server) Reply(ctx context.Context, client netip.Addr, inbox, id, text, html string) (*storage.Message, error) {
	inbox, _, err := storage.ParseAddress(inbox)
	if err != nil {
		return nil, fmt.Errorf("reply from %q: %w", inbox, err)
	}
	// Lines may end in LF, as JSON strings do, or CRLF: both are written out as CRLF.
	// A CR alone is neither, and would reach the relay as it came.
	for _, t := range []string{text, html} {
		if i := strings.IndexByte(strings.ReplaceAll(t, "\r\n", "\n"), '\r'); i >= 0 {
			s.metrics.messages.WithLabelValues("http", resultMalformed).Inc()
			return nil, fmt.Errorf("a bare CR in the reply; end lines with LF or CRLF: %w", ErrBareLineEnd)
		}
	}
	orig, err := s.store.Get(ctx, inbox, id)
	if err != nil {
		return nil, fmt.Errorf("reply to %s: %w", id, err)
	}
	raw, err := s.store.Raw(ctx, inbox, id)
	if err != nil {
		return nil, fmt.Errorf("reply to %s: %w", id, err)
	}
	to := replyTo(orig)
	if len(to) == 0 {
		s.metrics.messages.WithLabelValues("http", resultNotCorrespondent).Inc()
		return nil, fmt.Errorf("message %s names no sender to reply to: %w", id, ErrNotCorrespondent)
	}
	if len(to) > s.opts.MaxRecipients {
		s.metrics.messages.WithLabelValues("http", resultTooManyRecipients).Inc()
		return nil, fmt.Errorf("message %s asks for replies to %d addresses; a reply goes to at most %d (MAYFLY_MAX_REPLY_RECIPIENTS): %w", id, len(to), s.opts.MaxRecipients, ErrTooManyRecipients)
	}
	corr, err := s.correspondents(ctx, inbox)
	if err != nil {
		return nil, err
	}
	for _, addr := range to {
		if !corr[addressKey(addr)] {
			s.metrics.messages.WithLabelValues("http", resultNotCorrespondent).Inc()
			return nil, fmt.Errorf("%s has not written to this inbox; a throwaway address may only reply: %w", addr, ErrNotCorrespondent)
		}
	}
	msg, err := buildReply(replyInput{
		from: inbox, to: to, orig: orig, raw: raw, text: text, html: html,
		now: s.now(), idDomain: storage.Domain(inbox),
	})
	if err != nil {
		return nil, fmt.Errorf("build reply: %w", err)
	}
	return s.submit(ctx, outgoing{via: "http", client: limit.KeyIP(client), inbox: inbox, from: inbox, to: to, raw: msg})
}

// replyTo returns where a reply to m goes (RFC 5322 section 3.6.2): its Reply-To
// addresses if it has any, else its From address, bare, each once.
func replyTo(m *storage.Message) []string {
	var to []string
	for _, r := range m.ReplyTo {
		to = append(to, addressesIn(r)...)
	}
	if len(to) == 0 {
		to = addressesIn(m.From)
	}
	seen := make(map[string]bool, len(to))
	return slices.DeleteFunc(to, func(a string) bool {
		k := addressKey(a)
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

type replyInput struct {
	from     string
	to       []string
	orig     *storage.Message
	raw      []byte // the original as stored
	text     string
	html     string
	now      time.Time
	idDomain string
}

// maxQuote bounds the quoted original, so that quoting a large message cannot make
// the reply too large to send.
const maxQuote = 64 << 10

// buildReply writes a reply: subject "Re: ...", In-Reply-To and References for
// threading (RFC 5322 section 3.6.4), and the text above the original's text part
// quoted with "> ".
func buildReply(in replyInput) ([]byte, error) {
	orig, origText := readOriginal(in.raw)

	var h mail.Header
	h.SetDate(in.now)
	h.SetAddressList("From", []*mail.Address{{Address: in.from}})
	to := make([]*mail.Address, len(in.to))
	for i, a := range in.to {
		to[i] = &mail.Address{Address: a}
	}
	h.SetAddressList("To", to)
	h.SetSubject(replySubject(in.orig.Subject))
	h.AddRaw([]byte("Message-ID: " + newMessageID(in.idDomain) + "\r\n"))
	if id := orig.MessageID; id != "" {
		refs := slices.Clone(orig.References)
		if len(refs) == 0 && len(orig.InReplyTo) == 1 {
			// RFC 5322 section 3.6.4: without References, a parent's single
			// In-Reply-To stands in for them.
			refs = slices.Clone(orig.InReplyTo)
		}
		h.SetMsgIDList("In-Reply-To", []string{id})
		h.SetMsgIDList("References", append(refs, id))
	}

	var body strings.Builder
	body.WriteString(in.text)
	if origText != "" {
		if in.text != "" && !strings.HasSuffix(in.text, "\n") {
			body.WriteString("\n")
		}
		body.WriteString("\n")
		fmt.Fprintf(&body, "On %s, %s wrote:\n", quoteDate(in.orig), oneLine(in.orig.From))
		body.WriteString(quote(origText))
	}

	var buf bytes.Buffer
	textHeader := func(h *mail.InlineHeader, subtype string) {
		h.SetContentType("text/"+subtype, map[string]string{"charset": "utf-8"})
		h.Set("Content-Transfer-Encoding", "quoted-printable")
	}
	if in.html == "" {
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := mail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, body.String()); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	w, err := mail.CreateInlineWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	for _, p := range []struct{ subtype, content string }{{"plain", body.String()}, {"html", in.html}} {
		var ph mail.InlineHeader
		textHeader(&ph, p.subtype)
		pw, err := w.CreatePart(ph)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(pw, p.content); err != nil {
			return nil, err
		}
		if err := pw.Close(); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// replySubject prefixes "Re: " once (RFC 5322 section 3.6.5).
func replySubject(s string) string {
	s = oneLine(strings.TrimSpace(s))
	if len(s) >= 3 && strings.EqualFold(s[:3], "re:") {
		return s
	}
	return "Re: " + s
}

func quoteDate(m *storage.Message) string {
	d := m.Date
	if d.IsZero() {
		d = m.Received
	}
	return d.Format("Mon, 2 Jan 2006 15:04 -0700")
}

// quote prefixes each line with "> ", or ">" for an empty one and a line already
// quoted, as mail clients do.
func quote(text string) string {
	text = strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var b strings.Builder
	b.Grow(len(text) + len(text)/16 + 8)
	for line := range strings.SplitSeq(text, "\n") {
		switch {
		case line == "":
			b.WriteString(">\n")
		case strings.HasPrefix(line, ">"):
			b.WriteString(">" + line + "\n")
		default:
			b.WriteString("> " + line + "\n")
		}
	}
	return b.String()
}

// readOriginal reads a stored message as every view reads it (mailparse): its
// threading facts and its text body, decoded, at most maxQuote bytes of it; "" when
// it has none (an HTML-only message is not quoted).
func readOriginal(raw []byte) (*mailparse.Message, string) {
	m := mailparse.Parse(raw)
	text := m.Text()
	if len(text) > maxQuote {
		n := maxQuote
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n]
	}
	return m, text
}
