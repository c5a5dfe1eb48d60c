package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// The queue of outgoing mail is a Redis Stream read through a consumer group, so any
// node's sender may take a job and a job whose node died is taken again by another.
// Keys, with the default prefix "mayfly:":
//
//	mayfly:{mayfly-queue}:stream   STREAM the jobs due, one field "job" (see encodeJob) an entry;
//	                               consumer group "senders"
//	mayfly:{mayfly-queue}:delayed  ZSET member an encoded job, score when it is due (unix ms)
//
// Both keys share one hash tag, so the scripts that move jobs between them run on one
// hash slot of a Cluster. An inbox's tag always holds an '@', so no inbox shares it.
//
// A lease is an entry of the group's pending list: the consumer that holds it and the
// time since it was delivered are Redis's own. Each call of Next reads as a consumer
// named after its lease and its caller, "<lease ms>:<consumer>", so the lease of every
// pending entry is known to whoever looks at it, and recorded in the same step that
// delivers the entry: a node that dies at any point leaves nothing that is not taken
// again once its lease runs out. (XAUTOCLAIM would judge every entry by the lease of
// the caller that looks, so a short lease would take jobs held under a long one.)
//
// Done and Retry need the entry's ID and delivery count, which Job has no field for:
// the store keeps them, by job ID, from Next to Done or Retry.
const (
	queueTag   = "{mayfly-queue}:"
	queueGroup = "senders"
	// queueBlock is the longest a Next waits in one XREADGROUP. A new entry ends the
	// wait at once, and the wait ends when the soonest delayed job or lease end that
	// Next saw comes; but a job retried or leased since, elsewhere, for sooner than
	// that is seen only when the wait ends, up to queueBlock late.
	queueBlock = time.Second
	// queueBatch is how many due delayed jobs one Next moves into the stream. Each may
	// be 10 MiB, and a script holds what it moves in memory.
	queueBatch = 16
	// leaseMemory is how long past the end of its lease the store keeps what Done and
	// Retry need of a job, for a caller that never calls either.
	leaseMemory = time.Hour
)

var _ storage.Queue = (*Store)(nil)

// queueState is the Store's part of the queue.
type queueState struct {
	grouped atomic.Bool  // the consumer group is known to exist
	waiters atomic.Int64 // connections Next calls hold to wait on (see waiter)

	mu     sync.Mutex
	leases map[string]*queueLease // by job ID
}

// queueLease is what a Next handed out.
type queueLease struct {
	job        *storage.Job // what Next returned: Retry takes only that one
	entry      string       // the stream entry's ID
	consumer   string       // the group's consumer, "<lease ms>:<caller's consumer>"
	deliveries int64        // the entry's delivery count then: a later lease has more
	ends       time.Time
}

var errLeaseLost = errors.New("not leased by this caller: its lease ran out and another took it, or it is done")

func (s *Store) queueKeys() (stream, delayed string) {
	return s.prefix + queueTag + "stream", s.prefix + queueTag + "delayed"
}

// Enqueue adds a job, due at once, with one XADD (and WAIT for a replica, as Put); it
// sets ID and, when zero, Created.
func (s *Store) Enqueue(ctx context.Context, job *storage.Job) error {
	now := time.Now()
	j := *job
	j.ID = storage.NewID(now)
	if j.Created.IsZero() {
		j.Created = now
	}
	stream, _ := s.queueKeys()
	// Durable as a Put is (replicas.go): the job is the reply the API answered 202 for.
	var add *redis.StringCmd
	werr := s.durableExec(ctx, stream, func(p redis.Pipeliner) {
		add = p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"job", encodeJob(&j)}})
	})
	if err := add.Err(); err != nil {
		return unavailable("enqueue", err)
	}
	if werr != nil {
		// Not known to be on a replica. It is not taken back: a worker has most likely
		// taken it already (it waits on the stream), so it may still go out, once.
		return unavailable("enqueue", werr)
	}
	job.ID, job.Created = j.ID, j.Created
	return nil
}

