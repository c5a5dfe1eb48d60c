package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// runWSLatency measures the live page's view: with idle WebSocket clients watching
// other inboxes, how long after the SMTP 250 the watcher of the receiving inbox gets
// its event. It also reports the server's resident size per idle connection.
func runWSLatency(ctx context.Context, cfg Config) (string, error) {
	api := strings.TrimSuffix(cfg.WSAPI, "/")
	wsBase := "ws" + strings.TrimPrefix(api, "http")
	client := &http.Client{Timeout: cfg.Timeout}
	dial := func(address, token string) (*websocket.Conn, error) {
		c, _, err := websocket.DefaultDialer.DialContext(ctx, wsBase+"/api/v1/inboxes/"+address+"/ws?token="+token, nil)
		return c, err
	}

	rssBefore := serverRSS(cfg.PID)
	idle := make([]*websocket.Conn, 0, cfg.IdleSockets)
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range cfg.IdleSockets {
		address, token, err := createInbox(ctx, client, api)
		if err != nil {
			return "", err
		}
		c, err := dial(address, token)
		if err != nil {
			return "", fmt.Errorf("idle websocket %d: %w", len(idle), err)
		}
		idle = append(idle, c)
	}
	rssIdle := serverRSS(cfg.PID)

	address, token, err := createInbox(ctx, client, api)
	if err != nil {
		return "", err
	}
	watcher, err := dial(address, token)
	if err != nil {
		return "", err
	}
	defer watcher.Close()
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", max(cfg.Size/78, 1))
	samples := make([]time.Duration, 0, cfg.N)
	for i := range cfg.N {
		if ctx.Err() != nil {
			break
		}
		got := make(chan error, 1)
		var arrived time.Time
		go func() {
			watcher.SetReadDeadline(time.Now().Add(cfg.Timeout))
			for {
				// Past the inbox's cap each message also pushes out the oldest: skip that.
				var ev struct{ Type string }
				err := watcher.ReadJSON(&ev)
				arrived = time.Now()
				if err != nil || ev.Type == "message" {
					got <- err
					return
				}
			}
		}()
		msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: ws latency %d\r\n\r\n%s", cfg.From, address, i, body)
		// From the 250 itself, not after the QUIT that follows it (until issue 18 it
		// was: the figures of then are low by about one round trip).
		acked, err := sendAcked(cfg, address, msg)
		if err != nil {
			return "", fmt.Errorf("send %d: %w", i, err)
		}
		if err := <-got; err != nil {
			return "", fmt.Errorf("event %d: %w", i, err)
		}
		// The event may be written before the 250: such samples count as 0.
		samples = append(samples, max(arrived.Sub(acked), 0))
	}
	if len(samples) == 0 {
		return "", errors.New("no samples")
	}
	slices.Sort(samples)
	out := fmt.Sprintf("250 to WebSocket event over %d messages of %d bytes, %d idle WebSockets open: p50 %s  p90 %s  p99 %s  max %s ms\n",
		len(samples), cfg.Size, len(idle), ms(percentile(samples, 50)), ms(percentile(samples, 90)), ms(percentile(samples, 99)), ms(samples[len(samples)-1]))
	if cfg.PID > 0 && len(idle) > 0 && rssBefore > 0 {
		out += fmt.Sprintf("server RSS %.1f MiB before the idle WebSockets, %.1f MiB with them: %.1f KiB per idle connection\n",
			float64(rssBefore)/(1<<20), float64(rssIdle)/(1<<20), float64(rssIdle-rssBefore)/float64(len(idle))/1024)
	}
	return out, nil
}

// serverRSS is the VmRSS of pid in bytes, or 0 when unknown.
func serverRSS(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	kib, err := readRSS(pid)
	if err != nil {
		return 0
	}
	return kib
}
