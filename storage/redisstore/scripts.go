package redisstore

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Every change that touches more than one key is one of these scripts, so it is atomic.
// All the keys a script touches carry one inbox's hash tag, so on a Cluster each script
// runs within one hash slot. Some keys are built inside a script (the hashes of messages
// found in the uids set) rather than passed in KEYS: they are ARGV's message key prefix,
// which carries the same hash tag, plus an ID, so they stay in the slot of KEYS too.
//
// Events are published as "type\ninbox\nid\nuid\nflags\nmeta", type one of a(dded),
// f(lags), d(eleted), e(xpired), meta only for a; see parseEvent. The script that makes
// an event also adds it to the inbox's log (logLua), in the same slot, and returns it
// for the caller to add to the feed (see events.go).

// logLua is the start of every script that makes events: publish sends an event to
// the subscribers (see Store.channelOf), logEvent adds payload to the
// inbox's log, a stream, trims the log of what is older than keep ms (MINID, roughly:
// whole stream nodes) and keeps the log key twice that after its last event. Given the
// feed's key (a Redis that is no Cluster, where a script may touch any key: see
// Store.feedInScript), it adds payload to the feed too, atomically with the change,
// while a webhook exists (the feed's only reader; see eventlog.go); otherwise the
// caller does, after the script.
//
// With the feed's key, logEvent also counts the event against the namespace of its
// inbox, if that exists (accountLua; namespaces.go): one Redis, where the change and its
// count are one script. size and exp are those of an added message.
var logLua = accountLua + `
-- hooked says whether a webhook exists, asked once per script (it is atomic).
local hooked
local function feedOn(feed)
	if hooked == nil then
		hooked = redis.call('EXISTS', string.sub(feed, 1, #feed - ` + strconv.Itoa(len(feedKeySuffix)) + `) .. '` + hooksTag + `hooks') == 1
	end
	return hooked
end

local function logEvent(key, payload, keep, feed, size, exp)
	if feed then
		account(payload, feed, size, exp)
	end
	local t = redis.call('TIME')
	local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
	redis.call('XADD', key, 'MINID', '~', now - keep, '*', 'e', payload)
	redis.call('PEXPIRE', key, 2 * keep)
	if feed and feedOn(feed) then
		redis.call('XADD', feed, 'MAXLEN', '~', '` + strconv.Itoa(feedMax) + `', '*', 'e', payload)
		redis.call('PEXPIRE', feed, '` + strconv.FormatInt(feedTTL.Milliseconds(), 10) + `')
	end
	return payload
end

-- An inbox's own channel (on a Cluster: its hash tag, in its slot) is sharded Pub/Sub,
-- which reaches only the subscribers on the slot's node; the one channel of every
-- inbox (one Redis, Sentinel) has no braces, as the key prefix may not.
local function publish(channel, payload)
	if string.find(channel, '{', 1, true) then
		redis.call('SPUBLISH', channel, payload)
	else
		redis.call('PUBLISH', channel, payload)
	end
end
`

