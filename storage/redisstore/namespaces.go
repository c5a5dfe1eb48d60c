package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// Namespaces (storage.NamespaceStore). Keys, with the default prefix "mayfly:":
//
//	mayfly:{mayfly-ns}:names     SET the namespaces' names
//	mayfly:{mayfly-ns}:keys      HASH a key's hash (storage.HashKey) -> name "\n" key ID: the
//	                             lookup of every login with a namespace key
//	mayfly:{mayfly-ns}:used      HASH a key's hash -> when it was last used (unix ms)
//	mayfly:{ns:<name>}:ns        HASH ttl (ms), maxi, maxb, send, created (unix ms), sends, bytes
//	mayfly:{ns:<name>}:keys      HASH key ID -> prefix "\n" hash "\n" created (unix ms)
//	mayfly:{ns:<name>}:msgs      HASH inbox "\n" message ID -> size: the messages counted
//	mayfly:{ns:<name>}:inboxes   ZSET inbox, score until when it counts (unix ms)
//	mayfly:{mayfly-activity}     LIST the recent activity, newest first, JSON entries
//
// A namespace's keys share one hash tag, so its counters change atomically (one script)
// also on a Cluster. They count mail stored under other tags, the inboxes': a script on
// an inbox's slot cannot write them on a Cluster, so, like the event feed (eventlog.go),
// the change's events are counted right after its script, in the caller's next round
// trip (toFeed), on every Redis alike. Counting is idempotent per message (msgs is keyed
// by inbox and ID), so a retried count never counts twice; a node that dies between
// the two leaves the one change uncounted, which a later delete or expiry of that
// message does not undo (it finds nothing to subtract).
//
// Revocation needs no message between nodes: every login looks its key's hash up in
// keys, so a key deleted there is refused by every node from the next login on.

func (s *Store) nsIndex() (names, keys, used string) {
	t := s.prefix + "{mayfly-ns}:"
	return t + "names", t + "keys", t + "used"
}

type nsKeys struct{ ns, keys, msgs, inboxes string }

func (s *Store) nsKeys(name string) nsKeys {
	t := s.prefix + "{ns:" + name + "}:"
	return nsKeys{t + "ns", t + "keys", t + "msgs", t + "inboxes"}
}

func (s *Store) activityKey() string { return s.prefix + "{mayfly-activity}" }

// accountScript counts events against a namespace that exists: per event ARGV holds
// 5 values: "a" or "d", the member (inbox "\n" ID), the size, the inbox, its message's
// expiry (unix ms).
// KEYS: 1 ns, 2 msgs, 3 inboxes.
var accountScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
for i = 1, #ARGV, 5 do
	local member = ARGV[i + 1]
	if ARGV[i] == 'a' then
		if redis.call('HSETNX', KEYS[2], member, ARGV[i + 2]) == 1 then
			redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[i + 2])
		end
		redis.call('ZADD', KEYS[3], 'GT', ARGV[i + 4], ARGV[i + 3])
	else
		local size = redis.call('HGET', KEYS[2], member)
		if size then
			redis.call('HDEL', KEYS[2], member)
			redis.call('HINCRBY', KEYS[1], 'bytes', -tonumber(size))
		end
	end
end
return 1
`)

// admitScript admits an inbox under the namespace's maxi (see storage AdmitInbox):
// 1 admitted (or no namespace: 0), -maxi when the namespace is full.
// KEYS: 1 ns, 2 inboxes. ARGV: 1 inbox, 2 until (unix ms), 3 now (unix ms).
var admitScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
	local max = tonumber(redis.call('HGET', KEYS[1], 'maxi') or '0')
	if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then
		return -max
	end
end
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[1])
return 1
`)

// keyLookupScript returns the namespace and ID of a key's hash and notes its use.
// KEYS: 1 the index, 2 used. ARGV: 1 hash, 2 now (unix ms).
var keyLookupScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
	redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return v
`)

// ifExistsScript runs HINCRBY only on a namespace that exists, so that a count does
// not bring a deleted namespace's hash back.
// KEYS: 1 ns. ARGV: 1 field, 2 n.
var ifExistsScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
`)

