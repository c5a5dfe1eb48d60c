package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runWaitLatency measures what a QA test sees: how long after the SMTP server
// acknowledged a message (250) a wait already open on the inbox returns it. It runs one
// message at a time, -n times, each to a fresh inbox.
func runWaitLatency(ctx context.Context, cfg Config) (string, error) {
	api := strings.TrimSuffix(cfg.WaitAPI, "/")
	client := &http.Client{Timeout: cfg.Timeout}
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", max(cfg.Size/78, 1))
	samples := make([]time.Duration, 0, cfg.N)
	for i := range cfg.N {
		if ctx.Err() != nil {
			break
		}
		address, token, err := createInbox(ctx, client, api)
		if err != nil {
			return "", err
		}
		answered := make(chan error, 1)
		var returned time.Time
		go func() {
			err := waitOnce(ctx, client, api, address, token)
			returned = time.Now()
			answered <- err
		}()
		msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: wait latency %d\r\n\r\n%s", cfg.From, address, i, body)
		if err := sendPlain(cfg, address, msg); err != nil {
			return "", fmt.Errorf("send %d: %w", i, err)
		}
		acked := time.Now()
		if err := <-answered; err != nil {
			return "", fmt.Errorf("wait %d: %w", i, err)
		}
		// The store publishes before the 250 is written, so the wait may answer first.
		samples = append(samples, max(returned.Sub(acked), 0))
	}
	if len(samples) == 0 {
		return "", errors.New("no samples")
	}
	slices.Sort(samples)
	return fmt.Sprintf("250 to wait return over %d messages of %d bytes: p50 %s  p90 %s  p99 %s  max %s ms\n",
		len(samples), cfg.Size, ms(percentile(samples, 50)), ms(percentile(samples, 90)), ms(percentile(samples, 99)), ms(samples[len(samples)-1])), nil
}

func createInbox(ctx context.Context, client *http.Client, api string) (address, token string, err error) {
	return createInboxTTL(ctx, client, api, 0)
}

// createInboxTTL creates a random inbox whose mail lives for ttl, or the service's
// default when ttl is 0, and checks that the server granted that ttl. Creating inboxes
// is setup, not load: a 429 (a server limiting requests per client) is waited out, as
// its Retry-After says, a few times.
func createInboxTTL(ctx context.Context, client *http.Client, api string, ttl time.Duration) (address, token string, err error) {
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", api+"/api/v1/inboxes", nil)
		if ttl > 0 {
			req.Body = io.NopCloser(strings.NewReader(`{"ttl": "` + ttl.String() + `"}`))
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err = client.Do(req)
		if err != nil {
			return "", "", fmt.Errorf("create inbox: %w", err)
		}
		if resp.StatusCode != http.StatusTooManyRequests || attempt == 5 {
			break
		}
		resp.Body.Close()
		wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || wait < 1 {
			wait = 1
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("create inbox: %w", ctx.Err())
		case <-time.After(time.Duration(wait) * time.Second):
		}
	}
	defer resp.Body.Close()
	var in struct {
		Address, Token string
		ExpiresIn      float64 `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil || resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("create inbox: status %d: %v", resp.StatusCode, err)
	}
	if ttl > 0 && in.ExpiresIn != ttl.Seconds() {
		return "", "", fmt.Errorf("create inbox: asked for ttl %s, got expires_in %gs", ttl, in.ExpiresIn)
	}
	return in.Address, in.Token, nil
}

func waitOnce(ctx context.Context, client *http.Client, api, address, token string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", api+"/api/v1/inboxes/"+address+"/wait?timeout=20s", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct{ Messages []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || len(out.Messages) != 1 {
		return fmt.Errorf("status %d, %d messages: %v", resp.StatusCode, len(out.Messages), err)
	}
	return nil
}

// sendPlain sends one message without STARTTLS, as the load does: net/smtp's SendMail
// would insist on verifying Mayfly's self-signed certificate.
func sendPlain(cfg Config, to, msg string) error {
	c, err := smtp.Dial(cfg.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(cfg.EHLO); err != nil {
		return err
	}
	if err := c.Mail(cfg.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
