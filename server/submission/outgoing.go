package submission

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto" // the header rewritten, each other field's bytes kept
	"github.com/emersion/go-msgauth/dkim"

	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// Errors of Reply (and of submission over SMTP, where they become replies), wrapped
// with the detail: the HTTP route maps them to 403, 429 and 413.
var (
	ErrNotCorrespondent  = errors.New("not a correspondent of this inbox")
	ErrSendLimit         = errors.New("send limit reached")
	ErrTooLarge          = errors.New("message too large")
	ErrTooManyRecipients = errors.New("too many recipients")
	// ErrBareLineEnd is a CR or LF that is not part of a CRLF: a receiver that took it
	// for a line end could find a message end (".") we never sent, and take the rest
	// for a second message, from a sender it was never meant to be from (SMTP
	// smuggling).
	ErrBareLineEnd = errors.New("bare CR or LF")
)

var (
	errSender    = errors.New("sender is not the inbox")
	errMalformed = errors.New("malformed message")
)

// signedHeaders are the fields the DKIM signature covers. Naming one a message lacks
// is deliberate: nobody on the way can add it without breaking the signature (RFC
// 6376 sections 3.5 and 5.4).
var signedHeaders = []string{
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// outgoing is a message on its way from an inbox, by SMTP or Reply.
type outgoing struct {
	via    string     // "smtp" or "http", for the metrics
	client netip.Addr // who submitted it, as limit.Key counts clients
	inbox  string
	from   string // envelope sender: the inbox or one of its +tag forms
	to     []string
	raw    []byte
}

// submit readies o (Date and Message-ID when missing), counts it against the send
// limit, signs it, keeps the sent copy with the inbox's mail and queues it. The
// recipients must have been checked against the policy. It returns the sent copy.
//
// The send limit counts a message once, here, after the message was found fit to
// send and before anything is stored: a message refused for its header or size does
// not count, a message refused for the limit does.
func (s *Server) submit(ctx context.Context, o outgoing) (*storage.Message, error) {
	start := s.now()
	sent, err := s.submitMessage(ctx, o, start)
	result := resultAccepted
	switch {
	case err == nil:
	case errors.Is(err, ErrSendLimit):
		result = resultSendLimit
	case errors.Is(err, ErrTooLarge):
		result = resultTooLarge
	case errors.Is(err, errSender):
		result = resultSender
	case errors.Is(err, errMalformed):
		result = resultMalformed
	case errors.Is(err, ErrNotCorrespondent):
		result = resultNotCorrespondent
	case errors.Is(err, ErrTooManyRecipients):
		result = resultTooManyRecipients
	default:
		result = resultFailed
	}
	s.metrics.messages.WithLabelValues(o.via, result).Inc()
	if err != nil {
		if result == resultFailed {
			s.logger.Error("submit", "via", o.via, "inbox", o.inbox, "err", err)
		} else {
			s.logger.Info("rejected", "via", o.via, "inbox", o.inbox, "reason", result, "err", err)
		}
		return nil, err
	}
	s.logger.Info("sent", "via", o.via, "inbox", o.inbox, "id", sent.ID, "rcpts", len(o.to), "size", sent.Size, "dur", s.now().Sub(start))
	return sent, nil
}

func (s *Server) submitMessage(ctx context.Context, o outgoing, now time.Time) (*storage.Message, error) {
	domain := storage.Domain(o.inbox)
	msg, sum, err := prepare(o.raw, o.inbox, domain, now)
	if err != nil {
		return nil, err
	}
	if int64(len(msg)) > s.opts.MaxMessageSize {
		return nil, fmt.Errorf("%d bytes, the limit is %d: %w", len(msg), s.opts.MaxMessageSize, ErrTooLarge)
	}
	if len(o.to) > s.opts.MaxRecipients {
		return nil, fmt.Errorf("a reply goes to at most %d recipients, this one to %d (MAYFLY_MAX_REPLY_RECIPIENTS): %w", s.opts.MaxRecipients, len(o.to), ErrTooManyRecipients)
	}
	ns, err := s.namespaceOf(ctx, o.inbox)
	if err != nil {
		return nil, err
	}
	if err := s.countSend(ctx, o); err != nil {
		return nil, err
	}
	if err := s.countNamespaceSend(ctx, ns, o); err != nil {
		return nil, err
	}
	signed, err := s.sign(msg, domain)
	if err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	_, tag, _ := storage.ParseAddress(o.from)
	to := sum.To
	if len(to) == 0 {
		to = append([]string(nil), o.to...)
	}
	sent := &storage.Message{
		Inbox:          o.inbox,
		Tag:            tag,
		Envelope:       storage.Envelope{From: o.from, Recipients: append([]string(nil), o.to...)},
		From:           sum.From,
		To:             to,
		Subject:        sum.Subject,
		Date:           sum.Date,
		HasAttachments: sum.HasAttachments,
		Sent:           true,
		Size:           int64(len(signed)),
		Received:       now,
		Expires:        now.Add(s.opts.TTL),
		Flags:          storage.FlagSeen,
		Auth:           storage.AuthResults{SPF: "none", DKIM: "none", DMARC: "none"},
		Raw:            signed,
	}
	if err := s.store.Put(ctx, sent); err != nil {
		return nil, fmt.Errorf("put sent copy: %w", err)
	}
	job := &storage.Job{
		Inbox: o.inbox,
		From:  o.from,
		To:    append([]string(nil), o.to...),
		Raw:   signed,
		// Past the sent copy's expiry (which an inbox TTL may have changed in Put) a
		// bounce would reach nobody.
		Expires: sent.Expires,
	}
	if err := s.queue.Enqueue(ctx, job); err != nil {
		// Without the job the sent copy would claim a message that never leaves.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		if derr := s.store.Delete(dctx, o.inbox, sent.ID); derr != nil {
			s.logger.Error("delete the sent copy of a message not queued", "inbox", o.inbox, "id", sent.ID, "err", derr)
		}
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	sent.Raw = nil
	s.sentFromNamespace(ctx, ns, sent)
	return sent, nil
}

// countSend counts o's recipients against the send limits, the inbox's first: each
// is a store counter every node shares, since a client may spread its messages over
// inboxes (they cost nothing to make) and nodes. A limit that refuses o keeps the
// count, so retrying does not help; the limits after it do not count o.
func (s *Server) countSend(ctx context.Context, o outgoing) error {
	limits := []struct {
		key, who, setting string
		l                 SendLimit
	}{
		{o.inbox, o.inbox + " may send", "MAYFLY_SEND_LIMIT", s.opts.SendLimit},
		{clientSendKey + o.client.String(), "your address may send", "MAYFLY_CLIENT_SEND_LIMIT", s.opts.ClientSendLimit},
		{outboundKey, "this service sends", "MAYFLY_OUTBOUND_RATE", s.opts.OutboundRate},
	}
	if !o.client.IsValid() {
		// No client to count: a message the service makes itself.
		limits = slices.Delete(limits, 1, 2)
	}
	for _, l := range limits {
		if l.l.N < 0 {
			continue
		}
		n, err := s.store.CountSend(ctx, l.key, len(o.to), l.l.Per)
		if err != nil {
			return fmt.Errorf("count send: %w", err)
		}
		if n > l.l.N {
			return fmt.Errorf("%s to at most %d recipients per %s (%s): %w", l.who, l.l.N, window(l.l.Per), l.setting, ErrSendLimit)
		}
	}
	return nil
}

// sign prepends a DKIM-Signature of domain, relaxed/relaxed (RFC 6376 section 3.4:
// relaxed survives the re-folding and whitespace changes of relays).
func (s *Server) sign(msg []byte, domain string) ([]byte, error) {
	if s.opts.DKIM == nil {
		return msg, nil
	}
	var out bytes.Buffer
	out.Grow(len(msg) + 1024)
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain:                 domain,
		Selector:               s.opts.DKIMSelector,
		Signer:                 s.opts.DKIM,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders,
	})
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// prepare checks a message an inbox sends and readies it for the wire: only CRLF line
// ends (RFC 5321 section 2.3.8; a bare CR or LF is refused, as Postfix's
// smtpd_forbid_bare_newline does, rather than passed on to be read two ways), From:
// (and Sender:, if any) one address that is the inbox or a +tag form of it, under a
// display name that holds no address, no Bcc: (RFC 5322 section 3.6.3: it must not
// reach the recipients), and Date: and Message-ID: added when missing (RFC 6409
// section 8). Every other field keeps its bytes.
func prepare(raw []byte, inbox, idDomain string, now time.Time) ([]byte, mailparse.Summary, error) {
	if i := bareLineEnd(raw); i >= 0 {
		return nil, mailparse.Summary{}, fmt.Errorf("a bare CR or LF at byte %d; lines end with CRLF (RFC 5321 section 2.3.8): %w: %w", i, ErrBareLineEnd, errMalformed)
	}
	// Read as every view reads it (mailparse), and refused where that reading would
	// not be the only one: a header that does not start with a field or is broken off
	// by a line that is none, rather than ended by a blank line.
	m := mailparse.ParseHeader(raw)
	if m.HeaderEnd == len(raw) && len(raw) > 0 && !bytes.HasSuffix(raw, []byte("\r\n")) {
		// Header fields and no body, the last without its line end.
		raw = append(raw[:len(raw):len(raw)], "\r\n"...)
		m = mailparse.ParseHeader(raw)
	}
	headerLen := m.HeaderEnd
	ended := bytes.HasSuffix(raw[:headerLen], []byte("\r\n\r\n")) || headerLen == 2 && bytes.HasPrefix(raw, []byte("\r\n"))
	if mailparse.HeaderStart(raw) != 0 || headerLen < len(raw) && !ended {
		return nil, mailparse.Summary{}, fmt.Errorf("header: a line that is no header field before the blank line: %w", errMalformed)
	}
	body := raw[headerLen:]
	mh := m.Header
	if err := checkSender(mh, "From", inbox, true); err != nil {
		return nil, mailparse.Summary{}, err
	}
	if err := checkSender(mh, "Sender", inbox, false); err != nil {
		return nil, mailparse.Summary{}, err
	}
	mh.Del("Bcc")
	if mh.Get("Date") == "" {
		mh.AddRaw([]byte("Date: " + now.Format(time.RFC1123Z) + "\r\n"))
	}
	if mh.Get("Message-Id") == "" {
		mh.AddRaw([]byte("Message-ID: " + newMessageID(idDomain) + "\r\n"))
	}
	var out bytes.Buffer
	out.Grow(headerLen + 128 + len(body))
	if err := textproto.WriteHeader(&out, mh); err != nil {
		return nil, mailparse.Summary{}, fmt.Errorf("header: %v: %w", err, errMalformed)
	}
	out.Write(body)
	// The sent copy's listing, parsed as the receiver parses what arrives.
	sum := mailparse.Summarize(out.Bytes())
	if sum.Date.IsZero() {
		sum.Date = now
	}
	return out.Bytes(), sum, nil
}

