package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// On a Cluster a PUBLISH goes to every node over the cluster bus, so every event costs
// every node, and it reaches a subscriber connected to another node than the
// publisher's some time after the script: a Subscribe's PING barrier on its own node
// cannot order it (the subscriber could get events from before it subscribed). So each
// inbox has a channel of its own in its hash slot (channelOf), the scripts SPUBLISH to
// it, and Subscribe SSUBSCRIBEs to it on the master that serves the slot, then waits for
// a PING on that connection: that master runs the scripts and answers the SSUBSCRIBE
// and the PING in one order, so the subscriber gets exactly the events after the PING,
// and an event costs only that master.
//
// A store has one sharded connection to each master that serves a watched inbox
// (shardConn), subscribed to the channels of the inboxes watched in this process: a
// node's watchers cost the masters a connection each, not one per watcher. When that
// connection fails (a failover), every subscriber of those inboxes has its channel
// closed (it may have missed events and must List again), and the client is told to
// ask the cluster again which master serves which slot.

// shardConn is the store's sharded Pub/Sub connection to one master.
type shardConn struct {
	addr string
	ps   *redis.PubSub

	mu      sync.Mutex
	dead    bool
	inboxes map[string]*shardInbox // by inbox
	pending map[string]*pendingSub // Subscribes waiting for their PING, by token
	// unsubscribing counts the SUNSUBSCRIBEs sent per channel whose confirmation has
	// not come: any other sunsubscribe is Redis's own (the slot moved away).
	unsubscribing map[string]int
}

// shardInbox is one watched inbox on a shardConn.
type shardInbox struct {
	hub  *storage.Hub
	refs int // Subscribes that have not ended, answered or not
}

// subscribeSharded subscribes to inbox's channel on the master of its slot and returns
// once a PING sent after the SSUBSCRIBE has come back.
func (s *Store) subscribeSharded(ctx context.Context, inbox string) (<-chan storage.Event, error) {
	channel := s.channelOf(inbox)
	sc, err := s.shardFor(ctx, channel)
	if err != nil {
		s.clusterChanged()
		return nil, unavailable("subscribe "+inbox, err)
	}
	token := subscribePrefix + strconv.FormatUint(s.subSeq.Add(1), 10)
	p := &pendingSub{ctx: ctx, inbox: inbox, done: make(chan (<-chan storage.Event), 1)}
	sc.mu.Lock()
	if sc.dead {
		sc.mu.Unlock()
		return nil, fmt.Errorf("subscribe %s: %w: connection lost", inbox, storage.ErrUnavailable)
	}
	si := sc.inboxes[inbox]
	if si == nil {
		// Under sc.mu, so that the PING of another Subscribe of the inbox cannot
		// overtake it.
		if err := sc.ps.SSubscribe(ctx, channel); err != nil {
			sc.mu.Unlock()
			s.clusterChanged()
			return nil, unavailable("subscribe "+inbox, err)
		}
		si = &shardInbox{hub: storage.NewHub()}
		sc.inboxes[inbox] = si
	}
	si.refs++
	sc.pending[token] = p
	sc.mu.Unlock()
	// The reference is the subscriber's until ctx ends; a Subscribe that fails gives it
	// back at once.
	stop := context.AfterFunc(ctx, func() { s.release(sc, inbox, si) })
	giveBack := func() {
		if stop() {
			s.release(sc, inbox, si)
		}
	}

	ch, err := p.await(ctx, inbox, func() error { return sc.ps.Ping(ctx, token) }, func() {
		sc.mu.Lock()
		delete(sc.pending, token)
		sc.mu.Unlock()
	})
	if err != nil {
		giveBack()
		s.clusterChanged()
	}
	return ch, err
}

// shardFor returns the store's connection to the master of channel's slot, making it
// and its listener if there is none.
func (s *Store) shardFor(ctx context.Context, channel string) (*shardConn, error) {
	var node *redis.Client
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		var err error
		if node, err = c.MasterForKey(ctx, channel); err != nil {
			return nil, err
		}
	case *redis.Client: // shardedEvents on one Redis, for tests
		node = c
	default:
		return nil, fmt.Errorf("sharded Pub/Sub on a %T", s.client)
	}
	addr := node.Options().Addr
	s.psMu.Lock()
	defer s.psMu.Unlock()
	if s.closed {
		return nil, errors.New("store closed")
	}
	if sc := s.shards[addr]; sc != nil {
		return sc, nil
	}
	sc := &shardConn{
		addr:          addr,
		ps:            node.SSubscribe(s.ctx), // connects with its first channel
		inboxes:       make(map[string]*shardInbox),
		pending:       make(map[string]*pendingSub),
		unsubscribing: make(map[string]int),
	}
	s.shards[addr] = sc
	s.wg.Add(1)
	go s.listenShard(sc)
	return sc, nil
}

