package mailparse

import (
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
)

// Summary is what a listing shows of a message (From, To, Reply-To, Subject, Date,
// whether it has attachments), read once, as it is stored: by the receiver for mail
// that arrives and by submission for the copy of a reply. It is the facts of the
// reader every view shares, formatted as the listing shows them, so the listing
// cannot disagree with the API, IMAP or POP3.
type Summary struct {
	From           string
	To             []string
	ReplyTo        []string // bare addresses: who a reply may go to
	Subject        string
	Date           time.Time
	HasAttachments bool
}

// Summarize reads the header fields a listing shows and whether the message has
// attachments (ParseFacts: the walk stops at the first attachment). A malformed
// message gives what could be parsed and never an error: it is stored either way.
func Summarize(data []byte) Summary {
	return ParseFacts(data).Summary()
}

// Summary is the listing's summary of m, parsed by Parse or ParseFacts.
func (m *Message) Summary() Summary {
	s := Summary{
		Subject:        oneLine(m.Subject),
		To:             formatList(m.To),
		Date:           m.Date,
		HasAttachments: m.HasAttachments(),
	}
	if from := formatList(m.From); len(from) > 0 {
		s.From = strings.Join(from, ", ")
	}
	for _, a := range m.ReplyTo {
		if a.Address != "" {
			s.ReplyTo = append(s.ReplyTo, a.Address)
		}
	}
	return s
}

// formatList writes each address as "Name <addr>"; a piece of a broken field that
// mailparse kept as a name alone is shown as that text, so the listing still shows
// who claimed to send it.
func formatList(list []*mail.Address) []string {
	if len(list) == 0 {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		name := oneLine(a.Name)
		switch {
		case a.Address == "":
			out = append(out, name)
		case name == "":
			out = append(out, a.Address)
		default:
			out = append(out, name+" <"+a.Address+">")
		}
	}
	return out
}

// oneLine keeps decoded header text on one line: an encoded word may hide a CRLF.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