// putScript stores one message in one inbox and returns {UID, expiry (unix ms), the
// events it made...}. The expiry is ARGV[4], the one the receiver set,
// unless the inbox has a TTL (the state's ttl field, see setInboxScript): then it is
// ARGV[11] plus that TTL, and the script writes it into the metadata in place of the
// receiver's, so the stored hash, its TTL and the added event all say the same. The
// caller, which wrote ARGV[4] to the expiry index in the same round trip, corrects that
// entry when the script returns another expiry.
// KEYS: 1 state, 2 uids, 3 the message's hash, 4 the inbox's log, 5 the feed (optional,
// see logLua).
// ARGV: 1 id, 2 meta, 3 unused (the raw bytes, which the caller now writes to the
// message's hash just before: see Put), 4 expiry (unix ms), 5 how long the inbox's state outlives
// the message (ms), 6 max messages, 7 now (unix s), 8 inbox, 9 message key prefix,
// 10 event channel, 11 received (unix ms), 12 where Expires starts in meta: after its
// first ARGV[12] bytes (see encodeMetaExpires), 13 the state field of the highest UID
// of the message's kind ("lastr" received, "lasts" sent; see storage.Mailbox), 14 the
// flags it is stored with (a sent copy is stored seen), 15 the log's history (ms), 16
// the message's size (for its namespace's count; absent = the length of raw), 17 "1"
// to have the events in the reply (for the caller's feed: see withFeed), "0" not.
var putScript = redis.NewScript(logLua + `
local state, uids, msg, log, feed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local keep = tonumber(ARGV[15])
local id, meta, inbox, channel = ARGV[1], ARGV[2], ARGV[8], ARGV[10]
-- Idempotent on the ID: a client that resends after a lost reply stores nothing twice.
local had = redis.call('HMGET', msg, 'uid', 'exp')
if had[1] then
	return {tonumber(had[1]), tonumber(had[2])}
end
-- One read and one write of the state (each call costs a script a few microseconds):
-- a new inbox starts at UID 1 with its UIDVALIDITY.
-- Numbers go to Redis as the strings they came as where they can: Redis formats each
-- number a script passes it with printf.
local st = redis.call('HMGET', state, 'validity', 'next', 'ttl')
local suid = '1'
if st[1] then
	suid = st[2] or '0'
end
local uid = tonumber(suid)
local sexp = ARGV[4]
local exp = tonumber(sexp)
local ttl = st[3]
if ttl then
	local own = tonumber(ARGV[11]) + tonumber(ttl)
	if own ~= exp then
		exp = own
		sexp = string.format('%d', exp)
		-- Expires is a zigzag varint of unix microseconds: for a time after 1970 that is
		-- twice them, in 7-bit groups, lowest first, each but the last with its high bit
		-- set. A double holds it exactly until the year 2112.
		local from = tonumber(ARGV[12])
		local to = from + 1
		while string.byte(meta, to) >= 128 do
			to = to + 1
		end
		local z, b = exp * 2000, {}
		while z >= 128 do
			b[#b + 1] = string.char(z % 128 + 128)
			z = math.floor(z / 128)
		end
		b[#b + 1] = string.char(z)
		meta = string.sub(meta, 1, from) .. table.concat(b) .. string.sub(meta, to + 1)
	end
end
if st[1] then
	redis.call('HSET', state, 'next', string.format('%d', uid + 1), ARGV[13], suid)
else
	redis.call('HSET', state, 'validity', ARGV[7], 'next', string.format('%d', uid + 1), ARGV[13], suid)
end
local flags = ARGV[14]
redis.call('HSET', msg, 'meta', meta, 'uid', suid, 'flags', flags, 'exp', sexp)
if sexp ~= ARGV[4] then
	redis.call('PEXPIREAT', msg, sexp) -- the caller set ARGV[4]'s
end
redis.call('ZADD', uids, suid, id)
-- State outlives the messages, so UIDs are not reused while UIDVALIDITY stays, and so
-- does the inbox's TTL: the message's expiry is at least the TTL from now.
-- GT leaves a key without a TTL alone: only then (rarely) is a second call needed.
local stateUntil = string.format('%d', exp + tonumber(ARGV[5]))
if redis.call('PEXPIREAT', state, stateUntil, 'GT') == 0 and redis.call('PTTL', state) == -1 then
	redis.call('PEXPIREAT', state, stateUntil)
end
if redis.call('PEXPIREAT', uids, stateUntil, 'GT') == 0 and redis.call('PTTL', uids) == -1 then
	redis.call('PEXPIREAT', uids, stateUntil)
end
local out = {uid, exp}
local ev = logEvent(log, 'a\n' .. inbox .. '\n' .. id .. '\n' .. suid .. '\n' .. flags .. '\n' .. meta, keep, feed, tonumber(ARGV[16]) or #ARGV[3], exp)
publish(channel, ev)
if ARGV[17] == '1' then
	out[3] = ev
end
local over = redis.call('ZCARD', uids) - tonumber(ARGV[6])
if over > 0 then
	local old = redis.call('ZRANGE', uids, 0, over - 1, 'WITHSCORES')
	redis.call('ZREMRANGEBYRANK', uids, 0, over - 1)
	for i = 1, #old, 2 do
		redis.call('DEL', ARGV[9] .. old[i])
		ev = logEvent(log, 'e\n' .. inbox .. '\n' .. old[i] .. '\n' .. old[i + 1] .. '\n0\n', keep, feed)
		publish(channel, ev)
		if ARGV[17] == '1' then
			out[#out + 1] = ev
		end
	end
end
return out
`)

