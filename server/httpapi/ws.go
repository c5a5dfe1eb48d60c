package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/storage"
)

// WebSocket timing: a ping every pingEvery, and a client that has not answered within
// pongWait, or cannot take a frame within writeWait, is gone.
const (
	writeWait = 10 * time.Second
	pongWait  = 60 * time.Second
	pingEvery = pongWait * 9 / 10
)

// wsEvent is one frame pushed to a browser watching an inbox.
type wsEvent struct {
	Type    string       `json:"type"` // "message", "deleted", "flags"
	Message *summaryJSON `json:"message,omitempty"`
	ID      string       `json:"id,omitempty"`
	Reason  string       `json:"reason,omitempty"` // of "deleted": "deleted" or "expired"
	Seen    *bool        `json:"seen,omitempty"`
	Flags   []string     `json:"flags,omitempty"`
}

// checkOrigin lets in clients without an Origin (scripts), pages of this very host, and
// the configured CORS origins: a page elsewhere must not read an inbox with a token it
// lifted from the URL of ours.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if slices.Contains(s.opts.CORSOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// websocket answers GET .../ws: the inbox's events as JSON frames until the client goes
// away, falls behind, or the server shuts down. The events come from the node's hub
// (the store's Subscribe), fed on Redis by Pub/Sub, so mail received by any node shows.
func (s *Server) websocket(c echo.Context) error {
	s.socketsMu.Lock()
	if s.closing {
		s.socketsMu.Unlock()
		return errorf(http.StatusServiceUnavailable, "unavailable", "shutting down")
	}
	s.sockets.Add(1)
	s.socketsMu.Unlock()
	defer s.sockets.Done()
	inbox := inboxOf(c)
	up := websocket.Upgrader{CheckOrigin: s.checkOrigin, ReadBufferSize: 512, WriteBufferSize: 4096}
	// The request's context ends when the server shuts down; the connection ends with it.
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	events, err := s.store.Subscribe(ctx, inbox)
	if err != nil {
		return err
	}
	conn, err := up.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // the upgrader has answered the client
	}
	defer conn.Close()
	s.metrics.websockets.Inc()
	defer s.metrics.websockets.Dec()

	// The reader takes the client's pongs and close frame; it ends the session when the
	// client does.
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer cancel()
		conn.SetReadLimit(512)
		conn.SetReadDeadline(time.Now().Add(pongWait))
		conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	defer func() {
		conn.Close() // ends the reader's read
		<-readerDone
	}()

	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), gate.ErrRevoked) {
				closeWith(conn, websocket.ClosePolicyViolation, "namespace key revoked")
				return nil
			}
			closeWith(conn, websocket.CloseGoingAway, "server going away")
			return nil
		case <-ping.C:
			if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.writeWait)) != nil {
				return nil
			}
		case e, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					// The feed ended with the session's context (both are ready at
					// once at shutdown, and select picks either).
					closeWith(conn, websocket.CloseGoingAway, "server going away")
					return nil
				}
				// Fell behind the hub, or the store's event feed was lost: the client
				// reconnects and lists the inbox again, so nothing is missed.
				closeWith(conn, websocket.CloseTryAgainLater, "events lost; reconnect and list again")
				return nil
			}
			frame, ok := toWSEvent(e)
			if !ok {
				continue
			}
			conn.SetWriteDeadline(time.Now().Add(s.writeWait))
			if conn.WriteJSON(frame) != nil {
				return nil
			}
		}
	}
}

func closeWith(conn *websocket.Conn, code int, text string) {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}

func toWSEvent(e storage.Event) (wsEvent, bool) {
	switch e.Type {
	case storage.EventAdded:
		if e.Message == nil {
			return wsEvent{}, false
		}
		sum := toSummary(e.Message)
		return wsEvent{Type: "message", Message: &sum}, true
	case storage.EventDeleted:
		return wsEvent{Type: "deleted", ID: e.ID, Reason: "deleted"}, true
	case storage.EventExpired:
		return wsEvent{Type: "deleted", ID: e.ID, Reason: "expired"}, true
	case storage.EventFlags:
		seen := e.Flags&storage.FlagSeen != 0
		m := storage.Message{Flags: e.Flags}
		return wsEvent{Type: "flags", ID: e.ID, Seen: &seen, Flags: toSummary(&m).Flags}, true
	}
	return wsEvent{}, false
}
