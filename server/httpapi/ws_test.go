package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// openWS creates an inbox and opens its WebSocket, counted by the server.
func (e *env) openWS(t *testing.T) (createResponse, *websocket.Conn) {
	t.Helper()
	in := e.create("")
	c, _, err := e.dialWS(t, in.Address, in.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForSockets(t, e.srv, 1)
	return in, c
}

func (e *env) dialWS(t *testing.T, address, token string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(e.base, "http") + "/api/v1/inboxes/" + address + "/ws"
	if token != "" {
		u += "?token=" + token
	}
	c, resp, err := websocket.DefaultDialer.Dial(u, header)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func readEvent(t *testing.T, c *websocket.Conn) wsEvent {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ev wsEvent
	if err := c.ReadJSON(&ev); err != nil {
		t.Fatalf("read event: %v", err)
	}
	return ev
}

func TestWebSocketEvents(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open(t), Options{})
			in, c := e.openWS(t)
			m := e.deliver(in.Address, "From: a@x.test\r\nSubject: live\r\n\r\nhi\r\n")
			if ev := readEvent(t, c); ev.Type != "message" || ev.Message == nil || ev.Message.ID != m.ID || ev.Message.Subject != "live" {
				t.Errorf("first event = %+v, want the new message", ev)
			}
			if r := e.do("DELETE", "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID, in.Token, nil); r.status != 204 {
				t.Fatalf("delete = %d", r.status)
			}
			if ev := readEvent(t, c); ev.Type != "deleted" || ev.ID != m.ID || ev.Reason != "deleted" {
				t.Errorf("second event = %+v, want deleted %s", ev, m.ID)
			}
		})
	}
}

func TestWebSocketRefusals(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, st, Options{CORSOrigins: []string{"https://tests.example"}})
	in := e.create("")
	other := e.create("")
	for _, tt := range []struct {
		name, token, origin string
		status              int
	}{
		{"no token", "", "", 401},
		{"another inbox's token", other.Token, "", 403},
		{"page of another origin", in.Token, "https://evil.example", 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			_, resp, err := e.dialWS(t, in.Address, tt.token, h)
			if err == nil || resp == nil || resp.StatusCode != tt.status {
				t.Errorf("dial = %v, %v; want %d", resp, err, tt.status)
			}
		})
	}
	for _, origin := range []string{"https://tests.example", strings.Replace(e.base, "127.0.0.1", "127.0.0.1", 1)} {
		if _, _, err := e.dialWS(t, in.Address, in.Token, http.Header{"Origin": {origin}}); err != nil {
			t.Errorf("dial from %s: %v", origin, err)
		}
	}
}

// TestSlowWebSocketBlocksNobody watches an inbox with a client that never reads and one
// that does: the reader gets every event while the other falls behind, and the server
// drops the one that fell behind.
func TestSlowWebSocketBlocksNobody(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{MaxMessages: 10000, MemoryLimit: 1 << 30})
	e := newEnv(t, st, Options{})
	in := e.create("")
	// The client that never reads has a small receive buffer, so the server's writes to
	// it stall after a few MiB rather than after the kernel's 32 MiB.
	stalled := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	ws, _, err := stalled.Dial("ws"+strings.TrimPrefix(e.base, "http")+"/api/v1/inboxes/"+in.Address+"/ws?token="+in.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	reader, _, err := e.dialWS(t, in.Address, in.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForSockets(t, e.srv, 2)
	e.srv.writeWait = 300 * time.Millisecond
	big := strings.Repeat("s", maxSummaryField-8) // a summary carries no more
	// Lock-step, so the reader never falls behind, far past what socket buffers hold.
	for i := range 5000 {
		m := &storage.Message{Inbox: in.Address, Subject: fmt.Sprintf("%d %s", i, big), Received: time.Now(), Expires: time.Now().Add(time.Hour), Raw: []byte("x")}
		if err := st.Put(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if ev := readEvent(t, reader); ev.Type != "message" || !strings.HasPrefix(ev.Message.Subject, fmt.Sprintf("%d ", i)) {
			t.Fatalf("event %d = %.40v", i, ev)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for gaugeValue(e.srv.metrics.websockets) > 1 {
		if time.Now().After(deadline) {
			t.Fatal("the client that never reads is still connected")
		}
		time.Sleep(10 * time.Millisecond) // polling the gauge, with a deadline
	}
}

func waitForSockets(t *testing.T, s *Server, n int) {
	waitForGauge(t, s.metrics.websockets, n, "WebSockets")
}

// At shutdown the session's context and its event feed end together; the client must
// hear "going away", not "events lost", whichever the server notices first.
func TestWebSocketShutdownSaysGoingAway(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for i := range 20 {
				e := newEnv(t, open(t), Options{})
				_, c := e.openWS(t)
				go e.stop()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
					t.Fatalf("shutdown %d: %v, want close 1001 (going away)", i, err)
				}
			}
		})
	}
}
