package imapd

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// waitFor reads ch until it yields want, for at most d.
func waitFor[T comparable](t testing.TB, ch <-chan T, want T, d time.Duration, what string) {
	t.Helper()
	deadline := time.After(d)
	var seen []T
	for {
		select {
		case v := <-ch:
			if v == want {
				return
			}
			seen = append(seen, v)
		case <-deadline:
			t.Fatalf("no %s %v within %v (saw %v)", what, want, d, seen)
		}
	}
}

func idle(t testing.TB, c *imapclient.Client) func() {
	t.Helper()
	cmd, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE = %v", err)
	}
	return func() {
		t.Helper()
		if err := cmd.Close(); err != nil {
			t.Errorf("DONE = %v", err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("IDLE = %v", err)
		}
	}
}

func TestIdle(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, node func() storage.Store) {
		srv := startServer(t, st, false)
		inbox, _ := newInbox()
		first := put(t, st, inbox, "first", nil)
		second := put(t, st, inbox, "second", nil)
		u := newUpdates()
		c, _ := open(t, srv.addr, inbox, u)
		done := idle(t, c)

		// New mail is pushed within a second; on Redis it comes from another node.
		put(t, node(), inbox, "third", nil)
		waitFor(t, u.exists, 3, time.Second, "EXISTS")

		// Deleted through the API (the store) elsewhere: EXPUNGE.
		if err := node().Delete(ctxFor(t), inbox, first.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, u.expunge, 1, time.Second, "EXPUNGE")

		// Flags changed by another session: FETCH FLAGS, numbered as the client now knows.
		other, _ := open(t, srv.addr, inbox, nil)
		if _, err := other.Store(imap.UIDSetNum(imap.UID(second.UID)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
			t.Fatal(err)
		}
		f := next(t, u.flags, time.Second, "FETCH FLAGS")
		if f.SeqNum != 1 || !slices.Equal(f.Flags, []imap.Flag{imap.FlagFlagged}) {
			t.Errorf("pushed FETCH = seq %d flags %v, want 1 (\\Flagged)", f.SeqNum, f.Flags)
		}

		// Expunged by another session.
		if _, err := other.Store(imap.UIDSetNum(imap.UID(second.UID)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Expunge().Collect(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, u.expunge, 1, time.Second, "EXPUNGE")

		// Expired by the store's sweeper.
		short := put(t, st, inbox, "short-lived", nil)
		waitFor(t, u.exists, 2, time.Second, "EXISTS")
		if err := st.Delete(ctxFor(t), inbox, short.ID); err != nil { // as the sweeper would
			t.Fatal(err)
		}
		waitFor(t, u.expunge, 2, time.Second, "EXPUNGE")
		done()

		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("FETCH 1:* after IDLE = %d messages, %v; want 1 (third)", len(msgs), err)
		}
	})
}

// TestIdleExpiry lets the store's own sweeper expire a message under an IDLE client.
func TestIdleExpiry(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		put(t, st, inbox, "stays", nil)
		u := newUpdates()
		c, _ := open(t, srv.addr, inbox, u)
		done := idle(t, c)
		defer done()
		short := storetest.NewMessage(inbox, "short-lived")
		short.Expires = time.Now().Add(300 * time.Millisecond)
		if err := st.Put(ctxFor(t), short); err != nil {
			t.Fatal(err)
		}
		waitFor(t, u.exists, 2, time.Second, "EXISTS")
		waitFor(t, u.expunge, 2, 3*time.Second, "EXPUNGE of the expired message")
	})
}

// eventGate wraps a store so a test can cut a session's subscription (as the hub does
// to a subscriber that falls behind) and hold back the next one.
type eventGate struct {
	storage.Store
	mu   sync.Mutex
	cut  chan struct{} // closing it ends the subscriptions made before
	hold chan struct{} // while not nil, Subscribe waits for it to close
	subs atomic.Int32
}

func newEventGate(st storage.Store) *eventGate {
	return &eventGate{Store: st, cut: make(chan struct{})}
}

func (g *eventGate) Subscribe(ctx context.Context, inbox string) (<-chan storage.Event, error) {
	g.mu.Lock()
	hold, cut := g.hold, g.cut
	g.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		g.mu.Lock()
		cut = g.cut
		g.mu.Unlock()
	}
	in, err := g.Store.Subscribe(ctx, inbox)
	if err != nil {
		return nil, err
	}
	g.subs.Add(1)
	out := make(chan storage.Event)
	go func() {
		defer close(out)
		for {
			select {
			case e, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- e:
				case <-cut:
					return
				}
			case <-cut:
				return
			}
		}
	}()
	return out, nil
}

// cutAndHold ends the current subscriptions and makes the next Subscribe wait until
// the returned function is called.
func (g *eventGate) cutAndHold() (release func()) {
	g.mu.Lock()
	hold := make(chan struct{})
	g.hold = hold
	old := g.cut
	g.cut = make(chan struct{})
	g.mu.Unlock()
	close(old)
	return func() {
		g.mu.Lock()
		g.hold = nil
		g.mu.Unlock()
		close(hold)
	}
}

// A subscription the store closes early is not the end of IDLE: the session
// subscribes again, lists the inbox, and tells the client what it missed.
func TestResubscribe(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		gate := newEventGate(st)
		srv := startServer(t, gate, false)
		inbox, _ := newInbox()
		first := put(t, st, inbox, "first", nil)
		second := put(t, st, inbox, "second", nil)
		u := newUpdates()
		c, _ := open(t, srv.addr, inbox, u)
		done := idle(t, c)
		defer done()

		release := gate.cutAndHold()
		// Changes the session cannot hear of.
		put(t, st, inbox, "third", nil)
		if err := st.Delete(ctxFor(t), inbox, first.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetFlags(ctxFor(t), inbox, second.ID, storage.FlagSeen, 0); err != nil {
			t.Fatal(err)
		}
		release()

		waitFor(t, u.exists, 3, 5*time.Second, "EXISTS after resubscribing")
		waitFor(t, u.expunge, 1, 5*time.Second, "EXPUNGE after resubscribing")
		f := next(t, u.flags, 5*time.Second, "FETCH FLAGS after resubscribing")
		if !slices.Equal(f.Flags, []imap.Flag{imap.FlagSeen}) {
			t.Errorf("pushed flags = %v, want \\Seen", f.Flags)
		}
		if n := gate.subs.Load(); n != 2 {
			t.Errorf("subscriptions = %d, want 2", n)
		}
		// And the new subscription works.
		put(t, st, inbox, "fourth", nil)
		waitFor(t, u.exists, 3, 5*time.Second, "EXISTS on the new subscription")
	})
}
