package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// sseEvent is an event read from a stream, stamped as its data line arrived.
type sseEvent struct {
	name, id, data string
	at             time.Time
}

// openSSE opens the event stream of an inbox and reads it into a channel, closed when
// the stream ends; the caller ends it with ctx.
func openSSE(ctx context.Context, api, address, token, lastID string) (<-chan sseEvent, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", api+"/api/v1/inboxes/"+address+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	// Its own transport: a stream holds its connection for good, and the idle pool of
	// the default one would hold the others.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("event stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("event stream: status %d", resp.StatusCode)
	}
	events := make(chan sseEvent, 1024)
	go func() {
		defer close(events)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		var ev sseEvent
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
				if ev.data != "" {
					select {
					case events <- ev:
					case <-ctx.Done():
						return
					}
				}
				ev = sseEvent{}
			case field == "id":
				ev.id = value
			case field == "event":
				ev.name = value
			case field == "data":
				ev.data, ev.at = value, time.Now()
			}
		}
	}()
	return events, nil
}

// runSSELatency measures the resumable event stream as runWSLatency measures the
// WebSocket: -idle streams held open on other inboxes, then -n messages one at a time
// to a watched inbox, from the SMTP 250 to the stream's message.received. It then
// measures the WebSocket the same way, in the same run, as the reference.
func runSSELatency(ctx context.Context, cfg Config) (string, error) {
	api := strings.TrimSuffix(cfg.SSEAPI, "/")
	client := &http.Client{Timeout: cfg.Timeout}
	streams, cancel := context.WithCancel(ctx)
	rssBefore := serverRSS(cfg.PID)
	idle := 0
	for range cfg.IdleSockets {
		address, token, err := createInbox(ctx, client, api)
		if err != nil {
			cancel()
			return "", err
		}
		if _, err := openSSE(streams, api, address, token, ""); err != nil {
			cancel()
			return "", fmt.Errorf("idle stream %d: %w", idle, err)
		}
		idle++
	}
	rssIdle := serverRSS(cfg.PID)

	address, token, err := createInbox(ctx, client, api)
	if err != nil {
		cancel()
		return "", err
	}
	watcher, err := openSSE(streams, api, address, token, "")
	if err != nil {
		cancel()
		return "", err
	}
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", max(cfg.Size/78, 1))
	samples := make([]time.Duration, 0, cfg.N)
	for i := range cfg.N {
		if ctx.Err() != nil {
			break
		}
		msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: sse latency %d\r\n\r\n%s", cfg.From, address, i, body)
		acked, err := sendAcked(cfg, address, msg)
		if err != nil {
			cancel()
			return "", fmt.Errorf("send %d: %w", i, err)
		}
		arrived, err := nextReceived(watcher, cfg.Timeout)
		if err != nil {
			cancel()
			return "", fmt.Errorf("event %d: %w", i, err)
		}
		// The event may be written before the 250: such samples count as 0.
		samples = append(samples, max(arrived.Sub(acked), 0))
	}
	cancel()
	if len(samples) == 0 {
		return "", errors.New("no samples")
	}
	slices.Sort(samples)
	out := fmt.Sprintf("250 to SSE message.received over %d messages of %d bytes, %d idle streams open: p50 %s  p90 %s  p99 %s  max %s ms\n",
		len(samples), cfg.Size, idle, ms(percentile(samples, 50)), ms(percentile(samples, 90)), ms(percentile(samples, 99)), ms(samples[len(samples)-1]))
	if cfg.PID > 0 && idle > 0 && rssBefore > 0 {
		out += fmt.Sprintf("server RSS %.1f MiB before the idle streams, %.1f MiB with them: %.1f KiB per idle stream\n",
			float64(rssBefore)/(1<<20), float64(rssIdle)/(1<<20), float64(rssIdle-rssBefore)/float64(idle)/1024)
	}
	ref := cfg
	ref.WSAPI = api
	ws, err := runWSLatency(ctx, ref)
	if err != nil {
		return out, fmt.Errorf("the WebSocket reference: %w", err)
	}
	return out + "reference, same run: " + ws, nil
}

// nextReceived returns when the next message.received arrived on events, skipping the
// others (past the inbox's cap each message also pushes out the oldest).
func nextReceived(events <-chan sseEvent, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return time.Time{}, errors.New("the stream ended")
			}
			if ev.name == "message.received" {
				return ev.at, nil
			}
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("no event within %s", timeout)
		}
	}
}

// sendAcked sends msg to to over a fresh connection and returns when the server's 250
// to the end of DATA arrived (sendPlain's return also waits for the QUIT).
func sendAcked(cfg Config, to, msg string) (time.Time, error) {
	c, err := newSMTPSender(cfg)
	if err != nil {
		return time.Time{}, err
	}
	defer c.close()
	return c.send(cfg.From, to, msg)
}
