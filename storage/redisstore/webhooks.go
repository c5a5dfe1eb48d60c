package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// The webhooks (storage.WebhookStore). Keys, with the default prefix "mayfly:":
//
//	mayfly:{mayfly-webhooks}:hooks        HASH webhook ID -> the webhook (JSON)
//	mayfly:{mayfly-webhooks}:due          ZSET member webhook ID "\n" delivery ID, score when it
//	                                      is due (unix ms): every pending delivery; a claim moves
//	                                      it to the end of its lease
//	mayfly:{mayfly-webhooks}:d:<webhook>  HASH delivery ID -> the delivery (JSON)
//	mayfly:{mayfly-webhooks}:log:<webhook> ZSET member delivery ID, score Created (unix ms): all
//	mayfly:{mayfly-webhooks}:done:<webhook> ZSET the same, of the finished ones only: trimmed to
//	                                      storage.DeliveriesKept, the oldest going from all three
//
// They share one hash tag, so every change is one script on one slot, atomic, also on a
// Cluster. Webhooks are few and deliveries bounded, so one slot holds them. None has a
// TTL: a webhook lives until deleted, and its finished deliveries are trimmed.
const hooksTag = "{mayfly-webhooks}:"

type hookKeys struct {
	hooks, due     string
	d, log, done   string // of one webhook
	deliveryPrefix string // + webhook ID = its deliveries' hash
}

func (s *Store) hookKeys(webhook string) hookKeys {
	p := s.prefix + hooksTag
	return hookKeys{hooks: p + "hooks", due: p + "due", d: p + "d:" + webhook, log: p + "log:" + webhook,
		done: p + "done:" + webhook, deliveryPrefix: p + "d:"}
}

// PutWebhook creates or replaces a webhook (HSET).
func (s *Store) PutWebhook(ctx context.Context, w *storage.Webhook) error {
	if w.ID == "" {
		return errors.New("put webhook: no ID")
	}
	data, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("put webhook %s: %w", w.ID, err)
	}
	if err := s.client.HSet(ctx, s.hookKeys(w.ID).hooks, w.ID, data).Err(); err != nil {
		return unavailable("put webhook "+w.ID, err)
	}
	return nil
}

// GetWebhook returns a webhook (HGET).
func (s *Store) GetWebhook(ctx context.Context, id string) (*storage.Webhook, error) {
	data, err := s.client.HGet(ctx, s.hookKeys(id).hooks, id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("webhook %s: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get webhook "+id, err)
	}
	w := &storage.Webhook{}
	if err := json.Unmarshal([]byte(data), w); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", id, err)
	}
	return w, nil
}

// ListWebhooks returns every webhook, oldest first (HGETALL).
func (s *Store) ListWebhooks(ctx context.Context) ([]storage.Webhook, error) {
	all, err := s.client.HGetAll(ctx, s.hookKeys("").hooks).Result()
	if err != nil {
		return nil, unavailable("list webhooks", err)
	}
	list := make([]storage.Webhook, 0, len(all))
	for id, data := range all {
		var w storage.Webhook
		if err := json.Unmarshal([]byte(data), &w); err != nil {
			return nil, fmt.Errorf("webhook %s: %w", id, err)
		}
		list = append(list, w)
	}
	storage.SortWebhooks(list)
	return list, nil
}