// Next takes, in this order: a job whose lease has run out, a job due in the stream,
// after moving due delayed jobs there. When there is none it waits in XREADGROUP BLOCK,
// at most queueBlock at a time, until the soonest delayed job or lease end it knows of,
// and looks again. Each Next waiting holds one pooled connection; while half the pool
// is so held, more Next calls wait in this process and look once a queueBlock instead.
// Done and Retry take the *Job that Next returned.
func (s *Store) Next(ctx context.Context, consumer string, lease time.Duration) (*storage.Job, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("next: lease %v", lease)
	}
	ms := (lease + time.Millisecond - 1).Milliseconds()
	name := strconv.FormatInt(ms, 10) + ":" + consumer
	var w *waiter
	defer func() { w.close() }()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// ctx's own timer may run late on a busy machine.
		if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
			return nil, context.DeadlineExceeded
		}
		if s.ctx.Err() != nil {
			return nil, fmt.Errorf("next: %w: store closed", storage.ErrUnavailable)
		}
		if err := s.ensureGroup(ctx); err != nil {
			return nil, err
		}
		job, wait, err := s.claim(ctx, name, ms)
		if err != nil {
			if s.ctx.Err() != nil {
				return nil, fmt.Errorf("next: %w: store closed", storage.ErrUnavailable)
			}
			if redis.HasErrorPrefix(err, "NOGROUP") { // the stream was deleted
				s.queue.grouped.Store(false)
				continue
			}
			return nil, unavailable("next", err)
		}
		if job != nil {
			return job, nil
		}
		block := queueBlock
		if wait >= 0 {
			block = min(block, wait)
		}
		if deadline, ok := ctx.Deadline(); ok {
			block = min(block, time.Until(deadline))
		}
		if block <= 0 {
			continue
		}
		job, err = s.await(ctx, &w, name, ms, max(block, time.Millisecond))
		if job != nil || err != nil {
			return job, err
		}
	}
}

// ensureGroup makes the consumer group, from the stream's start: jobs enqueued before
// it existed are due all the same.
func (s *Store) ensureGroup(ctx context.Context) error {
	if s.queue.grouped.Load() {
		return nil
	}
	stream, _ := s.queueKeys()
	err := s.client.XGroupCreateMkStream(ctx, stream, queueGroup, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return unavailable("next: create the consumer group", err)
	}
	s.queue.grouped.Store(true)
	s.pruneConsumers(ctx, stream)
	return nil
}

// consumerIdle is how long a consumer of the group may go unused before a starting
// node deletes it. Consumer names carry a node's process and a lease, so every
// restart adds some; Redis keeps them until told otherwise.
var consumerIdle = 24 * time.Hour

// pruneConsumers deletes the group's consumers that hold no job and have not read for
// consumerIdle: a node alive reads every few seconds, and one holding a job keeps it.
// Best effort: a failure leaves them for the next start.
func (s *Store) pruneConsumers(ctx context.Context, stream string) {
	consumers, err := s.client.XInfoConsumers(ctx, stream, queueGroup).Result()
	if err != nil {
		s.log.Debug("queue: list consumers", "err", err)
		return
	}
	for _, c := range consumers {
		if c.Pending == 0 && c.Idle >= consumerIdle {
			if err := s.client.XGroupDelConsumer(ctx, stream, queueGroup, c.Name).Err(); err != nil {
				s.log.Debug("queue: delete an idle consumer", "consumer", c.Name, "err", err)
			}
		}
	}
}

// claim runs nextScript: a job for consumer name, or how long until one may be due
// (negative: nothing is known to come). It ignores ctx's end for its one round trip, so
// a job it leased is returned rather than left leased to nobody.
func (s *Store) claim(ctx context.Context, name string, leaseMs int64) (*storage.Job, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*ioTimeout)
	defer cancel()
	stream, delayed := s.queueKeys()
	res, err := nextScript.Run(ctx, s.client, []string{stream, delayed}, queueGroup, name, leaseMs, queueBatch).Result()
	if err != nil {
		return nil, 0, err
	}
	switch v := res.(type) {
	case int64:
		if v < 0 {
			return nil, -1, nil
		}
		return nil, time.Duration(v) * time.Millisecond, nil
	case []any:
		if len(v) == 3 {
			entry, ok1 := v[0].(string)
			deliveries, ok2 := v[1].(int64)
			if ok1 && ok2 {
				data, _ := v[2].(string)
				return s.leased(ctx, entry, name, deliveries, data, leaseMs), 0, nil
			}
		}
	}
	return nil, 0, fmt.Errorf("next script: unexpected reply %v", res)
}

