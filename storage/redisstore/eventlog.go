package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// The event log (storage.EventLog). Keys, with the default prefix "mayfly:":
//
//	mayfly:{<inbox>}:log           STREAM the inbox's events, one field "e" (the event as
//	                               published, see scripts.go) an entry; trimmed to
//	                               storage.EventHistory (MINID ~), key TTL twice that
//	mayfly:{mayfly-feed}:events    STREAM every inbox's events, the same field; trimmed to
//	                               feedHistory (MINID ~, once a minute per node) and feedMax
//	                               entries (MAXLEN ~), key TTL feedTTL; consumer groups as
//	                               ReadFeed makes them
//
// The script that changes an inbox writes the event to the inbox's log, on the inbox's
// slot, so the log and the mail always agree. On one Redis (or Sentinel's) it writes
// the feed too, in the same step, while a webhook exists: webhooks are the feed's only
// reader, and a feed nobody reads cost a tenth of a node's CPU per message (the writes,
// the dispatcher's reads) and a day of events in Redis's memory. A webhook made at T
// sees the events of the changes after T, as it would with the feed always written.
// The feed is one key on a slot of its own, which a script on the inbox's slot cannot
// write on a Cluster: there the script returns its events and the caller appends them
// to the feed right after, in its next round trip (with the expiry index's update
// where there is one), webhooks or not. A node that dies, or loses Redis,
// between the two leaves those events out of the feed, so webhooks miss them; the inbox's
// log, and so the event stream, has them all the same. The window is one round trip.
const (
	historyMs   = int64(storage.EventHistory / time.Millisecond)
	feedHistory = 24 * time.Hour
	// feedMax bounds the feed whatever its age: at 1,000 events a second it is some 15
	// minutes of events, ample for a consumer that is not down.
	feedMax = 1_000_000
	// feedTrimEvery is how often a node trims the feed by time.
	feedTrimEvery = time.Minute
	// feedTTL is how long the feed's key outlives its last event: trimming needs a node
	// running, and a Mayfly stopped for good should leave nothing behind.
	feedTTL = 2 * feedHistory
	// feedWaitSlice is the longest one XREADGROUP BLOCK of ReadFeed waits: go-redis
	// does not interrupt a read when its context is cancelled, so ReadFeed waits in
	// slices and looks at its context between them.
	feedWaitSlice = 250 * time.Millisecond
)

func (s *Store) feedKey() string { return s.prefix + feedKeySuffix }

// feedKeySuffix ends the feed's key, after the prefix (which accountLua takes from it).
const feedKeySuffix = "{mayfly-feed}:events"

// withFeed is the keys of a script that makes events, with the feed's when the script
// writes it (feedInScript).
func (s *Store) withFeed(keys ...string) []string {
	if s.feedInScript {
		keys = append(keys, s.feedKey())
	}
	return keys
}

// eventsInReply is the put script's ARGV that asks for its events back: only a caller
// that appends them to the feed itself needs them.
func (s *Store) eventsInReply() string {
	if s.feedInScript {
		return "0"
	}
	return "1"
}

// toFeed appends events to the feed, unless the scripts that made them did, with more's
// commands, in one round trip. It ignores the end of ctx: the change the events record
// is made. A failure loses the events for the feed (logged), not the change.
func (s *Store) toFeed(ctx context.Context, events []string, more func(redis.Pipeliner)) {
	s.account(ctx, events) // namespaces.go
	watched := s.namespaceEvents(events)
	if s.feedInScript {
		events = nil
	}
	if len(events) == 0 && more == nil && len(watched) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	pipe := s.client.Pipeline()
	for _, w := range watched {
		pipe.SPublish(ctx, w[0], w[1])
	}
	adds := make([]*redis.StringCmd, len(events))
	for i, e := range events {
		adds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.feedKey(), MaxLen: feedMax, Approx: true, Values: []any{"e", e}})
	}
	if len(adds) > 0 {
		pipe.PExpire(ctx, s.feedKey(), feedTTL)
	}
	if more != nil {
		more(pipe)
	}
	if pipe.Len() == 0 {
		return
	}
	_, _ = pipe.Exec(ctx) // the errors are in the commands
	for _, a := range adds {
		if err := a.Err(); err != nil {
			s.log.Warn("event feed: events lost to webhooks", "err", err)
			return
		}
	}
}

// namespaceEvents pairs each event of an inbox of a namespace with the namespace's own
// channel, on a Cluster (sharded Pub/Sub): there an inbox's events go to its slot's
// channel, which a watcher of the whole namespace (storage.NamespaceWatch) does not
// hear, and a script cannot publish to another slot. The events also go to the
// namespace's channel, in the round trip that feeds them. Elsewhere one channel has
// every event already.
func (s *Store) namespaceEvents(events []string) [][2]string {
	if !s.sharded {
		return nil
	}
	var out [][2]string
	for _, ev := range events {
		_, inbox, _, err := eventHeader(ev)
		if err != nil {
			continue
		}
		if name := storage.NamespaceOf(inbox); name != "" {
			out = append(out, [2]string{s.channelOf(storage.NamespaceWatch(name)), ev})
		}
	}
	return out
}

