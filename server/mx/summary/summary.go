// Package summary parses what a listing shows of a message (From, To, Reply-To,
// Subject, Date, whether it has attachments), once, as it is stored: by the receiver
// for mail that arrives and by submission for the copy of a reply.
package summary

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode subjects and names in any charset
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Summary is what listings show of a message.
type Summary struct {
	From           string
	To             []string
	ReplyTo        []string // bare addresses: who a reply may go to
	Subject        string
	Date           time.Time
	HasAttachments bool
}

// Limits on the MIME walk: a message is data from strangers, and a listing does not
// need to know about the ten-thousandth nested part.
const (
	maxParts = 1000
	maxDepth = 50
)

var errStopWalk = errors.New("stop walk")

// Parse reads the header fields a listing shows and whether the message has
// attachments. A malformed message gives what could be parsed and never an error:
// it is stored either way.
func Parse(data []byte) Summary {
	br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	h, err := textproto.ReadHeader(br)
	if err != nil && h.Len() == 0 {
		return Summary{}
	}
	mh := mail.Header{Header: message.Header{Header: h}}
	s := Summary{
		From:    addressText(mh, "From"),
		To:      addressList(mh, "To"),
		Subject: headerText(mh, "Subject"),
		ReplyTo: bareAddresses(mh, "Reply-To"),
	}
	s.Date = parseDate(mh)
	s.HasAttachments = hasAttachments(mh.Header, br)
	return s
}

// dateLayouts are the shapes nearly every mailer writes (RFC 5322 section 3.3), tried
// before net/mail's full parser, which builds an error for each layout it rules out.
var dateLayouts = []string{"Mon, 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 -0700"}

// obsoleteZones are the zone names RFC 5322 section 4.3 still asks readers to know;
// Go's time.Parse would take them as names of unknown offset.
var obsoleteZones = map[string]string{
	"UT": "+0000", "GMT": "+0000", "EST": "-0500", "EDT": "-0400", "CST": "-0600",
	"CDT": "-0500", "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700",
}

func parseDate(h mail.Header) time.Time {
	v := strings.TrimSpace(h.Get("Date"))
	if v == "" {
		return time.Time{}
	}
	if i := strings.IndexByte(v, '('); i > 0 { // a trailing "(UTC)" comment
		v = strings.TrimSpace(v[:i])
	}
	if sp := strings.LastIndexByte(v, ' '); sp > 0 {
		if offset, ok := obsoleteZones[v[sp+1:]]; ok {
			v = v[:sp+1] + offset
		}
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	if t, err := h.Date(); err == nil {
		return t
	}
	return time.Time{}
}

// headerText decodes RFC 2047 words; a charset nobody knows leaves the field as sent.
func headerText(h mail.Header, key string) string {
	v, err := h.Text(key)
	if err != nil {
		v = h.Get(key)
	}
	return oneLine(v)
}

// oneLine keeps decoded header text on one line: an encoded word may hide a CRLF.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

func addressText(h mail.Header, key string) string {
	if list := addressList(h, key); len(list) > 0 {
		return strings.Join(list, ", ")
	}
	return ""
}

// addressList formats each address as "Name <addr>"; an unparsable field is kept as
// decoded text so the listing still shows who claimed to send it.
func addressList(h mail.Header, key string) []string {
	if h.Get(key) == "" {
		return nil
	}
	list, err := h.AddressList(key)
	if err != nil || len(list) == 0 {
		return []string{headerText(h, key)}
	}
	out := make([]string, len(list))
	for i, a := range list {
		if a.Name == "" {
			out[i] = a.Address
		} else {
			out[i] = oneLine(a.Name) + " <" + a.Address + ">"
		}
	}
	return out
}

// bareAddresses returns the addresses of a field that parse, without names.
func bareAddresses(h mail.Header, key string) []string {
	if h.Get(key) == "" {
		return nil
	}
	list, err := h.AddressList(key)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// hasAttachments walks the MIME tree looking for a part that is an attachment: one
// with disposition "attachment", or a leaf that carries a file name.
func hasAttachments(h message.Header, body io.Reader) bool {
	if IsAttachment(h) {
		return true
	}
	if t, _, _ := h.ContentType(); !strings.HasPrefix(t, "multipart/") {
		return false
	}
	entity, err := message.New(h, body)
	if err != nil && entity == nil {
		return false
	}
	found, parts := false, 0
	_ = entity.Walk(func(path []int, part *message.Entity, err error) error {
		if parts++; parts > maxParts || len(path) > maxDepth {
			return errStopWalk
		}
		if len(path) > 0 && IsAttachment(part.Header) {
			found = true
			return errStopWalk
		}
		return nil
	})
	return found
}

// IsAttachment reports whether a part is an attachment: disposition "attachment", or a
// leaf that carries a file name.
func IsAttachment(h message.Header) bool {
	disp, params, _ := h.ContentDisposition()
	if disp == "attachment" {
		return true
	}
	if t, _, _ := h.ContentType(); strings.HasPrefix(t, "multipart/") {
		return false
	}
	if params["filename"] != "" {
		return true
	}
	_, ctParams, _ := h.ContentType()
	return ctParams["name"] != ""
}
