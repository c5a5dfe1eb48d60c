// Package redisstore keeps mail in Redis (one node, Sentinel or Cluster) so that several
// Mayfly nodes form one service: mail received on one node is pushed, through Redis
// Pub/Sub (sharded Pub/Sub on a Cluster), to the WebSocket and IMAP IDLE clients of
// every other.
//
// Keys, with the default prefix "mayfly:":
//
//	mayfly:{<inbox>}:state   HASH validity (UIDVALIDITY: unix seconds at creation), next (the next UID),
//	                         ttl (ms, the inbox's TTL of its mail, see SetInbox; absent = none),
//	                         lastr, lasts (the highest UID given to received mail, to sent copies),
//	                         burn (1: burn after read; absent = not), faults (see encodeFaults; absent =
//	                         none), nf (how many), fa0, fa1, ... (attempts at each, see FaultAttempt)
//	mayfly:{<inbox>}:uids    ZSET member message ID, score UID
//	mayfly:{<inbox>}:m:<id>  HASH meta (see encodeMeta), uid, flags, exp (unix ms), raw (the exact bytes)
//	mayfly:{<inbox>}:log     STREAM the inbox's events for storage.EventHistory (see eventlog.go)
//	mayfly:expiry            ZSET member inbox "\n" ID, score expiry (unix ms): the sweepers' work list
//	mayfly:secret            STRING the token key every node shares
//	mayfly:shared:<name>     STRING a value every node shares, no TTL (see GetShared: ACME state)
//	mayfly:events            the Pub/Sub channel of every change (one Redis, Sentinel)
//	mayfly:{<inbox>}:events  on a Cluster instead, the sharded Pub/Sub channel of the inbox's changes (sharded.go)
//	mayfly:{mayfly-feed}:events  STREAM every inbox's events for a day, read by consumer groups (eventlog.go)
//	mayfly:{mayfly-webhooks}:... the webhooks, their deliveries and the due queue (webhooks.go)
//	mayfly:{mayfly-queue}:...    the outgoing mail's queue (queue.go)
//
// The keys of one inbox share the hash tag {inbox} ('{', '}' and '%' in the inbox are
// percent-escaped so the tag is always the whole inbox), so every change to an inbox is
// one Lua script on one hash slot, atomic, also on a Cluster. Every inbox key has a TTL:
// a message's hash expires with the message, the log twice the event history after its
// last event, state and uids 24 hours after the inbox's last message, so UIDs are never
// reused while the UIDVALIDITY stays. The state also
// lives at least the inbox's TTL plus those 24 hours after the last SetInbox or
// Mailbox call, so an inbox's TTL is kept as long as the inbox is in use.
//
// Every change's script also writes its events to the inbox's log and, on one Redis (or
// Sentinel's), to the global feed. On a Cluster the feed is on another slot: the script
// returns its events and the caller appends them to the feed in its next round trip, so
// a node that dies in between leaves them out of the feed (webhooks miss them; the
// inbox's log has them). See eventlog.go.
//
// It needs Redis 7.0 or later (PEXPIREAT ... GT, SET ... NX GET, XINFO STREAM's
// max-deleted-entry-id). Redis must not evict
// keys by itself (maxmemory-policy noeviction, the default): an evicted message or
// secret is mail or tokens lost, while a full Redis under noeviction fails Put, which
// SMTP answers with 451 so the sender retries.
package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure a Store. Zero values mean the documented defaults.
type Options struct {
	// URL is MAYFLY_REDIS_URL: redis:// or rediss:// for one node (with
	// ?master_name=NAME, the sentinels of a Sentinel setup), or several comma-separated
	// addresses or URLs for a Cluster.
	URL         string
	Prefix      string        // of every key and the event channel; "" = "mayfly:"
	MaxMessages int           // per inbox, the oldest goes first; 0 = 200
	SweepEvery  time.Duration // how often this node looks for expired mail; 0 = 1s
	Logger      *slog.Logger  // nil = discard; the first Store given one also gets go-redis's lines
	// ReplicaWait is how long a Put waits for a replica of its primary to confirm the
	// message before it fails (see replicas.go); 0 = DefaultReplicaWait, < 0 = Puts do
	// not wait, and a primary that dies may take answered mail with it.
	ReplicaWait time.Duration
	// SettingsCache is how long this node takes an inbox read to have no settings
	// (faults, TTL, burn after read) for that, without asking Redis again; a SetInbox
	// through another node reaches this one within it. 0 = ask every time. See
	// settingscache.go.
	SettingsCache time.Duration

	// feedAfterScript writes the event feed after the scripts, as on a Cluster, on any
	// Redis: for tests.
	feedAfterScript bool
	// shardedEvents publishes each inbox's events on a channel of its own with sharded
	// Pub/Sub, as on a Cluster, on any Redis: for tests.
	shardedEvents bool
}

const (
	// grace is how long an inbox's UID state outlives its last message (or the last
	// Mailbox call), so an IMAP client that selected an emptied inbox keeps a valid
	// UIDVALIDITY.
	grace = 24 * time.Hour
	// sweepBatch is how many expiry entries one claim takes.
	sweepBatch = 500
	// sweepLease is how long a claimed entry is this node's before it comes due again.
	sweepLease = time.Minute
)

