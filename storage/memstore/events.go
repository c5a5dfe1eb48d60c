package memstore

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/mayfly-mail/mayfly/storage"
)

// The event log (storage.EventLog) in this process: every event the hub is given is
// also kept, in one list in the order it happened (the feed), and in a list per inbox
// (the inbox's log), both holding the same entries. An inbox's log keeps its events
// for storage.EventHistory, the feed for feedHistory; both are also bounded in number
// (inboxLogMax, feedMax) and in estimated bytes (a share of Options.MemoryLimit,
// logShare, on top of it: Memory.EventLogBytes), so they never grow without bound, and
// the mail's share of the limit stays what it was.
//
// A position is "<ms>-<n>", n counting every event of the store, ms the time in unix
// milliseconds but never less than the event before's (the clock may step back), so that
// positions order as Redis stream IDs do: the same in the feed and in the inbox's log.
const (
	inboxLogMax = 1000
	feedHistory = 24 * time.Hour
	feedMax     = 100_000
	// logShare is the part of the memory limit the logs may take besides it (1/logShare).
	logShare = 8
)

// logEntry is one event in the feed and, until it is trimmed there, in its inbox's log.
// Its Seq is made when it is read (out).
type logEntry struct {
	storage.LoggedEvent
	pos     // seq is the event's number in the store
	cost    int64
	inInbox bool // still in its inbox's log
	gone    bool // out of the feed
	// unread: made while no webhook existed, so no feed reader is given it
	// (storage.EventLog); it stays for the inbox's log.
	unread bool
}

// pos is a position in the logs.
type pos struct{ ms, seq uint64 }

func (a pos) less(b pos) bool { return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq }

// inboxLog is an inbox's events, oldest first. It goes when it is empty.
type inboxLog struct {
	entries []*logEntry
	start   pos // its first event's: it knows of none before
	trimmed pos // the newest event's trimmed from it, zero = none
}

type eventLog struct {
	n        uint64
	inboxes  map[string]*inboxLog
	feed     []*logEntry // oldest first
	inboxPos int         // feed[:inboxPos] are out of their inbox's log
	bytes    int64       // the estimated cost of the entries and the inbox logs
	// early is the position of the newest event taken out of an inbox's log before
	// its history ran out (over inboxLogMax, or the bytes), whose log may be gone since.
	early  pos
	lastMs uint64
	groups map[string]*feedGroup
	wake   chan struct{} // closed and replaced when the feed grows
}

// feedGroup is a consumer group of the feed.
type feedGroup struct {
	next    uint64 // the n of the first event no consumer of the group has read
	pending map[uint64]*feedLease
}

// feedLease is an event read by a consumer and not acknowledged yet.
type feedLease struct {
	e        *logEntry
	consumer string
	until    time.Time
}

var (
	logEntryOverhead = int64(unsafe.Sizeof(logEntry{})) + 2*8 + 16
	inboxLogOverhead = int64(unsafe.Sizeof(inboxLog{})) + 48 + 16
)

// eventCost estimates what e costs in the logs; meta is metaCost(e.Message), which
// the caller knows.
func eventCost(e *storage.Event, meta int64) int64 {
	return logEntryOverhead + int64(len(e.Inbox)+len(e.ID)) + 3*stringSlack + meta
}

// publishLocked records e in the logs and hands it to this process's subscribers. meta
// is metaCost(e.Message), 0 without one.
func (s *Store) publishLocked(e storage.Event, meta int64) {
	// Logged first: a subscriber told of e reads the log after it (it waits for s.mu).
	defer s.hub.Publish(e)
	s.accountLocked(&e)
	now := s.opts.Now()
	l := &s.log
	if l.inboxes == nil {
		l.inboxes = make(map[string]*inboxLog)
	}
	l.n++
	l.lastMs = max(l.lastMs, uint64(max(now.UnixMilli(), 0)))
	le := &logEntry{pos: pos{l.lastMs, l.n}, cost: eventCost(&e, meta), inInbox: true, unread: len(s.hooks.hooks) == 0}
	le.LoggedEvent = storage.LoggedEvent{Time: now, Event: e}
	l.feed = append(l.feed, le)
	il := l.inboxes[e.Inbox]
	if il == nil {
		il = &inboxLog{start: le.pos}
		l.inboxes[e.Inbox] = il
		l.bytes += inboxLogOverhead + int64(len(e.Inbox))
	}
	il.entries = append(il.entries, le)
	l.bytes += le.cost
	if len(il.entries) > inboxLogMax {
		s.trimInboxLocked(il.entries[0], false)
	}
	s.trimLogsLocked(now)
	if l.wake != nil && !le.unread {
		close(l.wake)
		l.wake = nil
	}
}

