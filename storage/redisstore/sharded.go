package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// On a Cluster a PUBLISH goes to every node over the cluster bus, so every event costs
// every node, and it reaches a subscriber connected to another node than the
// publisher's some time after the script: a Subscribe's PING barrier on its own node
// cannot order it (the subscriber could get events from before it subscribed, or miss
// none yet see them late). So each inbox has a channel of its own in its hash slot
// (channelOf), the scripts SPUBLISH to it, and each Subscribe SSUBSCRIBEs to it on the
// node that serves the slot: that node runs the scripts and answers the SSUBSCRIBE in
// one order, so the subscriber gets exactly the events after its subscription, and an
// event costs only that node.
//
// Each Subscribe has a connection of its own to the slot's node: Redis's connections
// (maxclients, 10000 by default) then bound the watchers (WebSocket, wait, IMAP IDLE)
// of all Mayfly nodes together; see docs/operations.md.

// subscribeSharded subscribes to inbox's channel with SSUBSCRIBE and returns once the
// slot's node has confirmed. The channel closes when ctx ends, the store closes, the
// subscriber falls behind or the connection fails (a failover): the subscriber may have
// missed events and must List again.
func (s *Store) subscribeSharded(ctx context.Context, inbox string) (<-chan storage.Event, error) {
	channel := s.channelOf(inbox)
	ps := s.client.SSubscribe(ctx, channel)
	if err := confirmKind(ctx, ps, "ssubscribe"); err != nil {
		ps.Close()
		s.clusterChanged()
		return nil, unavailable("subscribe "+inbox, err)
	}
	hub := storage.NewHub()
	ch := hub.Subscribe(ctx, inbox)
	s.psMu.Lock()
	if s.closed {
		s.psMu.Unlock()
		ps.Close()
		hub.Close()
		return nil, fmt.Errorf("subscribe %s: %w: store closed", inbox, storage.ErrUnavailable)
	}
	s.wg.Add(1)
	s.psMu.Unlock()
	go s.listenSharded(ctx, ps, hub, inbox)
	return ch, nil
}

// listenSharded hands one subscription's events to its hub until the subscriber's ctx
// ends, the store closes or the connection fails, then closes both.
func (s *Store) listenSharded(ctx context.Context, ps *redis.PubSub, hub *storage.Hub, inbox string) {
	defer s.wg.Done()
	defer hub.Close()
	// Closing the connection is what ends a Receive in progress.
	stopSub := context.AfterFunc(ctx, func() { ps.Close() })
	defer stopSub()
	stopStore := context.AfterFunc(s.ctx, func() { ps.Close() })
	defer stopStore()
	defer ps.Close()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(s.ctx, pubsubIdle)
		if ctx.Err() != nil || s.ctx.Err() != nil {
			return
		}
		if err != nil {
			// Silence is checked with a PING; anything else, or a PING unanswered,
			// is a lost connection.
			if isTimeout(err) && !pinged {
				pinged = true
				if ps.Ping(s.ctx) == nil {
					continue
				}
			}
			s.log.Warn("redis events: sharded subscription lost; subscriber closed", "inbox", inbox, "err", err)
			s.clusterChanged()
			return
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			s.dispatchTo(hub, m.Payload)
		}
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
