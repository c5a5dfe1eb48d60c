package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// sseBlock is one block of an event stream as a client parses it: the fields up to a
// blank line, or one comment line.
type sseBlock struct {
	ID      string
	HasID   bool
	Event   string
	Data    string
	Retry   string
	Comment string
}

// sseConn is a stream read line by line, over a socket of its own, as a plain SSE
// client would.
type sseConn struct {
	resp   *http.Response
	blocks chan sseBlock // closed when the stream ends
	cancel context.CancelFunc
	once   sync.Once
}

type sseDial struct {
	token, lastID, query string
	header               http.Header
	smallBuffer          bool // a receive buffer of 4 KiB, so the server's writes stall soon
	paused               bool // nothing is read until start
}

// openSSE opens the events of address; the stream's status is in resp.
func (e *env) openSSE(t *testing.T, address string, d sseDial) *sseConn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	u := e.base + "/api/v1/inboxes/" + address + "/events"
	if d.query != "" {
		u += "?" + d.query
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.header != nil {
		req.Header = d.header.Clone()
	}
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	if d.lastID != "" {
		req.Header.Set("Last-Event-ID", d.lastID)
	}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil && d.smallBuffer {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	c := &sseConn{resp: resp, blocks: make(chan sseBlock, 10000), cancel: cancel}
	t.Cleanup(func() { resp.Body.Close() })
	if !d.paused {
		c.start()
	}
	return c
}

// start reads the stream into c.blocks.
func (c *sseConn) start() {
	c.once.Do(func() {
		go func() {
			defer close(c.blocks)
			r := bufio.NewReader(c.resp.Body)
			var b sseBlock
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimSuffix(line, "\n")
				field, value, _ := strings.Cut(line, ":")
				value = strings.TrimPrefix(value, " ")
				switch {
				case line == "":
					if b != (sseBlock{}) {
						c.blocks <- b
					}
					b = sseBlock{}
				case field == "":
					c.blocks <- sseBlock{Comment: value}
				case field == "id":
					b.ID, b.HasID = value, true
				case field == "event":
					b.Event = value
				case field == "data":
					b.Data += value
				case field == "retry":
					b.Retry = value
				}
			}
		}()
	})
}

// close hangs up, as a client that goes away does.
func (c *sseConn) close() {
	c.cancel()
	c.resp.Body.Close()
}

// next returns the next event (a block with data), skipping comments and blocks
// without data.
func (c *sseConn) next(t *testing.T) sseBlock {
	t.Helper()
	for {
		b, ok := <-c.nextBlock(t)
		if !ok {
			t.Fatal("the stream ended; want an event")
		}
		if b.Data != "" {
			return b
		}
	}
}

// nextBlock returns a channel with the next block, failing the test after 10 seconds.
func (c *sseConn) nextBlock(t *testing.T) <-chan sseBlock {
	t.Helper()
	out := make(chan sseBlock, 1)
	select {
	case b, ok := <-c.blocks:
		if ok {
			out <- b
		} else {
			close(out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no block on the event stream within 10s")
	}
	return out
}

// quiet says that no event arrives within d.
func (c *sseConn) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case b, ok := <-c.blocks:
			if !ok {
				t.Fatal("the stream ended")
			}
			if b.Data != "" {
				t.Fatalf("unexpected event %+v", b)
			}
		case <-timer.C:
			return
		}
	}
}

// wantEvent reads the next event and checks its name and message id.
func (c *sseConn) wantEvent(t *testing.T, name, id string) sseBlock {
	t.Helper()
	b := c.next(t)
	var data struct{ ID string }
	if err := json.Unmarshal([]byte(b.Data), &data); err != nil {
		t.Fatalf("event %+v: %v", b, err)
	}
	if b.Event != name || data.ID != id || b.ID == "" {
		t.Fatalf("event = %s id %q data %s, want %s of %s with an id", b.Event, b.ID, b.Data, name, id)
	}
	return b
}

func waitForStreams(t *testing.T, s *Server, n int) {
	t.Helper()
	waitForGauge(t, s.metrics.eventStreams, n, "event streams")
}

// waitStreamsClosed polls until s has no event stream open.
func waitStreamsClosed(t *testing.T, s *Server) {
	t.Helper()
	testlib.WaitFor(t, "the event streams to close", func() bool { return gaugeValue(s.metrics.eventStreams) == 0 })
}