// checkSender requires field key to hold exactly one address, the inbox's own.
func checkSender(h textproto.Header, key, inbox string, required bool) error {
	n := h.FieldsByKey(key).Len()
	if n == 0 && !required {
		return nil
	}
	if n != 1 {
		return fmt.Errorf("the message needs one %s: field, %s: %w", key, inbox, errSender)
	}
	list, err := mailparse.StrictAddressList(h, key)
	if err != nil || len(list) != 1 {
		return fmt.Errorf("%s: must be %s alone: %w", key, inbox, errSender)
	}
	if got, _, err := storage.ParseAddress(list[0].Address); err != nil || got != inbox {
		return fmt.Errorf("%s: %s is not %s or one of its +tag forms: %w", key, printable(list[0].Address), inbox, errSender)
	}
	if nameHasAddress(list[0].Name) {
		// "PayPal <security@paypal.example>" <box@...>: most clients show the name
		// alone, and the recipient reads an address we did not send from.
		return fmt.Errorf("%s: the display name %q holds an address; a reply is from %s alone: %w", key, printable(list[0].Name), inbox, errSender)
	}
	return nil
}

// nameHasAddress reports whether a decoded display name holds an at sign, ASCII or
// one that looks like it, which is all an address needs to be read as one.
func nameHasAddress(name string) bool {
	return strings.ContainsAny(name, "@\uFF20\uFE6B")
}

