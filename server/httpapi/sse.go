package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/storage"
)

// Event stream timing and sizes.
const (
	// sseHeartbeat is how often an idle stream gets a comment line: proxies and load
	// balancers close connections that carry nothing for a minute or so.
	sseHeartbeat = 15 * time.Second
	// sseRetry is the reconnection delay, in milliseconds, the stream asks of
	// EventSource: long enough not to hammer a node that is restarting, short enough
	// that a test following an inbox hardly notices.
	sseRetry = 2000
	// ssePage is how many logged events one read of the log returns: a stream catching
	// up on a busy inbox holds no more than this many summaries at once.
	ssePage = 100
	// sseTailPage is the page of the scan that finds the end of the log for a stream
	// that starts afresh; only positions are kept from it.
	sseTailPage = 1000
	// maxEventID bounds a Last-Event-ID: the positions the stream hands out are short.
	maxEventID = 128
	// maxIdleBuffer is the most a stream keeps of the buffer of its last page.
	maxIdleBuffer = 16 << 10
)

// The event names of the stream, the same as the webhooks' where they have one.
const (
	sseReceived = "message.received"
	sseFlags    = "message.flags"
	sseDeleted  = "message.deleted"
	sseExpired  = "message.expired"
	sseReset    = "reset"
)

// sseRemoved is the data of message.deleted and message.expired.
type sseRemoved struct {
	ID  string `json:"id"`
	UID uint32 `json:"uid"`
}

// sseFlagsData is the data of message.flags: the flags now set, as the listing names them.
type sseFlagsData struct {
	ID    string   `json:"id"`
	UID   uint32   `json:"uid"`
	Seen  bool     `json:"seen"`
	Flags []string `json:"flags"`
}

// sseResetData is the data of a reset: the stream cannot say what happened between
// the client's position and now.
type sseResetData struct {
	Reason string `json:"reason"`
}

// sseEvent returns the name and data of a logged event, or false for one the stream
// does not show.
func sseEvent(e storage.LoggedEvent) (string, any, bool) {
	switch e.Type {
	case storage.EventAdded:
		if e.Message == nil {
			return "", nil, false
		}
		return sseReceived, toSummary(e.Message), true
	case storage.EventFlags:
		m := storage.Message{Flags: e.Flags}
		return sseFlags, sseFlagsData{ID: e.ID, UID: e.UID, Seen: e.Flags&storage.FlagSeen != 0, Flags: toSummary(&m).Flags}, true
	case storage.EventDeleted:
		return sseDeleted, sseRemoved{ID: e.ID, UID: e.UID}, true
	case storage.EventExpired:
		return sseExpired, sseRemoved{ID: e.ID, UID: e.UID}, true
	}
	return "", nil, false
}

// lastEventID is where the client says it is: the Last-Event-ID header EventSource
// sends when it reconnects, or ?last_event_id= for a client that cannot set headers.
func lastEventID(c echo.Context) (string, error) {
	id := c.Request().Header.Get("Last-Event-ID")
	if id == "" {
		id = c.QueryParam("last_event_id")
	}
	if len(id) > maxEventID {
		return "", errorf(http.StatusBadRequest, "bad_parameter", "Last-Event-ID over %d bytes: not one this stream sent", maxEventID)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return "", errorf(http.StatusBadRequest, "bad_parameter", "Last-Event-ID %q is not one this stream sent", id)
		}
	}
	return id, nil
}