// leased decodes a job just leased and keeps what Done and Retry need. A job that does
// not decode is nobody's to send: it is dropped, else it would come back every lease.
func (s *Store) leased(ctx context.Context, entry, consumer string, deliveries int64, data string, leaseMs int64) *storage.Job {
	job, err := decodeJob(data)
	if err != nil {
		s.log.Error("queue: dropping a job that does not decode", "entry", entry, "err", err)
		stream, _ := s.queueKeys()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
		defer cancel()
		if _, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.XAck(ctx, stream, queueGroup, entry)
			p.XDel(ctx, stream, entry)
			return nil
		}); err != nil {
			s.log.Warn("queue: drop a job that does not decode", "entry", entry, "err", err)
		}
		return nil
	}
	now := time.Now()
	l := &queueLease{job: job, entry: entry, consumer: consumer, deliveries: deliveries, ends: now.Add(time.Duration(leaseMs) * time.Millisecond)}
	q := &s.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.leases == nil {
		q.leases = make(map[string]*queueLease)
	}
	for id, old := range q.leases {
		if now.Sub(old.ends) > leaseMemory {
			delete(q.leases, id)
		}
	}
	q.leases[job.ID] = l
	return job
}

// waiter is a connection of its own for XREADGROUP BLOCK, so that CLIENT UNBLOCK can
// end the wait when the caller's context ends: go-redis does not interrupt a read in
// progress, and a Next must not outlive its context by up to queueBlock. Close of the
// store ends the wait by closing the pool's connections.
type waiter struct {
	node  *redis.Client // the node that holds the stream
	conn  *redis.Conn
	id    int64         // CLIENT ID of conn
	count *atomic.Int64 // the store's waiters
}

func (w *waiter) close() {
	if w != nil {
		w.conn.Close()
		w.count.Add(-1)
	}
}

// await waits up to block for a new entry of the stream and leases it to consumer
// name. It returns nothing, and no error, when the wait ends without one.
func (s *Store) await(ctx context.Context, wp **waiter, name string, leaseMs int64, block time.Duration) (*storage.Job, error) {
	if *wp == nil {
		if s.queue.waiters.Add(1) > s.maxWaiters() {
			s.queue.waiters.Add(-1)
			t := time.NewTimer(block)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-s.ctx.Done():
			case <-t.C:
			}
			return nil, nil
		}
		w, err := s.newWaiter(ctx)
		if err != nil {
			s.queue.waiters.Add(-1)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, unavailable("next: wait for jobs", err)
		}
		*wp = w
	}
	w := *wp
	read := make(chan struct{})
	unblocked := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(unblocked)
		s.unblock(w, read)
	})
	stream, _ := s.queueKeys()
	// Not ctx: its deadline would cut the read short, maybe after Redis has delivered
	// an entry, which would then wait out a lease. block ends before the deadline.
	res, err := w.conn.XReadGroup(context.WithoutCancel(ctx), &redis.XReadGroupArgs{
		Group: queueGroup, Consumer: name, Streams: []string{stream, ">"}, Count: 1, Block: block,
	}).Result()
	close(read)
	if !stop() {
		<-unblocked
	}
	switch {
	case errors.Is(err, redis.Nil): // block ran out, or CLIENT UNBLOCK
		return nil, nil
	case err != nil:
		w.close()
		*wp = nil
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if s.ctx.Err() != nil {
			return nil, fmt.Errorf("next: %w: store closed", storage.ErrUnavailable)
		}
		if redis.HasErrorPrefix(err, "NOGROUP") {
			s.queue.grouped.Store(false)
			return nil, nil
		}
		return nil, unavailable("next: wait for jobs", err)
	}
	if len(res) == 0 || len(res[0].Messages) == 0 {
		return nil, nil
	}
	m := res[0].Messages[0]
	data, _ := m.Values["job"].(string)
	// An entry read with ">" is delivered for the first time.
	return s.leased(ctx, m.ID, name, 1, data, leaseMs), nil
}

