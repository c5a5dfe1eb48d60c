package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// pubsubIdle is how long the event connection may stay silent before it is pinged, and
// then how long the ping may go unanswered before the connection is taken for dead: a
// peer that vanished without closing the connection is noticed within twice this.
const pubsubIdle = 10 * time.Second

// resubscribeMax bounds the backoff between attempts to subscribe again. The node is
// not ready until one succeeds (see Ping), so once Redis is back it should not wait
// long; an attempt on a Redis still down is one refused dial.
const resubscribeMax = time.Second

// confirm waits for Redis to confirm the subscription, so that no event published
// after New returns is missed.
func confirm(ctx context.Context, ps *redis.PubSub) error {
	return confirmKind(ctx, ps, "subscribe")
}

// confirmKind waits for Redis to confirm a subscription of kind (subscribe, ssubscribe).
func confirmKind(ctx context.Context, ps *redis.PubSub, kind string) error {
	msg, err := ps.ReceiveTimeout(ctx, ioTimeout)
	if err != nil {
		return err
	}
	if sub, ok := msg.(*redis.Subscription); !ok || sub.Kind != kind {
		return fmt.Errorf("subscribe: unexpected reply %v", msg)
	}
	return nil
}

// listen hands every event published on the channel to the hub, until Close. When the
// connection fails or stops answering pings, it closes every subscriber (they may miss
// events and must List again) and subscribes afresh until Redis confirms.
func (s *Store) listen(ps *redis.PubSub) {
	defer s.wg.Done()
	pinged := false
	backoff := 100 * time.Millisecond
	for {
		msg, err := ps.ReceiveTimeout(s.ctx, pubsubIdle)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) && !pinged {
				pinged = true
				if err := ps.Ping(s.ctx); err == nil {
					continue
				}
			}
			s.lost(err)
			pinged = false
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
			}
			// go-redis reconnects by itself after most errors, but not after silence,
			// and a fresh subscription's confirmation is what tells that all is well.
			if ps = s.renew(ps); ps == nil {
				return
			}
			backoff = min(2*backoff, resubscribeMax)
			continue
		}
		pinged = false
		switch msg := msg.(type) {
		case *redis.Message:
			s.dispatch(msg.Payload)
		case *redis.Pong:
			s.answered(msg.Payload)
		case *redis.Subscription:
			if msg.Kind == "subscribe" {
				s.found()
				backoff = 100 * time.Millisecond
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// renew replaces the Pub/Sub connection, or returns nil once the store is closing.
func (s *Store) renew(old *redis.PubSub) *redis.PubSub {
	s.psMu.Lock()
	defer s.psMu.Unlock()
	old.Close()
	if s.closed {
		return nil
	}
	s.ps = s.client.Subscribe(s.ctx, s.channel)
	return s.ps
}

// lost marks the event stream down and closes every subscriber: events published from
// now until it is back are not seen here.
func (s *Store) lost(err error) {
	if !s.live.Swap(false) {
		return
	}
	s.log.Warn("redis events: connection lost; subscribers closed", "err", err)
	s.resetHub()
	s.failPending()
}

// failPending fails the Subscribe calls waiting for their PING, which will not come.
func (s *Store) failPending() {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	for token, p := range s.pending {
		delete(s.pending, token)
		p.done <- nil
	}
}

// answered subscribes the Subscribe whose PING came back, in this goroutine, between
// the events before the PING and those after it.
func (s *Store) answered(token string) {
	if !strings.HasPrefix(token, subscribePrefix) {
		return // listen's own ping
	}
	s.pendingMu.Lock()
	p := s.pending[token]
	delete(s.pending, token)
	s.pendingMu.Unlock()
	if p != nil {
		p.done <- s.hub.Load().Subscribe(p.ctx, p.inbox)
	}
}

// found marks the event stream up again. Subscribers that joined meanwhile, racing with
// lost, are closed too.
func (s *Store) found() {
	if s.live.Swap(true) {
		return
	}
	s.log.Info("redis events: subscribed again")
	s.resetHub()
}

func (s *Store) resetHub() {
	s.hub.Swap(storage.NewHub()).Close()
}

// dispatch decodes one event for this process's subscribers, if it has any.
func (s *Store) dispatch(payload string) {
	s.dispatchTo(s.hub.Load(), payload)
}

// dispatchTo decodes one event for hub's subscribers, if it has any.
func (s *Store) dispatchTo(hub *storage.Hub, payload string) {
	t, inbox, rest, err := eventHeader(payload)
	if err != nil {
		s.log.Warn("redis events: bad event", "err", err)
		return
	}
	if !hub.Watched(inbox) {
		return
	}
	e, err := parseEvent(t, inbox, rest)
	if err != nil {
		s.log.Warn("redis events: bad event", "inbox", inbox, "err", err)
		return
	}
	hub.Publish(e)
}
