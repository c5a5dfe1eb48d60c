// Package webhook POSTs the store's events to the URLs subscribed to them, signed as
// Standard Webhooks says (https://www.standardwebhooks.com): a dispatcher reads the
// store's feed of every inbox's events and queues a delivery per matching webhook in
// the store, and workers on every node claim due deliveries, POST them, and retry with
// backoff over about a day. The queue lives in the store, so on Redis a node that dies
// mid-delivery loses nothing: its lease runs out and another node delivers.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure the webhooks. Zero values mean the documented defaults.
type Options struct {
	// Node names this node's reader of the store's feed; "" = a random name. Nodes
	// sharing a Redis store share the feed's work between them.
	Node string
	// AllowPrivate lets deliveries reach loopback, private, link-local and CGNAT
	// addresses (MAYFLY_OUTBOUND_ALLOW_PRIVATE), and webhooks be created with such an
	// address as their URL's host.
	AllowPrivate bool
	// Resolver resolves webhooks' host names; nil = the system's. Tests point it at
	// a DNS server of theirs.
	Resolver *net.Resolver
	// Describe returns what a payload says of a received message: the summary of the
	// API's listings with the codes and links of raw (nil when the message is already
	// gone). nil = the message's id alone.
	Describe func(m *storage.Message, raw []byte) any
	// Workers is how many deliveries this node makes at once, and claims at once; 0 = 32.
	// A worker mostly waits (for the endpoint), so they are cheap.
	Workers int
	// Timeout bounds an attempt, from dialing to the answer's last byte read
	// (MAYFLY_WEBHOOK_TIMEOUT); 0 = 10s.
	Timeout time.Duration
	// Schedule is how long a delivery waits after each failed attempt; nil =
	// DefaultSchedule. After the last, the delivery has failed.
	Schedule []time.Duration
	// DisableAfter is how long a webhook's deliveries may fail without one success
	// before the webhook is disabled, by the next delivery that fails for good; 0 = 5
	// days.
	DisableAfter time.Duration
	// Lease is how long a claimed delivery is hidden from other nodes' workers: a node
	// that dies mid-delivery has its deliveries made by another after it. It covers a
	// delivery's wait for a free worker (at most one attempt) and its own attempt, plus
	// the store's round trips. 0 = twice Timeout plus 10s.
	Lease time.Duration
	// Poll is how often an idle worker looks for deliveries come due (retries, other
	// nodes' events); deliveries this node queues wake it at once. 0 = 1s.
	Poll time.Duration
	// MaxPerInbox and MaxTotal bound the webhooks of one inbox and of the whole
	// service; 0 = 10 and 1000.
	MaxPerInbox, MaxTotal int
	// ShutdownTimeout is how long deliveries in flight may finish once Run's context
	// ends; 0 = 10s.
	ShutdownTimeout time.Duration
	// Registry receives the metrics; nil = none kept.
	Registry prometheus.Registerer
	// Now is the clock, for tests; nil = time.Now.
	Now func() time.Time
}

// store is what the webhooks need of the store: the feed of every inbox's events,
// a message's metadata and bytes for the payload, and the webhooks and their deliveries.
type store interface {
	Raw(ctx context.Context, inbox, id string) ([]byte, error)
	ReadFeed(ctx context.Context, group, consumer string, n int, block, lease time.Duration) ([]storage.LoggedEvent, error)
	AckFeed(ctx context.Context, group string, seqs ...string) error
	PutWebhook(ctx context.Context, w *storage.Webhook) error
	GetWebhook(ctx context.Context, id string) (*storage.Webhook, error)
	ListWebhooks(ctx context.Context) ([]storage.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	AddDelivery(ctx context.Context, d *storage.Delivery) (bool, error)
	AddDeliveries(ctx context.Context, ds []*storage.Delivery) ([]bool, error)
	ClaimDeliveries(ctx context.Context, n int, lease time.Duration) ([]*storage.Delivery, error)
	UpdateDelivery(ctx context.Context, d *storage.Delivery) error
	UpdateDeliveries(ctx context.Context, ds []*storage.Delivery) error
	GetDelivery(ctx context.Context, webhook, id string) (*storage.Delivery, error)
	Deliveries(ctx context.Context, webhook string, limit int) ([]storage.Delivery, error)
}

// Service dispatches and delivers webhooks, and manages them for the API.
type Service struct {
	opts    Options
	store   store
	logger  *slog.Logger
	client  *http.Client
	metrics *metrics
	// wake tells the idle claiming loop that this node queued deliveries due now.
	wake chan struct{}

	mu     sync.Mutex
	hooks  []hook    // the cached subscriptions; see subscriptions
	loaded time.Time // when hooks were read from the store
	stale  bool      // a webhook changed here since
}

// feedGroup is the webhooks' consumer group of the store's feed.
const feedGroup = "webhooks"

// New returns the webhooks over st.
func New(opts Options, st store, logger *slog.Logger) *Service {
	if opts.Node == "" {
		b := make([]byte, 6)
		rand.Read(b)
		opts.Node = "node-" + hex.EncodeToString(b)
	}
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Schedule == nil {
		opts.Schedule = DefaultSchedule
	}
	if opts.DisableAfter <= 0 {
		opts.DisableAfter = 5 * 24 * time.Hour
	}
	if opts.Lease <= 0 {
		opts.Lease = 2*opts.Timeout + 10*time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.MaxPerInbox <= 0 {
		opts.MaxPerInbox = 10
	}
	if opts.MaxTotal <= 0 {
		opts.MaxTotal = 1000
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{
		opts:    opts,
		store:   st,
		logger:  logger.With("proto", "webhook"),
		client:  newClient(opts.AllowPrivate, opts.Resolver, opts.Workers),
		metrics: newMetrics(opts.Registry),
		wake:    make(chan struct{}, 1),
	}
}

// Run dispatches the feed's events and makes deliveries until ctx ends, then lets the
// attempts in flight finish for at most Options.ShutdownTimeout; one cut short is made
// again by a node once its lease runs out.
func (s *Service) Run(ctx context.Context) error {
	drain, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.dispatch(ctx)
	}()
	go func() {
		defer wg.Done()
		s.work(ctx, drain)
	}()
	<-ctx.Done()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(s.opts.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.logger.Warn("deliveries still in flight after the shutdown timeout")
		cancel()
		<-done
	}
	return nil
}