// trimLogsLocked drops what the logs keep past their time, number and bytes.
func (s *Store) trimLogsLocked(now time.Time) {
	l := &s.log
	budget := s.opts.MemoryLimit / logShare
	history := feedHistory
	if len(s.hooks.hooks) == 0 {
		// Webhooks are the feed's only reader (storage.EventLog): with none, the feed
		// keeps what the inboxes' logs do and no more, and its readers are given
		// nothing made meanwhile (logEntry.unread).
		history = storage.EventHistory
	}
	for len(l.feed) > 0 && (len(l.feed) > feedMax || l.bytes > budget || now.Sub(l.feed[0].Time) > history) {
		e := l.feed[0]
		l.feed[0] = nil
		l.feed = l.feed[1:]
		l.inboxPos = max(l.inboxPos-1, 0)
		if e.inInbox {
			s.trimInboxLocked(e, now.Sub(e.Time) > storage.EventHistory)
		}
		e.gone = true
		l.bytes -= e.cost
	}
	for l.inboxPos < len(l.feed) && now.Sub(l.feed[l.inboxPos].Time) > storage.EventHistory {
		if e := l.feed[l.inboxPos]; e.inInbox {
			s.trimInboxLocked(e, true)
		}
		l.inboxPos++
	}
}

// trimInboxLocked takes e, the oldest event of its inbox's log, out of that log; a log
// left empty goes. byTime says e is past the history: otherwise it goes early.
func (s *Store) trimInboxLocked(e *logEntry, byTime bool) {
	l := &s.log
	il := l.inboxes[e.Inbox]
	e.inInbox = false
	if !byTime {
		if l.early.less(e.pos) {
			l.early = e.pos
		}
	}
	if il == nil || len(il.entries) == 0 || il.entries[0] != e {
		return
	}
	il.entries[0] = nil
	il.entries = il.entries[1:]
	il.trimmed = e.pos
	if len(il.entries) == 0 {
		delete(l.inboxes, e.Inbox)
		l.bytes -= inboxLogOverhead + int64(len(e.Inbox))
	}
}

// gone reports whether an event of inbox after position p may have been trimmed from
// its log. Of the log there is now (nil: none) it knows; of those before it, that what
// went by time is older than the history, and what went early is no newer than l.early.
func (l *eventLog) gone(il *inboxLog, p pos, now time.Time) bool {
	if il != nil && p.less(il.trimmed) {
		return true
	}
	if il != nil && !p.less(il.start) {
		return false
	}
	history := now.Add(-storage.EventHistory).UnixMilli()
	return history > 0 && p.ms < uint64(history) || p.less(l.early)
}

// sweepLogsLocked trims the logs by time.
func (s *Store) sweepLogsLocked(now time.Time) {
	s.trimLogsLocked(now)
}