// trimFeed drops the feed's events older than feedHistory.
func (s *Store) trimFeed(ctx context.Context) {
	minID := strconv.FormatInt(time.Now().Add(-feedHistory).UnixMilli(), 10)
	if err := s.client.XTrimMinIDApprox(ctx, s.feedKey(), minID, 0).Err(); err != nil {
		s.log.Debug("event feed: trim", "err", err)
	}
}

// streamID is a stream entry's ID, "<ms>-<seq>".
type streamID struct{ ms, seq uint64 }

func parseStreamID(id string) (streamID, bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq
}

// logged decodes one stream entry of a log.
func logged(m redis.XMessage) (storage.LoggedEvent, error) {
	id, ok := parseStreamID(m.ID)
	data, ok2 := m.Values["e"].(string)
	if !ok || !ok2 {
		return storage.LoggedEvent{}, errBadEvent
	}
	t, inbox, rest, err := eventHeader(data)
	if err != nil {
		return storage.LoggedEvent{}, err
	}
	e, err := parseEvent(t, inbox, rest)
	if err != nil {
		return storage.LoggedEvent{}, err
	}
	return storage.LoggedEvent{Seq: m.ID, Time: time.UnixMilli(int64(id.ms)), Event: e}, nil
}

// InboxEvents reads the inbox's log after position after, in one MULTI with XINFO
// STREAM. Trimming (the log is only ever trimmed, by MINID, never XDEL) took events
// when entries-added is above length, and all of them were before the first entry: a
// position before that is gone (which it also is when it was the last event trimmed:
// the client missed nothing but is past the history all the same). A log that is gone
// (its key expired: no event for twice the history) has lost only events older than
// the history. (max-deleted-entry-id would be exact, but trimming does not set it.)
func (s *Store) InboxEvents(ctx context.Context, inbox, after string, limit int) ([]storage.LoggedEvent, error) {
	start := "-"
	var from streamID
	if after != "" {
		var ok bool
		if from, ok = parseStreamID(after); !ok {
			return nil, fmt.Errorf("events of %s after %q: %w", inbox, after, storage.ErrGone)
		}
		if from.ms == math.MaxUint64 && from.seq == math.MaxUint64 {
			return nil, nil // nothing comes after it, and Redis refuses the range "(" of it
		}
		start = "(" + after
	}
	k := s.keys(inbox)
	var rng *redis.XMessageSliceCmd
	var info *redis.XInfoStreamCmd
	_, _ = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if limit > 0 {
			rng = p.XRangeN(ctx, k.log, start, "+", int64(limit))
		} else {
			rng = p.XRange(ctx, k.log, start, "+")
		}
		info = p.XInfoStream(ctx, k.log)
		return nil
	})
	if err := rng.Err(); err != nil {
		return nil, unavailable("events of "+inbox, err)
	}
	if after != "" {
		err := info.Err()
		switch {
		case err != nil && strings.Contains(err.Error(), "no such key"):
			if time.Since(time.UnixMilli(int64(from.ms))) > storage.EventHistory {
				return nil, fmt.Errorf("events of %s after %s: %w", inbox, after, storage.ErrGone)
			}
		case err != nil:
			return nil, unavailable("events of "+inbox, err)
		case info.Val().EntriesAdded > info.Val().Length:
			first, ok := parseStreamID(info.Val().FirstEntry.ID)
			if !ok { // all trimmed
				first, _ = parseStreamID(info.Val().LastGeneratedID)
				first.seq++
			}
			if from.less(first) {
				return nil, fmt.Errorf("events of %s after %s: %w", inbox, after, storage.ErrGone)
			}
		}
	}
	list := make([]storage.LoggedEvent, 0, len(rng.Val()))
	for _, m := range rng.Val() {
		e, err := logged(m)
		if err != nil {
			s.log.Warn("event log: bad entry", "inbox", inbox, "entry", m.ID, "err", err)
			continue
		}
		list = append(list, e)
	}
	return list, nil
}

// ReadFeed takes, for consumer of group, the events whose lease ran out (XAUTOCLAIM,
// idle for lease: every consumer of a group should use one lease; looked for at most
// once a quarter lease per consumer, so such an event comes back within a lease and a
// quarter), else new ones
// (XREADGROUP, waiting up to block, in slices of feedWaitSlice: the end of ctx ends the
// wait within one). The group is made at its first read in this process, from the
// feed's oldest event, and its consumers idle for consumerIdle with nothing pending
// are deleted then.
func (s *Store) ReadFeed(ctx context.Context, group, consumer string, n int, block, lease time.Duration) ([]storage.LoggedEvent, error) {
	if n <= 0 || lease <= 0 {
		return nil, fmt.Errorf("read feed: count %d, lease %v", n, lease)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		list, err := s.readFeed(ctx, group, consumer, n, block, lease)
		if err != nil && redis.HasErrorPrefix(err, "NOGROUP") && attempt == 0 {
			s.feedGroups.Delete(group) // the feed was deleted: make the group again
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, unavailable("read feed", err)
		}
		if len(list) == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return list, nil
	}
}