// accountCalls are the counting of events against their namespaces: one call per
// namespace they touch.
func (s *Store) accountCalls(events []string) []*call {
	var calls []*call
	byName := map[string]*call{}
	for _, ev := range events {
		t, inbox, rest, err := eventHeader(ev)
		if err != nil || t == storage.EventFlags {
			continue
		}
		name := storage.NamespaceOf(inbox)
		if name == "" {
			continue
		}
		e, err := parseEvent(t, inbox, rest)
		if err != nil {
			continue
		}
		c := byName[name]
		if c == nil {
			k := s.nsKeys(name)
			c = &call{script: accountScript, keys: []string{k.ns, k.msgs, k.inboxes}}
			byName[name] = c
			calls = append(calls, c)
		}
		member := inbox + "\n" + e.ID
		if t == storage.EventAdded {
			c.args = append(c.args, "a", member, e.Message.Size, inbox, e.Message.Expires.UnixMilli())
		} else {
			c.args = append(c.args, "d", member, 0, inbox, 0)
		}
	}
	return calls
}

// account counts events against their namespaces; see the package's notes above.
func (s *Store) account(ctx context.Context, events []string) {
	calls := s.accountCalls(events)
	if len(calls) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	s.pipeline(ctx, calls, nil)
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil {
			s.log.Warn("namespace usage: a change not counted", "err", err)
		}
	}
}

func nsNotFound(name string) error {
	return fmt.Errorf("namespace %s: %w", name, storage.ErrNotFound)
}

func (s *Store) CreateNamespace(ctx context.Context, ns storage.Namespace, key storage.NamespaceKey) error {
	names, index, _ := s.nsIndex()
	added, err := s.client.SAdd(ctx, names, ns.Name).Result()
	if err != nil {
		return unavailable("create namespace", err)
	}
	if added == 0 {
		return fmt.Errorf("namespace %s: %w", ns.Name, storage.ErrExists)
	}
	k := s.nsKeys(ns.Name)
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, k.ns, k.keys, k.msgs, k.inboxes)
		p.HSet(ctx, k.ns, append(settingsFields(ns), "created", ns.Created.UnixMilli(), "sends", 0, "bytes", 0)...)
		p.HSet(ctx, k.keys, key.ID, encodeKey(key))
		return nil
	})
	if err == nil {
		err = s.client.HSet(ctx, index, key.Hash, ns.Name+"\n"+key.ID).Err()
	}
	if err != nil {
		s.client.SRem(context.WithoutCancel(ctx), names, ns.Name) // the name is free again
		return unavailable("create namespace", err)
	}
	return nil
}

func settingsFields(ns storage.Namespace) []any {
	return []any{"ttl", ns.TTL.Milliseconds(), "maxi", ns.MaxInboxes, "maxb", ns.MaxBytes, "send", ns.SendLimit}
}

func encodeKey(k storage.NamespaceKey) string {
	return k.Prefix + "\n" + k.Hash + "\n" + strconv.FormatInt(k.Created.UnixMilli(), 10)
}

func decodeKey(id, v string) storage.NamespaceKey {
	f := strings.SplitN(v, "\n", 3)
	for len(f) < 3 {
		f = append(f, "")
	}
	ms, _ := strconv.ParseInt(f[2], 10, 64)
	return storage.NamespaceKey{ID: id, Prefix: f[0], Hash: f[1], Created: time.UnixMilli(ms).UTC()}
}

func (s *Store) UpdateNamespace(ctx context.Context, ns storage.Namespace) error {
	k := s.nsKeys(ns.Name)
	n, err := s.client.Exists(ctx, k.ns).Result()
	if err != nil {
		return unavailable("update namespace", err)
	}
	if n == 0 {
		return nsNotFound(ns.Name)
	}
	if err := s.client.HSet(ctx, k.ns, settingsFields(ns)...).Err(); err != nil {
		return unavailable("update namespace", err)
	}
	return nil
}