func (s *Store) newWaiter(ctx context.Context) (*waiter, error) {
	var node *redis.Client
	switch c := s.client.(type) {
	case *redis.Client:
		node = c
	case *redis.ClusterClient:
		stream, _ := s.queueKeys()
		n, err := c.MasterForKey(ctx, stream)
		if err != nil {
			return nil, err
		}
		node = n
	default:
		return nil, fmt.Errorf("a %T cannot wait for jobs", s.client)
	}
	conn := node.Conn()
	id, err := conn.ClientID(ctx).Result()
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &waiter{node: node, conn: conn, id: id, count: &s.queue.waiters}, nil
}

// unblock ends w's XREADGROUP BLOCK. A CLIENT UNBLOCK that reaches Redis before the
// read it is meant for does nothing, so it is sent again until one ends the read or
// the read ends by itself. A Redis that refuses it (an ACL without @admin) leaves the
// read to end at its block.
func (s *Store) unblock(w *waiter, read <-chan struct{}) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		n, err := w.node.ClientUnblock(ctx, w.id).Result()
		cancel()
		if err != nil {
			s.log.Debug("queue: CLIENT UNBLOCK", "err", err)
			return
		}
		if n == 1 {
			return
		}
		select {
		case <-read:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// maxWaiters is how many Next calls may each hold a pooled connection to wait on: half
// the pool, so that mail coming in still finds connections.
func (s *Store) maxWaiters() int64 {
	size := 0
	switch c := s.client.(type) {
	case *redis.Client:
		size = c.Options().PoolSize
	case *redis.ClusterClient:
		size = c.Options().PoolSize
	}
	return int64(max(size/2, 1))
}

// Done acknowledges and deletes the job's entry in one MULTI. It does so also when the
// job's lease ran out and another consumer has it now: the job is finished all the
// same, and that consumer's Retry will fail. A job this store holds no lease of (done
// already, or put back by Retry) is left alone.
func (s *Store) Done(ctx context.Context, job *storage.Job) error {
	q := &s.queue
	q.mu.Lock()
	l := q.leases[job.ID]
	q.mu.Unlock()
	if l == nil {
		return nil
	}
	stream, _ := s.queueKeys()
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, stream, queueGroup, l.entry)
		p.XDel(ctx, stream, l.entry)
		return nil
	})
	if err != nil && !redis.HasErrorPrefix(err, "NOGROUP") {
		return unavailable("done "+job.ID, err)
	}
	s.forget(job)
	return nil
}

// Retry puts the job back as the caller has changed it, in one script: its entry
// acknowledged and deleted, and the job added to the delayed set, or to the stream when
// at has come. It fails when job is not what the entry's current lease handed out.
func (s *Store) Retry(ctx context.Context, job *storage.Job, at time.Time) error {
	q := &s.queue
	q.mu.Lock()
	l := q.leases[job.ID]
	q.mu.Unlock()
	if l == nil || l.job != job {
		return fmt.Errorf("retry %s: %w", job.ID, errLeaseLost)
	}
	var due int64 // now
	if !at.IsZero() {
		due = expiryMillis(at) // never before at
	}
	stream, delayed := s.queueKeys()
	n, err := retryScript.Run(ctx, s.client, []string{stream, delayed}, queueGroup, l.entry, l.consumer, l.deliveries, encodeJob(job), due).Int64()
	if err != nil {
		return unavailable("retry "+job.ID, err)
	}
	s.forget(job)
	if n == 0 {
		return fmt.Errorf("retry %s: %w", job.ID, errLeaseLost)
	}
	return nil
}

// forget drops the lease of job, unless a later Next of this store has it.
func (s *Store) forget(job *storage.Job) {
	q := &s.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	if l := q.leases[job.ID]; l != nil && l.job == job {
		delete(q.leases, job.ID)
	}
}

