package storage

import (
	"slices"
	"strings"
)

// Filter is what a wait or a webhook looks for in a message's summary: text fields
// match case-insensitively as substrings, the tag case-insensitively as a whole, and
// the auth verdicts exactly. An empty field matches every message. It is one matcher
// for both, so that a webhook filtered like a wait fires on the messages the wait
// answers.
type Filter struct {
	From, To, Subject, Tag string
	SPF, DKIM, DMARC       string
}

// Lower returns f with the fields lower case, as Match expects them: the work is done
// once per filter, not once per message.
func (f Filter) Lower() Filter {
	return Filter{
		From: strings.ToLower(f.From), To: strings.ToLower(f.To), Subject: strings.ToLower(f.Subject), Tag: f.Tag,
		SPF: strings.ToLower(f.SPF), DKIM: strings.ToLower(f.DKIM), DMARC: strings.ToLower(f.DMARC),
	}
}

// Match reports whether m's summary matches f, whose fields are lower case (Lower).
func (f Filter) Match(m *Message) bool {
	return containsFold(m.From, f.From) &&
		(f.To == "" || slices.ContainsFunc(m.To, func(s string) bool { return containsFold(s, f.To) }) ||
			slices.ContainsFunc(m.Envelope.Recipients, func(s string) bool { return containsFold(s, f.To) })) &&
		containsFold(m.Subject, f.Subject) &&
		(f.Tag == "" || strings.EqualFold(m.Tag, f.Tag)) &&
		(f.SPF == "" || m.Auth.SPF == f.SPF) &&
		(f.DKIM == "" || m.Auth.DKIM == f.DKIM) &&
		(f.DMARC == "" || m.Auth.DMARC == f.DMARC)
}

// containsFold reports whether needle, already lower case, is in s, ignoring case.
func containsFold(s, needle string) bool {
	return needle == "" || strings.Contains(strings.ToLower(s), needle)
}