// Store is a storage.Store on Redis. It is safe for concurrent use.
type Store struct {
	client     redis.UniversalClient
	log        *slog.Logger
	prefix     string
	channel    string
	expiryKey  string
	secretKey  string
	max        int
	sweepEvery time.Duration

	// hub fans events out in this process. It is replaced, and the old one closed, each
	// time the Pub/Sub connection is lost, since its subscribers may have missed events.
	hub  atomic.Pointer[storage.Hub]
	live atomic.Bool // subscribed to the event channel

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	psMu   sync.Mutex
	ps     *redis.PubSub
	shards map[string]*shardConn // on a Cluster, by master address; see sharded.go
	closed bool

	// pending are the subscriptions waiting for their barrier; see Subscribe.
	pendingMu sync.Mutex
	pending   map[string]*pendingSub
	subSeq    atomic.Uint64

	secretMu sync.Mutex
	secret   []byte

	queue    queueState   // outgoing mail; see queue.go
	replicas replicaState // which primaries a Put waits on; see replicas.go
	// feedInScript says the scripts write the feed themselves: Redis is no Cluster,
	// so a script may touch keys of any slot (see eventlog.go).
	feedInScript bool
	feedGroups   sync.Map // the feed's consumer groups known to exist; see eventlog.go
	feedClaims   sync.Map // group "\n" consumer: when ReadFeed last looked for run-out leases
	// sharded says each inbox's events go to a channel of its own in its slot, with
	// sharded Pub/Sub (SPUBLISH, SSUBSCRIBE): on a Cluster; see sharded.go.
	sharded bool

	closeOnce sync.Once
	closeErr  error

	settings settingsCache // inboxes known to have no settings; see settingscache.go
}

var _ storage.Store = (*Store)(nil)

// New connects to Redis, checks it, loads the scripts, subscribes to the event channel
// and starts the event and sweeper goroutines; Close stops them.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Prefix == "" {
		o.Prefix = "mayfly:"
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("redis key prefix %q: braces would break the inboxes' hash tags", o.Prefix)
	}
	if o.MaxMessages <= 0 {
		o.MaxMessages = 200
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = time.Second
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	} else {
		setLibraryLogger(logger)
	}
	client, err := newClient(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	s := &Store{
		client:     client,
		log:        logger.With("store", "redis"),
		prefix:     o.Prefix,
		channel:    o.Prefix + "events",
		expiryKey:  o.Prefix + "expiry",
		secretKey:  o.Prefix + "secret",
		max:        o.MaxMessages,
		sweepEvery: o.SweepEvery,
		settings:   settingsCache{ttl: o.SettingsCache},
		pending:    make(map[string]*pendingSub),
		shards:     make(map[string]*shardConn),
	}
	switch {
	case o.ReplicaWait == 0:
		s.replicas.wait = DefaultReplicaWait
	case o.ReplicaWait > 0:
		s.replicas.wait = o.ReplicaWait
	}
	_, cluster := client.(*redis.ClusterClient)
	s.feedInScript = !cluster && !o.feedAfterScript
	s.sharded = cluster || o.shardedEvents
	s.hub.Store(storage.NewHub())
	if err := s.start(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) start(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable("connect to redis", err)
	}
	if err := s.checkVersion(ctx); err != nil {
		return err
	}
	// Loading checks the scripts compile and saves a round trip on first use; a Redis
	// that restarts later forgets them, which Script.Run and pipeline handle.
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			return unavailable("load scripts", err)
		}
	}
	if s.sharded {
		// Nothing comes on the one channel: each Subscribe subscribes on its own
		// (sharded.go), and a subscription on one master would only make the node
		// unready whenever that master, of all of them, fails over.
		s.live.Store(true)
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.wg.Add(1)
		go s.sweepLoop()
		return nil
	}
	ps := s.client.Subscribe(ctx, s.channel)
	if err := confirm(ctx, ps); err != nil {
		ps.Close()
		return unavailable("subscribe to "+s.channel, err)
	}
	s.ps = ps
	s.live.Store(true)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.listen(ps)
	go s.sweepLoop()
	if s.replicas.wait > 0 {
		s.countReplicas(ctx)
		s.wg.Add(1)
		go s.replicaLoop()
	}
	return nil
}

// checkVersion refuses a Redis older than 7.0, whose missing commands would otherwise
// fail every Put. A server that does not say its version (a proxy, a lookalike) is
// given the benefit of the doubt.
func (s *Store) checkVersion(ctx context.Context) error {
	info, err := s.client.Info(ctx, "server").Result()
	if err != nil {
		s.log.Debug("redis INFO", "err", err)
		return nil
	}
	for line := range strings.SplitSeq(info, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:")
		if !ok {
			continue
		}
		major, _, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(major); err == nil && n < 7 {
			return fmt.Errorf("redis %s: Mayfly needs Redis 7.0 or later", v)
		}
		return nil
	}
	return nil
}

