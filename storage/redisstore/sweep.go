package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// sweepLoop expires due mail every SweepEvery until Close. Every node sweeps; the
// claim script hands each due entry to one of them.
func (s *Store) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	failing := false
	var trimmed time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(trimmed) > feedTrimEvery {
			trimmed = time.Now()
			ctx, cancel := context.WithTimeout(s.ctx, ioTimeout)
			s.trimFeed(ctx)
			cancel()
		}
		ctx, cancel := context.WithTimeout(s.ctx, max(s.sweepEvery, 10*time.Second))
		err := s.sweep(ctx)
		cancel()
		switch {
		case err != nil && s.ctx.Err() != nil:
			return
		case err != nil && !failing:
			s.log.Warn("sweep expired mail", "err", err)
		case err == nil && failing:
			s.log.Info("sweep expired mail: working again")
		}
		failing = err != nil
	}
}

// sweep expires every due message: it claims a batch of due entries of the expiry
// index, runs the expire script of each in one round trip, and takes the handled
// entries out of the index; until no more are due. An entry that came due before its
// message (see expireScript) is put back at the message's expiry instead.
func (s *Store) sweep(ctx context.Context) error {
	for {
		due, err := claimScript.Run(ctx, s.client, []string{s.expiryKey}, sweepBatch, sweepLease.Milliseconds()).StringSlice()
		if err != nil {
			return unavailable("sweep: claim", err)
		}
		if len(due) == 0 {
			return nil
		}
		calls := make([]*call, 0, len(due))
		done := make([]any, 0, len(due))
		for _, member := range due {
			i := strings.LastIndexByte(member, '\n')
			if i < 0 {
				done = append(done, member) // not ours to understand: drop it
				continue
			}
			inbox, id := member[:i], member[i+1:]
			k := s.keys(inbox)
			calls = append(calls, &call{script: expireScript, keys: s.withFeed(k.uids, k.msg(id), k.log), args: []any{inbox, id, s.channelOf(inbox), historyMs}})
		}
		s.pipeline(ctx, calls, nil)
		var failed error
		var early []redis.Z
		var events []string
		for _, c := range calls {
			n, evs, err := eventsReply(c.cmd)
			events = append(events, evs...)
			if err != nil {
				failed = err // the entry comes due again when its lease ends
				continue
			}
			inbox, id := c.args[0].(string), c.args[1].(string)
			switch {
			case n > 1:
				early = append(early, redis.Z{Score: float64(n), Member: expiryMember(inbox, id)})
			case n == 1:
				s.log.Info("expired", "inbox", inbox, "id", id)
				fallthrough
			default:
				done = append(done, expiryMember(inbox, id))
			}
		}
		// Entries not updated come due again when their lease ends.
		var zrem, zadd *redis.IntCmd
		s.toFeed(ctx, events, func(p redis.Pipeliner) {
			if len(done) > 0 {
				zrem = p.ZRem(ctx, s.expiryKey, done...)
			}
			if len(early) > 0 {
				zadd = p.ZAdd(ctx, s.expiryKey, early...)
			}
		})
		for _, cmd := range []*redis.IntCmd{zrem, zadd} {
			if cmd != nil && cmd.Err() != nil {
				return unavailable("sweep: expiry index", cmd.Err())
			}
		}
		if failed != nil {
			return unavailable(fmt.Sprintf("sweep: expire %d messages", len(calls)), failed)
		}
		if len(due) < sweepBatch {
			return nil
		}
	}
}