// setInboxScript replaces an inbox's settings (the state's ttl, burn and faults fields;
// see SetInbox), making the inbox's state if it is new, and keeps the state at least
// until ARGV[3]. The faults' attempt counters (fa0, fa1, ...) restart when the encoded
// faults differ from those stored: the encoding is deterministic, so equal strings are
// equal faults. With a TTL it keeps the uids set until ARGV[3] too, as the messages it
// lists may now live that long, and returns their IDs for the caller to move their
// expiry (retimeScript); otherwise an empty table.
// KEYS: 1 state, 2 uids. ARGV: 1 now (unix s), 2 TTL (ms, 0 = none), 3 keep until (unix
// ms), 4 burn after read (1 or 0), 5 the encoded faults ("" = none), 6 how many faults.
var setInboxScript = redis.NewScript(`
local state, uids = KEYS[1], KEYS[2]
if redis.call('HSETNX', state, 'validity', ARGV[1]) == 1 then
	redis.call('HSET', state, 'next', 1)
end
if tonumber(ARGV[2]) > 0 then
	redis.call('HSET', state, 'ttl', ARGV[2])
else
	redis.call('HDEL', state, 'ttl')
end
if ARGV[4] == '1' then
	redis.call('HSET', state, 'burn', 1)
else
	redis.call('HDEL', state, 'burn')
end
local old = redis.call('HGET', state, 'faults') or ''
if old ~= ARGV[5] then
	local n = tonumber(redis.call('HGET', state, 'nf')) or 0
	for i = 0, n - 1 do
		redis.call('HDEL', state, 'fa' .. i)
	end
	if ARGV[5] == '' then
		redis.call('HDEL', state, 'faults', 'nf')
	else
		redis.call('HSET', state, 'faults', ARGV[5], 'nf', ARGV[6])
	end
end
if redis.call('PTTL', state) == -1 then
	redis.call('PEXPIREAT', state, ARGV[3])
else
	redis.call('PEXPIREAT', state, ARGV[3], 'GT')
end
if tonumber(ARGV[2]) == 0 then
	return {}
end
if redis.call('PTTL', uids) >= 0 then
	redis.call('PEXPIREAT', uids, ARGV[3], 'GT')
end
return redis.call('ZRANGE', uids, 0, -1)
`)

// retimeScript moves one stored message's expiry to the one its inbox's TTL now gives,
// unless the TTL changed again since the caller read it (the later SetInbox moves it
// then). It returns 1 when it moved it, else 0. An expiry already past drops the hash
// at once; the sweeper then reports the message expired (expireScript).
// KEYS: 1 state, 2 the message's hash. ARGV: 1 the TTL (ms) the expiry follows, 2 the
// expiry (unix ms), 3 the metadata with that expiry.
var retimeScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'ttl') ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 0 then
	return 0