// Close stops the goroutines New started, waits for them, ends every subscription and
// closes the connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.psMu.Lock()
		s.closed = true
		if s.ps != nil {
			s.ps.Close() // ends a Receive in progress
		}
		s.psMu.Unlock()
		s.wg.Wait()
		s.failPending()
		s.hub.Load().Close()
		s.closeErr = s.client.Close()
	})
	return s.closeErr
}

// unavailable wraps a Redis or network failure so views can answer "try again later".
func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, storage.ErrUnavailable, err)
}

// keys are the names of one inbox's keys.
type keys struct {
	state, uids, log string
	msgPrefix        string // + message ID = the message's hash
}

func (s *Store) keys(inbox string) keys {
	tag := s.prefix + "{" + escapeTag(inbox) + "}:"
	return keys{state: tag + "state", uids: tag + "uids", log: tag + "log", msgPrefix: tag + "m:"}
}

func (k keys) msg(id string) string { return k.msgPrefix + id }

// channelOf is the Pub/Sub channel of inbox's events: on a Cluster the inbox's own, in
// its hash slot (sharded Pub/Sub), else the one channel of every inbox.
func (s *Store) channelOf(inbox string) string {
	if s.sharded {
		return s.prefix + "{" + escapeTag(inbox) + "}:events"
	}
	return s.channel
}

// escapeTag makes inbox safe between the braces of a hash tag. Redis takes the tag to
// the first '}', and hashes the whole key when the tag is empty: an inbox "}x@y" would
// scatter its keys over the cluster. Escaping is injective, so inboxes stay apart.
func escapeTag(inbox string) string {
	if !strings.ContainsAny(inbox, "{}%") {
		return inbox
	}
	return tagEscaper.Replace(inbox)
}

var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// expiryMember is a message's entry in the expiry index.
func expiryMember(inbox, id string) string { return inbox + "\n" + id }

// call is one script call in a pipeline.
type call struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	// before, when set, adds commands that go just before the script, once: a retry
	// after NOSCRIPT sends the script alone.
	before func(redis.Pipeliner)
}

// pipeline sends calls, and whatever more adds, in one round trip; each command keeps
// its own result. A call whose script Redis has forgotten (restart, failover, SCRIPT
// FLUSH) did not run, so it is sent again once with the script's source.
func (s *Store) pipeline(ctx context.Context, calls []*call, more func(redis.Pipeliner)) {
	pipe := s.client.Pipeline()
	queueCalls(ctx, pipe, calls, false)
	if more != nil {
		more(pipe)
	}
	_, _ = pipe.Exec(ctx) // the errors are in the commands
	var again []*call
	for _, c := range calls {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			again = append(again, c)
		}
	}
	if len(again) == 0 {
		return
	}
	pipe = s.client.Pipeline()
	queueCalls(ctx, pipe, again, true)
	_, _ = pipe.Exec(ctx)
}