func (e *env) patchSeen(t *testing.T, box createResponse, id string, seen bool) {
	t.Helper()
	r := e.do("PATCH", "/api/v1/inboxes/"+box.Address+"/messages/"+id, box.Token, strings.NewReader(fmt.Sprintf(`{"seen": %v}`, seen)))
	if r.status != 200 {
		t.Fatalf("patch seen: %d %s", r.status, r.body)
	}
}

func (e *env) deleteMessage(t *testing.T, box createResponse, id string) {
	t.Helper()
	if r := e.do("DELETE", "/api/v1/inboxes/"+box.Address+"/messages/"+id, box.Token, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
}

func mail(subject string) string {
	return "From: a@x.test\r\nSubject: " + subject + "\r\n\r\nhi\r\n"
}

func TestEventStreamLive(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		before := e.deliver(box.Address, mail("before"))
		s := e.openSSE(t, box.Address, sseDial{token: box.Token})
		if ct := s.resp.Header.Get("Content-Type"); s.resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("events = %d %q, want 200 text/event-stream", s.resp.StatusCode, ct)
		}
		// The first block asks for a retry delay and gives the log's position: a
		// client that reconnects before any event misses nothing.
		if b := <-s.nextBlock(t); b.Retry != "2000" || !b.HasID || b.ID == "" || b.Data != "" {
			t.Errorf("first block = %+v, want retry: 2000 and the position, no event", b)
		}
		m := e.deliver(box.Address, mail("live"))
		b := s.wantEvent(t, "message.received", m.ID)
		var sum summaryJSON
		json.Unmarshal([]byte(b.Data), &sum)
		if sum.Subject != "live" || sum.UID != m.UID || sum.Auth.SPF != "pass" || sum.Flags == nil {
			t.Errorf("received = %s, want the listing's summary of the new message", b.Data)
		}
		e.patchSeen(t, box, m.ID, true)
		b = s.wantEvent(t, "message.flags", m.ID)
		var ch struct {
			UID   uint32
			Seen  bool
			Flags []string
		}
		json.Unmarshal([]byte(b.Data), &ch)
		if ch.UID != m.UID || !ch.Seen || strings.Join(ch.Flags, ",") != `\Seen` {
			t.Errorf("flags = %s, want seen", b.Data)
		}
		e.deleteMessage(t, box, before.ID)
		s.wantEvent(t, "message.deleted", before.ID)
	})
}

// TestEventStreamResume disconnects a client, changes the inbox, and reconnects with
// the last id it got: it gets what it missed, once each, then the live events.
func TestEventStreamResume(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		s := e.openSSE(t, box.Address, sseDial{token: box.Token})
		m1 := e.deliver(box.Address, mail("one"))
		last := s.wantEvent(t, "message.received", m1.ID).ID
		s.close()
		waitStreamsClosed(t, e.srv)

		m2 := e.deliver(box.Address, mail("two"))
		m3 := e.deliver(box.Address, mail("three"))
		e.patchSeen(t, box, m1.ID, true)
		e.deleteMessage(t, box, m2.ID)

		for _, how := range []string{"header", "query"} {
			t.Run(how, func(t *testing.T) {
				d := sseDial{token: box.Token, lastID: last}
				if how == "query" {
					d = sseDial{token: box.Token, query: "last_event_id=" + last}
				}
				s := e.openSSE(t, box.Address, d)
				ids := map[string]bool{}
				for _, want := range []struct{ name, id string }{
					{"message.received", m2.ID}, {"message.received", m3.ID}, {"message.flags", m1.ID}, {"message.deleted", m2.ID},
				} {
					b := s.wantEvent(t, want.name, want.id)
					if ids[b.ID] || b.ID == last {
						t.Errorf("id %s sent twice", b.ID)
					}
					ids[b.ID] = true
				}
				s.quiet(t, 200*time.Millisecond) // nothing repeated after what was missed
				s.close()
				waitStreamsClosed(t, e.srv)
			})
		}

		// A client that disconnects before any event resumes from the position the
		// stream started at.
		s = e.openSSE(t, box.Address, sseDial{token: box.Token})
		start := <-s.nextBlock(t)
		s.close()
		waitStreamsClosed(t, e.srv)
		m4 := e.deliver(box.Address, mail("four"))
		s = e.openSSE(t, box.Address, sseDial{token: box.Token, lastID: start.ID})
		s.wantEvent(t, "message.received", m4.ID)
		m5 := e.deliver(box.Address, mail("five"))
		s.wantEvent(t, "message.received", m5.ID)
	})
}