// events answers GET .../events: the inbox's events as Server-Sent Events, each with
// its position in the inbox's event log as its id, until the client goes away, stalls,
// or the server shuts down. With a Last-Event-ID it first sends every event after that
// position, so a client that reconnects misses nothing and sees nothing twice; a
// position older than the log keeps (storage.EventHistory) gets a reset: list again.
//
// Every event sent is read from the log, which every node of a Redis store shares, so
// a stream resumes on any node. Subscribe is only the doorbell: the stream subscribes
// before it reads, so an event logged between the two still rings, and when the
// doorbell drops a stream that fell behind, it subscribes again and rereads the log
// from the last event sent.
func (s *Server) events(c echo.Context) error {
	if stopping(c) {
		return errorf(http.StatusServiceUnavailable, "unavailable", "the server is stopping; try again")
	}
	last, err := lastEventID(c)
	if err != nil {
		return err
	}
	inbox := inboxOf(c)
	// The request's context ends when the client goes away or the server shuts down
	// (Serve's context is every request's base); the stream ends with it.
	ctx := c.Request().Context()
	bell, err := s.store.Subscribe(ctx, inbox)
	if err != nil {
		return err
	}
	st := &sseStream{s: s, ctx: ctx, inbox: inbox, pos: last, w: c.Response(), rc: http.NewResponseController(c.Response())}
	var start []byte
	if last == "" {
		// Only what happens from now on: the stream starts at the end of the log, and
		// tells EventSource that position so a reconnection before the first event
		// misses nothing either (an id without data sets the last event ID only).
		if st.pos, err = s.logTail(ctx, inbox, ""); err != nil {
			return err
		}
		if st.pos != "" {
			start = []byte("id: " + st.pos + "\n")
		}
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back in its buffer
	c.Response().WriteHeader(http.StatusOK)
	s.metrics.eventStreams.Inc()
	defer s.metrics.eventStreams.Dec()
	// A connection whose last write had a deadline must not keep it for the next request.
	defer st.rc.SetWriteDeadline(time.Time{})
	if st.write(append([]byte("retry: "+strconv.Itoa(sseRetry)+"\n"), append(start, '\n')...)) != nil {
		return nil
	}

	ping := time.NewTicker(s.sseHeartbeat)
	defer ping.Stop()
	var resubscribed time.Time
	for read := true; ; {
		// The log is read only when the doorbell rings (or was lost), not on a timer: a
		// position the stream reached itself could then read as gone only once an
		// event after it exists, never because the inbox was merely quiet for
		// EventHistory and its log was dropped.
		if read {
			if err := st.catchUp(); err != nil {
				if ctx.Err() == nil {
					// The store failed mid-stream: the client reconnects (retry:) from
					// the last id it got, here or on another node.
					s.logger.Warn("event stream", "inbox", inbox, "err", err)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ping.C:
			read = false
			if st.write([]byte(": ping\n\n")) != nil {
				return nil
			}
		case _, ok := <-bell:
			read = true
			if ok {
				// One read of the log answers every ring already waiting.
				for range len(bell) {
					<-bell
				}
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			// Fell behind the doorbell, or the store lost its feed of events (Redis
			// Pub/Sub reconnecting closes every subscriber): ring again from now, then
			// reread the log from the last event sent, so nothing is lost. At most once
			// a second, should the store hand out closed doorbells while it is down.
			s.resubscribed.Add(1)
			st.live = false // events may have gone unrung until the next read
			if wait := time.Until(resubscribed.Add(time.Second)); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
			resubscribed = time.Now()
			if bell, err = s.store.Subscribe(ctx, inbox); err != nil {
				s.logger.Warn("event stream", "inbox", inbox, "err", err)
				return nil
			}
		}
	}
}

// sseStream is one open event stream.
type sseStream struct {
	s     *Server
	ctx   context.Context
	inbox string
	pos   string // the position of the last event sent; "" = the log's start
	// live says the stream has read the log up to pos with its doorbell ringing ever
	// since: every event after pos rang, and was read within moments of being logged.
	// A log that then says pos is gone has only dropped pos itself and what came
	// before it (an inbox quiet for longer than the history), not anything unsent.
	live bool
	w    http.ResponseWriter
	rc   *http.ResponseController
	buf  bytes.Buffer
}

// catchUp sends every logged event after the stream's position.
func (st *sseStream) catchUp() error {
	resets := 0
	for {
		evs, err := st.s.store.InboxEvents(st.ctx, st.inbox, st.pos, ssePage)
		if errors.Is(err, storage.ErrGone) && st.live && st.pos != "" {
			// Everything the log still holds is after pos: read it from its start.
			st.pos = ""
			continue
		}
		if errors.Is(err, storage.ErrGone) {
			// Older than the history kept: the client lists the inbox again, then
			// follows from the log's end, where the stream now stands.
			if resets++; resets > 1 {
				return err // the end of the log just found is gone already: not a log to follow
			}
			if st.pos, err = st.s.logTail(st.ctx, st.inbox, ""); err != nil {
				return err
			}
			st.buf.Reset()
			if st.pos != "" {
				// Without one, the client keeps the old id, and a reconnection is
				// told to list again: still right.
				st.buf.WriteString("id: " + st.pos + "\n")
			}
			st.buf.WriteString("event: " + sseReset + "\ndata: ")
			json.NewEncoder(&st.buf).Encode(sseResetData{Reason: "the events after that position are no longer kept; list the inbox again"})
			st.buf.WriteString("\n")
			if err := st.write(st.buf.Bytes()); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		st.buf.Reset()
		for _, e := range evs {
			if e.Seq == st.pos {
				continue // the log returns what is after the position; never twice
			}
			st.pos = e.Seq
			name, data, ok := sseEvent(e)
			if !ok {
				continue
			}
			st.buf.WriteString("id: " + e.Seq + "\nevent: " + name + "\ndata: ")
			json.NewEncoder(&st.buf).Encode(data) // ends the data line
			st.buf.WriteString("\n")
		}
		if st.buf.Len() > 0 {
			if err := st.write(st.buf.Bytes()); err != nil {
				return err
			}
		}
		if len(evs) < ssePage {
			st.live = true
			return nil
		}
	}
}

// write sends b and flushes it, cutting a client that does not take it within the
// server's writeWait: a stalled reader must not hold the stream's memory forever.
func (st *sseStream) write(b []byte) error {
	st.rc.SetWriteDeadline(time.Now().Add(st.s.writeWait))
	if _, err := st.w.Write(b); err != nil {
		return err
	}
	if st.buf.Cap() > maxIdleBuffer {
		// A page of large summaries: not kept for the hours a stream may idle.
		st.buf = bytes.Buffer{}
	}
	return st.rc.Flush()
}

// logTail returns the position of the last event of inbox's log after from ("" = the
// oldest kept), or from when there is none: where a stream that starts afresh stands.
func (s *Server) logTail(ctx context.Context, inbox, from string) (string, error) {
	pos := from
	for {
		evs, err := s.store.InboxEvents(ctx, inbox, pos, sseTailPage)
		if err != nil {
			return "", err
		}
		if len(evs) > 0 {
			pos = evs[len(evs)-1].Seq
		}
		if len(evs) < sseTailPage {
			return pos, nil
		}
	}
}
