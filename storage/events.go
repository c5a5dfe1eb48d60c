package storage

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// EventHistory is how long the event log keeps an inbox's events at least: an SSE client
// that reconnects within it with Last-Event-ID misses nothing.
const EventHistory = 10 * time.Minute

// ErrGone is returned for a position older than the history kept (SSE: start afresh).
var ErrGone = errors.New("storage: event no longer kept")

// LoggedEvent is an event as the event log keeps it.
type LoggedEvent struct {
	Seq   string    // its position in the log it was read from, increasing; opaque
	Time  time.Time // when it happened
	Event           // Type, Inbox, ID, UID, Flags; Message (metadata, Raw nil) for EventAdded
}

// EventLog records every change of every inbox (the events Subscribe reports), in order.
type EventLog interface {
	// InboxEvents returns up to limit events of inbox after position after ("" = from the
	// oldest kept), oldest first; ErrGone when after is older than what is kept (or is
	// no position of this log). Shared by every node of a Redis store. Subscribe stays
	// the doorbell: a reader subscribes, then reads.
	InboxEvents(ctx context.Context, inbox, after string, limit int) ([]LoggedEvent, error)
	// ReadFeed returns up to n events of every inbox that group has not acknowledged,
	// waiting up to block for one when there are none. An event a consumer read but did not
	// AckFeed within lease is given to the next ReadFeed of any consumer of the group (its
	// node died): at least once. Seq here is the feed's own position. A group's first
	// ReadFeed starts at the oldest event the feed keeps (about a day, see the stores).
	// The feed has every event made while a webhook exists (WebhookStore); a store may
	// leave out the others (both do; on a Redis Cluster the feed has them all).
	ReadFeed(ctx context.Context, group, consumer string, n int, block, lease time.Duration) ([]LoggedEvent, error)
	AckFeed(ctx context.Context, group string, seqs ...string) error
}

// Webhook is a subscription: events of one inbox (Inbox set, made with its token) or of
// every inbox (Inbox "", made with the admin key) are POSTed to URL.
type Webhook struct {
	ID           string // "wh_..." set by the caller
	URL          string
	Events       []string          // "message.received", "message.deleted", "message.expired"
	Inbox        string            // "" = every inbox; NamespaceWatch(name) = every inbox of namespace name
	Filters      map[string]string // the wait filters it matches (from, subject, tag, spf, dkim, dmarc)
	Secret       string            // "whsec_" + base64 of the key
	Created      time.Time
	Disabled     string    // why it stopped being delivered to; "" = active
	FailingSince time.Time // first failure of the current run of failures; zero when the last delivery succeeded
}

// Attempt is one try of a delivery.
type Attempt struct {
	At       time.Time
	Status   int // HTTP status; 0 when no answer (Error says why)
	Latency  time.Duration
	Error    string
	Response string // the start of the answer's body, at most 1 KiB
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one event for one webhook, with every attempt.
type Delivery struct {
	ID       string // the webhook-id header: the same for every attempt and replay
	Webhook  string // Webhook.ID
	Event    string // "message.received", ...
	Payload  []byte // the JSON body, signed as is
	Created  time.Time
	State    string    // "pending", "delivered", "failed"
	Next     time.Time // when it is due (pending)
	Attempts []Attempt
}

// DeliveriesKept is how many finished (delivered or failed) deliveries a store keeps
// of each webhook at least; older finished ones go. Pending ones are all kept.
const DeliveriesKept = 100

// WebhookStore keeps subscriptions, their deliveries and the queue of due deliveries,
// shared by every node (a node that dies mid-delivery loses nothing: its lease runs out).
type WebhookStore interface {
	PutWebhook(ctx context.Context, w *Webhook) error            // create or replace
	GetWebhook(ctx context.Context, id string) (*Webhook, error) // ErrNotFound
	ListWebhooks(ctx context.Context) ([]Webhook, error)         // all, oldest first
	DeleteWebhook(ctx context.Context, id string) error          // and its deliveries; ErrNotFound
	// AddDelivery stores d, due at d.Next, unless the webhook already has a delivery with
	// d.ID (then it does nothing and returns false): the feed may hand an event out twice.
	// A webhook that does not exist (deleted meanwhile) gives ErrNotFound.
	AddDelivery(ctx context.Context, d *Delivery) (bool, error)
	// AddDeliveries stores each of ds as AddDelivery does, in one go (on Redis one round
	// trip): added[i] is false when ds[i]'s webhook has a delivery with its ID already or
	// does not exist. An error means some may be stored and others not.
	AddDeliveries(ctx context.Context, ds []*Delivery) (added []bool, err error)
	// ClaimDeliveries returns up to n due pending deliveries, soonest first, each hidden
	// from other claims for lease (on Redis in one round trip); none when none is due. A
	// node that dies holding them has each claimed again once the lease ends.
	ClaimDeliveries(ctx context.Context, n int, lease time.Duration) ([]*Delivery, error)
	// UpdateDelivery saves d after an attempt (or a replay): pending ones (State "" too)
	// are due again at d.Next, delivered and failed ones leave the queue. ErrNotFound when d is not stored
	// (its webhook was deleted, or it was trimmed).
	UpdateDelivery(ctx context.Context, d *Delivery) error
	// UpdateDeliveries saves each of ds as UpdateDelivery does, in one go (on Redis one
	// round trip); one that is not stored is skipped. An error means some may be saved
	// and others not.
	UpdateDeliveries(ctx context.Context, ds []*Delivery) error
	GetDelivery(ctx context.Context, webhook, id string) (*Delivery, error) // ErrNotFound
	// Deliveries returns a webhook's latest deliveries, newest first (by Created); the
	// store keeps at least the last DeliveriesKept of each webhook that are not pending,
	// and every pending one. limit <= 0 means all.
	Deliveries(ctx context.Context, webhook string, limit int) ([]Delivery, error)
}

// SortWebhooks puts webhooks in the order ListWebhooks returns them: oldest first,
// then by ID.
func SortWebhooks(list []Webhook) {
	slices.SortFunc(list, func(a, b Webhook) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
