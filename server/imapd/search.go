package imapd

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/mayfly-mail/mayfly/storage"
)

// Search answers SEARCH and UID SEARCH. Flags, dates, sizes and numbers are matched on
// what the view holds; header and text keys on the stored message, fetched only when
// the cheaper keys have not already decided.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (data *imap.SearchData, err error) {
	defer s.polled(&err)
	defer s.guard("search", &err)
	command := "search"
	if kind == imapserver.NumKindUID {
		command = "uid search"
	}
	if err := s.command(command); err != nil {
		return nil, err
	}
	v := s.view
	v.mu.Lock()
	m := &matcher{
		maxSeq:    uint32(len(v.client)),
		searchRes: v.searchRes,
		load:      s.raw,
	}
	if n := len(v.client); n > 0 {
		m.maxUID = uint32(v.client[n-1])
	}
	v.mu.Unlock()
	targets := v.resolve(imap.SeqSet{{Start: 1, Stop: 0}})

	data = &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	for _, t := range targets {
		c := &candidate{target: t}
		ok := m.match(criteria, c)
		if m.err != nil {
			return nil, s.storeErr("search", m.err)
		}
		if c.gone {
			v.gone(t.meta.uid)
		}
		if !ok {
			continue
		}
		uids.AddNum(t.meta.uid)
		num := t.seq
		if kind == imapserver.NumKindUID {
			num = uint32(t.meta.uid)
		} else {
			seqs.AddNum(t.seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	// imapserver cannot write a nil set: it panics in ESEARCH and fails in SEARCH.
	if kind == imapserver.NumKindUID {
		data.All = uids
		if uids == nil {
			data.All = imap.UIDSet{}
		}
	} else {
		data.All = seqs
		if seqs == nil {
			data.All = imap.SeqSet{}
		}
	}
	if options.ReturnSave {
		v.mu.Lock()
		v.searchRes = uids
		v.mu.Unlock()
	}
	return data, nil
}

// candidate is a message under test, with its stored bytes fetched once, if at all.
type candidate struct {
	target
	raw    []byte
	header *textproto.Header
	loaded bool
	gone   bool // the store no longer has it
}

// matcher tests messages against search criteria as the client numbers them.
type matcher struct {
	maxSeq    uint32      // "*" in a sequence set
	maxUID    uint32      // "*" in a UID set
	searchRes imap.UIDSet // "$"
	load      func(id string) ([]byte, error)
	err       error // a store failure: the search ends with it
}

func (m *matcher) match(c *imap.SearchCriteria, cand *candidate) bool {
	t := &cand.target
	for _, set := range c.SeqNum {
		if !inRanges(staticRanges(seqRanges(set), m.maxSeq), t.seq) {
			return false
		}
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			set = m.searchRes
		}
		if !inRanges(staticRanges(uidRanges(set), m.maxUID), uint32(t.meta.uid)) {
			return false
		}
	}
	if !matchDate(t.meta.received, c.Since, c.Before) {
		return false
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		if t.meta.date.IsZero() || !matchDate(t.meta.date, c.SentSince, c.SentBefore) {
			return false
		}
	}
	for _, f := range c.Flag {
		if !hasFlag(t, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(t, f) {
			return false
		}
	}
	if c.Larger > 0 && t.meta.size <= c.Larger {
		return false
	}
	if c.Smaller > 0 && t.meta.size >= c.Smaller {
		return false
	}
	for i := range c.Not {
		if m.match(&c.Not[i], cand) || m.err != nil {
			return false
		}
	}
	for i := range c.Or {
		if !m.match(&c.Or[i][0], cand) && !m.match(&c.Or[i][1], cand) || m.err != nil {
			return false
		}
	}
	// The keys below need the message itself.
	if len(c.Header) == 0 && len(c.Body) == 0 && len(c.Text) == 0 {
		return true
	}
	if !m.loadRaw(cand) {
		return false
	}
	for _, hf := range c.Header {
		if !headerContains(*cand.header, hf.Key, hf.Value) {
			return false
		}
	}
	for _, b := range c.Body {
		if !textContains(cand.raw, b, false) {
			return false
		}
	}
	for _, text := range c.Text {
		if !textContains(cand.raw, text, true) {
			return false
		}
	}
	return true
}

func (m *matcher) loadRaw(c *candidate) bool {
	if !c.loaded {
		c.loaded = true
		raw, err := m.load(c.meta.id)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			c.gone = true
		case err != nil:
			m.err = err
		default:
			c.raw = raw
			h := readHeader(raw)
			c.header = &h
		}
	}
	return c.raw != nil || c.header != nil
}

// matchDate compares dates without their time and zone, as SINCE, BEFORE and ON ask
// (RFC 9051 section 6.4.4): the date is the one the message's own time shows.
func matchDate(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && d.Before(since) {
		return false
	}
	if !before.IsZero() && !d.Before(before) {
		return false
	}
	return true
}

func hasFlag(t *target, f imap.Flag) bool {
	for _, sf := range systemFlags {
		if strings.EqualFold(string(f), string(sf.flag)) {
			return t.meta.flags&sf.bit != 0
		}
	}
	return slices.ContainsFunc(t.keywords, func(k imap.Flag) bool { return strings.EqualFold(string(k), string(f)) })
}