// TestEventStreamOtherNode resumes on a second node of the same store the stream a
// client followed on the first: on Redis the log is shared by every node.
func TestEventStreamOtherNode(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "http"}) {
		t.Run(b.Name, func(t *testing.T) {
			st, node := b.Open(t)
			one := newEnv(t, st.(fullStore), Options{})
			two := newEnv(t, node().(fullStore), Options{})
			box := one.create("")
			s := one.openSSE(t, box.Address, sseDial{token: box.Token})
			m1 := one.deliver(box.Address, mail("one"))
			last := s.wantEvent(t, "message.received", m1.ID).ID
			s.close()
			waitStreamsClosed(t, one.srv)

			m2 := two.deliver(box.Address, mail("two"))
			two.patchSeen(t, box, m1.ID, true)
			s = two.openSSE(t, box.Address, sseDial{token: box.Token, lastID: last})
			s.wantEvent(t, "message.received", m2.ID)
			s.wantEvent(t, "message.flags", m1.ID)
			m3 := one.deliver(box.Address, mail("three")) // received by the first node
			s.wantEvent(t, "message.received", m3.ID)
			one.deleteMessage(t, box, m1.ID)
			s.wantEvent(t, "message.deleted", m1.ID)
		})
	}
}

// goneStore answers a read after gone with storage.ErrGone, as a store does for a
// position older than the history it keeps.
type goneStore struct {
	fullStore
	gone string
}

func (g goneStore) InboxEvents(ctx context.Context, inbox, after string, limit int) ([]storage.LoggedEvent, error) {
	if after == g.gone {
		return nil, storage.ErrGone
	}
	return g.fullStore.InboxEvents(ctx, inbox, after, limit)
}

// TestEventStreamGone resumes from a position the log no longer keeps: the client is
// told to list again, then follows the live events.
func TestEventStreamGone(t *testing.T) {
	testlib.EachStore(t, stores(t), func(t *testing.T, st fullStore) {
		e := newEnv(t, goneStore{st, "gone-1"}, Options{})
		box := e.create("")
		e.deliver(box.Address, mail("old"))
		s := e.openSSE(t, box.Address, sseDial{token: box.Token, lastID: "gone-1"})
		b := s.next(t)
		if b.Event != "reset" || !strings.Contains(b.Data, "list the inbox again") || !b.HasID {
			t.Fatalf("resume from a lost position = %+v, want a reset with the log's position", b)
		}
		m := e.deliver(box.Address, mail("new"))
		s.wantEvent(t, "message.received", m.ID) // not old: the listing has it
		// Reconnecting from the reset's id misses nothing after it.
		s.close()
		waitStreamsClosed(t, e.srv)
		s = e.openSSE(t, box.Address, sseDial{token: box.Token, lastID: b.ID})
		s.wantEvent(t, "message.received", m.ID)
	})
}

// TestEventStreamGoneFromStore resumes from positions the stores themselves no longer
// know: one past the memory store's history (its clock moved on), and one that is no
// position at all, on both stores.
func TestEventStreamGoneFromStore(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	mem := testlib.Memory(t, memstore.Options{Now: clock})
	e := newEnv(t, mem, Options{})
	box := e.create("")
	s := e.openSSE(t, box.Address, sseDial{token: box.Token})
	m1 := e.deliver(box.Address, mail("one"))
	last := s.wantEvent(t, "message.received", m1.ID).ID
	s.close()
	waitStreamsClosed(t, e.srv)
	e.deliver(box.Address, mail("two")) // missed, and then past the history
	mu.Lock()
	now = now.Add(storage.EventHistory + time.Minute)
	mu.Unlock()
	e.deliver(box.Address, mail("two and a half"))
	s = e.openSSE(t, box.Address, sseDial{token: box.Token, lastID: last})
	if b := s.next(t); b.Event != "reset" || !b.HasID {
		t.Fatalf("resume past the history = %+v, want a reset", b)
	}
	m3 := e.deliver(box.Address, mail("three"))
	s.wantEvent(t, "message.received", m3.ID) // the others are in the listing the client makes

	testlib.EachStore(t, stores(t), func(t *testing.T, st fullStore) {
		e := newEnv(t, st, Options{})
		box := e.create("")
		s := e.openSSE(t, box.Address, sseDial{token: box.Token, lastID: "not-a-position"})
		if b := s.next(t); b.Event != "reset" {
			t.Fatalf("resume from no position = %+v, want a reset", b)
		}
		m := e.deliver(box.Address, mail("after"))
		s.wantEvent(t, "message.received", m.ID)
	})
}