// parseSeq reads a position "<ms>-<n>".
func parseSeq(seq string) (pos, bool) {
	a, b, found := strings.Cut(seq, "-")
	if !found {
		return pos{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	n, err2 := strconv.ParseUint(b, 10, 64)
	return pos{ms, n}, err1 == nil && err2 == nil
}

func (e *logEntry) out() storage.LoggedEvent {
	le := e.LoggedEvent
	le.Seq = strconv.FormatUint(e.ms, 10) + "-" + strconv.FormatUint(e.seq, 10)
	if le.Message != nil {
		m := *le.Message
		le.Message = &m
	}
	return le
}

// InboxEvents returns inbox's events after position after; see storage.EventLog.
func (s *Store) InboxEvents(ctx context.Context, inbox, after string, limit int) ([]storage.LoggedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var from pos
	if after != "" {
		var ok bool
		if from, ok = parseSeq(after); !ok {
			return nil, fmt.Errorf("events of %s after %q: %w", inbox, after, storage.ErrGone)
		}
	}
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trimLogsLocked(now)
	il := s.log.inboxes[inbox]
	if after != "" && s.log.gone(il, from, now) {
		return nil, fmt.Errorf("events of %s after %s: %w", inbox, after, storage.ErrGone)
	}
	if il == nil {
		return nil, nil
	}
	i := sort.Search(len(il.entries), func(i int) bool { return from.less(il.entries[i].pos) })
	n := len(il.entries) - i
	if limit > 0 {
		n = min(n, limit)
	}
	list := make([]storage.LoggedEvent, 0, n)
	for _, e := range il.entries[i : i+n] {
		list = append(list, e.out())
	}
	return list, nil
}

// ReadFeed returns events group has not acknowledged; see storage.EventLog.
func (s *Store) ReadFeed(ctx context.Context, group, consumer string, n int, block, lease time.Duration) ([]storage.LoggedEvent, error) {
	if n <= 0 || lease <= 0 {
		return nil, fmt.Errorf("read feed: count %d, lease %v", n, lease)
	}
	var deadline <-chan time.Time
	if block > 0 {
		t := time.NewTimer(block)
		defer t.Stop()
		deadline = t.C
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		list, wake, soonest := s.readFeed(group, consumer, n, lease)
		if len(list) > 0 || deadline == nil {
			return list, nil
		}
		var leaseEnd <-chan time.Time
		if !soonest.IsZero() {
			// Leases end by the store's clock, which a test may move: look again soon.
			t := time.NewTimer(min(max(time.Until(soonest), time.Millisecond), 50*time.Millisecond))
			defer t.Stop()
			leaseEnd = t.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stop:
			return nil, fmt.Errorf("read feed: %w: store closed", storage.ErrUnavailable)
		case <-deadline:
			list, _, _ := s.readFeed(group, consumer, n, lease)
			return list, nil
		case <-leaseEnd:
		case <-wake:
		}
	}
}

// readFeed takes up to n events for consumer: those whose lease ran out first, then
// new ones. With none it returns a channel closed when the feed grows and the soonest
// end of a lease.
func (s *Store) readFeed(group, consumer string, n int, lease time.Duration) ([]storage.LoggedEvent, <-chan struct{}, time.Time) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trimLogsLocked(now)
	l := &s.log
	if l.groups == nil {
		l.groups = make(map[string]*feedGroup)
	}
	g := l.groups[group]
	if g == nil {
		g = &feedGroup{pending: make(map[uint64]*feedLease)}
		l.groups[group] = g
	}
	var list []storage.LoggedEvent
	var soonest time.Time
	var expired []*feedLease
	for k, p := range g.pending {
		switch {
		case p.e.gone:
			delete(g.pending, k) // trimmed: nobody gets it any more
		case !now.Before(p.until):
			expired = append(expired, p)
		case soonest.IsZero() || p.until.Before(soonest):
			soonest = p.until
		}
	}
	slices.SortFunc(expired, func(a, b *feedLease) int { return compareN(a.e.seq, b.e.seq) })
	for _, p := range expired {
		if len(list) == n {
			if soonest.IsZero() || p.until.Before(soonest) {
				soonest = p.until
			}
			continue
		}
		p.consumer, p.until = consumer, now.Add(lease)
		list = append(list, p.e.out())
	}
	i := sort.Search(len(l.feed), func(i int) bool { return l.feed[i].seq >= g.next })
	for ; i < len(l.feed) && len(list) < n; i++ {
		e := l.feed[i]
		g.next = e.seq + 1
		if e.unread {
			continue
		}
		g.pending[e.seq] = &feedLease{e: e, consumer: consumer, until: now.Add(lease)}
		list = append(list, e.out())
	}
	if len(list) > 0 {
		return list, nil, time.Time{}
	}
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	return nil, l.wake, soonest
}

func compareN(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// AckFeed marks events of the feed done for group.
func (s *Store) AckFeed(ctx context.Context, group string, seqs ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.log.groups[group]
	if g == nil {
		return nil
	}
	for _, seq := range seqs {
		if p, ok := parseSeq(seq); ok {
			delete(g.pending, p.seq)
		}
	}
	return nil
}
