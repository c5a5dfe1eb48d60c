package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis replicates asynchronously: it answers a write before any replica has it, so a
// primary that dies right after its answer takes the write with it, and the replica
// promoted in its place (by Sentinel or the Cluster) never had it. For a Put, that is a
// message the sender was told 250 about and will not send again. So a Put whose primary
// has a replica sends WAIT 1 after its scripts, on the same connection (WAIT counts the
// writes of its own connection) and in the same round trip, and counts as done only
// when a replica has confirmed it. A primary without a replica has nothing to wait
// for: there a 250 is as safe as that one node.
//
// Which primaries have a replica is learned from ROLE, once a second: a WAIT that no
// replica can answer would otherwise hold every Put for the whole wait. A WAIT that
// times out is checked against a fresh ROLE: the replica left (nothing more to wait
// for, the Put stands) or is there and did not confirm (the Put fails, and SMTP
// answers 451 so the sender tries again).

// DefaultReplicaWait is how long a Put waits for a replica when Options.ReplicaWait is 0.
// Under the 2s read timeout, which the WAIT's round trip must fit in.
const DefaultReplicaWait = time.Second

// roleEvery is how often the primaries' replicas are counted.
const roleEvery = time.Second

// errNotReplicated fails a Put whose primary has a replica that did not confirm it.
var errNotReplicated = errors.New("no replica confirmed the write")

// replicaState is what the store knows of the primaries' replicas.
type replicaState struct {
	wait time.Duration // 0: Puts do not wait
	mu   sync.Mutex
	// online is the number of online replicas of each primary, by address ("" for the
	// one primary of a single Redis or a Sentinel setup). A primary not in it is
	// assumed to have one, until ROLE says otherwise.
	online map[string]int
}

// waitFor reports whether a write on the primary at addr should be followed by WAIT.
func (r *replicaState) waitFor(addr string) bool {
	if r.wait <= 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.online[addr]
	return !ok || n > 0
}

func (r *replicaState) set(addr string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.online == nil {
		r.online = make(map[string]int)
	}
	r.online[addr] = n
}

// onlineReplicas asks a primary with ROLE how many replicas it streams to. A node that
// is no primary (a demoted one a client still points at) has none to wait for: its
// writes fail with READONLY anyway.
func onlineReplicas(ctx context.Context, c redis.UniversalClient) (int, error) {
	v, err := c.Do(ctx, "role").Slice()
	if err != nil {
		return 0, err
	}
	if len(v) < 3 || v[0] != "master" {
		return 0, nil
	}
	list, ok := v[2].([]any)
	if !ok {
		return 0, fmt.Errorf("ROLE: unexpected reply %v", v)
	}
	return len(list), nil
}

// countReplicas refreshes replicaState from every primary.
func (s *Store) countReplicas(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			if n, err := onlineReplicas(ctx, node); err == nil {
				s.replicas.set(node.Options().Addr, n)
			}
			return nil
		})
		return
	}
	if n, err := onlineReplicas(ctx, s.client); err == nil {
		s.replicas.set("", n)
	}
}

func (s *Store) replicaLoop() {
	defer s.wg.Done()
	t := time.NewTicker(roleEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.countReplicas(s.ctx)
		}
	}
}

// durablePipeline is pipeline for writes that must survive a failover once answered:
// the calls, and WAIT 1 after them on the same connection where the primary has a
// replica. On a Cluster each primary's calls go to it in a pipeline of their own (a
// Cluster pipeline sends WAIT, which names no key, to any node), at once, and more's
// commands through the Cluster client beside them. A call whose write no replica
// confirmed ends with errNotReplicated.
func (s *Store) durablePipeline(ctx context.Context, calls []*call, more func(redis.Pipeliner)) {
	if s.replicas.wait <= 0 {
		s.pipeline(ctx, calls, more)
		return
	}
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		_ = s.nodePipeline(ctx, s.client, "", calls, more) // errors are in the calls
		return
	}
	type group struct {
		node  *redis.Client
		calls []*call
	}
	var groups []*group
	byAddr := make(map[string]*group)
	for _, c := range calls {
		node, err := cc.MasterForKey(ctx, c.keys[0])
		if err != nil {
			c.cmd = redis.NewCmd(ctx)
			c.cmd.SetErr(err)
			continue
		}
		addr := node.Options().Addr
		g := byAddr[addr]
		if g == nil {
			g = &group{node: node}
			byAddr[addr] = g
			groups = append(groups, g)
		}
		g.calls = append(g.calls, c)
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() { _ = s.nodePipeline(ctx, g.node, g.node.Options().Addr, g.calls, nil) }) // errors are in the calls
	}
	if more != nil {
		wg.Go(func() {
			pipe := cc.Pipeline()
			more(pipe)
			_, _ = pipe.Exec(ctx)
		})
	}
	wg.Wait()
	for _, c := range calls {
		if c.cmd != nil && isTopologyError(c.cmd.Err()) {
			// The slot moved or its primary is gone: learn the new map now rather than at
			// the Cluster client's next redirection, so the sender's retry finds it.
			cc.ReloadState(ctx)
			break
		}
	}
}