func TestEventStreamAccess(t *testing.T) {
	st := stores(t)["memory"](t)
	e := newEnv(t, st, Options{APIKey: "admin-key-123456"})
	public := newEnv(t, st, Options{Public: true})
	box := e.create("")
	other := e.create("")
	for _, tt := range []struct {
		name   string
		env    *env
		d      sseDial
		status int
	}{
		{"no token", e, sseDial{}, 401},
		{"another inbox's token", e, sseDial{token: other.Token}, 403},
		{"bearer token", e, sseDial{token: box.Token}, 200},
		{"token in the query", e, sseDial{query: "token=" + box.Token}, 200},
		{"admin key", e, sseDial{token: "admin-key-123456"}, 200},
		{"public mode", public, sseDial{}, 200},
		{"a Last-Event-ID no stream sent", e, sseDial{token: box.Token, lastID: strings.Repeat("9", 200)}, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.env.openSSE(t, box.Address, tt.d)
			if s.resp.StatusCode != tt.status {
				t.Errorf("events = %d, want %d", s.resp.StatusCode, tt.status)
			}
			s.close()
		})
	}
}

func TestEventStreamHeartbeat(t *testing.T) {
	st := stores(t)["memory"](t)
	e := newEnvWith(t, st, Options{}, func(s *Server) { s.sseHeartbeat = 20 * time.Millisecond })
	box := e.create("")
	s := e.openSSE(t, box.Address, sseDial{token: box.Token})
	for pings := 0; pings < 3; {
		b, ok := <-s.nextBlock(t)
		if !ok {
			t.Fatal("the stream ended")
		}
		if b.Comment == "ping" {
			pings++
		}
	}
	// Heartbeats between events change nothing of them.
	m := e.deliver(box.Address, mail("between pings"))
	s.wantEvent(t, "message.received", m.ID)
}

func TestEventStreamShutdown(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		s := e.openSSE(t, box.Address, sseDial{token: box.Token})
		waitForStreams(t, e.srv, 1)
		stopped := make(chan struct{})
		go func() { e.stop(); close(stopped) }()
		for {
			if _, ok := <-s.nextBlock(t); !ok {
				break
			}
		}
		testlib.Next(t, stopped, 10*time.Second, "the server to stop")
	})
}

// logGateStore holds reads of the log while armed, so a test can make a stream fall
// behind its doorbell.
type logGateStore struct {
	fullStore
	mu      sync.Mutex
	gate    chan struct{} // nil = reads pass
	entered chan struct{}
}

func (g *logGateStore) InboxEvents(ctx context.Context, inbox, after string, limit int) ([]storage.LoggedEvent, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.fullStore.InboxEvents(ctx, inbox, after, limit)
}

// TestEventStreamFallsBehind holds a stream's reads of the log while far more events
// ring than the doorbell buffers: the store drops the stream's subscription, and the
// stream, subscribed again, rereads the log from the last event it sent.
func TestEventStreamFallsBehind(t *testing.T) {
	testlib.EachStore(t, stores(t), func(t *testing.T, st fullStore) {
		g := &logGateStore{fullStore: st, entered: make(chan struct{}, 1)}
		e := newEnv(t, g, Options{})
		box := e.create("")
		s := e.openSSE(t, box.Address, sseDial{token: box.Token})
		<-s.nextBlock(t) // the stream stands at the log's end
		gate := make(chan struct{})
		g.mu.Lock()
		g.gate = gate
		g.mu.Unlock()
		const n = 150 // the doorbell holds 64; the inbox 200
		var ids []string
		for i := range n {
			ids = append(ids, e.deliver(box.Address, mail(fmt.Sprint(i))).ID)
			if i == 0 {
				testlib.Next(t, g.entered, 10*time.Second, "the stream to read the log")
			}
		}
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
		seen := map[string]bool{}
		for _, id := range ids {
			b := s.wantEvent(t, "message.received", id)
			if seen[b.ID] {
				t.Fatalf("id %s twice", b.ID)
			}
			seen[b.ID] = true
		}
		s.quiet(t, 200*time.Millisecond)
		if e.srv.resubscribed.Load() == 0 {
			t.Error("the stream never fell behind its doorbell: the test tests nothing")
		}
		// Still live after subscribing again.
		m := e.deliver(box.Address, mail("after"))
		s.wantEvent(t, "message.received", m.ID)
	})
}

