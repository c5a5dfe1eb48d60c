package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// smtpSender keeps one SMTP connection for many messages.
type smtpSender struct{ c *smtp.Client }

func newSMTPSender(cfg Config) (*smtpSender, error) {
	conn, err := net.DialTimeout("tcp", cfg.Addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(cfg.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.Hello(cfg.EHLO); err != nil {
		c.Close()
		return nil, err
	}
	return &smtpSender{c: c}, nil
}

// send sends one message and returns when its 250 arrived.
func (s *smtpSender) send(from, to, msg string) (time.Time, error) {
	if err := s.c.Mail(from); err != nil {
		return time.Time{}, err
	}
	if err := s.c.Rcpt(to); err != nil {
		return time.Time{}, err
	}
	w, err := s.c.Data()
	if err != nil {
		return time.Time{}, err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return time.Time{}, err
	}
	if err := w.Close(); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

func (s *smtpSender) close() {
	s.c.Quit()
	s.c.Close()
}

// errNoWebhooks says the server has no webhook routes: a Mayfly without issue 18's
// dispatcher (branch h-webhooks).
var errNoWebhooks = errors.New("the server has no POST /api/v1/webhooks: build a Mayfly with the webhook dispatcher (issue 18) first")

// hookReceiver is the subscribers' end: one HTTP server on loopback, a path per
// subscriber, that verifies each POST's Standard Webhooks signature and stamps its
// arrival by the message's marker.
type hookReceiver struct {
	srv     *http.Server
	url     string
	secrets []string // per subscriber, whsec_...
	marker  *regexp.Regexp

	mu       sync.Mutex
	first    map[hookKey]time.Time // first arrival of each message at each subscriber
	posts    int                   // POSTs received
	retried  int                   // POSTs repeating a webhook-id the subscriber had
	ids      map[string]bool       // subscriber/webhook-id seen
	badSig   int
	unmarked int
	arrived  chan string // the marker of each first arrival
}

type hookKey struct {
	sub    int
	marker string
}

func newHookReceiver(markerRE string) (*hookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &hookReceiver{
		url: "http://" + ln.Addr().String(), marker: regexp.MustCompile(markerRE),
		first: map[hookKey]time.Time{}, ids: map[string]bool{}, arrived: make(chan string, 1<<16),
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *hookReceiver) close() { r.srv.Close() }

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	sub, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/hook/"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || sub < 0 || sub >= len(r.secrets) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
	r.posts++
	id := req.Header.Get("webhook-id")
	if !verifyStandardWebhook(r.secrets[sub], id, req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature"), body) {
		r.badSig++
	}
	if k := strconv.Itoa(sub) + "/" + id; r.ids[k] {
		r.retried++
	} else {
		r.ids[k] = true
	}
	m := r.marker.Find(body)
	if m == nil {
		r.unmarked++ // a test event, say
		return
	}
	key := hookKey{sub, string(m)}
	if _, ok := r.first[key]; ok {
		return
	}
	r.first[key] = at
	select {
	case r.arrived <- key.marker:
	default: // the fan-out phase does not read them
	}
}

// verifyStandardWebhook checks a delivery as the Standard Webhooks scheme says, written
// here from the specification, not with the server's code: an HMAC-SHA256 over
// "id.timestamp.body" keyed with the base64 after whsec_, one of the space-separated
// "v1,<base64>" signatures.
func verifyStandardWebhook(secret, id, timestamp, signatures string, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || id == "" || timestamp == "" {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(signatures) {
		v, b64, ok := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && v == "v1" && err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

// subscribe creates a webhook for inbox's message.received events that POSTs to url.
func subscribe(ctx context.Context, client *http.Client, api, token, inbox, url string) (secret string, err error) {
	body, _ := json.Marshal(map[string]any{"url": url, "events": []string{"message.received"}, "inbox": inbox})
	req, _ := http.NewRequestWithContext(ctx, "POST", api+"/api/v1/webhooks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("create webhook: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return "", errNoWebhooks
	case resp.StatusCode/100 != 2:
		return "", fmt.Errorf("create webhook: %d %s", resp.StatusCode, b)
	}
	var out struct{ ID, Secret string }
	if err := json.Unmarshal(b, &out); err != nil || !strings.HasPrefix(out.Secret, "whsec_") {
		return "", fmt.Errorf("create webhook: answer %s: want {id, secret: whsec_...}", b)
	}
	return out.Secret, nil
}

// runWebhookBench measures webhook deliveries (issue 18): -subscribers webhooks on one
// inbox, each POSTing to a receiver of this process on loopback. First -n messages one
// at a time, from each SMTP 250 to every subscriber's POST (p50/p99); then, with
// -rate, messages at that rate for -duration over -c SMTP sessions, checking that every
// subscriber got every message (retries of one webhook-id allowed) and that every
// signature verifies. The server must allow webhooks to loopback
// (MAYFLY_OUTBOUND_ALLOW_PRIVATE=true) and take the load from one client into one inbox
// (-receive-rate off -recipient-rate off).
func runWebhookBench(ctx context.Context, cfg Config) (string, error) {
	api := strings.TrimSuffix(cfg.WebhookAPI, "/")
	client := &http.Client{Timeout: cfg.Timeout}
	tag := make([]byte, 4)
	rand.Read(tag)
	run := hex.EncodeToString(tag)
	recv, err := newHookReceiver(`wh-` + run + `-[0-9]+x`)
	if err != nil {
		return "", err
	}
	defer recv.close()
	address, token, err := createInbox(ctx, client, api)
	if err != nil {
		return "", err
	}
	for i := range cfg.Subscribers {
		secret, err := subscribe(ctx, client, api, token, address, fmt.Sprintf("%s/hook/%d", recv.url, i))
		if err != nil {
			return "", err
		}
		recv.mu.Lock()
		recv.secrets = append(recv.secrets, secret)
		recv.mu.Unlock()
	}
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", max(cfg.Size/78, 1))
	message := func(i int) (marker, msg string) {
		marker = fmt.Sprintf("wh-%s-%dx", run, i) // the x ends it: -1 is not a prefix of -10
		return marker, fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: webhook %s\r\n\r\n%s", cfg.From, address, marker, body)
	}
	var out strings.Builder

	// One at a time: the latency of the path, every subscriber's POST of each message.
	sender, err := newSMTPSender(cfg)
	if err != nil {
		return "", err
	}
	samples := make([]time.Duration, 0, cfg.N*cfg.Subscribers)
	for i := range cfg.N {
		marker, msg := message(i)
		acked, err := sender.send(cfg.From, address, msg)
		if err != nil {
			sender.close()
			return "", fmt.Errorf("send %d: %w", i, err)
		}
		deadline := time.NewTimer(cfg.Timeout)
		for got := 0; got < cfg.Subscribers; {
			select {
			case m := <-recv.arrived:
				if m == marker {
					got++
				}
			case <-deadline.C:
				sender.close()
				return "", fmt.Errorf("message %d: %d of %d subscribers got it within %s", i, got, cfg.Subscribers, cfg.Timeout)
			}
		}
		deadline.Stop()
		recv.mu.Lock()
		for sub := range cfg.Subscribers {
			samples = append(samples, max(recv.first[hookKey{sub, marker}].Sub(acked), 0))
		}
		recv.mu.Unlock()
	}
	sender.close()
	if len(samples) > 0 {
		slices.Sort(samples)
		fmt.Fprintf(&out, "250 to webhook POST over %d messages of %d bytes to %d subscribers, one message at a time: p50 %s  p90 %s  p99 %s  max %s ms\n",
			cfg.N, cfg.Size, cfg.Subscribers, ms(percentile(samples, 50)), ms(percentile(samples, 90)), ms(percentile(samples, 99)), ms(samples[len(samples)-1]))
	}
	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		err := recv.check(&out)
		return out.String(), err
	}

	// Fan-out: Rate messages a second for Duration, every one to every subscriber.
	total := int(cfg.Rate * cfg.Duration.Seconds())
	acks := make([]time.Time, total)
	markers := make([]string, total)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var sendErrs sync.Map
	for range cfg.Conns {
		wg.Go(func() {
			s, err := newSMTPSender(cfg)
			if err != nil {
				sendErrs.Store(err.Error(), true)
				for range jobs {
				}
				return
			}
			defer s.close()
			for i := range jobs {
				marker, msg := message(cfg.N + i)
				markers[i] = marker
				if acks[i], err = s.send(cfg.From, address, msg); err != nil {
					sendErrs.Store(err.Error(), true)
				}
			}
		})
	}
	start := time.Now()
	every := time.Duration(float64(time.Second) / cfg.Rate)
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d) // pacing the sends, not waiting for a result
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	sendWall := time.Since(start)
	sent := 0
	for i := range total {
		if !acks[i].IsZero() {
			sent++
		}
	}
	// Every POST due: wait until they all came, or nothing came for a while.
	want := sent * cfg.Subscribers
	last, lastCount := time.Now(), -1
	for {
		recv.mu.Lock()
		n := 0
		for i := range total {
			if acks[i].IsZero() {
				continue
			}
			for sub := range cfg.Subscribers {
				if _, ok := recv.first[hookKey{sub, markers[i]}]; ok {
					n++
				}
			}
		}
		recv.mu.Unlock()
		if n == want || time.Since(last) > cfg.Timeout || ctx.Err() != nil {
			break
		}
		if n != lastCount {
			last, lastCount = time.Now(), n
		}
		time.Sleep(100 * time.Millisecond) // polling the receiver's tally, with a deadline
	}
	var lat []time.Duration
	var lastAt time.Duration // the last delivery, from the first send
	got := 0
	recv.mu.Lock()
	for i := range total {
		if acks[i].IsZero() {
			continue
		}
		for sub := range cfg.Subscribers {
			if at, ok := recv.first[hookKey{sub, markers[i]}]; ok {
				got++
				lat = append(lat, max(at.Sub(acks[i]), 0))
				lastAt = max(lastAt, at.Sub(start))
			}
		}
	}
	recv.mu.Unlock()
	var errs []string
	sendErrs.Range(func(k, _ any) bool { errs = append(errs, k.(string)); return true })
	fmt.Fprintf(&out, "fan-out: %d of %d messages accepted in %s (%.0f msg/s asked %.0f), %d SMTP sessions; send errors %d %q\n",
		sent, total, sendWall.Round(time.Millisecond), float64(sent)/sendWall.Seconds(), cfg.Rate, cfg.Conns, len(errs), errs)
	fmt.Fprintf(&out, "fan-out: %d of %d deliveries (%d subscribers), %d lost", got, want, cfg.Subscribers, want-got)
	if len(lat) > 0 {
		slices.Sort(lat)
		fmt.Fprintf(&out, "; 250 to POST p50 %s  p90 %s  p99 %s  max %s ms", ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99)), ms(lat[len(lat)-1]))
	}
	out.WriteString("\n")
	if lastAt > 0 {
		fmt.Fprintf(&out, "fan-out: the last delivery %s after the first send: %.0f deliveries/s\n", lastAt.Round(time.Millisecond), float64(got)/lastAt.Seconds())
	}
	if err := recv.check(&out); err != nil {
		return out.String(), err
	}
	if got != want {
		return out.String(), fmt.Errorf("%d deliveries lost", want-got)
	}
	return out.String(), nil
}

// check reports the receiver's tally and fails on a bad signature.
func (r *hookReceiver) check(out *strings.Builder) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(out, "receiver: %d POSTs, %d repeating a webhook-id (retries), %d bad signatures, %d of no message of this run\n", r.posts, r.retried, r.badSig, r.unmarked)
	if r.badSig > 0 {
		return fmt.Errorf("%d deliveries with a bad signature", r.badSig)
	}
	return nil
}