func (s *Store) GetNamespace(ctx context.Context, name string) (*storage.Namespace, error) {
	k := s.nsKeys(name)
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	pipe := s.client.Pipeline()
	fields := pipe.HGetAll(ctx, k.ns)
	keys := pipe.HGetAll(ctx, k.keys)
	msgs := pipe.HLen(ctx, k.msgs)
	inboxes := pipe.ZCount(ctx, k.inboxes, "("+now, "+inf")
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("get namespace", err)
	}
	f := fields.Val()
	if len(f) == 0 || f["created"] == "" {
		return nil, nsNotFound(name)
	}
	num := func(field string) int64 { n, _ := strconv.ParseInt(f[field], 10, 64); return n }
	ns := &storage.Namespace{
		Name: name, TTL: time.Duration(num("ttl")) * time.Millisecond, MaxInboxes: int(num("maxi")), MaxBytes: num("maxb"),
		SendLimit: f["send"], Created: time.UnixMilli(num("created")).UTC(),
		Usage: storage.Usage{Inboxes: int(inboxes.Val()), Messages: int(msgs.Val()), Bytes: num("bytes"), Sends: num("sends")},
	}
	for id, v := range keys.Val() {
		ns.Keys = append(ns.Keys, decodeKey(id, v))
	}
	slices.SortFunc(ns.Keys, func(a, b storage.NamespaceKey) int {
		return cmpKeys(a, b)
	})
	if len(ns.Keys) > 0 {
		_, _, used := s.nsIndex()
		hashes := make([]string, len(ns.Keys))
		for i, key := range ns.Keys {
			hashes[i] = key.Hash
		}
		vals, err := s.client.HMGet(ctx, used, hashes...).Result()
		if err != nil {
			return nil, unavailable("get namespace", err)
		}
		for i, v := range vals {
			if str, ok := v.(string); ok {
				ms, _ := strconv.ParseInt(str, 10, 64)
				ns.Keys[i].LastUsed = time.UnixMilli(ms).UTC()
			}
		}
	}
	return ns, nil
}

func cmpKeys(a, b storage.NamespaceKey) int {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func (s *Store) ListNamespaces(ctx context.Context) ([]storage.Namespace, error) {
	names, _, _ := s.nsIndex()
	all, err := s.client.SMembers(ctx, names).Result()
	if err != nil {
		return nil, unavailable("list namespaces", err)
	}
	slices.Sort(all)
	out := make([]storage.Namespace, 0, len(all))
	for _, name := range all {
		ns, err := s.GetNamespace(ctx, name)
		if errors.Is(err, storage.ErrNotFound) {
			continue // being created or deleted
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *ns)
	}
	return out, nil
}

func (s *Store) DeleteNamespace(ctx context.Context, name string) error {
	names, index, used := s.nsIndex()
	k := s.nsKeys(name)
	ids, err := s.client.HGetAll(ctx, k.keys).Result()
	if err != nil {
		return unavailable("delete namespace", err)
	}
	// The keys go first: from here on they open nothing, on any node.
	if len(ids) > 0 {
		hashes := make([]string, 0, len(ids))
		for id, v := range ids {
			hashes = append(hashes, decodeKey(id, v).Hash)
		}
		pipe := s.client.Pipeline()
		pipe.HDel(ctx, index, hashes...)
		pipe.HDel(ctx, used, hashes...)
		if _, err := pipe.Exec(ctx); err != nil {
			return unavailable("delete namespace", err)
		}
	}
	removed, err := s.client.SRem(ctx, names, name).Result()
	if err != nil {
		return unavailable("delete namespace", err)
	}
	if err := s.client.Del(ctx, k.ns, k.keys, k.msgs, k.inboxes).Err(); err != nil {
		return unavailable("delete namespace", err)
	}
	if removed == 0 && len(ids) == 0 {
		return nsNotFound(name)
	}
	return nil
}

func (s *Store) AddNamespaceKey(ctx context.Context, name string, key storage.NamespaceKey, replace string) error {
	_, index, used := s.nsIndex()
	k := s.nsKeys(name)
	pipe := s.client.Pipeline()
	exists := pipe.Exists(ctx, k.ns)
	var old *redis.StringCmd
	if replace != "" {
		old = pipe.HGet(ctx, k.keys, replace)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("add namespace key", err)
	}
	if exists.Val() == 0 {
		return nsNotFound(name)
	}
	if old != nil && errors.Is(old.Err(), redis.Nil) {
		return fmt.Errorf("key %s: %w", replace, storage.ErrNotFound)
	}
	pipe = s.client.Pipeline()
	pipe.HSet(ctx, k.keys, key.ID, encodeKey(key))
	pipe.HSet(ctx, index, key.Hash, name+"\n"+key.ID)
	if old != nil {
		hash := decodeKey(replace, old.Val()).Hash
		pipe.HDel(ctx, index, hash)
		pipe.HDel(ctx, used, hash)
		pipe.HDel(ctx, k.keys, replace)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("add namespace key", err)
	}
	return nil
}

func (s *Store) RevokeNamespaceKey(ctx context.Context, name, id string) error {
	_, index, used := s.nsIndex()
	k := s.nsKeys(name)
	v, err := s.client.HGet(ctx, k.keys, id).Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("key %s: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return unavailable("revoke namespace key", err)
	}
	hash := decodeKey(id, v).Hash
	pipe := s.client.Pipeline()
	pipe.HDel(ctx, index, hash)
	pipe.HDel(ctx, used, hash)
	pipe.HDel(ctx, k.keys, id)
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("revoke namespace key", err)
	}
	return nil
}