// TestEventStreamCutsStalledReader follows an inbox with a client that never reads:
// the server's writes to it stall, and it is cut after writeWait rather than kept.
func TestEventStreamCutsStalledReader(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{MaxMessages: 100000, MemoryLimit: 1 << 30})
	e := newEnvWith(t, st, Options{}, func(s *Server) { s.writeWait = 300 * time.Millisecond })
	box := e.create("")
	e.openSSE(t, box.Address, sseDial{token: box.Token, smallBuffer: true, paused: true})
	waitForStreams(t, e.srv, 1)
	big := strings.Repeat("s", maxSummaryField-8) // a summary carries no more
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; gaugeValue(e.srv.metrics.eventStreams) > 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the client that never reads is still connected")
		}
		now := time.Now()
		m := &storage.Message{Inbox: box.Address, Subject: fmt.Sprintf("%d %s", i, big), Received: now, Expires: now.Add(time.Hour), Raw: []byte("x")}
		if err := st.Put(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond) // polling the gauge, with a deadline
		}
		if gaugeValue(e.srv.metrics.eventStreams) == 0 {
			t.Logf("cut after %d messages", i)
		}
	}
}

func TestSSEEventNames(t *testing.T) {
	for _, tt := range []struct {
		e    storage.Event
		name string
		data string
	}{
		{storage.Event{Type: storage.EventDeleted, ID: "a", UID: 3}, "message.deleted", `{"id":"a","uid":3}`},
		{storage.Event{Type: storage.EventExpired, ID: "a", UID: 3}, "message.expired", `{"id":"a","uid":3}`},
		{storage.Event{Type: storage.EventFlags, ID: "a", UID: 3}, "message.flags", `{"id":"a","uid":3,"seen":false,"flags":[]}`},
		{storage.Event{Type: storage.EventFlags, ID: "a", UID: 3, Flags: storage.FlagSeen}, "message.flags", `{"id":"a","uid":3,"seen":true,"flags":["\\Seen"]}`},
	} {
		name, data, ok := sseEvent(storage.LoggedEvent{Seq: "1", Event: tt.e})
		b, _ := json.Marshal(data)
		if !ok || name != tt.name || string(b) != tt.data {
			t.Errorf("sseEvent(%v) = %s %s, want %s %s", tt.e, name, b, tt.name, tt.data)
		}
	}
}

// TestEventStreamsCountAsConnections holds event streams up to the per-client limit on
// connections: the next connection is refused with the setting that tunes it named.
func TestEventStreamsCountAsConnections(t *testing.T) {
	st := stores(t)["memory"](t)
	e := newEnv(t, st, Options{MaxConnectionsPerIP: 2})
	// No request before the streams: a kept-alive connection would count too.
	box := createResponse{Address: "streams@mayfly.test", Token: e.srv.tokens.Token("streams@mayfly.test")}
	for range 2 {
		if s := e.openSSE(t, box.Address, sseDial{token: box.Token}); s.resp.StatusCode != 200 {
			t.Fatalf("stream = %d, want 200", s.resp.StatusCode)
		}
	}
	waitForStreams(t, e.srv, 2)
	resp, body, err := e.dialRaw(t).read()
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "MAYFLY_HTTP_MAX_CONNECTIONS_PER_IP") {
		t.Errorf("a third connection = %v %s %v, want 429 naming MAYFLY_HTTP_MAX_CONNECTIONS_PER_IP", resp, body, err)
	}
}

