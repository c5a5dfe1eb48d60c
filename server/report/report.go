// Package report computes the deliverability report of a received message: its
// authentication (through mailauth, the one SPF/DKIM/DMARC implementation), the
// sending host's DNS, the sender domain's records, rspamd's spam verdict when an
// rspamd is configured, and checks of its content. It scores the message out of 10
// with itemised deductions, whose weights are the table in weights.go.
//
// A report is computed once per message and cached per node. Two nodes compute the
// same report from the same stored message, unless DNS or rspamd changed between
// the two: close enough that no node shares its cache.
package report

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/storage"
)

// Statuses of a check.
const (
	Pass = "pass"
	Warn = "warn"
	Fail = "fail"
	Info = "info" // not scored: not applicable, not run, or not known in time
)

// Check is one item of the report.
type Check struct {
	ID       string  `json:"id"`
	Category string  `json:"category"`
	Status   string  `json:"status"`
	Points   float64 `json:"points"` // taken off the score of 10; 0 unless warn or fail
	Detail   string  `json:"detail"`
	Fix      string  `json:"fix,omitempty"` // one line: what to change, when something is to change
}

// Report is the deliverability report of one message.
type Report struct {
	Score  float64     `json:"score"` // 10 minus the points of the checks, at least 0, one decimal
	Checks []Check     `json:"checks"`
	Spam   *SpamResult `json:"spam,omitempty"` // rspamd's answer; nil when it was not run or did not answer
}

// Options configure a Reporter. Zero values mean the documented defaults.
type Options struct {
	Verifier *mailauth.Verifier  // required: the authentication checks are its own
	Resolver *dnsclient.Resolver // required: the one DNS client and its cache
	// RspamdURL is MAYFLY_RSPAMD_URL, e.g. http://127.0.0.1:11334; "" = no spam score.
	RspamdURL     string
	RspamdTimeout time.Duration // one rspamd request; 0 = 10s
	Budget        time.Duration // all DNS lookups of one report; 0 = 5s
	CacheSize     int           // reports kept; 0 = 1000
	CacheBytes    int           // their size at most, roughly; 0 = 16 MiB (rspamd's symbols make a report up to ~200 KiB)
	HTTPClient    *http.Client  // for rspamd; nil = one of its own
}

// Reporter computes and caches reports. It is safe for concurrent use.
type Reporter struct {
	verifier      *mailauth.Verifier
	res           *dnsclient.Resolver
	rspamdURL     string
	rspamdTimeout time.Duration
	budget        time.Duration
	client        *http.Client
	flight        singleflight.Group

	mu       sync.Mutex
	max      int
	maxBytes int
	bytes    int // the size of the cached reports
	byKey    map[string]*list.Element
	lru      list.List // of *cached, most recent first
}

type cached struct {
	key  string
	rep  *Report
	size int
}

// size is roughly what a report holds in memory: its strings and a little per item.
func (rep *Report) size() int {
	n := 64
	for _, c := range rep.Checks {
		n += 96 + len(c.ID) + len(c.Category) + len(c.Status) + len(c.Detail) + len(c.Fix)
	}
	if rep.Spam != nil {
		n += 64 + len(rep.Spam.Action)
		for _, s := range rep.Spam.Symbols {
			n += 64 + len(s.Name) + len(s.Description)
			for _, o := range s.Options {
				n += 16 + len(o)
			}
		}
	}
	return n
}

