package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
	"github.com/mayfly-mail/mayfly/storage"
)

// webhooks is what the API needs of the webhooks service (server/webhook, which cmd
// wires): it validates, stores and delivers; the API checks who may do what.
// Refusals it makes carry their status and code (see webhookRefusal).
type webhooks interface {
	Create(ctx context.Context, w *storage.Webhook) error
	Webhooks(ctx context.Context) ([]storage.Webhook, error)
	Webhook(ctx context.Context, id string) (*storage.Webhook, error)
	Delete(ctx context.Context, id string) error
	Deliveries(ctx context.Context, id string, limit int) ([]storage.Delivery, error)
	Test(ctx context.Context, id string) (*storage.Delivery, error)
	Retry(ctx context.Context, webhook, id string) (*storage.Delivery, error)
}

// webhookRefusal is an error of the webhooks service that says how to answer it.
type webhookRefusal interface {
	error
	HTTPStatus() int
	ErrorCode() string
}

// WebhookMessage is what a webhook's payload says of a received message: the summary
// of the listings with the codes and links of raw (none when raw is nil, the message
// gone already). cmd gives it to the webhooks service, so a payload and the API show a
// message alike.
func WebhookMessage(m *storage.Message, raw []byte) any {
	out := struct {
		summaryJSON
		Codes []string `json:"codes"`
		Links []string `json:"links"`
	}{summaryJSON: toSummary(m), Codes: []string{}, Links: []string{}}
	if raw == nil {
		return out
	}
	p, err := parse.Message(raw)
	if err != nil {
		return out
	}
	out.Codes = nonNil(p.Codes)
	// A payload stays small whatever the mail holds: links to a budget, as the API cuts them.
	b := budget{left: maxWebhookLinks}
	for _, l := range p.Links {
		if len(l) > b.left {
			out.Truncated = true
			break
		}
		b.left -= len(l)
		out.Links = append(out.Links, l)
	}
	return out
}

// maxWebhookLinks bounds the bytes of links in a payload.
const maxWebhookLinks = 16 << 10

type webhookRequest struct {
	URL       string            `json:"url"`
	Events    []string          `json:"events"`
	Inbox     string            `json:"inbox"`
	Namespace string            `json:"namespace"` // every inbox of it, with its key or the admin key
	Filters   map[string]string `json:"filters"`
}

type webhookJSON struct {
	ID           string            `json:"id"`
	URL          string            `json:"url"`
	Events       []string          `json:"events"`
	Inbox        *string           `json:"inbox"` // null: every inbox, or every inbox of Namespace
	Namespace    *string           `json:"namespace,omitempty"`
	Filters      map[string]string `json:"filters"`
	Secret       string            `json:"secret,omitempty"` // shown once, when created
	CreatedAt    time.Time         `json:"created_at"`
	Disabled     *string           `json:"disabled"`      // why it is no longer delivered to; null when active
	FailingSince *time.Time        `json:"failing_since"` // null unless its last delivery failed
}

func toWebhookJSON(w *storage.Webhook) webhookJSON {
	out := webhookJSON{ID: w.ID, URL: w.URL, Events: nonNil(w.Events), Filters: w.Filters, CreatedAt: w.Created.UTC()}
	if out.Filters == nil {
		out.Filters = map[string]string{}
	}
	if ns, ok := strings.CutPrefix(w.Inbox, "*"); ok {
		out.Namespace = &ns
	} else if w.Inbox != "" {
		out.Inbox = &w.Inbox
	}
	if w.Disabled != "" {
		out.Disabled = &w.Disabled
	}
	if !w.FailingSince.IsZero() {
		t := w.FailingSince.UTC()
		out.FailingSince = &t
	}
	return out
}

type attemptJSON struct {
	At        time.Time `json:"at"`
	Status    int       `json:"status"` // 0: no answer, error says why
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error"`
	Response  string    `json:"response"`
}

type deliveryJSON struct {
	ID          string          `json:"id"` // the webhook-id header
	Webhook     string          `json:"webhook"`
	Event       string          `json:"event"`
	State       string          `json:"state"`
	CreatedAt   time.Time       `json:"created_at"`
	NextAttempt *time.Time      `json:"next_attempt_at"` // null unless pending
	Attempts    []attemptJSON   `json:"attempts"`
	Payload     json.RawMessage `json:"payload"`
}