// queueCalls adds calls to pipe: by the scripts' SHA with what each has to go before
// it, or, again after NOSCRIPT, by their source alone.
func queueCalls(ctx context.Context, pipe redis.Pipeliner, calls []*call, again bool) {
	for _, c := range calls {
		if again {
			c.cmd = c.script.Eval(ctx, pipe, c.keys, c.args...)
			continue
		}
		if c.before != nil {
			c.before(pipe)
		}
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
}

// Put stores every message or none: one script call per message (its inbox's keys
// being in one slot) and one expiry index entry each, all in one round trip. It sets
// ID, UID and, when zero, Size. Messages sharing one Raw slice are sent from it without
// copying, but stored once per inbox: inboxes on different slots cannot share a key.
// Where the primary has a replica, the round trip ends with WAIT for it, and a Put no
// replica confirmed fails: see replicas.go.
//
// A message put into an inbox with a TTL (SetInbox) gets its expiry from the script,
// which alone can read the TTL atomically with the put; Put then sets its Expires and,
// in a second round trip, moves its expiry index entry there: the index is on another
// slot, so the script cannot. Puts into inboxes without a TTL take one round trip.
func (s *Store) Put(ctx context.Context, msgs ...*storage.Message) error {
	for _, m := range msgs {
		switch {
		case m.Inbox == "" || strings.ContainsAny(m.Inbox, "\r\n"):
			return fmt.Errorf("put %q: %w", m.Inbox, storage.ErrBadAddress)
		case m.Expires.IsZero():
			// Every key has a TTL, so nothing outlives its use; a message has to say when.
			return fmt.Errorf("put %s: message has no expiry", m.Inbox)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if floorPut != nil {
		return floorPut(s, ctx, msgs)
	}
	now := time.Now()
	calls := make([]*call, len(msgs))
	ids := make([]string, len(msgs))
	exps := make([]int64, len(msgs))
	for i, m := range msgs {
		if m.Size == 0 {
			m.Size = int64(len(m.Raw))
		}
		meta, at := encodeMetaExpires(m)
		id := storage.NewID(now)
		exp := expiryMillis(m.Expires)
		received := m.Received
		if received.IsZero() {
			received = now
		}
		k := s.keys(m.Inbox)
		ids[i], exps[i] = id, exp
		msgKey, raw := k.msg(id), m.Raw
		calls[i] = &call{
			script: putScript,
			keys:   s.withFeed(k.state, k.uids, msgKey, k.log),
			args: []any{id, meta, "", exp, grace.Milliseconds(), s.max, now.Unix(), m.Inbox, k.msgPrefix, s.channelOf(m.Inbox),
				expiryMillis(received), at, lastField(m), int(m.Flags), historyMs, m.Size, s.eventsInReply()},
			// The bytes go straight into the message's hash, before the script lists
			// it: Redis's Lua hashes every byte of every string a script is given,
			// which cost more than the rest of the script for a 10 KiB message. The
			// hash expires at the receiver's expiry should the script never run; the
			// script moves it where the inbox's TTL says otherwise.
			before: func(p redis.Pipeliner) {
				p.HSet(ctx, msgKey, "raw", raw)
				// NX: a Put resent after a lost reply leaves the expiry it set.
				p.Do(ctx, "PEXPIREAT", msgKey, exp, "NX")
			},
		}
	}
	index := make([]*redis.IntCmd, len(msgs))
	s.durablePipeline(ctx, calls, func(p redis.Pipeliner) {
		for i, m := range msgs {
			index[i] = p.ZAdd(ctx, s.expiryKey, redis.Z{Score: float64(exps[i]), Member: expiryMember(m.Inbox, ids[i])})
		}
	})
	var failed error
	var failedInbox string
	var moved []int // the messages whose expiry the script changed
	var events []string
	for i, c := range calls {
		_, exp, evs, err := putReply(c.cmd)
		events = append(events, evs...)
		if err == nil {
			err = index[i].Err()
		}
		if err != nil {
			if failed == nil {
				failed, failedInbox = err, msgs[i].Inbox
			}
			continue
		}
		if exp != exps[i] {
			exps[i] = exp
			moved = append(moved, i)
		}
	}
	var zadd *redis.IntCmd
	var more func(redis.Pipeliner) // nil: most Puts have no second round trip at all
	if failed == nil && len(moved) > 0 {
		more = func(p redis.Pipeliner) {
			entries := make([]redis.Z, len(moved))
			for j, i := range moved {
				entries[j] = redis.Z{Score: float64(exps[i]), Member: expiryMember(msgs[i].Inbox, ids[i])}
			}
			zadd = p.ZAdd(ctx, s.expiryKey, entries...)
		}
	}
	s.toFeed(ctx, events, more)
	if zadd != nil && zadd.Err() != nil {
		failed, failedInbox = zadd.Err(), msgs[moved[0]].Inbox
	}
	if failed != nil {
		s.undoPut(ctx, msgs, ids, calls)
		return unavailable("put "+failedInbox, failed)
	}
	for i, m := range msgs {
		uid, _, _, _ := putReply(calls[i].cmd)
		m.ID, m.UID = ids[i], uint32(uid)
	}
	for _, i := range moved {
		msgs[i].Expires = time.UnixMilli(exps[i])
	}
	return nil
}

// floorPut replaces Put in a build made to measure the least a Redis store could cost
// (floor.go); nil in every other build.
var floorPut func(s *Store, ctx context.Context, msgs []*storage.Message) error

// putReply reads putScript's reply: the message's UID, its expiry (unix ms) and the
// events the script made.
func putReply(cmd *redis.Cmd) (uid, exp int64, events []string, err error) {
	v, err := cmd.Slice()
	if err != nil {
		return 0, 0, nil, err
	}
	if len(v) >= 2 {
		uid, ok1 := v[0].(int64)
		exp, ok2 := v[1].(int64)
		if events, ok3 := replyEvents(v[2:]); ok1 && ok2 && ok3 {
			return uid, exp, events, nil
		}
	}
	return 0, 0, nil, fmt.Errorf("put script: unexpected reply %v", cmd.Val())
}

// eventsReply reads the reply {n, event...} of a script that makes events.
func eventsReply(cmd *redis.Cmd) (int64, []string, error) {
	v, err := cmd.Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(v) >= 1 {
		n, ok1 := v[0].(int64)
		if events, ok2 := replyEvents(v[1:]); ok1 && ok2 {
			return n, events, nil
		}
	}
	return 0, nil, fmt.Errorf("script: unexpected reply %v", cmd.Val())
}

func replyEvents(v []any) ([]string, bool) {
	if len(v) == 0 {
		return nil, true
	}
	events := make([]string, len(v))
	for i, e := range v {
		str, ok := e.(string)
		if !ok {
			return nil, false
		}
		events[i] = str
	}
	return events, true
}

// undoPut deletes what a failed Put stored, on its own short deadline so that a caller
// whose context ended still gets its all-or-none. Subscribers see the message added then
// deleted. If Redis is gone too, what stayed is a message the sender will send again.
func (s *Store) undoPut(ctx context.Context, msgs []*storage.Message, ids []string, calls []*call) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	var undo []*call
	members := make([]any, 0, len(msgs))
	for i, m := range msgs {
		members = append(members, expiryMember(m.Inbox, ids[i]))
		// Every message, not only those whose script answered: one that timed out may
		// have run all the same, and the delete script leaves an absent message alone
		// (no event). Leaving it would keep a message whose expiry nobody reports.
		k := s.keys(m.Inbox)
		undo = append(undo, &call{script: deleteScript, keys: s.withFeed(k.uids, k.msg(ids[i]), k.log), args: []any{m.Inbox, ids[i], s.channelOf(m.Inbox), historyMs}})
	}
	var zrem *redis.IntCmd
	s.pipeline(ctx, undo, func(p redis.Pipeliner) {
		zrem = p.ZRem(ctx, s.expiryKey, members...)
		// A message whose script never ran holds just its bytes, unlisted, which the
		// delete script leaves alone.
		for i, m := range msgs {
			p.Del(ctx, s.keys(m.Inbox).msg(ids[i]))
		}
	})
	var events []string
	for _, c := range undo {
		_, evs, err := eventsReply(c.cmd)
		if err != nil {
			s.log.Warn("undo a failed put", "inbox", c.args[0], "id", c.args[1], "err", err)
		}
		events = append(events, evs...)
	}
	s.toFeed(ctx, events, nil)
	if err := zrem.Err(); err != nil {
		s.log.Debug("undo a failed put: expiry index", "err", err)
	}
}

// List returns an inbox's messages newest first: one ZREVRANGEBYSCORE for the page, then
// the metadata of the page in one pipelined round trip.
func (s *Store) List(ctx context.Context, inbox string, page storage.Page) ([]storage.Message, error) {
	k := s.keys(inbox)
	top := "+inf"
	if page.Before > 0 {
		top = "(" + strconv.FormatUint(uint64(page.Before), 10)
	}
	var list []storage.Message
	for {
		want := 0 // all
		if page.Limit > 0 {
			want = page.Limit - len(list)
		}
		entries, err := s.client.ZRevRangeByScoreWithScores(ctx, k.uids, &redis.ZRangeBy{Max: top, Min: "-inf", Count: int64(want)}).Result()
		if err != nil {
			return nil, unavailable("list "+inbox, err)
		}
		if len(entries) == 0 {
			return list, nil
		}
		cmds := make([]*redis.SliceCmd, len(entries))
		_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, e := range entries {
				cmds[i] = p.HMGet(ctx, k.msg(e.Member.(string)), "meta", "flags")
			}
			return nil
		})
		if err != nil {
			return nil, unavailable("list "+inbox, err)
		}
		now := time.Now()
		if list == nil {
			list = make([]storage.Message, 0, len(entries))
		}
		for i, e := range entries {
			m := storage.Message{ID: e.Member.(string), Inbox: inbox, UID: uint32(e.Score)}
			v := cmds[i].Val()
			if ok, err := decodeStored(&m, v[0], v[1], now); err != nil {
				return nil, fmt.Errorf("list %s: message %s: %w", inbox, m.ID, err)
			} else if ok {
				list = append(list, m)
			}
		}
		// Messages past their expiry that no sweeper has reached yet are skipped;
		// fill a limited page from further down instead.
		if want == 0 || len(list) >= page.Limit || len(entries) < want {
			return list, nil
		}
		top = "(" + strconv.FormatUint(uint64(entries[len(entries)-1].Score), 10)
	}
}