// New returns a Reporter.
func New(o Options) (*Reporter, error) {
	if o.Verifier == nil || o.Resolver == nil {
		return nil, errors.New("report: Verifier and Resolver are required")
	}
	if o.RspamdTimeout <= 0 {
		o.RspamdTimeout = 10 * time.Second
	}
	if o.Budget <= 0 {
		o.Budget = 5 * time.Second
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 1000
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 16 << 20
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	return &Reporter{
		verifier: o.Verifier, res: o.Resolver, rspamdURL: o.RspamdURL, rspamdTimeout: o.RspamdTimeout,
		budget: o.Budget, client: o.HTTPClient, max: o.CacheSize, maxBytes: o.CacheBytes, byKey: map[string]*list.Element{},
	}, nil
}

// Report returns the report of m (which must have its Raw), from the cache when it
// was computed before. A report with checks that could not finish in time (DNS or
// rspamd) is not cached, so that asking again tries again.
func (r *Reporter) Report(ctx context.Context, m *storage.Message) (*Report, error) {
	key := m.Inbox + "\x00" + m.ID
	if rep := r.cached(key); rep != nil {
		return rep, nil
	}
	v, err, _ := r.flight.Do(key, func() (any, error) {
		// One computation serves every request waiting for it: it must not end
		// with the first requester's context.
		rep, complete := r.compute(context.WithoutCancel(ctx), m)
		if complete {
			r.store(key, rep)
		}
		return rep, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Report), nil
}

// Cached returns the report of a message when it is in the cache, so that a caller
// need not read the message to be answered; nil otherwise.
func (r *Reporter) Cached(inbox, id string) *Report { return r.cached(inbox + "\x00" + id) }

func (r *Reporter) cached(key string) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byKey[key]; ok {
		r.lru.MoveToFront(e)
		return e.Value.(*cached).rep
	}
	return nil
}

func (r *Reporter) store(key string, rep *Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byKey[key]; ok {
		return
	}
	c := &cached{key: key, rep: rep, size: rep.size()}
	if c.size > r.maxBytes {
		return
	}
	r.byKey[key] = r.lru.PushFront(c)
	r.bytes += c.size
	for r.lru.Len() > r.max || r.bytes > r.maxBytes {
		old := r.lru.Remove(r.lru.Back()).(*cached)
		delete(r.byKey, old.key)
		r.bytes -= old.size
	}
}

// compute runs the checks: authentication, DNS and rspamd at once, content meanwhile.
func (r *Reporter) compute(ctx context.Context, m *storage.Message) (*Report, bool) {
	raw := m.Raw
	var auth, dnsChecks, spam []Check
	var spamResult *SpamResult
	var wg sync.WaitGroup
	dctx, cancel := context.WithTimeout(ctx, r.budget)
	defer cancel()
	details := make(chan mailauth.Details, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		d := r.verifier.Explain(dctx, explainInput(m))
		details <- d
		auth = authChecks(m, d)
	}()
	go func() {
		defer wg.Done()
		spam, spamResult = r.spamChecks(ctx, m, raw)
	}()
	content := contentChecks(raw)
	d := <-details
	dnsChecks = append(r.hostChecks(dctx, m), r.domainChecks(dctx, m, d)...)
	wg.Wait()

	rep := &Report{Spam: spamResult}
	for _, part := range [][]Check{auth, dnsChecks, spam, content} {
		rep.Checks = append(rep.Checks, part...)
	}
	complete := true
	lost := 0.0
	for i := range rep.Checks {
		c := &rep.Checks[i]
		w := weights[c.ID]
		c.Category = w.category
		if c.Status == Warn || c.Status == Fail {
			c.Points = w.points
			lost += w.points
		}
		if c.Status == Info && c.unknown() {
			complete = false
		}
	}
	rep.Score = math.Max(0, math.Round((10-lost)*10)/10)
	return rep, complete
}

// unknownPrefix starts the detail of a check that could not finish in time.
const unknownPrefix = "not known: "

func (c *Check) unknown() bool {
	return len(c.Detail) >= len(unknownPrefix) && c.Detail[:len(unknownPrefix)] == unknownPrefix
}

// dnsUnknown is the check of a lookup that timed out or failed for a reason that is
// not the record's: it says so and costs nothing.
func dnsUnknown(id string, err error, budget time.Duration) Check {
	var de *net.DNSError
	if errors.As(err, &de) && de.IsTimeout || errors.Is(err, context.DeadlineExceeded) {
		return Check{ID: id, Status: Info, Detail: fmt.Sprintf("%sDNS gave no answer within the report's %s budget", unknownPrefix, budget)}
	}
	return Check{ID: id, Status: Info, Detail: unknownPrefix + "DNS lookup failed: " + err.Error()}
}

// notFound says whether a lookup found that the record does not exist (NXDOMAIN or
// no data), as opposed to failing.
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// injected says the message came over HTTP (POST .../messages): there was no SMTP
// client, HELO or MAIL FROM (server/mx stores the HELO "HTTP" for it).
func injected(m *storage.Message) bool { return m.Envelope.Helo == "HTTP" }

func explainInput(m *storage.Message) mailauth.Input {
	return mailauth.Input{
		RemoteIP: net.ParseIP(m.Envelope.RemoteIP), Helo: m.Envelope.Helo, MailFrom: m.Envelope.From,
		Message: m.Raw, Injected: injected(m),
	}
}