// bareLineEnd returns the index of the first CR not followed by LF or LF not preceded
// by CR in b, or -1.
func bareLineEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexAny(b[i:], "\r\n")
		if j < 0 {
			return -1
		}
		i += j
		if b[i] == '\n' || i+1 == len(b) || b[i+1] != '\n' {
			return i
		}
		i += 2
	}
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newMessageID returns "<random@domain>": 120 random bits make it unique without
// naming the host it came from.
func newMessageID(domain string) string {
	var b [15]byte
	rand.Read(b[:])
	return "<" + idEncoding.EncodeToString(b[:]) + "@" + domain + ">"
}

// oneLine keeps decoded header text on one line: an encoded word may hide a CRLF.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// correspondents returns who inbox may write to, by addressKey: the addresses named
// by its live received mail, where that mail proved them. It is read at send time, so
// a correspondent stays one for as long as their mail lives.
func (s *Server) correspondents(ctx context.Context, inbox string) (map[string]bool, error) {
	list, err := s.store.List(ctx, inbox, storage.Page{})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", inbox, err)
	}
	now := s.now()
	set := make(map[string]bool)
	for i := range list {
		m := &list[i]
		if m.Sent || !m.Live(now) {
			continue
		}
		for _, a := range s.vouchedFor(m) {
			if k := addressKey(a); k != "" && !s.isDaemon(k) {
				set[k] = true
			}
		}
	}
	return set, nil
}