// nextScript finds a job for Next. First it moves up to ARGV[4] due jobs of the delayed
// set into the stream. Then it looks through the pending list for an entry whose lease
// (the number its consumer's name starts with, else ARGV[3]) has run out, and claims the
// first for ARGV[2]; failing that it reads a new entry for ARGV[2]. It returns {entry ID,
// delivery count, job} or, when there is no job, the milliseconds until the soonest
// lease ends or delayed job is due, -1 when there is neither. It uses the server's
// clock, so nodes with skewed clocks agree on what is due.
// KEYS: 1 stream, 2 delayed. ARGV: 1 group, 2 consumer, 3 its lease (ms), 4 batch.
var nextScript = redis.NewScript(`
local stream, delayed, group, me = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- One at a time, so that the script holds one job at a time.
for _ = 1, tonumber(ARGV[4]) do
	local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1)[1]
	if not due then
		break
	end
	redis.call('XADD', stream, '*', 'job', due)
	redis.call('ZREM', delayed, due)
end
local function job(fields)
	for i = 1, #fields, 2 do
		if fields[i] == 'job' then
			return fields[i + 1]
		end
	end
	return false
end
local wait = -1
local start = '-'
repeat
	local rows = redis.call('XPENDING', stream, group, start, '+', 100)
	for _, row in ipairs(rows) do
		local lease = tonumber(string.match(row[2], '^(%d+):')) or tonumber(ARGV[3])
		local left = lease - row[3]
		if left <= 0 then
			-- An entry deleted meanwhile is not claimed, and leaves the pending list.
			local got = redis.call('XCLAIM', stream, group, me, lease, row[1])
			if got[1] then
				local p = redis.call('XPENDING', stream, group, row[1], row[1], 1)
				return {row[1], p[1][4], job(got[1][2])}
			end
		elseif wait < 0 or left < wait then
			wait = left
		end
	end
	if #rows > 0 then
		start = '(' .. rows[#rows][1]
	end
until #rows < 100
local got = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', 1, 'STREAMS', stream, '>')
if got then
	local e = got[1][2][1]
	return {e[1], 1, job(e[2])}
end
local soonest = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if soonest[2] then
	local left = tonumber(soonest[2]) - now
	if wait < 0 or left < wait then
		wait = left
	end
end
return wait
`)

// retryScript puts a leased job back, if the lease is still the caller's: the entry is
// pending for the same consumer with the same delivery count as when the caller got it.
// The entry is acknowledged and deleted, and the job, as the caller changed it, goes to
// the delayed set, or straight to the stream when it is due already, so that a waiting
// Next sees it at once. It returns 1, or 0 when the lease is not the caller's.
// KEYS: 1 stream, 2 delayed. ARGV: 1 group, 2 entry ID, 3 consumer, 4 delivery count,
// 5 job, 6 due (unix ms).
var retryScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1]
if not p or p[2] ~= ARGV[3] or p[4] ~= tonumber(ARGV[4]) then
	return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[6]) <= now then
	redis.call('XADD', KEYS[1], '*', 'job', ARGV[5])
else
	redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
end
return 1
`)

// A job is stored in the same binary form as a message's metadata (see meta.go): a
// version byte (jobVersion), then ID, Inbox, From, To, Attempts, Created, Expires,
// LastError, Raw. This is stored data: a new field goes before Raw only with a new
// version, and decoders keep reading the old ones.
const jobVersion = 1

var errBadJob = errors.New("malformed job")

func encodeJob(j *storage.Job) []byte {
	n := 1 + 5*binary.MaxVarintLen64 + len(j.ID) + len(j.Inbox) + len(j.From) + len(j.LastError) + len(j.Raw)
	for _, to := range j.To {
		n += len(to) + 2
	}
	b := make([]byte, 0, n)
	b = append(b, jobVersion)
	b = appendString(b, j.ID)
	b = appendString(b, j.Inbox)
	b = appendString(b, j.From)
	b = appendStrings(b, j.To)
	b = binary.AppendVarint(b, int64(j.Attempts))
	b = binary.AppendVarint(b, micros(j.Created))
	b = binary.AppendVarint(b, micros(j.Expires))
	b = appendString(b, j.LastError)
	b = binary.AppendUvarint(b, uint64(len(j.Raw)))
	return append(b, j.Raw...)
}

func decodeJob(data string) (*storage.Job, error) {
	r := metaReader{data: data}
	if r.byte() != jobVersion {
		return nil, errBadJob
	}
	j := &storage.Job{}
	j.ID = r.string()
	j.Inbox = r.string()
	j.From = r.string()
	j.To = r.strings()
	j.Attempts = int(r.varint())
	j.Created = fromMicros(r.varint())
	j.Expires = fromMicros(r.varint())
	j.LastError = r.string()
	j.Raw = []byte(r.string())
	if r.err != nil || j.ID == "" {
		return nil, errBadJob
	}
	return j, nil
}