func (s *Store) readFeed(ctx context.Context, group, consumer string, n int, block, lease time.Duration) ([]storage.LoggedEvent, error) {
	feed := s.feedKey()
	if _, ok := s.feedGroups.Load(group); !ok {
		err := s.client.XGroupCreateMkStream(ctx, feed, group, "0").Err()
		if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
			return nil, err
		}
		// A feed made here, empty, gets its TTL from the first event; with no webhook
		// none may come, and a Mayfly stopped for good leaves no key behind.
		if err := s.client.Do(ctx, "PEXPIRE", feed, feedTTL.Milliseconds(), "NX").Err(); err != nil {
			return nil, err
		}
		s.feedGroups.Store(group, true)
		s.pruneFeedConsumers(ctx, group)
	}
	var msgs []redis.XMessage
	start := "0-0"
	// An event's lease runs out a lease after it was read, so looking for those every
	// quarter of a lease finds each at most a quarter late; looking at every read was a
	// third of the dispatcher's round trips under load (issue 23). A consumer's first
	// read looks, and so does one that found a full batch (more may be waiting).
	claims := 10 // XAUTOCLAIM looks at up to ten times COUNT pending entries a call
	now := time.Now()
	claimKey := group + "\n" + consumer
	if last, ok := s.feedClaims.Load(claimKey); ok && now.Sub(last.(time.Time)) < lease/4 {
		claims = 0
	}
	for range claims {
		got, next, err := s.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: feed, Group: group, MinIdle: lease, Start: start, Count: int64(n - len(msgs)), Consumer: consumer,
		}).Result()
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, got...)
		if next == "0-0" || len(msgs) >= n {
			if len(msgs) < n {
				s.feedClaims.Store(claimKey, now)
			}
			break
		}
		start = next
	}
	end := time.Now().Add(block)
	for first := true; len(msgs) == 0; first = false {
		wait := min(time.Until(end), feedWaitSlice)
		if deadline, ok := ctx.Deadline(); ok {
			// A read cut short by the deadline may lose what Redis delivered: it
			// would wait out a lease.
			wait = min(wait, time.Until(deadline)-50*time.Millisecond)
		}
		if wait < time.Millisecond {
			if !first {
				break
			}
			wait = -1 // no BLOCK
		}
		res, err := s.client.XReadGroup(context.WithoutCancel(ctx), &redis.XReadGroupArgs{
			Group: group, Consumer: consumer, Streams: []string{feed, ">"}, Count: int64(n), Block: wait,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		if len(res) > 0 {
			msgs = res[0].Messages
		}
		if wait < 0 || ctx.Err() != nil {
			break
		}
	}
	list := make([]storage.LoggedEvent, 0, len(msgs))
	var bad []string
	for _, m := range msgs {
		e, err := logged(m)
		if err != nil {
			// Nobody's to handle: acknowledged, else it would come back every lease.
			s.log.Warn("event feed: bad entry", "entry", m.ID, "err", err)
			bad = append(bad, m.ID)
			continue
		}
		list = append(list, e)
	}
	if len(bad) > 0 {
		if err := s.client.XAck(ctx, feed, group, bad...).Err(); err != nil {
			s.log.Debug("event feed: acknowledge bad entries", "err", err)
		}
	}
	return list, nil
}

// pruneFeedConsumers deletes group's consumers that hold no event and have not read
// for consumerIdle, as pruneConsumers does the queue's: consumer names may carry a
// node's process, so every restart may add some. Best effort.
func (s *Store) pruneFeedConsumers(ctx context.Context, group string) {
	consumers, err := s.client.XInfoConsumers(ctx, s.feedKey(), group).Result()
	if err != nil {
		s.log.Debug("event feed: list consumers", "err", err)
		return
	}
	for _, c := range consumers {
		if c.Pending == 0 && c.Idle >= consumerIdle {
			if err := s.client.XGroupDelConsumer(ctx, s.feedKey(), group, c.Name).Err(); err != nil {
				s.log.Debug("event feed: delete an idle consumer", "consumer", c.Name, "err", err)
			}
		}
	}
}

// AckFeed acknowledges events group has handled (XACK); the feed's trimming deletes them.
func (s *Store) AckFeed(ctx context.Context, group string, seqs ...string) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := s.client.XAck(ctx, s.feedKey(), group, seqs...).Err(); err != nil && !redis.HasErrorPrefix(err, "NOGROUP") {
		return unavailable("acknowledge feed events", err)
	}
	return nil
}
