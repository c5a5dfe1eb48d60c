package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mayfly-mail/mayfly/server/netguard"
	"github.com/mayfly-mail/mayfly/storage"
)

// Error is a request the webhooks refuse, with the HTTP status and code the API
// answers it with.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// HTTPStatus and ErrorCode let the API answer e without importing this package.
func (e *Error) HTTPStatus() int   { return e.Status }
func (e *Error) ErrorCode() string { return e.Code }

func invalid(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_webhook", Message: fmt.Sprintf(format, args...)}
}

// Bounds of what a webhook may ask for.
const (
	maxURL         = 2048
	maxFilterValue = 256
)

// FilterNames are the filters a webhook may set: the wait's filters on a message's
// summary (storage.Filter).
var FilterNames = []string{"from", "to", "subject", "tag", "spf", "dkim", "dmarc"}

// filterOf is the matcher of a webhook's filters.
func filterOf(f map[string]string) storage.Filter {
	return storage.Filter{
		From: f["from"], To: f["to"], Subject: f["subject"], Tag: f["tag"],
		SPF: f["spf"], DKIM: f["dkim"], DMARC: f["dmarc"],
	}.Lower()
}

// CheckURL refuses a webhook URL that is not http or https, is too long, or names a
// host that is never public: a literal loopback, private, link-local or CGNAT address,
// or localhost, unless allowPrivate (MAYFLY_OUTBOUND_ALLOW_PRIVATE). A name is
// checked again at every delivery, after DNS, where it matters: it may resolve to
// anything by then.
func CheckURL(raw string, allowPrivate bool) error {
	if len(raw) > maxURL {
		return invalid("url: longer than %d bytes", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return invalid("url %q: want an absolute http:// or https:// URL", raw)
	}
	if u.Fragment != "" {
		return invalid("url %q: a fragment is never sent; leave it out", raw)
	}
	if allowPrivate {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(host); err == nil && !netguard.Public(ip) {
		return invalid("url %q: %s is not a public address; webhooks go to public addresses only (MAYFLY_OUTBOUND_ALLOW_PRIVATE)", raw, ip)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return invalid("url %q: %s is this machine; webhooks go to public addresses only (MAYFLY_OUTBOUND_ALLOW_PRIVATE)", raw, host)
	}
	return nil
}

// check validates what a client asked for in w and puts it in canonical form.
func (s *Service) check(w *storage.Webhook) error {
	if err := CheckURL(w.URL, s.opts.AllowPrivate); err != nil {
		return err
	}
	if len(w.Events) == 0 {
		return invalid("events: name at least one of %s", strings.Join(Events, ", "))
	}
	var events []string
	for _, e := range w.Events {
		if !slices.Contains(Events, e) {
			return invalid("events: %q is none of %s", e, strings.Join(Events, ", "))
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	w.Events = events
	filters := map[string]string{}
	for k, v := range w.Filters {
		if !slices.Contains(FilterNames, k) {
			return invalid("filters: %q is none of %s", k, strings.Join(FilterNames, ", "))
		}
		if len(v) > maxFilterValue {
			return invalid("filters: %s longer than %d bytes", k, maxFilterValue)
		}
		if v != "" {
			filters[k] = v
		}
	}
	if len(filters) > 0 && !slices.Contains(w.Events, EventReceived) {
		// A deleted or expired event carries no summary to filter on.
		return invalid("filters apply to %s only: subscribe to it, or leave filters out", EventReceived)
	}
	w.Filters = filters
	return nil
}

// Create validates w (URL, events, filters, the caps on webhooks), gives it an ID, a
// signing secret and its creation time, and stores it.
func (s *Service) Create(ctx context.Context, w *storage.Webhook) error {
	if err := s.check(w); err != nil {
		return err
	}
	all, err := s.store.ListWebhooks(ctx)
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	if len(all) >= s.opts.MaxTotal {
		return &Error{Status: http.StatusConflict, Code: "too_many_webhooks", Message: fmt.Sprintf("this service has its %d webhooks already; delete one first", s.opts.MaxTotal)}
	}
	if w.Inbox != "" {
		n := 0
		for _, o := range all {
			if o.Inbox == w.Inbox {
				n++
			}
		}
		if n >= s.opts.MaxPerInbox {
			return &Error{Status: http.StatusConflict, Code: "too_many_webhooks", Message: fmt.Sprintf("%s has its %d webhooks already; delete one first", w.Inbox, s.opts.MaxPerInbox)}
		}
	}
	w.ID = "wh_" + randomID()
	w.Secret = newSecret()
	w.Created = s.opts.Now().UTC()
	w.Disabled, w.FailingSince = "", time.Time{}
	if err := s.store.PutWebhook(ctx, w); err != nil {
		return fmt.Errorf("put webhook: %w", err)
	}
	s.changed()
	return nil
}

// Webhooks returns every webhook, oldest first.
func (s *Service) Webhooks(ctx context.Context) ([]storage.Webhook, error) {
	return s.store.ListWebhooks(ctx)
}

// Webhook returns one webhook; storage.ErrNotFound when there is none.
func (s *Service) Webhook(ctx context.Context, id string) (*storage.Webhook, error) {
	return s.store.GetWebhook(ctx, id)
}

// Delete deletes a webhook and its deliveries.
func (s *Service) Delete(ctx context.Context, id string) error {
	if err := s.store.DeleteWebhook(ctx, id); err != nil {
		return err
	}
	s.changed()
	return nil
}

// Deliveries returns the latest deliveries of a webhook, newest first.
func (s *Service) Deliveries(ctx context.Context, id string, limit int) ([]storage.Delivery, error) {
	return s.store.Deliveries(ctx, id, limit)
}

// Test queues a webhook.test event for webhook id, delivered like any other.
func (s *Service) Test(ctx context.Context, id string) (*storage.Delivery, error) {
	w, err := s.store.GetWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	if w.Disabled != "" {
		return nil, disabled(w)
	}
	now := s.opts.Now()
	body, err := encodePayload(EventTest, now, eventData{Inbox: w.Inbox, Webhook: w.ID})
	if err != nil {
		return nil, err
	}
	d := &storage.Delivery{ID: "msg_" + randomID(), Webhook: w.ID, Event: EventTest, Payload: body, Created: now.UTC(), State: storage.DeliveryPending, Next: now}
	if _, err := s.store.AddDelivery(ctx, d); err != nil {
		return nil, fmt.Errorf("add delivery: %w", err)
	}
	s.poke(1)
	return d, nil
}

// Retry makes delivery id of webhook due now, whatever its state: a replay, with the
// same webhook-id and body, whose attempts join the delivery's log.
func (s *Service) Retry(ctx context.Context, webhook, id string) (*storage.Delivery, error) {
	w, err := s.store.GetWebhook(ctx, webhook)
	if err != nil {
		return nil, err
	}
	if w.Disabled != "" {
		return nil, disabled(w)
	}
	d, err := s.store.GetDelivery(ctx, webhook, id)
	if err != nil {
		return nil, err
	}
	d.State, d.Next = storage.DeliveryPending, s.opts.Now()
	if err := s.store.UpdateDelivery(ctx, d); err != nil {
		return nil, fmt.Errorf("update delivery: %w", err)
	}
	s.poke(1)
	return d, nil
}

func disabled(w *storage.Webhook) *Error {
	return &Error{Status: http.StatusConflict, Code: "webhook_disabled", Message: "the webhook is disabled (" + w.Disabled + "); create a new one"}
}

// randomID is 16 random bytes in lower-case base32: unguessable, URL- and header-safe.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// changed makes the next dispatch read the webhooks again: one created or deleted
// here counts from the next event on.
func (s *Service) changed() {
	s.mu.Lock()
	s.stale = true
	s.mu.Unlock()
}

// poke wakes the claiming loop, idle, for n deliveries due now: one claim takes up to
// a worker count of them, and a token per delivery would be as many claims, most of
// them finding nothing.
func (s *Service) poke(n int) {
	if n <= 0 {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