// racingStore delivers a message right after the first read of the log it serves, as
// if it arrived between the read and whatever the stream does next.
type racingStore struct {
	fullStore
	mu    sync.Mutex
	skip  int    // reads to let by before the racer runs
	racer func() // run once, then nil
}

func (r *racingStore) InboxEvents(ctx context.Context, inbox, after string, limit int) ([]storage.LoggedEvent, error) {
	evs, err := r.fullStore.InboxEvents(ctx, inbox, after, limit)
	r.mu.Lock()
	var racer func()
	if r.skip--; r.skip < 0 {
		racer, r.racer = r.racer, nil
	}
	r.mu.Unlock()
	if racer != nil {
		racer()
	}
	return evs, err
}

// TestEventStreamSubscribesBeforeReading delivers a message just after the stream's
// last read of the log before it waits (after the read that finds the log's end, and
// the one from it; or the resumed one): the stream, subscribed before it read, hears
// the doorbell and sends it.
func TestEventStreamSubscribesBeforeReading(t *testing.T) {
	testlib.EachStore(t, stores(t), func(t *testing.T, st fullStore) {
		for _, resume := range []bool{false, true} {
			t.Run(fmt.Sprint("resume=", resume), func(t *testing.T) {
				r := &racingStore{fullStore: st}
				e := newEnv(t, r, Options{})
				box := e.create("")
				d := sseDial{token: box.Token}
				if resume {
					s := e.openSSE(t, box.Address, d)
					d.lastID = s.wantEvent(t, "message.received", e.deliver(box.Address, mail("first")).ID).ID
					s.close()
					waitStreamsClosed(t, e.srv)
				}
				r.mu.Lock()
				r.racer = func() { e.deliver(box.Address, mail("between")) }
				r.skip = 1
				if resume {
					r.skip = 0
				}
				r.mu.Unlock()
				s := e.openSSE(t, box.Address, d)
				b := s.next(t)
				if b.Event != "message.received" || !strings.Contains(b.Data, `"subject":"between"`) {
					t.Errorf("first event = %+v, want the message delivered between the read and the rest", b)
				}
			})
		}
	})
}

// trimmedStore is a log that has dropped every event up to and including upTo, as a
// store does once they are older than its history, and that says a read after upTo is
// gone even though nothing after it was dropped, as the Redis store does.
type trimmedStore struct {
	fullStore
	mu   sync.Mutex
	upTo string
}

func (s *trimmedStore) trim(upTo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upTo = upTo
}

func (s *trimmedStore) InboxEvents(ctx context.Context, inbox, after string, limit int) ([]storage.LoggedEvent, error) {
	s.mu.Lock()
	upTo := s.upTo
	s.mu.Unlock()
	switch {
	case upTo != "" && after == upTo:
		return nil, storage.ErrGone
	case upTo != "" && after == "":
		after = upTo // what is dropped is not read
	}
	return s.fullStore.InboxEvents(ctx, inbox, after, limit)
}

// TestEventStreamQuietInbox: a stream open on an inbox quiet for longer than the
// history, whose last event the log has since dropped, sends the next event as an
// event, not as a reset: it was listening all along, so it missed nothing.
func TestEventStreamQuietInbox(t *testing.T) {
	testlib.EachStore(t, stores(t), func(t *testing.T, st fullStore) {
		trimmed := &trimmedStore{fullStore: st}
		e := newEnv(t, trimmed, Options{})
		box := e.create("")
		s := e.openSSE(t, box.Address, sseDial{token: box.Token})
		m1 := e.deliver(box.Address, mail("one"))
		trimmed.trim(s.wantEvent(t, "message.received", m1.ID).ID)
		m2 := e.deliver(box.Address, mail("two, much later"))
		if b := s.next(t); b.Event != "message.received" || !strings.Contains(b.Data, m2.ID) {
			t.Fatalf("the next event after a quiet spell = %+v, want message.received of %s", b, m2.ID)
		}
		// A client that comes back from that position was away: it lists again.
		s.close()
		waitStreamsClosed(t, e.srv)
		s = e.openSSE(t, box.Address, sseDial{token: box.Token, lastID: trimmedPosition(trimmed)})
		if b := s.next(t); b.Event != "reset" {
			t.Fatalf("a reconnection from a dropped position = %+v, want a reset", b)
		}
	})
}

func trimmedPosition(s *trimmedStore) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upTo
}