// nodePipeline runs calls and more on one connection of c, the primary at addr, with
// WAIT 1 after them if that primary has a replica; see durablePipeline. It returns
// why the writes are not known to be on a replica, nil when they are (or there is no
// replica to be on).
func (s *Store) nodePipeline(ctx context.Context, c redis.UniversalClient, addr string, calls []*call, more func(redis.Pipeliner)) error {
	var wait *redis.IntCmd
	send := func(again []*call, eval bool) {
		pipe := c.Pipeline()
		queueCalls(ctx, pipe, again, eval)
		if more != nil {
			more(pipe)
			more = nil
		}
		wait = nil
		if s.replicas.waitFor(addr) {
			wait = redis.NewIntCmd(ctx, "wait", 1, s.replicas.wait.Milliseconds())
			_ = pipe.Process(ctx, wait)
		}
		_, _ = pipe.Exec(ctx) // the errors are in the commands
	}
	send(calls, false)
	var again []*call
	for _, cl := range calls {
		if redis.HasErrorPrefix(cl.cmd.Err(), "NOSCRIPT") {
			again = append(again, cl)
		}
	}
	if len(again) > 0 {
		// A promoted replica has not the scripts its old primary loaded.
		send(again, true)
	}
	if wait == nil || wait.Err() == nil && wait.Val() >= 1 {
		return nil
	}
	err := wait.Err()
	if err == nil {
		// No replica confirmed in time: did the primary lose its replica (then this is
		// all the safety there is) or did the replica not answer (then the write may be
		// lost with the primary)?
		n, rerr := onlineReplicas(ctx, c)
		if rerr == nil {
			s.replicas.set(addr, n)
			if n == 0 {
				return nil
			}
		}
		err = fmt.Errorf("%w within %s (MAYFLY_REDIS_REPLICA_WAIT)", errNotReplicated, s.replicas.wait)
	}
	for _, cl := range calls {
		if cl.cmd.Err() == nil {
			cl.cmd.SetErr(err)
		}
	}
	return err
}

// durableExec runs fn's commands, all on key's slot, on one connection of that slot's
// primary, with WAIT 1 after them as Put does; it returns the wait's failure, and fn's
// commands keep their own results.
func (s *Store) durableExec(ctx context.Context, key string, fn func(redis.Pipeliner)) error {
	if s.replicas.wait <= 0 {
		pipe := s.client.Pipeline()
		fn(pipe)
		_, _ = pipe.Exec(ctx) // the errors are in the commands
		return nil
	}
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return s.nodePipeline(ctx, s.client, "", nil, fn)
	}
	node, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return err
	}
	err = s.nodePipeline(ctx, node, node.Options().Addr, nil, fn)
	if isTopologyError(err) {
		cc.ReloadState(ctx)
	}
	return err
}

// isTopologyError reports an error that says the Cluster's slot map has changed or a
// node is unreachable.
func isTopologyError(err error) bool {
	if err == nil {
		return false
	}
	if redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") ||
		redis.HasErrorPrefix(err, "CLUSTERDOWN") || redis.HasErrorPrefix(err, "READONLY") {
		return true
	}
	// Not an answer of Redis: a connection refused, reset or timed out.
	var re redis.Error
	return !errors.As(err, &re) && !errors.Is(err, errNotReplicated)
}