func toDeliveryJSON(d *storage.Delivery) deliveryJSON {
	out := deliveryJSON{ID: d.ID, Webhook: d.Webhook, Event: d.Event, State: d.State, CreatedAt: d.Created.UTC(), Attempts: make([]attemptJSON, len(d.Attempts)), Payload: d.Payload}
	if d.State == storage.DeliveryPending && !d.Next.IsZero() {
		t := d.Next.UTC()
		out.NextAttempt = &t
	}
	if !json.Valid(out.Payload) {
		out.Payload = json.RawMessage("null")
	}
	for i, a := range d.Attempts {
		out.Attempts[i] = attemptJSON{At: a.At.UTC(), Status: a.Status, LatencyMS: float64(a.Latency.Microseconds()) / 1000, Error: a.Error, Response: a.Response}
	}
	return out
}

// webhooksOffered refuses every webhook route of a server without the service.
func (s *Server) webhooksOffered(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.opts.Webhooks == nil {
			return errorf(http.StatusNotImplemented, "not_implemented", "this service has no webhooks")
		}
		return next(c)
	}
}

// webhookCredential checks the request's credential: the admin key opens every
// webhook, an inbox's token the webhooks of that inbox (inbox "" asks for the admin key).
// Wrong credentials count against the client at the login gate, as on the inbox routes.
func (s *Server) webhookCredential(c echo.Context, inbox string) error {
	if ns, ok := strings.CutPrefix(inbox, "*"); ok {
		return s.namespaceCredential(c, ns)
	}
	token := bearer(c.Request())
	if token == "" {
		if inbox == "" {
			return errorf(http.StatusUnauthorized, "unauthorized", "global webhooks need the admin key (MAYFLY_API_KEY): Authorization: Bearer KEY")
		}
		return errorf(http.StatusUnauthorized, "unauthorized", "this inbox's webhooks need its token or the admin key: Authorization: Bearer TOKEN")
	}
	opens, err := s.checkToken(c, token, func(token string) bool {
		if inbox == "" {
			return s.isAdminKey(token)
		}
		return s.gate().Opens(c.Request().Context(), inbox, token)
	})
	if err != nil {
		return err
	}
	if !opens {
		if inbox == "" {
			return errorf(http.StatusForbidden, "forbidden", "global webhooks need the admin key (MAYFLY_API_KEY)")
		}
		return errorf(http.StatusForbidden, "forbidden", "that token does not open %s", inbox)
	}
	return nil
}

// webhookError answers the webhooks service's refusals with their status, and a
// webhook or delivery that does not exist with a 404 that says so.
func webhookError(err error, what string) error {
	var r webhookRefusal
	if errors.As(err, &r) {
		return &apiError{Status: r.HTTPStatus(), Code: r.ErrorCode(), Message: r.Error()}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", "no such %s", what)
	}
	return err
}

// createWebhook answers POST /api/v1/webhooks: 201 with the webhook and its signing
// secret, shown this once.
func (s *Server) createWebhook(c echo.Context) error {
	var req webhookRequest
	if err := s.decodeBody(c, &req, false, `{"url", "events", "inbox", "namespace", "filters"}`); err != nil {
		return err
	}
	inbox := ""
	switch {
	case req.Inbox != "" && req.Namespace != "":
		return errorf(http.StatusBadRequest, "bad_request", "give inbox or namespace, not both")
	case req.Inbox != "":
		var err error
		if inbox, err = s.parseInbox(req.Inbox); err != nil {
			return err
		}
	case req.Namespace != "":
		if !storage.ValidNamespace(req.Namespace) {
			return errorf(http.StatusBadRequest, "bad_request", "namespace %q: no namespace's name", req.Namespace)
		}
		inbox = storage.NamespaceWatch(req.Namespace)
	}
	if err := s.webhookCredential(c, inbox); err != nil {
		return err
	}
	w := &storage.Webhook{URL: strings.TrimSpace(req.URL), Events: req.Events, Inbox: inbox, Filters: req.Filters}
	if err := s.opts.Webhooks.Create(c.Request().Context(), w); err != nil {
		return webhookError(err, "webhook")
	}
	out := toWebhookJSON(w)
	out.Secret = w.Secret
	return c.JSON(http.StatusCreated, out)
}