// vouchedFor returns the addresses of a received message a reply may go to. Anyone
// can write any address into a header, so an address counts only when the mail
// proved it: the envelope sender with an SPF pass; From: with a DMARC pass, or an SPF
// or DKIM pass aligned with its domain; Reply-To:, which the author of From: wrote,
// only when From: is proved. Otherwise a mail with a forged From: or a Reply-To:
// naming strangers would make us send, DKIM-signed for our domain, to whomever it
// names. With the checks off (Options.Unverified), the envelope sender is all there
// is.
func (s *Server) vouchedFor(m *storage.Message) []string {
	if s.opts.Unverified {
		return []string{m.Envelope.From}
	}
	var out []string
	if m.Envelope.From != "" && m.Auth.SPF == "pass" {
		out = append(out, m.Envelope.From)
	}
	// DMARC judges a message with exactly one From: address.
	if from := addressesIn(m.From); len(from) == 1 && (m.Auth.DMARC == "pass" || m.Auth.FromAligned) {
		out = append(out, from[0])
		for _, r := range m.ReplyTo {
			out = append(out, addressesIn(r)...)
		}
	}
	return out
}

// isDaemon reports whether key is our own MAILER-DAEMON, the sender of our bounces: a
// reply to it would only come back to us.
func (s *Server) isDaemon(key string) bool {
	local, domain, _ := strings.Cut(key, "@")
	return local == "mailer-daemon" && s.domains[domain]
}

// addressKey is how addresses compare: case-insensitively, local part included
// (RFC 5321 leaves the local part's case to the receiver, and nobody hands out
// Bob@ and bob@ to two people). Angle brackets and spaces around it go.
func addressKey(addr string) string {
	addr = strings.TrimSpace(addr)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	if strings.IndexByte(addr, '@') <= 0 {
		return ""
	}
	return strings.ToLower(addr)
}

// addressesIn returns the bare addresses in a display string such as the store's
// Message.From ("Ann <ann@example.org>", "a@b, Bob <c@d>"). Names there are decoded,
// so they may hold what RFC 5322 would quote; when the list does not parse, each
// piece's address is read as mailparse reads a broken field.
func addressesIn(s string) []string {
	var out []string
	for _, a := range mailparse.Addresses(strings.TrimSpace(s)) {
		if addr := strings.TrimSpace(a.Address); addressKey(addr) != "" {
			out = append(out, addr)
		}
	}
	return out
}

// window names a send-limit window as people say it: "hour" rather than "1h0m0s".
func window(d time.Duration) string {
	for _, w := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if d == w.d {
			return w.name
		}
		if d%w.d == 0 {
			return fmt.Sprintf("%d %ss", d/w.d, w.name)
		}
	}
	return d.String()
}
