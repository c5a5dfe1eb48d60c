package imapd

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// Search answers SEARCH and UID SEARCH. Flags, dates, sizes and numbers are matched on
// what the view holds; header and text keys on the stored message, fetched only when
// the cheaper keys have not already decided, and BODY and TEXT on its folded text,
// read once and cached. A search too big (maxSearchKeys, maxSearchDepth) or too long
// (Options.SearchTimeout) gets NO [LIMIT].
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
	if keys, depth := searchSize(criteria, 1); keys > maxSearchKeys || depth > maxSearchDepth {
		s.srv.metrics.refused.WithLabelValues(refusedSearches).Inc()
		s.logger.Debug("search refused", "keys", keys, "depth", depth)
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("SEARCH is limited to %d keys, nested at most %d deep", maxSearchKeys, maxSearchDepth)}
	}
	deadline := time.Now().Add(s.srv.opts.SearchTimeout)
	v := s.view
	v.mu.Lock()
	m := &matcher{
		maxSeq:    uint32(len(v.client)),
		searchRes: v.searchRes,
		load:      s.raw,
		parse:     s.srv.parse,
		texts:     s.srv.texts,
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
		// RFC 5530 LIMIT: the answer would be wrong if cut short, so past its time
		// the search has none.
		if time.Now().After(deadline) {
			s.srv.metrics.refused.WithLabelValues(refusedSearches).Inc()
			s.logger.Debug("search stopped", "dur", s.srv.opts.SearchTimeout, "messages", len(targets))
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
				Text: fmt.Sprintf("SEARCH stopped after %v (MAYFLY_IMAP_SEARCH_TIMEOUT), narrow it by date, flags or UID", s.srv.opts.SearchTimeout)}
		}
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
	msg    *mailparse.Message // raw, parsed
	text   *searchText        // for BODY and TEXT, from the cache or extracted once
	loaded bool
	gone   bool // the store no longer has it
}

// matcher tests messages against search criteria as the client numbers them.
type matcher struct {
	maxSeq    uint32      // "*" in a sequence set
	maxUID    uint32      // "*" in a UID set
	searchRes imap.UIDSet // "$"
	load      func(id string) ([]byte, error)
	parse     func(id string, raw []byte) *mailparse.Message
	texts     *textCache
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
	if len(c.Header) > 0 {
		if !m.loadRaw(cand) {
			return false
		}
		for _, hf := range c.Header {
			if !headerContains(cand.msg, hf.Key, hf.Value) {
				return false
			}
		}
	}
	if len(c.Body) == 0 && len(c.Text) == 0 {
		return true
	}
	text := m.text(cand)
	if text == nil {
		return false
	}
	for _, b := range c.Body {
		if !text.contains(b, false) {
			return false
		}
	}
	for _, t := range c.Text {
		if !text.contains(t, true) {
			return false
		}
	}
	return true
}

// text returns the searchable text of a candidate: from the cache, or read from its
// bytes and cached. nil when the message is gone or the store failed.
func (m *matcher) text(c *candidate) *searchText {
	if c.text != nil {
		return c.text
	}
	if c.text = m.texts.get(c.meta.id); c.text != nil {
		return c.text
	}
	if !m.loadRaw(c) {
		return nil
	}
	c.text = m.texts.extract(c.meta.id, c.msg)
	return c.text
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
			c.msg = m.parse(c.meta.id, raw)
		}
	}
	return c.msg != nil
}

// Limits on the shape of one SEARCH. Each key is matched against every message, and
// imapserver parses up to 50KiB of them; a mail client's quick filter sends a handful.
const (
	maxSearchKeys  = 100
	maxSearchDepth = 16 // of NOT and OR
)

// searchSize counts the keys of c and how deep its NOT and OR nest.
func searchSize(c *imap.SearchCriteria, depth int) (keys, maxDepth int) {
	keys = len(c.SeqNum) + len(c.UID) + len(c.Flag) + len(c.NotFlag) + len(c.Header) + len(c.Body) + len(c.Text)
	for _, t := range []time.Time{c.Since, c.Before, c.SentSince, c.SentBefore} {
		if !t.IsZero() {
			keys++
		}
	}
	if c.Larger > 0 {
		keys++
	}
	if c.Smaller > 0 {
		keys++
	}
	maxDepth = depth
	add := func(sub *imap.SearchCriteria) {
		k, d := searchSize(sub, depth+1)
		keys += k + 1
		maxDepth = max(maxDepth, d)
	}
	for i := range c.Not {
		add(&c.Not[i])
	}
	for i := range c.Or {
		add(&c.Or[i][0])
		add(&c.Or[i][1])
	}
	return keys, maxDepth
}

// textCache keeps the searchable text of messages by ID for every session: a
// message's bytes never change, and a client that searches an inbox searches it again
// (a quick filter sends a SEARCH as the user types). It holds at most max bytes; when
// full, an arbitrary entry makes room, so a search over more text than it holds still
// finds part of it there, where least-recently-used order would find none.
type textCache struct {
	mu       sync.Mutex
	max      int
	bytes    int
	m        map[string]*searchText
	extracts atomic.Int64 // messages read for their text, for tests
}

// textCacheSize bounds the searchable text kept, across every inbox: a full inbox
// (200 messages, MAYFLY_MAX_MESSAGES's default) of messages at maxSearchText, or
// thousands of usual ones.
const textCacheSize = 64 << 20

func newTextCache(max int) *textCache {
	return &textCache{max: max, m: make(map[string]*searchText)}
}

func (c *textCache) get(id string) *searchText {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

// extract reads the text of raw and keeps it under id.
func (c *textCache) extract(id string, msg *mailparse.Message) *searchText {
	c.extracts.Add(1)
	t := extractText(msg)
	n := t.size() + len(id) + 64
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[id]; old != nil {
		return old
	}
	for c.bytes+n > c.max && len(c.m) > 0 {
		for k, v := range c.m {
			delete(c.m, k)
			c.bytes -= v.size() + len(k) + 64
			break
		}
	}
	if n <= c.max {
		c.m[id] = t
		c.bytes += n
	}
	return t
}

// reset empties the cache, for benchmarks of the cold path.
func (c *textCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m, c.bytes = make(map[string]*searchText), 0
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