// listWebhooks answers GET /api/v1/webhooks: an inbox's (?inbox=, with its token or
// the admin key), or every one (the admin key).
func (s *Server) listWebhooks(c echo.Context) error {
	inbox := ""
	if v := c.QueryParam("inbox"); v != "" {
		var err error
		if inbox, err = s.parseInbox(v); err != nil {
			return err
		}
	} else if v := c.QueryParam("namespace"); v != "" {
		if !storage.ValidNamespace(v) {
			return errorf(http.StatusBadRequest, "bad_request", "namespace %q: no namespace's name", v)
		}
		inbox = storage.NamespaceWatch(v)
	}
	if err := s.webhookCredential(c, inbox); err != nil {
		return err
	}
	all, err := s.opts.Webhooks.Webhooks(c.Request().Context())
	if err != nil {
		return err
	}
	out := struct {
		Webhooks []webhookJSON `json:"webhooks"`
	}{Webhooks: []webhookJSON{}}
	for i := range all {
		if inbox == "" || all[i].Inbox == inbox {
			out.Webhooks = append(out.Webhooks, toWebhookJSON(&all[i]))
		}
	}
	return c.JSON(http.StatusOK, out)
}

// ownWebhook returns the webhook of the route's :id once the request's credential
// opens it.
func (s *Server) ownWebhook(c echo.Context) (*storage.Webhook, error) {
	w, err := s.opts.Webhooks.Webhook(c.Request().Context(), c.Param("id"))
	if err != nil {
		return nil, webhookError(err, "webhook")
	}
	if err := s.webhookCredential(c, w.Inbox); err != nil {
		return nil, err
	}
	return w, nil
}

func (s *Server) getWebhook(c echo.Context) error {
	w, err := s.ownWebhook(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toWebhookJSON(w))
}

func (s *Server) deleteWebhook(c echo.Context) error {
	w, err := s.ownWebhook(c)
	if err != nil {
		return err
	}
	if err := s.opts.Webhooks.Delete(c.Request().Context(), w.ID); err != nil {
		return webhookError(err, "webhook")
	}
	return c.NoContent(http.StatusNoContent)
}

// maxDeliveries is the most deliveries one listing answers.
const maxDeliveries = storage.DeliveriesKept

// listDeliveries answers GET /api/v1/webhooks/{id}/deliveries: the latest deliveries,
// newest first, each with every attempt.
func (s *Server) listDeliveries(c echo.Context) error {
	w, err := s.ownWebhook(c)
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit", maxDeliveries)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = maxDeliveries
	}
	list, err := s.opts.Webhooks.Deliveries(c.Request().Context(), w.ID, limit)
	if err != nil {
		return webhookError(err, "webhook")
	}
	out := struct {
		Deliveries []deliveryJSON `json:"deliveries"`
	}{Deliveries: make([]deliveryJSON, len(list))}
	for i := range list {
		out.Deliveries[i] = toDeliveryJSON(&list[i])
	}
	return writeJSON(c, http.StatusOK, out)
}

// testWebhook answers POST /api/v1/webhooks/{id}/test: a webhook.test event queued
// like any other; 202 with its delivery, whose log shows how it went.
func (s *Server) testWebhook(c echo.Context) error {
	w, err := s.ownWebhook(c)
	if err != nil {
		return err
	}
	d, err := s.opts.Webhooks.Test(c.Request().Context(), w.ID)
	if err != nil {
		return webhookError(err, "webhook")
	}
	return writeJSON(c, http.StatusAccepted, toDeliveryJSON(d))
}

// retryDelivery answers POST /api/v1/webhooks/{id}/deliveries/{delivery}/retry: the
// delivery is due now again, with the same webhook-id and body; 202.
func (s *Server) retryDelivery(c echo.Context) error {
	w, err := s.ownWebhook(c)
	if err != nil {
		return err
	}
	d, err := s.opts.Webhooks.Retry(c.Request().Context(), w.ID, c.Param("delivery"))
	if err != nil {
		return webhookError(err, "delivery")
	}
	return writeJSON(c, http.StatusAccepted, toDeliveryJSON(d))
}
