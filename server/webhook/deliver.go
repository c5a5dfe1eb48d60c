package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mayfly-mail/mayfly/server/netguard"
	"github.com/mayfly-mail/mayfly/storage"
)

// Bounds of reading an answer: its start is kept in the delivery log, and a little
// more is read so the connection can be used again; the rest is not read at all.
const (
	maxExcerpt = 1 << 10
	maxDrain   = 64 << 10
)

// newClient is the HTTP client of deliveries: it dials public addresses only (checked
// on the address dialed, after DNS, unless allowPrivate), follows no redirect (a 3xx
// is a failed attempt, and could lead anywhere), and uses no proxy from the
// environment, which would dial for it past that check.
func newClient(allowPrivate bool, resolver *net.Resolver, workers int) *http.Client {
	dialer := netguard.Dialer(net.Dialer{Timeout: 5 * time.Second, Resolver: resolver}, allowPrivate)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 0, // the attempt's context bounds it
			// Every worker may be POSTing to one receiver: each keeps its connection.
			MaxIdleConnsPerHost: workers,
			IdleConnTimeout:     time.Minute,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// work makes deliveries until ctx ends, Options.Workers at a time: it claims as many as
// that at once (one round trip on Redis) and starts each as soon as a worker is free, so
// one waits at most one attempt (Options.Timeout) for its worker, and the lease covers
// that wait and its own attempt. An attempt runs under drain, which outlives ctx by the
// shutdown timeout; deliveries claimed but not started when ctx ends are made due at
// once for the other nodes (see release).
func (s *Service) work(ctx, drain context.Context) {
	// A worker hands its delivery to saveAttempts and goes on to the next: waiting for
	// the store was half of a worker's time in the fan-out. The channel's bound keeps
	// the deliveries attempted but not yet stored (made again if the node dies) few.
	saves := make(chan *storage.Delivery, s.opts.Workers)
	saved := make(chan struct{})
	go func() {
		s.saveAttempts(drain, saves)
		close(saved)
	}()
	// The workers live as long as work: a goroutine per delivery grew its stack anew
	// each time, a twentieth of the server's CPU in the fan-out's profile.
	jobs := make(chan *storage.Delivery)
	var wg sync.WaitGroup
	wg.Add(s.opts.Workers)
	for range s.opts.Workers {
		go func() {
			defer wg.Done()
			for d := range jobs {
				if ctx.Err() != nil {
					// Handed over as ctx ended (a select takes either of two ready
					// cases): the other nodes make it, as they do those not handed over.
					s.release(drain, []*storage.Delivery{d})
					continue
				}
				s.deliver(drain, d, saves)
			}
		}()
	}
	defer func() {
		close(jobs)
		wg.Wait()
		close(saves)
		<-saved
	}()
	idle := time.NewTimer(0)
	defer idle.Stop()
	failures := 0
	for ctx.Err() == nil {
		ds, err := s.store.ClaimDeliveries(ctx, s.opts.Workers, s.opts.Lease)
		wait := s.opts.Poll
		if err != nil && ctx.Err() == nil {
			// The store is down: every poll finds it so, and need not say so each time.
			failures++
			wait = min(wait<<min(failures, 6), 30*time.Second)
			if failures == 1 {
				s.logger.Warn("claim deliveries", "err", err)
			}
		} else if err == nil {
			failures = 0
		}
		for i, d := range ds {
			select {
			case jobs <- d:
			case <-ctx.Done():
				s.release(drain, ds[i:])
				return
			}
		}
		if len(ds) == s.opts.Workers {
			continue // more may be due
		}
		idle.Reset(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-idle.C:
		}
	}
}

// release makes deliveries this node claimed but will not attempt (it is stopping) due
// now, so that another node makes them at once, not after their lease. One that cannot
// be released (the store failed) still comes back after its lease.
func (s *Service) release(ctx context.Context, ds []*storage.Delivery) {
	now := s.opts.Now()
	for _, d := range ds {
		d.Next = now
	}
	if err := s.store.UpdateDeliveries(ctx, ds); err != nil {
		s.logger.Warn("release deliveries at shutdown", "n", len(ds), "err", err)
	}
}

// deliver makes one attempt at d, records it in d's log and schedules what comes next:
// nothing when it succeeded, the next attempt when it failed and the schedule allows,
// else the delivery has failed. A webhook failing for Options.DisableAfter is disabled.
func (s *Service) deliver(ctx context.Context, d *storage.Delivery, saves chan<- *storage.Delivery) {
	s.metrics.inflight.Inc()
	defer s.metrics.inflight.Dec()
	logger := s.logger.With("webhook", d.Webhook, "id", d.ID)
	w, err := s.webhook(ctx, d.Webhook)
	if errors.Is(err, storage.ErrNotFound) {
		return // deleted with its deliveries since the claim
	}
	if err != nil {
		logger.Warn("read webhook", "err", err)
		return // the lease runs out, and the delivery is claimed again
	}
	if w.Disabled != "" {
		d.State, d.Next = storage.DeliveryFailed, time.Time{}
		s.metrics.attempts.WithLabelValues("failed").Inc()
		saves <- d
		return
	}
	now := s.opts.Now()
	a := s.attempt(ctx, w, d, now)
	d.Attempts = append(d.Attempts, a)
	ok := a.Status >= 200 && a.Status <= 299
	result := "delivered"
	switch next, more := retryAfter(s.opts.Schedule, len(d.Attempts), now); {
	case ok:
		d.State, d.Next = storage.DeliveryDelivered, time.Time{}
	case more:
		d.State, d.Next, result = storage.DeliveryPending, next, "retry"
	default:
		d.State, d.Next, result = storage.DeliveryFailed, time.Time{}, "failed"
	}
	s.metrics.attempts.WithLabelValues(result).Inc()
	s.metrics.latency.Observe(a.Latency.Seconds())
	logger.Debug("attempt", "url", w.URL, "status", a.Status, "err", a.Error, "dur", a.Latency, "result", result)
	saves <- d
	s.noteResult(ctx, w, ok, d.State == storage.DeliveryFailed, now)
}

// maxSaves bounds the deliveries stored in one go.
const maxSaves = 256

// saveAttempts stores the deliveries sent on saves after their attempts until saves is
// closed: those of every worker that finished while a batch was being stored go in the
// next, in one round trip on Redis, not one each. A delivery the store no longer has
// went with its webhook, deleted meanwhile; one not stored (the store failed, the node
// died first) is attempted again after its lease: at least once.
func (s *Service) saveAttempts(ctx context.Context, saves <-chan *storage.Delivery) {
	batch := make([]*storage.Delivery, 0, maxSaves)
	for first := range saves {
		batch = append(batch[:0], first)
	gather:
		for len(batch) < maxSaves {
			select {
			case next, ok := <-saves:
				if !ok {
					break gather
				}
				batch = append(batch, next)
			default:
				break gather
			}
		}
		if err := s.store.UpdateDeliveries(ctx, batch); err != nil {
			s.logger.Warn("update deliveries", "n", len(batch), "err", err)
		}
	}
}

// webhook returns webhook id from the cached subscriptions, or the store when it is
// not there (created on another node since they were read): a delivery costs no read
// of its webhook. The cache is at most a few seconds old, so a webhook disabled or
// deleted on another node may get an attempt or two more; one disabled here is not.
func (s *Service) webhook(ctx context.Context, id string) (*storage.Webhook, error) {
	hooks, err := s.subscriptions(ctx, time.Time{})
	if err == nil {
		for i := range hooks {
			if hooks[i].ID == id {
				w := hooks[i].Webhook
				return &w, nil
			}
		}
	}
	return s.store.GetWebhook(ctx, id)
}

// noteResult keeps the webhook's run of failures: FailingSince is set by the first
// failure after a success and cleared by the next success; a delivery that has failed
// for good (spent) in a run longer than Options.DisableAfter disables the webhook. The
// webhook is written only when that changes, read again just before, so a concurrent
// change is rarely undone. w may come from a cache a few seconds old, which can miss a
// FailingSince just set on another node, so a success then leaves it set: requiring a
// spent delivery (a day of failures) keeps that from disabling a working webhook.
func (s *Service) noteResult(ctx context.Context, w *storage.Webhook, ok, spent bool, now time.Time) {
	switch {
	case ok && w.FailingSince.IsZero(),
		!ok && !w.FailingSince.IsZero() && (!spent || now.Sub(w.FailingSince) < s.opts.DisableAfter):
		return // nothing changes
	}
	w, err := s.store.GetWebhook(ctx, w.ID)
	if err != nil {
		return
	}
	switch {
	case ok:
		w.FailingSince = time.Time{}
	case w.FailingSince.IsZero():
		w.FailingSince = now.UTC()
	case spent && now.Sub(w.FailingSince) >= s.opts.DisableAfter && w.Disabled == "":
		w.Disabled = fmt.Sprintf("every delivery failed from %s to %s", w.FailingSince.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		s.logger.Warn("webhook disabled", "webhook", w.ID, "url", w.URL, "reason", w.Disabled)
	default:
		return
	}
	if err := s.store.PutWebhook(ctx, w); err != nil {
		s.logger.Warn("update webhook", "webhook", w.ID, "err", err)
	}
	s.changed()
}

// attempt POSTs d to w's URL, signed, and returns what happened.
func (s *Service) attempt(ctx context.Context, w *storage.Webhook, d *storage.Delivery, now time.Time) storage.Attempt {
	a := storage.Attempt{At: now.UTC()}
	sig, err := Sign(w.Secret, d.ID, now, d.Payload)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		a.Error = err.Error()
		return a
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Mayfly")
	h.Set("webhook-id", d.ID)
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		a.Latency = time.Since(start)
		a.Error = attemptError(err, s.opts.Timeout)
		return a
	}
	excerpt, err := io.ReadAll(io.LimitReader(resp.Body, maxExcerpt))
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	}
	resp.Body.Close()
	a.Latency = time.Since(start)
	a.Status = resp.StatusCode
	a.Response = strings.ToValidUTF8(string(excerpt), "\uFFFD")
	if err != nil && (a.Status < 200 || a.Status > 299) {
		a.Error = attemptError(err, s.opts.Timeout)
	}
	return a
}

// attemptError says why an attempt had no answer, naming the setting when the address
// was refused.
func attemptError(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, netguard.ErrForbidden):
		return err.Error() + "; webhooks go to public addresses only (MAYFLY_OUTBOUND_ALLOW_PRIVATE)"
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s: %v", timeout, err)
	}
	return err.Error()
}