// decodeStored fills m from the meta and flags fields of its hash and reports whether it
// is there and live at now: a listed message whose hash has expired is not.
func decodeStored(m *storage.Message, metaField, flagsField any, now time.Time) (bool, error) {
	data, ok := metaField.(string)
	if !ok {
		return false, nil
	}
	if err := decodeMeta(data, m); err != nil {
		return false, err
	}
	if f, ok := flagsField.(string); ok {
		n, _ := strconv.ParseUint(f, 10, 8)
		m.Flags = storage.Flags(n)
	}
	return m.Live(now), nil
}

func notFound(op, inbox, id string) error {
	return fmt.Errorf("%s %s in %s: %w", op, id, inbox, storage.ErrNotFound)
}

// Get returns the metadata of one message.
func (s *Store) Get(ctx context.Context, inbox, id string) (*storage.Message, error) {
	v, err := s.client.HMGet(ctx, s.keys(inbox).msg(id), "meta", "flags", "uid").Result()
	if err != nil {
		return nil, unavailable("get "+id, err)
	}
	m := &storage.Message{ID: id, Inbox: inbox}
	ok, err := decodeStored(m, v[0], v[1], time.Now())
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	if !ok {
		return nil, notFound("get", inbox, id)
	}
	if u, ok := v[2].(string); ok {
		uid, _ := strconv.ParseUint(u, 10, 32)
		m.UID = uint32(uid)
	}
	return m, nil
}

// Raw returns the bytes of one message exactly as stored.
func (s *Store) Raw(ctx context.Context, inbox, id string) ([]byte, error) {
	v, err := s.client.HMGet(ctx, s.keys(inbox).msg(id), "raw", "exp").Result()
	if err != nil {
		return nil, unavailable("raw "+id, err)
	}
	raw, ok := v[0].(string)
	if !ok {
		return nil, notFound("raw", inbox, id)
	}
	if e, ok := v[1].(string); ok {
		if exp, err := strconv.ParseInt(e, 10, 64); err == nil && time.Now().UnixMilli() >= exp {
			return nil, notFound("raw", inbox, id)
		}
	}
	return []byte(raw), nil
}