end
redis.call('HSET', KEYS[2], 'meta', ARGV[3], 'exp', ARGV[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[2])
return 1
`)

// faultAttemptScript counts one attempt at fault ARGV[1] (from 0) of an inbox and
// returns the count, or -1 when the inbox has no such fault: counting only what exists
// keeps the state from being made, without a TTL, by a counter.
// KEYS: 1 state. ARGV: 1 the fault's index.
var faultAttemptScript = redis.NewScript(`
local n = tonumber(redis.call('HGET', KEYS[1], 'nf')) or 0
local i = tonumber(ARGV[1])
if i < 0 or i >= n then
	return -1
end
return redis.call('HINCRBY', KEYS[1], 'fa' .. i, 1)
`)

// setFlagsScript sets (old | add) &^ remove and returns {the flags now set, or -1 when
// there is no such message, the event it made if any}. Adding the seen flag (ARGV[6]) in a burn-after-read inbox
// (the state's burn field) deletes the message instead, as deleteScript does, and
// returns the flags with seen set, plus 256 to tell the caller it burned.
// KEYS: 1 the message's hash, 2 state, 3 uids, 4 the inbox's log, 5 the feed (optional,
// see logLua). ARGV: 1 add, 2 remove,
// 3 inbox, 4 id, 5 event channel, 6 the seen flag, 7 the log's history (ms).
var setFlagsScript = redis.NewScript(logLua + `
local v = redis.call('HMGET', KEYS[1], 'flags', 'uid')
if not v[1] then
	return {-1}
end
local old = tonumber(v[1])
local new = bit.band(bit.bor(old, tonumber(ARGV[1])), bit.bnot(tonumber(ARGV[2])))
local seen = tonumber(ARGV[6])
if bit.band(tonumber(ARGV[1]), seen) ~= 0 and redis.call('HGET', KEYS[2], 'burn') == '1' then
	redis.call('ZREM', KEYS[3], ARGV[4])
	redis.call('DEL', KEYS[1])
	local ev = logEvent(KEYS[4], 'd\n' .. ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. v[2] .. '\n0\n', tonumber(ARGV[7]), KEYS[5])
	publish(ARGV[5], ev)
	return {bit.bor(new, seen) + 256, ev}
end
if new ~= old then
	redis.call('HSET', KEYS[1], 'flags', new)
	local ev = logEvent(KEYS[4], 'f\n' .. ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. v[2] .. '\n' .. new .. '\n', tonumber(ARGV[7]), KEYS[5])
	publish(ARGV[5], ev)
	return {new, ev}
end
return {new}
`)

// deleteScript deletes one message and returns {1, the event}, or {0, the event} when
// its hash had expired, {0} when there is no such message.
// KEYS: 1 uids, 2 the message's hash, 3 the inbox's log, 4 the feed (optional, see
// logLua). ARGV: 1 inbox, 2 id, 3 event channel, 4 the log's history (ms).
var deleteScript = redis.NewScript(logLua + `
local uid = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not uid then
	return {0}
end
redis.call('ZREM', KEYS[1], ARGV[2])
-- A hash already gone has passed its expiry before a sweeper got to it. Report it as
-- expired here: the sweeper will find it unlisted and report nothing.
local kind, found = 'd', 1
if redis.call('DEL', KEYS[2]) == 0 then
	kind, found = 'e', 0
end
local ev = logEvent(KEYS[3], kind .. '\n' .. ARGV[1] .. '\n' .. ARGV[2] .. '\n' .. uid .. '\n0\n', tonumber(ARGV[4]), KEYS[4])
publish(ARGV[3], ev)
return {found, ev}
`)

// expireScript drops one message whose expiry has passed. It returns {1, the event}, or {0} when the
// message was no longer listed (deleted, dropped over the cap, or expired by another
// node), in which case there is nothing to report: each expiry is reported once. A
// message whose expiry has not passed stays, and the script returns that expiry (unix
// ms, so more than 1; as {expiry}) for the caller to put its entry back at: its entry came due
// early, because its inbox's TTL made it live longer than the expiry its Put first
// wrote to the index (see putScript), and the Put's correction has not come yet.
// KEYS: 1 uids, 2 the message's hash, 3 the inbox's log, 4 the feed (optional, see
// logLua). ARGV: 1 inbox, 2 id, 3 event channel, 4 the log's history (ms).
var expireScript = redis.NewScript(logLua + `
local uid = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not uid then
	return {0}
end
local exp = tonumber(redis.call('HGET', KEYS[2], 'exp'))
if exp then
	local t = redis.call('TIME')
	if exp > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
		return {exp}
	end
end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
local ev = logEvent(KEYS[3], 'e\n' .. ARGV[1] .. '\n' .. ARGV[2] .. '\n' .. uid .. '\n0\n', tonumber(ARGV[4]), KEYS[4])
publish(ARGV[3], ev)
return {1, ev}
`)

// deleteInboxScript deletes every message of an inbox and keeps its state, so UIDs
// continue. It returns {deleted, id..., event...}: how many live messages there were,
// then every ID that was listed (for the caller to take out of the expiry index), then
// the event of each, as many.
// KEYS: 1 uids, 2 the inbox's log, 3 the feed (optional, see logLua). ARGV: 1 message
// key prefix, 2 inbox, 3 event channel, 4 the log's history (ms).
var deleteInboxScript = redis.NewScript(logLua + `
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out, evs = {0}, {}
for i = 1, #entries, 2 do
	local id, uid = entries[i], entries[i + 1]
	local kind = 'e'
	if redis.call('DEL', ARGV[1] .. id) == 1 then
		kind = 'd'
		out[1] = out[1] + 1
	end
	out[#out + 1] = id
	local ev = logEvent(KEYS[2], kind .. '\n' .. ARGV[2] .. '\n' .. id .. '\n' .. uid .. '\n0\n', tonumber(ARGV[4]), KEYS[3])
	publish(ARGV[3], ev)
	evs[#evs + 1] = ev
end
redis.call('DEL', KEYS[1])
for _, ev in ipairs(evs) do
	out[#out + 1] = ev
end
return out
`)

// mailboxScript returns {UIDVALIDITY, next UID, messages, TTL (ms, 0 for none), highest
// UID of received mail, of sent copies (0 for none)},
// making the state of a new inbox so that an empty inbox has a stable UIDVALIDITY, and
// keeping it at least until ARGV[2] plus the inbox's TTL so a client that selected it
// keeps a valid UIDVALIDITY meanwhile.
// KEYS: 1 state, 2 uids. ARGV: 1 now (unix s), 2 keep until (unix ms), 3 message key prefix.
var mailboxScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], 'validity', ARGV[1]) == 1 then
	redis.call('HSET', KEYS[1], 'next', 1)
end
local v = redis.call('HMGET', KEYS[1], 'validity', 'next', 'ttl', 'lastr', 'lasts')
local ttl = tonumber(v[3]) or 0
local keep = tonumber(ARGV[2]) + ttl
if redis.call('PTTL', KEYS[1]) == -1 then
	redis.call('PEXPIREAT', KEYS[1], keep)
else
	redis.call('PEXPIREAT', KEYS[1], keep, 'GT')
end
local n = redis.call('ZCARD', KEYS[2])
-- Messages past their expiry stay listed until a sweeper gets to them. Within an inbox
-- the oldest expire first, so skip the gone ones at the low end to count live mail.
local gone = 0
while gone < n do
	local ids = redis.call('ZRANGE', KEYS[2], gone, gone + 15)
	if #ids == 0 then
		break
	end
	local i = 1
	while i <= #ids and redis.call('EXISTS', ARGV[3] .. ids[i]) == 0 do
		i = i + 1
	end
	gone = gone + i - 1
	if i <= #ids then
		break
	end
end
return {tonumber(v[1]), tonumber(v[2]), n - gone, ttl, tonumber(v[4]) or 0, tonumber(v[5]) or 0}
`)

// claimScript takes up to ARGV[1] due entries of the expiry index and leases them for
// ARGV[2] ms: of several nodes sweeping, one alone handles each entry, and an entry
// whose node dies before it is done comes due again. It uses the server's clock, so
// nodes with skewed clocks agree on what is due.
// KEYS: 1 expiry index.
var claimScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #due > 0 then
	local args = {}
	local lease = now + tonumber(ARGV[2])
	for i, member in ipairs(due) do
		args[2 * i - 1] = lease
		args[2 * i] = member
	end
	redis.call('ZADD', KEYS[1], 'XX', unpack(args))
end
return due
`)

var scripts = []*redis.Script{putScript, setInboxScript, retimeScript, faultAttemptScript, setFlagsScript, deleteScript, expireScript, deleteInboxScript, mailboxScript, claimScript,
	addDeliveryScript, updateDeliveryScript, claimDeliveriesScript, deleteWebhookScript}