// DeleteWebhook deletes a webhook and its deliveries in one script.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	k := s.hookKeys(id)
	n, err := deleteWebhookScript.Run(ctx, s.client, []string{k.hooks, k.due, k.d, k.log, k.done}, id).Int64()
	if err != nil {
		return unavailable("delete webhook "+id, err)
	}
	if n == 0 {
		return fmt.Errorf("webhook %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

// deliveryArgs are the script arguments of d; an empty State is pending, as the
// WebhookStore contract says.
func deliveryArgs(d *storage.Delivery) ([]any, error) {
	if d.State == "" {
		c := *d
		c.State = storage.DeliveryPending
		d = &c
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("delivery %s: %w", d.ID, err)
	}
	return []any{d.Webhook, d.ID, data, d.Created.UnixMilli(), d.State, d.Next.UnixMilli(), storage.DeliveriesKept}, nil
}

// AddDelivery stores d unless its webhook has one with its ID (addDeliveryScript).
func (s *Store) AddDelivery(ctx context.Context, d *storage.Delivery) (bool, error) {
	args, err := deliveryArgs(d)
	if err != nil {
		return false, err
	}
	k := s.hookKeys(d.Webhook)
	res, err := addDeliveryScript.Run(ctx, s.client, []string{k.hooks, k.d, k.log, k.done, k.due}, args...).Int64Slice()
	if err == nil && len(res) != 1 {
		err = fmt.Errorf("%d results for one delivery", len(res))
	}
	if err != nil {
		return false, unavailable("add delivery "+d.ID, err)
	}
	n := res[0]
	if n < 0 {
		return false, fmt.Errorf("webhook %s: %w", d.Webhook, storage.ErrNotFound)
	}
	return n == 1, nil
}

// AddDeliveries stores each of ds as AddDelivery does, all in one round trip and one
// script call per batchDeliveries of them (addDeliveryScript): the dispatcher stores
// every delivery of a batch of events at once. added[i] is false when ds[i]'s webhook
// has a delivery with its ID already or does not exist.
func (s *Store) AddDeliveries(ctx context.Context, ds []*storage.Delivery) ([]bool, error) {
	res, err := s.deliveriesBatched(ctx, addDeliveryScript, ds)
	if err != nil {
		return nil, unavailable("add deliveries", err)
	}
	added := make([]bool, len(ds))
	for i, n := range res {
		added[i] = n == 1
	}
	return added, nil
}

// batchDeliveries is how many deliveries one script call stores: a call costs Redis
// more than the few commands each delivery needs, yet Redis runs nothing else meanwhile.
const batchDeliveries = 64

// deliveriesBatched runs script (addDeliveryScript or updateDeliveryScript) over ds,
// batchDeliveries a call, every call in one pipeline, and returns each one's result.
func (s *Store) deliveriesBatched(ctx context.Context, script *redis.Script, ds []*storage.Delivery) ([]int64, error) {
	var calls []*call
	for start := 0; start < len(ds); start += batchDeliveries {
		c := &call{script: script}
		for _, d := range ds[start:min(start+batchDeliveries, len(ds))] {
			args, err := deliveryArgs(d)
			if err != nil {
				return nil, err
			}
			k := s.hookKeys(d.Webhook)
			c.keys = append(c.keys, k.hooks, k.d, k.log, k.done, k.due)
			c.args = append(c.args, args...)
		}
		calls = append(calls, c)
	}
	s.pipeline(ctx, calls, nil)
	res := make([]int64, 0, len(ds))
	for _, c := range calls {
		ns, err := c.cmd.Int64Slice()
		if err != nil {
			return nil, err
		}
		res = append(res, ns...)
	}
	if len(res) != len(ds) {
		return nil, fmt.Errorf("%d results for %d deliveries", len(res), len(ds))
	}
	return res, nil
}

// ClaimDeliveries takes up to n deliveries due, soonest first, and moves each to the
// end of its lease, by the server's clock, in one round trip (claimDeliveriesScript).
func (s *Store) ClaimDeliveries(ctx context.Context, n int, lease time.Duration) ([]*storage.Delivery, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("claim deliveries: lease %v", lease)
	}
	if n <= 0 {
		return nil, nil
	}
	k := s.hookKeys("")
	list, err := claimDeliveriesScript.Run(ctx, s.client, []string{k.due}, max(lease.Milliseconds(), 1), k.deliveryPrefix, min(n, maxClaim)).StringSlice()
	if err != nil {
		return nil, unavailable("claim deliveries", err)
	}
	ds := make([]*storage.Delivery, 0, len(list))
	for _, data := range list {
		d := &storage.Delivery{}
		if err := json.Unmarshal([]byte(data), d); err != nil {
			// Leased all the same: it comes back after the lease, and fails again.
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// maxClaim bounds one claim, so one script call stays short: Redis runs nothing else
// meanwhile.
const maxClaim = 256

// UpdateDelivery saves d (updateDeliveryScript).
func (s *Store) UpdateDelivery(ctx context.Context, d *storage.Delivery) error {
	args, err := deliveryArgs(d)
	if err != nil {
		return err
	}
	k := s.hookKeys(d.Webhook)
	res, err := updateDeliveryScript.Run(ctx, s.client, []string{k.hooks, k.d, k.log, k.done, k.due}, args...).Int64Slice()
	if err == nil && len(res) != 1 {
		err = fmt.Errorf("%d results for one delivery", len(res))
	}
	if err != nil {
		return unavailable("update delivery "+d.ID, err)
	}
	n := res[0]
	if n < 0 {
		return fmt.Errorf("delivery %s of webhook %s: %w", d.ID, d.Webhook, storage.ErrNotFound)
	}
	return nil
}

// UpdateDeliveries saves each of ds as UpdateDelivery does, all in one round trip and
// one script call per batchDeliveries of them (updateDeliveryScript): the results of
// the attempts every worker made meanwhile go together.
func (s *Store) UpdateDeliveries(ctx context.Context, ds []*storage.Delivery) error {
	if _, err := s.deliveriesBatched(ctx, updateDeliveryScript, ds); err != nil {
		return unavailable("update deliveries", err)
	}
	return nil
}

// GetDelivery returns one delivery (HGET).
func (s *Store) GetDelivery(ctx context.Context, webhook, id string) (*storage.Delivery, error) {
	data, err := s.client.HGet(ctx, s.hookKeys(webhook).d, id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("delivery %s of webhook %s: %w", id, webhook, storage.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get delivery "+id, err)
	}
	d := &storage.Delivery{}
	if err := json.Unmarshal([]byte(data), d); err != nil {
		return nil, fmt.Errorf("delivery %s: %w", id, err)
	}
	return d, nil
}

// Deliveries returns a webhook's latest deliveries, newest first: ZREVRANGE of its log,
// then HMGET of their hash.
func (s *Store) Deliveries(ctx context.Context, webhook string, limit int) ([]storage.Delivery, error) {
	k := s.hookKeys(webhook)
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	ids, err := s.client.ZRevRange(ctx, k.log, 0, stop).Result()
	if err != nil {
		return nil, unavailable("deliveries of "+webhook, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	vals, err := s.client.HMGet(ctx, k.d, ids...).Result()
	if err != nil {
		return nil, unavailable("deliveries of "+webhook, err)
	}
	list := make([]storage.Delivery, 0, len(vals))
	for i, v := range vals {
		data, ok := v.(string)
		if !ok {
			continue // trimmed between the two reads
		}
		var d storage.Delivery
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return nil, fmt.Errorf("delivery %s: %w", ids[i], err)
		}
		list = append(list, d)
	}
	return list, nil
}

// placeLua is the start of the scripts that store a delivery: place puts a pending one in
// the due set and out of the finished set, a finished one the other way round; trim
// then trims a webhook's finished deliveries to the newest keep. A script calls trim once
// per webhook, after placing all its deliveries: trimming after each one took four
// commands more per delivery once a webhook had keep finished ones, every one of them.
const placeLua = `
local function place(done, due, webhook, id, created, state, next)
	local member = webhook .. '\n' .. id
	if state == 'pending' then
		redis.call('ZADD', due, next, member)
		redis.call('ZREM', done, id)
		return false
	end
	redis.call('ZREM', due, member)
	redis.call('ZADD', done, created, id)
	return true
end
local function trim(d, log, done, keep)
	local over = redis.call('ZCARD', done) - keep
	if over > 0 then
		local old = redis.call('ZRANGE', done, 0, over - 1)
		redis.call('ZREMRANGEBYRANK', done, 0, over - 1)
		redis.call('HDEL', d, unpack(old))
		redis.call('ZREM', log, unpack(old))
	end
end
`

// addLua and updateLua are the bodies of the scripts that add or update deliveries,
// for the delivery whose KEYS start after k and whose ARGV start after a.
//
// add stores a delivery unless its webhook has one with its ID. It returns 1 when it
// stored it, 0 when there was one, -1 when there is no such webhook.
// KEYS: 1 hooks, 2 the webhook's deliveries, 3 its log, 4 its finished ones, 5 due.
// ARGV: 1 webhook, 2 delivery ID, 3 the delivery (JSON), 4 created (unix ms), 5 state,
// 6 due (unix ms), 7 how many finished ones to keep.
//
// update replaces a stored delivery and places it again. It returns 1, or -1 when there
// is no such delivery (its webhook was deleted, or it was trimmed). KEYS and ARGV as add's.
const (
	addLua = `
local function add(k, a)
	if redis.call('HEXISTS', KEYS[k + 1], ARGV[a + 1]) == 0 then
		return -1
	end
	if redis.call('HSETNX', KEYS[k + 2], ARGV[a + 2], ARGV[a + 3]) == 0 then
		return 0
	end
	redis.call('ZADD', KEYS[k + 3], ARGV[a + 4], ARGV[a + 2])
	return place(KEYS[k + 4], KEYS[k + 5], ARGV[a + 1], ARGV[a + 2], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]) and 2 or 1
end
`
	// The log entry stays as add made it: Created, its score, never changes, and a
	// delivery trimmed from the log is gone from its hash too.
	updateLua = `
local function update(k, a)
	if redis.call('HEXISTS', KEYS[k + 2], ARGV[a + 2]) == 0 then
		return -1
	end
	redis.call('HSET', KEYS[k + 2], ARGV[a + 2], ARGV[a + 3])
	return place(KEYS[k + 4], KEYS[k + 5], ARGV[a + 1], ARGV[a + 2], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]) and 2 or 1
end
`
	// eachLua runs f over the deliveries of a call: five KEYS and seven ARGV each, all
	// on the one slot of the webhooks' hash tag; f returns 2 for a delivery it stored as
	// finished, 1 for another it stored. Then it trims each webhook that got a finished
	// one, once, and returns {1, 0 or -1 each}.
	eachLua = `
local out, finished = {}, {}
for i = 0, #KEYS / 5 - 1 do
	local n = f(i * 5, i * 7)
	if n == 2 then
		n = 1
		finished[KEYS[i * 5 + 4]] = i
	end
	out[i + 1] = n
end
for done, i in pairs(finished) do
	trim(KEYS[i * 5 + 2], KEYS[i * 5 + 3], done, tonumber(ARGV[i * 7 + 7]))
end
return out
`
)

// addDeliveryScript adds each delivery of a call (AddDelivery, AddDeliveries),
// updateDeliveryScript updates each (UpdateDelivery, UpdateDeliveries); each returns
// every delivery's result.
var (
	addDeliveryScript    = redis.NewScript(placeLua + addLua + `local f = add` + eachLua)
	updateDeliveryScript = redis.NewScript(placeLua + updateLua + `local f = update` + eachLua)
)

// claimDeliveriesScript returns up to ARGV[3] deliveries due, soonest first, and makes
// each due again at the end of the lease; an empty list when none is due. An entry whose
// delivery is gone is dropped. It uses the server's clock, so nodes with skewed clocks
// agree on leases. The deliveries' hash is built from ARGV[2], which carries KEYS[1]'s
// hash tag. KEYS: 1 due. ARGV: 1 lease (ms), 2 the deliveries' key prefix, 3 how many.
var claimDeliveriesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = tonumber(ARGV[3])
local out = {}
for _ = 1, 100 do
	local ms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, want - #out)
	if #ms == 0 then
		break
	end
	for _, m in ipairs(ms) do
		local nl = string.find(m, '\n', 1, true)
		local data = nl and redis.call('HGET', ARGV[2] .. string.sub(m, 1, nl - 1), string.sub(m, nl + 1))
		if data then
			redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), m)
			out[#out + 1] = data
		else
			redis.call('ZREM', KEYS[1], m)
		end
	end
	if #out >= want then
		break
	end
end
return out
`)

// deleteWebhookScript deletes a webhook, its deliveries and their entries in the due
// set. It returns 1, or 0 when there is no such webhook.
// KEYS: 1 hooks, 2 due, 3 the webhook's deliveries, 4 its log, 5 its finished ones.
// ARGV: 1 webhook.
var deleteWebhookScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
	return 0
end
local ids = redis.call('ZRANGE', KEYS[4], 0, -1)
for _, id in ipairs(ids) do
	redis.call('ZREM', KEYS[2], ARGV[1] .. '\n' .. id)
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
return 1
`)