// SetFlags adds then removes flags and returns the flags now set. An event is published
// only when they change.
func (s *Store) SetFlags(ctx context.Context, inbox, id string, add, remove storage.Flags) (storage.Flags, error) {
	k := s.keys(inbox)
	c := &call{script: setFlagsScript, keys: s.withFeed(k.msg(id), k.state, k.uids, k.log),
		args: []any{int(add), int(remove), inbox, id, s.channelOf(inbox), int(storage.FlagSeen), historyMs}}
	s.pipeline(ctx, []*call{c}, nil)
	n, events, err := eventsReply(c.cmd)
	if err != nil {
		return 0, unavailable("set flags of "+id, err)
	}
	if n < 0 {
		return 0, notFound("set flags of", inbox, id)
	}
	var zrem *redis.IntCmd
	s.toFeed(ctx, events, func(p redis.Pipeliner) {
		if n >= 256 { // burned after read
			zrem = p.ZRem(ctx, s.expiryKey, expiryMember(inbox, id))
		}
	})
	// Only tidiness, as in DeleteInbox: a sweeper that meets the entry finds nothing to do.
	if zrem != nil && zrem.Err() != nil {
		s.log.Debug("burn after read: expiry index", "inbox", inbox, "err", zrem.Err())
	}
	return storage.Flags(n & 0xff), nil
}

// Delete deletes one message.
func (s *Store) Delete(ctx context.Context, inbox, id string) error {
	k := s.keys(inbox)
	c := &call{script: deleteScript, keys: s.withFeed(k.uids, k.msg(id), k.log), args: []any{inbox, id, s.channelOf(inbox), historyMs}}
	s.pipeline(ctx, []*call{c}, func(p redis.Pipeliner) {
		p.ZRem(ctx, s.expiryKey, expiryMember(inbox, id)) // no sweeper need look at it
	})
	n, events, err := eventsReply(c.cmd)
	if err != nil {
		return unavailable("delete "+id, err)
	}
	s.toFeed(ctx, events, nil)
	if n == 0 {
		return notFound("delete", inbox, id)
	}
	return nil
}

// DeleteInbox deletes every message of an inbox and returns how many there were. The
// inbox's UID state stays, so UIDs continue.
func (s *Store) DeleteInbox(ctx context.Context, inbox string) (int, error) {
	k := s.keys(inbox)
	c := &call{script: deleteInboxScript, keys: s.withFeed(k.uids, k.log), args: []any{k.msgPrefix, inbox, s.channelOf(inbox), historyMs}}
	s.pipeline(ctx, []*call{c}, nil)
	n, rest, err := eventsReply(c.cmd)
	if err != nil {
		return 0, unavailable("delete inbox "+inbox, err)
	}
	if len(rest)%2 != 0 {
		return 0, fmt.Errorf("delete inbox %s: reply of %d IDs and events", inbox, len(rest))
	}
	ids, events := rest[:len(rest)/2], rest[len(rest)/2:]
	var zrem *redis.IntCmd
	s.toFeed(ctx, events, func(p redis.Pipeliner) {
		if len(ids) > 0 {
			members := make([]any, len(ids))
			for i, id := range ids {
				members[i] = expiryMember(inbox, id)
			}
			zrem = p.ZRem(ctx, s.expiryKey, members...)
		}
	})
	// Only tidiness: a sweeper that meets these entries finds nothing to do.
	if zrem != nil && zrem.Err() != nil {
		s.log.Debug("delete inbox: expiry index", "inbox", inbox, "err", zrem.Err())
	}
	return int(n), nil
}

// lastField is the state field putScript keeps the highest UID of m's kind in.
func lastField(m *storage.Message) string {
	if m.Sent {
		return "lasts"
	}
	return "lastr"
}

// Mailbox returns the UIDVALIDITY, next UID and message count of an inbox, making its
// state if it is new.
func (s *Store) Mailbox(ctx context.Context, inbox string) (storage.Mailbox, error) {
	k := s.keys(inbox)
	now := time.Now()
	res, err := mailboxScript.Run(ctx, s.client, []string{k.state, k.uids}, now.Unix(), now.Add(grace).UnixMilli(), k.msgPrefix).Int64Slice()
	if err != nil {
		return storage.Mailbox{}, unavailable("mailbox "+inbox, err)
	}
	if len(res) != 6 {
		return storage.Mailbox{}, fmt.Errorf("mailbox %s: reply of %d values, want 6", inbox, len(res))
	}
	return storage.Mailbox{
		UIDValidity:  uint32(res[0]),
		UIDNext:      uint32(res[1]),
		Messages:     int(res[2]),
		LastReceived: uint32(res[4]),
		LastSent:     uint32(res[5]),
	}, nil
}