func (s *Store) NamespaceOfKey(ctx context.Context, hash string) (string, error) {
	_, index, used := s.nsIndex()
	v, err := keyLookupScript.Run(ctx, s.client, []string{index, used}, hash, time.Now().UnixMilli()).Text()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("namespace key: %w", storage.ErrNotFound)
	}
	if err != nil {
		return "", unavailable("namespace key", err)
	}
	name, _, _ := strings.Cut(v, "\n")
	return name, nil
}

func (s *Store) AdmitInbox(ctx context.Context, inbox string, until time.Time) error {
	name := storage.NamespaceOf(inbox)
	if name == "" {
		return nil
	}
	k := s.nsKeys(name)
	n, err := admitScript.Run(ctx, s.client, []string{k.ns, k.inboxes}, inbox, until.UnixMilli(), time.Now().UnixMilli()).Int64()
	if err != nil {
		return unavailable("admit inbox", err)
	}
	if n < 0 {
		return &storage.LimitError{Namespace: name, Limit: "max_inboxes", Value: -n}
	}
	return nil
}

func (s *Store) ReleaseInbox(ctx context.Context, inbox string) error {
	name := storage.NamespaceOf(inbox)
	if name == "" {
		return nil
	}
	if err := s.client.ZRem(ctx, s.nsKeys(name).inboxes, inbox).Err(); err != nil {
		return unavailable("release inbox", err)
	}
	return nil
}

func (s *Store) NamespaceInboxes(ctx context.Context, name string) ([]string, error) {
	k := s.nsKeys(name)
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	pipe := s.client.Pipeline()
	exists := pipe.Exists(ctx, k.ns)
	inboxes := pipe.ZRangeByScore(ctx, k.inboxes, &redis.ZRangeBy{Min: "(" + now, Max: "+inf"})
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("namespace inboxes", err)
	}
	if exists.Val() == 0 {
		return nil, nsNotFound(name)
	}
	out := inboxes.Val()
	slices.Sort(out)
	return out, nil
}

func (s *Store) AddNamespaceSends(ctx context.Context, name string, n int) error {
	if err := ifExistsScript.Run(ctx, s.client, []string{s.nsKeys(name).ns}, "sends", n).Err(); err != nil {
		return unavailable("count namespace sends", err)
	}
	return nil
}

func (s *Store) AddActivity(ctx context.Context, a storage.Activity) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("activity: %w", err)
	}
	pipe := s.client.Pipeline()
	pipe.LPush(ctx, s.activityKey(), b)
	pipe.LTrim(ctx, s.activityKey(), 0, storage.ActivityMax-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("add activity", err)
	}
	return nil
}

func (s *Store) Activity(ctx context.Context, namespace string, limit int) ([]storage.Activity, error) {
	vals, err := s.client.LRange(ctx, s.activityKey(), 0, storage.ActivityMax-1).Result()
	if err != nil {
		return nil, unavailable("activity", err)
	}
	all := make([]storage.Activity, 0, len(vals))
	for _, v := range vals {
		var a storage.Activity
		if json.Unmarshal([]byte(v), &a) == nil {
			all = append(all, a)
		}
	}
	return storage.FilterActivity(all, namespace, limit), nil
}