// release ends one Subscribe's reference to inbox on sc, and unsubscribes from the
// inbox's channel when it was the last.
func (s *Store) release(sc *shardConn, inbox string, si *shardInbox) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	si.refs--
	if si.refs > 0 || sc.dead || sc.inboxes[inbox] != si {
		return
	}
	delete(sc.inboxes, inbox)
	si.hub.Close()
	channel := s.channelOf(inbox)
	sc.unsubscribing[channel]++
	// Under sc.mu, so that a Subscribe of the inbox that comes next sends its
	// SSUBSCRIBE after this SUNSUBSCRIBE, not before.
	ctx, cancel := context.WithTimeout(s.ctx, ioTimeout)
	defer cancel()
	if err := sc.ps.SUnsubscribe(ctx, channel); err != nil {
		sc.unsubscribing[channel]-- // the listener will see the connection fail
	}
}

// listenShard hands the events that come on sc to the subscribers of their inbox, and
// answers the Subscribes' PINGs, until the store closes or the connection fails.
func (s *Store) listenShard(sc *shardConn) {
	defer s.wg.Done()
	stop := context.AfterFunc(s.ctx, func() { sc.ps.Close() }) // ends a Receive in progress
	defer stop()
	pinged := false
	for {
		msg, err := sc.ps.ReceiveTimeout(s.ctx, pubsubIdle)
		if s.ctx.Err() != nil {
			s.shardLost(sc, nil)
			return
		}
		if err != nil {
			if isTimeout(err) && !pinged {
				pinged = true
				if sc.ps.Ping(s.ctx) == nil {
					continue
				}
			}
			s.shardLost(sc, err)
			return
		}
		pinged = false
		switch msg := msg.(type) {
		case *redis.Message:
			_, inbox, _, err := eventHeader(msg.Payload)
			if err != nil {
				s.log.Warn("redis events: bad event", "err", err)
				continue
			}
			// A namespace's channel carries its inboxes' events (namespaceEvents): they
			// are its watchers', whom the inbox's own channel does not reach.
			key := inbox
			if msg.Channel != s.channelOf(inbox) {
				key = storage.NamespaceWatch(storage.NamespaceOf(inbox))
			}
			sc.mu.Lock()
			si := sc.inboxes[key]
			sc.mu.Unlock()
			if si != nil {
				s.dispatchTo(si.hub, msg.Payload)
			}
		case *redis.Pong:
			sc.mu.Lock()
			p := sc.pending[msg.Payload]
			delete(sc.pending, msg.Payload)
			var si *shardInbox
			if p != nil {
				si = sc.inboxes[p.inbox]
			}
			sc.mu.Unlock()
			if p != nil {
				if si == nil { // its ctx ended meanwhile
					p.done <- nil
				} else {
					p.done <- si.hub.Subscribe(p.ctx, p.inbox)
				}
			}
		case *redis.Subscription:
			if msg.Kind == "sunsubscribe" {
				s.unsubscribed(sc, msg.Channel)
			}
		}
	}
}

// unsubscribed handles a sunsubscribe: the confirmation of release's, or Redis's own
// when the channel's slot moved to another master, after which its subscribers would
// hear nothing: they are closed, to subscribe again where the slot is now.
func (s *Store) unsubscribed(sc *shardConn, channel string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.unsubscribing[channel] > 0 {
		if sc.unsubscribing[channel]--; sc.unsubscribing[channel] == 0 {
			delete(sc.unsubscribing, channel)
		}
		return
	}
	for inbox, si := range sc.inboxes {
		if s.channelOf(inbox) == channel {
			delete(sc.inboxes, inbox)
			si.hub.Close()
		}
	}
	s.clusterChanged()
}

// shardLost closes sc and every subscriber of it, and fails the Subscribes waiting on
// it; err is why, nil when the store is closing.
func (s *Store) shardLost(sc *shardConn, err error) {
	s.psMu.Lock()
	if s.shards[sc.addr] == sc {
		delete(s.shards, sc.addr)
	}
	s.psMu.Unlock()
	sc.mu.Lock()
	sc.dead = true
	n := len(sc.inboxes)
	for _, si := range sc.inboxes {
		si.hub.Close()
	}
	sc.inboxes = map[string]*shardInbox{}
	for token, p := range sc.pending {
		delete(sc.pending, token)
		p.done <- nil
	}
	sc.mu.Unlock()
	sc.ps.Close()
	if err != nil {
		s.log.Warn("redis events: sharded connection lost; its subscribers closed", "master", sc.addr, "inboxes", n, "err", err)
		s.clusterChanged()
	}
}

// clusterChanged has the client ask the cluster again which node serves which slot. It
// learns of a failover from a command's redirect or error, but a subscription's dial
// is neither: without this, every Subscribe to a slot whose master died dials that dead
// master until some command happens to touch the slot.
func (s *Store) clusterChanged() {
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		cc.ReloadState(s.ctx)
	}
}