// SetInbox replaces an inbox's settings (the TTL in whole milliseconds, at least one),
// making its state if it is new; the state is kept at least the TTL plus the 24-hour
// grace from now. With a TTL, the stored mail then moves to it: the settings script
// returns the inbox's message IDs, one pipelined read gets their metadata, and one
// pipelined round trip moves each message's hash (retimeScript, which gives way to a
// later SetInbox) and its expiry index entry. The entry is only ever moved earlier
// (ZADD LT): one left early comes due before its message, and the sweeper puts it back
// at the message's expiry (see expireScript), so a race between two SetInbox calls
// can leave no message unswept.
func (s *Store) SetInbox(ctx context.Context, inbox string, set storage.InboxSettings) error {
	if inbox == "" || strings.ContainsAny(inbox, "\r\n") {
		return fmt.Errorf("set inbox %q: %w", inbox, storage.ErrBadAddress)
	}
	var ms int64
	if set.TTL > 0 {
		ms = max(set.TTL.Milliseconds(), 1)
	}
	burn := 0
	if set.BurnAfterRead {
		burn = 1
	}
	faults, err := encodeFaults(set.Faults)
	if err != nil {
		return fmt.Errorf("set inbox %s: %w", inbox, err)
	}
	s.settings.forget(inbox)
	k := s.keys(inbox)
	now := time.Now()
	keep := now.Add(grace).UnixMilli() + ms
	ids, err := setInboxScript.Run(ctx, s.client, []string{k.state, k.uids}, now.Unix(), ms, keep, burn, faults, len(set.Faults)).StringSlice()
	if err != nil {
		return unavailable("set inbox "+inbox, err)
	}
	if len(ids) == 0 {
		return nil
	}
	metas := make([]*redis.SliceCmd, len(ids))
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			metas[i] = p.HMGet(ctx, k.msg(id), "meta")
		}
		return nil
	})
	var calls []*call
	var entries []redis.Z
	for i, id := range ids {
		v, err := metas[i].Result()
		if err != nil {
			return unavailable("set inbox "+inbox+": read its mail", err)
		}
		data, ok := v[0].(string)
		if !ok {
			continue // gone since
		}
		var m storage.Message
		if err := decodeMeta(data, &m); err != nil {
			return fmt.Errorf("set inbox %s: message %s: %w", inbox, id, err)
		}
		if m.Received.IsZero() {
			continue
		}
		// As putScript reckons it, so that mail already on time is left alone.
		exp := time.UnixMilli(expiryMillis(m.Received)).Add(time.Duration(ms) * time.Millisecond)
		if exp.Equal(m.Expires) {
			continue
		}
		m.Expires = exp
		at := expiryMillis(exp)
		calls = append(calls, &call{script: retimeScript, keys: []string{k.state, k.msg(id)}, args: []any{ms, at, encodeMeta(&m)}})
		entries = append(entries, redis.Z{Score: float64(at), Member: expiryMember(inbox, id)})
	}
	if len(calls) == 0 {
		return nil
	}
	var index *redis.IntCmd
	s.pipeline(ctx, calls, func(p redis.Pipeliner) {
		index = p.ZAddLT(ctx, s.expiryKey, entries...)
	})
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil {
			return unavailable("set inbox "+inbox+": move its mail's expiry", err)
		}
	}
	if err := index.Err(); err != nil {
		return unavailable("set inbox "+inbox+": expiry index", err)
	}
	return nil
}

// Settings reads an inbox's settings with one HGETALL of its state, which makes nothing.
func (s *Store) Settings(ctx context.Context, inbox string) (storage.InboxSettings, error) {
	// Only the settings' fields, not the whole state: the receiver asks at every RCPT,
	// and an inbox's state also holds its UID counters. An inbox with faults is read
	// whole, so that its faults and their attempt counts (fa0, fa1, ...) are of one moment.
	now := time.Now()
	if s.settings.known(inbox, now) {
		return storage.InboxSettings{}, nil
	}
	gen := s.settings.begin()
	state := s.keys(inbox).state
	v, err := s.client.HMGet(ctx, state, "ttl", "burn", "faults").Result()
	if err != nil {
		return storage.InboxSettings{}, unavailable("settings of "+inbox, err)
	}
	f := make(map[string]string, 3)
	for i, name := range []string{"ttl", "burn", "faults"} {
		if str, ok := v[i].(string); ok {
			f[name] = str
		}
	}
	if f["faults"] != "" {
		if f, err = s.client.HGetAll(ctx, state).Result(); err != nil {
			return storage.InboxSettings{}, unavailable("settings of "+inbox, err)
		}
	}
	var set storage.InboxSettings
	if ms, err := strconv.ParseInt(f["ttl"], 10, 64); err == nil && ms > 0 {
		set.TTL = time.Duration(ms) * time.Millisecond
	}
	set.BurnAfterRead = f["burn"] == "1"
	if set.Faults, err = decodeFaults(f["faults"]); err != nil {
		return storage.InboxSettings{}, fmt.Errorf("settings of %s: %w", inbox, err)
	}
	for i := range set.Faults {
		set.Faults[i].Attempts, _ = strconv.Atoi(f["fa"+strconv.Itoa(i)])
	}
	if set.TTL == 0 && !set.BurnAfterRead && len(set.Faults) == 0 {
		s.settings.remember(inbox, now, gen)
	}
	return set, nil
}

// FaultAttempt counts one attempt at a fault of an inbox in its state (faultAttemptScript).
func (s *Store) FaultAttempt(ctx context.Context, inbox string, fault int) (int, error) {
	n, err := faultAttemptScript.Run(ctx, s.client, []string{s.keys(inbox).state}, fault).Int()
	if err != nil {
		return 0, unavailable("fault attempt of "+inbox, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("fault %d of %s: %w", fault, inbox, storage.ErrNotFound)
	}
	return n, nil
}

// Subscribe reports the events of an inbox, from every node, until ctx ends. Events
// come through the Pub/Sub connection some time after they happen, so Subscribe waits
// until Redis has answered a PING sent on that connection: every event before the PING
// has then been handled, and the subscriber gets exactly the events after it. (On a
// Cluster, where a PUBLISH reaches the other nodes later, each subscription is its own
// sharded one instead: see sharded.go.) While the
// connection is down it fails with ErrUnavailable; when the connection is lost every
// channel is closed, as events may have been missed.
func (s *Store) Subscribe(ctx context.Context, inbox string) (<-chan storage.Event, error) {
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("subscribe %s: %w: store closed", inbox, storage.ErrUnavailable)
	}
	if s.sharded {
		return s.subscribeSharded(ctx, inbox)
	}
	if !s.live.Load() {
		return nil, fmt.Errorf("subscribe %s: %w: reconnecting to redis", inbox, storage.ErrUnavailable)
	}
	token := subscribePrefix + strconv.FormatUint(s.subSeq.Add(1), 10)
	p := &pendingSub{ctx: ctx, inbox: inbox, done: make(chan (<-chan storage.Event), 1)}
	s.pendingMu.Lock()
	s.pending[token] = p
	s.pendingMu.Unlock()
	s.psMu.Lock()
	ps := s.ps
	s.psMu.Unlock()
	return p.await(ctx, inbox, func() error { return ps.Ping(ctx, token) }, func() {
		s.pendingMu.Lock()
		delete(s.pending, token)
		s.pendingMu.Unlock()
	})
}

// await sends the PING that ends a Subscribe with ping and waits for its answer, the
// subscription (see the listeners); forget takes p out of its pending PINGs when no
// answer came, after which one that came meanwhile still counts.
func (p *pendingSub) await(ctx context.Context, inbox string, ping func() error, forget func()) (<-chan storage.Event, error) {
	err := ping()
	if err == nil {
		timer := time.NewTimer(ioTimeout)
		defer timer.Stop()
		select {
		case ch := <-p.done:
			if ch == nil {
				return nil, fmt.Errorf("subscribe %s: %w: connection lost", inbox, storage.ErrUnavailable)
			}
			return ch, nil
		case <-ctx.Done():
			err = ctx.Err()
		case <-timer.C:
			err = errors.New("no answer to PING")
		}
	}
	forget()
	select {
	case ch := <-p.done: // answered meanwhile
		if ch != nil {
			return ch, nil
		}
	default:
	}
	return nil, unavailable("subscribe "+inbox, err)
}

// subscribePrefix starts the payload of the PING of a Subscribe.
const subscribePrefix = "subscribe "

// pendingSub is a Subscribe waiting for its PING to come back.
type pendingSub struct {
	ctx   context.Context
	inbox string
	done  chan (<-chan storage.Event) // the subscription, or nil if the connection was lost
}

// Secret returns the token key every node shares: the first node to ask makes it
// (SET NX), the others read it, in one round trip. It has no TTL.
func (s *Store) Secret(ctx context.Context) ([]byte, error) {
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	if s.secret != nil {
		return s.secret, nil
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	old, err := s.client.SetArgs(ctx, s.secretKey, fresh, redis.SetArgs{Mode: "NX", Get: true}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		s.secret = fresh
	case err != nil:
		return nil, unavailable("secret", err)
	case old == "":
		return nil, fmt.Errorf("secret: %s is empty", s.secretKey)
	default:
		s.secret = []byte(old)
	}
	return s.secret, nil
}

// CountSend counts n sends under key in its current window, one counter per key and
// window that Redis drops after it; see storage.Store. Each counter is on a hash tag
// of its own: the transaction touches that one key, on whichever Cluster node holds
// it, and an inbox's counter outlives the inbox's own keys.
func (s *Store) CountSend(ctx context.Context, key string, n int, per time.Duration) (int, error) {
	if per <= 0 {
		return 0, fmt.Errorf("count send: window %v", per)
	}
	window := time.Now().UnixNano() / int64(per)
	rkey := s.prefix + "{sends:" + escapeTag(key) + "}:" + strconv.FormatInt(int64(per), 10) + ":" + strconv.FormatInt(window, 10)
	var incr *redis.IntCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.IncrBy(ctx, rkey, int64(n))
		p.PExpireAt(ctx, rkey, time.Unix(0, (window+1)*int64(per)).Add(time.Minute))
		return nil
	})
	if err != nil {
		return 0, unavailable("count send", err)
	}
	return int(incr.Val()), nil
}

// Ping reports whether Redis answers and the store hears its events again. After an
// outage commands work some time before the event connection has subscribed again
// (it retries with a backoff), and until then Subscribe fails: a node that counted
// itself ready then would turn away the WebSocket, wait and IMAP clients a load
// balancer sends it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	if !s.live.Load() {
		return fmt.Errorf("ping: %w: not subscribed to %s yet", storage.ErrUnavailable, s.channel)
	}
	return nil
}
