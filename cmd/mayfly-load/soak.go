package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// SoakConfig is one soak run: mixed load on every view of one Mayfly for a bounded
// time, then a check that no accepted message was lost, no session failed and the
// server's memory and goroutines stayed flat. runSoak checks it.
type SoakConfig struct {
	Addr     string        // SMTP host:port the mail goes to
	API      string        // Mayfly's HTTP base URL: inboxes, reads, waits, WebSockets, /metrics
	IMAP     string        // IMAP host:port; "" = no IMAP sessions
	POP3     string        // POP3 host:port; "" = no POP3 sessions
	StartTLS bool          // IMAP and POP3 sessions start TLS (certificate not verified) before logging in
	Duration time.Duration // how long mail is sent
	// WarmUp is the time from the start after which memory and goroutines must stay
	// flat; 0: when the server has reached its steady size (see steady), at most 3/4 of
	// Duration.
	WarmUp time.Duration
	// EventHistory is how long the server keeps its inboxes' events, a part of its
	// steady size; 0: storage.EventHistory, Mayfly's.
	EventHistory time.Duration
	Rate         float64       // messages per second, over all SMTP sessions
	Inboxes      int           // created over the API at the start; mail goes round-robin
	TTL          time.Duration // lifetime of the inboxes' mail, asked for at creation
	Size         int           // approximate bytes per message, header block included
	Conns        int           // SMTP sessions
	PerConn      int           // messages per SMTP connection; 0: one connection per session
	Readers      int           // API readers: each lists an inbox, then reads what it has not read yet
	ListRate     float64       // inbox listings per second, over all readers
	Waiters      int           // long-polls, each for a message about to be sent
	// IMAPSessions and POP3Sessions are sessions open at once, each followed by the next.
	IMAPSessions int
	POP3Sessions int
	IMAPIdle     time.Duration // how long each IMAP session idles before logging out
	From         string        // envelope and header sender
	EHLO         string        // name sent in EHLO
	PID          int           // server process whose VmRSS to sample; 0: process_resident_memory_bytes from /metrics
	Timeout      time.Duration // deadline for each command, request and reply
	SampleEvery  time.Duration // how often /metrics (and /proc/PID/status) are read
	// MaxGoroutineGrowth is how many goroutines the server may have gained between the
	// start and the end of the measured span.
	MaxGoroutineGrowth int
	// MaxHeapGrowth is how much, in percent, the server's heap in use may have grown
	// over the measured span, on top of heapSlack.
	MaxHeapGrowth float64
}

const (
	// heapSlack is heap growth always allowed: Mayfly's memory store lets the heap grow
	// 16 MiB over its live data before a collection (cmd/mayfly/gc.go), so two samples
	// of the same live heap may differ by that much.
	heapSlack = 16 << 20

	// maxPerInbox is the most mail the soak lets one inbox hold: below MAYFLY_MAX_MESSAGES
	// (200 by default), past which the oldest is dropped before its time.
	maxPerInbox = 150

	// waitTimeout is the timeout of each wait; the waited message is due within a second.
	waitTimeout = 30 * time.Second

	// expiryTolerance is how much earlier than its expires_at an expiry event may come,
	// for clocks of the server and of the soak that are not quite the same.
	expiryTolerance = 2 * time.Second

	// drainTimeout bounds the wait for the WebSocket events of the last messages.
	drainTimeout = 10 * time.Second

	// maxThrottled is how many times one request is tried while the server answers 429.
	maxThrottled = 10

	// subjectPrefix starts the Subject of every message the generator sends.
	subjectPrefix = "mayfly-load "
)

func (c *SoakConfig) check() error {
	switch {
	case c.Addr == "":
		return errors.New("check soak: empty SMTP address")
	case !strings.HasPrefix(c.API, "http://") && !strings.HasPrefix(c.API, "https://"):
		return fmt.Errorf("check soak: API URL %q does not start with http:// or https://", c.API)
	case c.Duration <= 0:
		return errors.New("check soak: duration must be positive")
	case c.WarmUp < 0 || c.WarmUp >= c.Duration:
		return fmt.Errorf("check soak: warm-up %s not in [0, duration)", c.WarmUp)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return errors.New("check soak: rate must be positive")
	case c.Inboxes < 1:
		return errors.New("check soak: need at least one inbox")
	case c.TTL < time.Second || c.TTL%time.Second != 0:
		return fmt.Errorf("check soak: ttl %s must be whole seconds, at least 1s", c.TTL)
	case c.Rate*c.TTL.Seconds()/float64(c.Inboxes) > maxPerInbox:
		return fmt.Errorf("check soak: %.0f msg/s for %s over %d inboxes keeps %.0f in each, more than %d: an inbox over its cap (MAYFLY_MAX_MESSAGES) drops mail early; raise -inboxes",
			c.Rate, c.TTL, c.Inboxes, c.Rate*c.TTL.Seconds()/float64(c.Inboxes), maxPerInbox)
	case c.Size < 1 || c.Size > maxSize:
		return fmt.Errorf("check soak: size %d out of range [1, %d]", c.Size, maxSize)
	case c.Conns < 1:
		return errors.New("check soak: need at least one SMTP session")
	case c.PerConn < 0:
		return errors.New("check soak: negative messages per connection")
	case c.Readers < 1 || !(c.ListRate > 0):
		return errors.New("check soak: need at least one reader and a positive listing rate: reads are how mail is found lost")
	case float64(c.Inboxes)/c.ListRate > c.TTL.Seconds()/4:
		// Every message is then listed about four times in its life, so a slow moment
		// of the machine does not let one expire unread.
		return fmt.Errorf("check soak: each inbox is listed every %.1fs (-inboxes/-list-rate), want at most a quarter of the ttl (%s)",
			float64(c.Inboxes)/c.ListRate, c.TTL)
	case c.Waiters < 0 || c.IMAPSessions < 0 || c.POP3Sessions < 0:
		return errors.New("check soak: negative count of waiters or sessions")
	case c.IMAPSessions > 0 && c.IMAP == "", c.POP3Sessions > 0 && c.POP3 == "":
		return errors.New("check soak: IMAP or POP3 sessions without an address")
	case c.IMAPIdle < 0:
		return errors.New("check soak: negative IMAP idle")
	case c.Timeout <= 0 || c.SampleEvery <= 0:
		return errors.New("check soak: timeout and sample interval must be positive")
	case c.PID < 0 || c.MaxGoroutineGrowth < 0 || c.MaxHeapGrowth < 0:
		return errors.New("check soak: negative pid or growth limit")
	}
	for _, f := range []struct{ name, v string }{{"sender", c.From}, {"ehlo name", c.EHLO}} {
		if f.v == "" || strings.ContainsAny(f.v, " \t\r\n<>") {
			return fmt.Errorf("check soak: %s %q is empty or has spaces, brackets or line breaks", f.name, f.v)
		}
	}
	return nil
}

// steady is when the server stops growing by design: its mail at its full size (the
// ttl) and the inboxes' event logs too (storage.EventHistory), with a fifth more for
// what fills behind them (the caches of parsed mail). Soaks with verification on grew
// until about 12 minutes and were flat from there for 8 more (docs/benchmarks.md).
func (c *SoakConfig) steady() time.Duration {
	return max(c.TTL*5/4, c.eventHistory()*6/5)
}

func (c *SoakConfig) eventHistory() time.Duration {
	if c.EventHistory > 0 {
		return c.EventHistory
	}
	return storage.EventHistory
}

// warmUp is c.WarmUp, or its default.
func (c *SoakConfig) warmUp() time.Duration {
	if c.WarmUp > 0 {
		return c.WarmUp
	}
	return min(c.steady(), c.Duration*3/4)
}

// SoakReport is what a soak run found.
type SoakReport struct {
	Config      SoakConfig
	WarmUp      time.Duration
	Wall        time.Duration // from the first message handed out to the last session's end
	Attempted   int64         // messages the SMTP sessions tried
	Accepted    int64         // of which the server answered 250
	Connections int64         // SMTP connections opened
	Read        int64         // accepted messages read in full over the API
	NeverRead   int64         // accepted messages never read over the API before they expired
	GoneEarly   int64         // accepted messages missing from a listing, deleted, or expired before their expires_at
	WSSeen      int64         // accepted messages whose WebSocket event arrived
	Expired     int64         // expiry events the WebSockets pushed
	Latency     map[string]Latency
	Samples     map[string]int   // how many measures each Latency summarizes
	Counts      map[string]int64 // sessions, listings, reads, waits, IDLE pushes
	Errors      map[string]int64 // by kind: "smtp 451", "api list", "imap", "ws", ...
	FirstErrors map[string]string
	Goroutines  Growth
	Heap        Growth // go_memstats_heap_inuse_bytes
	RSS         Growth
	Store       Growth // mayfly_store_messages, when the server exports it
	Interrupted bool
}

// Lost is the accepted messages that were never readable, or stopped being readable
// before they expired.
func (r SoakReport) Lost() int64 { return r.NeverRead + r.GoneEarly }

// WSMissed is the accepted messages whose WebSocket event never came.
func (r SoakReport) WSMissed() int64 { return r.Accepted - r.WSSeen }

// Failures lists why the run failed; none means it passed.
func (r SoakReport) Failures() []string {
	var out []string
	if r.Accepted == 0 {
		out = append(out, "no message was accepted")
	}
	if n := r.Lost(); n > 0 {
		out = append(out, fmt.Sprintf("%d accepted messages lost", n))
	}
	if n := r.WSMissed(); n > 0 {
		out = append(out, fmt.Sprintf("%d accepted messages never reached their WebSocket", n))
	}
	if n := sum(r.Errors); n > 0 {
		out = append(out, fmt.Sprintf("%d unexpected errors", n))
	}
	for _, g := range []Growth{r.Goroutines, r.Heap, r.RSS} {
		if !g.OK() {
			out = append(out, fmt.Sprintf("%s grew from %s to %s, over the limit %s", g.Name, g.format(g.Start), g.format(g.End), g.format(g.Limit)))
		}
	}
	if r.Interrupted {
		out = append(out, "interrupted")
	}
	return out
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// Growth is how one server gauge moved over the measured span: from the median of its
// first samples after the warm-up to the median of its last ones. Medians, since one
// sample may fall just before a collection or during a burst of sessions.
type Growth struct {
	Name            string
	Unit            float64 // divisor for printing: 1, or 1<<20 for MiB
	Measured        bool    // enough samples after the warm-up
	Start, End, Max float64
	Initial         float64 // the first sample, before any mail; negative: unknown
	Checked         bool    // End must be at most Limit
	Limit           float64 // when Checked
	Why             string  // why it was not checked
}

// OK says whether the gauge stayed within its limit, or was not checked.
func (g Growth) OK() bool { return !g.Checked || g.End <= g.Limit }

func (g Growth) format(v float64) string {
	if g.Unit > 1 {
		return strconv.FormatFloat(v/g.Unit, 'f', 1, 64) + " MiB"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// memSample is one reading of the server's gauges; a negative value is unknown.
type memSample struct {
	at                                   time.Duration // since the start
	goroutines, heap, rss, storeMessages float64
}

// growthOf measures one gauge over the samples taken from warmUp on.
func growthOf(name string, unit float64, samples []memSample, warmUp time.Duration, value func(memSample) float64) Growth {
	g := Growth{Name: name, Unit: unit, Initial: -1}
	if len(samples) > 0 {
		g.Initial = value(samples[0])
	}
	var vs []float64
	for _, s := range samples {
		if v := value(s); s.at >= warmUp && v >= 0 {
			vs = append(vs, v)
		}
	}
	if len(vs) < 4 {
		g.Why = fmt.Sprintf("%d samples after the warm-up, want 4 or more", len(vs))
		return g
	}
	k := min(5, len(vs)/2)
	g.Measured = true
	g.Start, g.End, g.Max = median(vs[:k]), median(vs[len(vs)-k:]), slices.Max(vs)
	return g
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// soakInbox is one inbox the soak created.
type soakInbox struct {
	index   int
	address string
	token   string
}

// soakMsg is what the soak knows of one message it sent.
type soakMsg struct {
	seq     int64
	inbox   int
	acked   time.Time // when its 250 arrived; zero: not accepted (yet)
	id      string
	expires time.Time
	wsAt    time.Time // its WebSocket event
	readAt  time.Time // first full read over the API
	gone    string    // why it went before its time, if it did
}

// tracker follows every message from its 250 to its expiry, as the views report it.
type tracker struct {
	mu      sync.Mutex
	inboxes int
	bySeq   map[int64]*soakMsg
	byID    map[string]*soakMsg
	byInbox [][]*soakMsg
	expired int64
	waits   []waitReturn
}

// waitReturn is a wait that returned message seq at time at.
type waitReturn struct {
	seq int64
	at  time.Time
}

func newTracker(inboxes int) *tracker {
	return &tracker{inboxes: inboxes, bySeq: map[int64]*soakMsg{}, byID: map[string]*soakMsg{}, byInbox: make([][]*soakMsg, inboxes)}
}

// parseSubject returns the message number in a Subject the generator wrote.
func parseSubject(subject string) (int64, bool) {
	num, ok := strings.CutPrefix(subject, subjectPrefix)
	if !ok || len(num) != seqWidth || strings.ContainsFunc(num, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, false
	}
	seq, err := strconv.ParseInt(num, 10, 64)
	return seq, err == nil
}

// msgLocked returns message seq, which a view reported in inbox, creating its record:
// a view may see a message before its sender has read the 250.
func (t *tracker) msgLocked(seq int64, inbox int, subject string) (*soakMsg, error) {
	if want := int(seq % int64(t.inboxes)); want != inbox {
		return nil, fmt.Errorf("message %q in inbox %d, sent to inbox %d", subject, inbox, want)
	}
	m := t.bySeq[seq]
	if m == nil {
		m = &soakMsg{seq: seq, inbox: inbox}
		t.bySeq[seq] = m
		t.byInbox[inbox] = append(t.byInbox[inbox], m)
	}
	return m, nil
}

// summaryLocked records what a listing or an event said of a message and returns it.
func (t *tracker) summaryLocked(inbox int, s soakSummary) (*soakMsg, error) {
	seq, ok := parseSubject(s.Subject)
	if !ok {
		return nil, fmt.Errorf("message %s with subject %q, not one of ours", s.ID, s.Subject)
	}
	m, err := t.msgLocked(seq, inbox, s.Subject)
	if err != nil {
		return nil, err
	}
	if m.id == "" && s.ID != "" {
		m.id = s.ID
		t.byID[s.ID] = m
	}
	if !s.ExpiresAt.IsZero() {
		m.expires = s.ExpiresAt
	}
	return m, nil
}

func (t *tracker) accept(seq int64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, _ := t.msgLocked(seq, int(seq%int64(t.inboxes)), "")
	m.acked = at
}

func (t *tracker) accepted(seq int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.bySeq[seq]
	return m != nil && !m.acked.IsZero()
}

// event records a WebSocket event of inbox.
func (t *tracker) event(inbox int, ev wsEvent, at time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Type {
	case "message":
		if ev.Message == nil {
			return errors.New("message event without a message")
		}
		m, err := t.summaryLocked(inbox, *ev.Message)
		if err != nil {
			return err
		}
		if m.wsAt.IsZero() {
			m.wsAt = at
		}
	case "deleted":
		m := t.byID[ev.ID]
		if m == nil {
			return nil // a message the soak did not track (not accepted, say)
		}
		switch {
		case ev.Reason != "expired":
			m.goneLocked(fmt.Sprintf("deleted (%q) at %s though nobody deletes", ev.Reason, at.Format(time.RFC3339Nano)))
		case at.Before(m.expires.Add(-expiryTolerance)):
			m.goneLocked(fmt.Sprintf("expired at %s, before its expires_at %s", at.Format(time.RFC3339Nano), m.expires.Format(time.RFC3339Nano)))
		}
		if ev.Reason == "expired" {
			t.expired++
		}
	}
	return nil
}

func (m *soakMsg) goneLocked(why string) {
	if m.gone == "" {
		m.gone = why
	}
}

// listed records a listing of inbox asked for at t0 and answered at t1, and returns
// the messages to read. A message accepted before t0 that is not listed though its
// expiry is after t1 went before its time: the store had it before it answered 250.
func (t *tracker) listed(inbox int, sums []soakSummary, t0, t1 time.Time) ([]readTarget, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	var toRead []readTarget
	in := make(map[*soakMsg]bool, len(sums))
	for _, s := range sums {
		m, err := t.summaryLocked(inbox, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		in[m] = true
		if m.readAt.IsZero() {
			toRead = append(toRead, readTarget{seq: m.seq, id: s.ID, subject: s.Subject})
		}
	}
	for _, m := range t.byInbox[inbox] {
		if !in[m] && !m.acked.IsZero() && m.acked.Before(t0) && m.expires.After(t1) {
			m.goneLocked(fmt.Sprintf("missing from a listing at %s, expires_at %s", t1.Format(time.RFC3339Nano), m.expires.Format(time.RFC3339Nano)))
		}
	}
	return toRead, errors.Join(errs...)
}

func (t *tracker) read(seq int64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.bySeq[seq]; m != nil && m.readAt.IsZero() {
		m.readAt = at
	}
}

func (t *tracker) waited(seq int64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.waits = append(t.waits, waitReturn{seq, at})
}

// mustHave counts the messages of inbox that a view opened between t0 and t1 must
// show: accepted before t0, expiring after t1.
func (t *tracker) mustHave(inbox int, t0, t1 time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, m := range t.byInbox[inbox] {
		if !m.acked.IsZero() && m.acked.Before(t0) && m.expires.After(t1) {
			n++
		}
	}
	return n
}

// unseen counts the accepted messages whose WebSocket event has not come.
func (t *tracker) unseen() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, m := range t.bySeq {
		if !m.acked.IsZero() && m.wsAt.IsZero() {
			n++
		}
	}
	return n
}

// result fills in rep what became of the accepted messages, and the latencies from
// their 250 to their WebSocket event and to the return of a wait for them. A view
// may report a message before its sender has read the 250: such samples count as 0.
func (t *tracker) result(rep *SoakReport, firstGone func(string)) (ws, wait []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rep.Expired = t.expired
	for _, seq := range slices.Sorted(maps.Keys(t.bySeq)) {
		m := t.bySeq[seq]
		if m.acked.IsZero() {
			continue
		}
		switch {
		case m.gone != "":
			rep.GoneEarly++
			firstGone(fmt.Sprintf("%s%0*d: %s", subjectPrefix, seqWidth, m.seq, m.gone))
		case m.readAt.IsZero():
			rep.NeverRead++
			firstGone(fmt.Sprintf("%s%0*d: never read over the API", subjectPrefix, seqWidth, m.seq))
		default:
			rep.Read++
		}
		if !m.wsAt.IsZero() {
			rep.WSSeen++
			ws = append(ws, max(m.wsAt.Sub(m.acked), 0))
		}
	}
	for _, w := range t.waits {
		if m := t.bySeq[w.seq]; m != nil && !m.acked.IsZero() {
			wait = append(wait, max(w.at.Sub(m.acked), 0))
		}
	}
	return ws, wait
}

// soakSummary is the part of a message summary the soak reads.
type soakSummary struct {
	ID        string    `json:"id"`
	Subject   string    `json:"subject"`
	ExpiresAt time.Time `json:"expires_at"`
}

// wsEvent is one frame of an inbox's WebSocket.
type wsEvent struct {
	Type    string       `json:"type"`
	Message *soakSummary `json:"message"`
	ID      string       `json:"id"`
	Reason  string       `json:"reason"`
}

type readTarget struct {
	seq         int64
	id, subject string
}

// recorder gathers latencies, counts and errors from every worker.
type recorder struct {
	mu      sync.Mutex
	samples map[string][]time.Duration
	counts  map[string]int64
	errs    map[string]int64
	first   map[string]string
}

func newRecorder() *recorder {
	return &recorder{samples: map[string][]time.Duration{}, counts: map[string]int64{}, errs: map[string]int64{}, first: map[string]string{}}
}

func (r *recorder) observe(kind string, d time.Duration) {
	r.mu.Lock()
	r.samples[kind] = append(r.samples[kind], d)
	r.mu.Unlock()
}

func (r *recorder) count(kind string) {
	r.mu.Lock()
	r.counts[kind]++
	r.mu.Unlock()
}

func (r *recorder) fail(kind string, err error) {
	r.mu.Lock()
	r.errs[kind]++
	if _, ok := r.first[kind]; !ok {
		r.first[kind] = err.Error()
	}
	r.mu.Unlock()
}

// soak is one run under way.
type soak struct {
	cfg     SoakConfig
	api     string
	client  *http.Client
	inboxes []soakInbox
	tr      *tracker
	rec     *recorder
	q       *queue
	start   time.Time
	// lastWait is the last message a waiter waited for.
	lastWait atomic.Int64

	mu      sync.Mutex
	samples []memSample
}

// runSoak runs cfg and reports. It writes a line of progress to progress, unless nil,
// every minute. It returns early, with what it has, when ctx ends; an error means the
// run could not start.
func runSoak(ctx context.Context, cfg SoakConfig, progress io.Writer) (SoakReport, error) {
	if err := cfg.check(); err != nil {
		return SoakReport{}, err
	}
	s := &soak{
		cfg: cfg,
		api: strings.TrimSuffix(cfg.API, "/"),
		// One client for every request; enough idle connections kept that the readers,
		// waiters and sweeps do not open a connection per request.
		client: &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
			MaxIdleConnsPerHost: cfg.Readers + cfg.Waiters + 4,
			IdleConnTimeout:     time.Minute,
		}},
		tr:  newTracker(cfg.Inboxes),
		rec: newRecorder(),
	}
	defer s.client.CloseIdleConnections()
	rep := SoakReport{Config: cfg, WarmUp: cfg.warmUp()}

	for i := range cfg.Inboxes {
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		address, token, err := createInboxTTL(cctx, s.client, s.api, cfg.TTL)
		cancel()
		if err != nil {
			return rep, err
		}
		s.inboxes = append(s.inboxes, soakInbox{index: i, address: address, token: token})
	}

	// Every inbox is watched before its first message is sent.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	var watchers sync.WaitGroup
	defer watchers.Wait()
	for _, box := range s.inboxes {
		conn, err := s.dialWS(ctx, box)
		if err != nil {
			stopWatching()
			return rep, fmt.Errorf("websocket of %s: %w", box.address, err)
		}
		watchers.Go(func() { s.watch(watchCtx, box, conn) })
	}

	s.start = time.Now()
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() { s.sample(sampleCtx, progress) })

	// The SMTP sessions of the load generator, paced, to the inboxes just created.
	sendCtx, stopSending := context.WithTimeout(ctx, cfg.Duration)
	defer stopSending()
	s.q = &queue{limit: -1, done: sendCtx.Done(), start: s.start, every: time.Duration(float64(time.Second) / cfg.Rate)}
	lcfg := Config{Addr: cfg.Addr, Size: cfg.Size, Conns: cfg.Conns, PerConn: cfg.PerConn, From: cfg.From, EHLO: cfg.EHLO, Timeout: cfg.Timeout}
	rcpts := make([]string, len(s.inboxes))
	for i, box := range s.inboxes {
		rcpts[i] = box.address
	}
	tmpl := newTemplateTo(lcfg, rcpts, s.start)
	sessions := make([]*session, cfg.Conns)
	var senders sync.WaitGroup
	for i := range sessions {
		ss := newSession(&lcfg, tmpl, 4096)
		ss.accepted = s.tr.accept
		sessions[i] = ss
		senders.Go(func() { ss.run(ctx, s.q) })
	}

	readCtx, stopReading := context.WithCancel(ctx)
	var readers sync.WaitGroup
	// Each kind of reader goes round the inboxes in turn: the API readers above all
	// must not skip one, or its mail could expire unread.
	var nextList, nextIMAP, nextPOP3 atomic.Int64
	every := time.Duration(float64(cfg.Readers) * float64(time.Second) / cfg.ListRate)
	for range cfg.Readers {
		readers.Go(func() { s.reader(readCtx, &nextList, every) })
	}
	for range cfg.Waiters {
		readers.Go(func() { s.waiter(readCtx) })
	}
	for range cfg.IMAPSessions {
		readers.Go(func() { s.imapLoop(readCtx, &nextIMAP) })
	}
	for range cfg.POP3Sessions {
		readers.Go(func() { s.pop3Loop(readCtx, &nextPOP3) })
	}

	senders.Wait()
	rep.Wall = time.Since(s.start)
	stopSampling()
	sampler.Wait()
	stopReading()
	readers.Wait()
	rep.Interrupted = ctx.Err() != nil

	// The last messages' events, then one more look at every inbox: whatever is
	// accepted and not expired must be listed, and whatever was not read yet is read.
	// An interrupted run still checks what it sent, unless interrupted again.
	final := context.WithoutCancel(ctx)
	for deadline := time.Now().Add(drainTimeout); s.tr.unseen() > 0 && time.Now().Before(deadline) && watchCtx.Err() == nil; {
		time.Sleep(50 * time.Millisecond)
	}
	for _, box := range s.inboxes {
		s.check(final, box)
	}
	stopWatching()
	watchers.Wait()

	var smtp []time.Duration
	var firstSMTP time.Time
	rep.Errors, rep.FirstErrors = map[string]int64{}, map[string]string{}
	for _, ss := range sessions {
		smtp = append(smtp, ss.samples...)
		rep.Accepted += ss.sent
		rep.Attempted += ss.sent
		rep.Connections += ss.conns
		for k, v := range ss.errs {
			rep.Attempted += v
			rep.Errors["smtp "+k] += v
		}
		if ss.firstErr != nil && (firstSMTP.IsZero() || ss.firstErrAt.Before(firstSMTP)) {
			rep.FirstErrors["smtp"], firstSMTP = ss.firstErr.Error(), ss.firstErrAt
		}
	}
	ws, wait := s.tr.result(&rep, func(why string) {
		if _, ok := rep.FirstErrors["lost"]; !ok {
			rep.FirstErrors["lost"] = why
		}
	})
	s.rec.mu.Lock()
	s.rec.samples["smtp 250"] = smtp
	s.rec.samples["ws event"] = ws
	s.rec.samples["wait return"] = wait
	rep.Latency, rep.Samples = map[string]Latency{}, map[string]int{}
	for k, v := range s.rec.samples {
		slices.Sort(v)
		rep.Latency[k] = Latency{P50: percentile(v, 50), P90: percentile(v, 90), P99: percentile(v, 99), Max: percentile(v, 100)}
		rep.Samples[k] = len(v)
	}
	rep.Counts = s.rec.counts
	maps.Copy(rep.Errors, s.rec.errs)
	maps.Copy(rep.FirstErrors, s.rec.first)
	s.rec.mu.Unlock()

	s.mu.Lock()
	samples := s.samples
	s.mu.Unlock()
	rep.Goroutines = growthOf("goroutines", 1, samples, rep.WarmUp, func(m memSample) float64 { return m.goroutines })
	if rep.Goroutines.Measured {
		rep.Goroutines.Checked, rep.Goroutines.Limit = true, rep.Goroutines.Start+float64(cfg.MaxGoroutineGrowth)
	}
	rep.Heap = growthOf("heap in use", 1<<20, samples, rep.WarmUp, func(m memSample) float64 { return m.heap })
	rep.RSS = growthOf("RSS", 1<<20, samples, rep.WarmUp, func(m memSample) float64 { return m.rss })
	for _, g := range []*Growth{&rep.Heap, &rep.RSS} {
		switch {
		case !g.Measured:
		case rep.WarmUp < cfg.steady():
			// Until the first mail expires, and the first events leave the inboxes'
			// logs, the server only grows, by design.
			g.Why = fmt.Sprintf("the warm-up (%s) ends before the server reaches its steady size (%s: the ttl, %s of events): it was still filling; run for %s or more",
				rep.WarmUp, cfg.steady(), cfg.eventHistory(), cfg.steady()*4/3)
		default:
			g.Checked, g.Limit = true, g.Start*(1+cfg.MaxHeapGrowth/100)+heapSlack
		}
	}
	rep.Store = growthOf("stored messages", 1, samples, rep.WarmUp, func(m memSample) float64 { return m.storeMessages })
	return rep, nil
}

// do sends an API request for box (path is after /api/v1/inboxes/ADDRESS) and
// decodes its JSON answer into out. It returns the status, 0 when there was none.
//
// A 429 is a server limiting the requests of one client (MAYFLY_HTTP_RATE), which the
// soak, all of whose requests come from one address, may reach in a burst such as the
// final sweep: it is counted, waited out as Retry-After says, and the request retried.
// The latency it returns is that of the last try.
func (s *soak) do(ctx context.Context, box soakInbox, path string, timeout time.Duration, out any) (int, time.Duration, error) {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		status, retryAfter, err := s.get(ctx, box, path, timeout, out)
		if status != http.StatusTooManyRequests || attempt == maxThrottled {
			return status, time.Since(start), err
		}
		s.rec.count("api throttled")
		if !pause(ctx, retryAfter) {
			return 0, 0, ctx.Err()
		}
	}
}

// get is one try of do; with a 429 it returns the Retry-After.
func (s *soak) get(ctx context.Context, box soakInbox, path string, timeout time.Duration, out any) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.api+"/api/v1/inboxes/"+box.address+path, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+box.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		retryAfter := time.Second
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 1 {
			retryAfter = time.Duration(n) * time.Second
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&e)
		return resp.StatusCode, retryAfter, fmt.Errorf("GET %s: %s: %s", path, resp.Status, e.Error.Code)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	return resp.StatusCode, 0, nil
}

// reader lists an inbox after another, in turn with the other readers, one every
// interval, and reads the messages it has not read yet.
func (s *soak) reader(ctx context.Context, next *atomic.Int64, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.check(ctx, s.inboxes[int(next.Add(1)-1)%len(s.inboxes)])
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check lists box and reads every message listed that was not read yet.
func (s *soak) check(ctx context.Context, box soakInbox) {
	t0 := time.Now()
	var list struct{ Messages []soakSummary }
	_, took, err := s.do(ctx, box, "/messages", s.cfg.Timeout, &list)
	if err != nil {
		if ctx.Err() == nil {
			s.rec.fail("api list", err)
		}
		return
	}
	t1 := time.Now()
	s.rec.observe("api list", took)
	s.rec.count("api listings")
	toRead, err := s.tr.listed(box.index, list.Messages, t0, t1)
	if err != nil {
		s.rec.fail("api list", err)
	}
	for _, m := range toRead {
		var msg struct {
			soakSummary
			Text string `json:"text"`
		}
		status, took, err := s.do(ctx, box, "/messages/"+url.PathEscape(m.id), s.cfg.Timeout, &msg)
		switch {
		case ctx.Err() != nil:
			return
		case status == http.StatusNotFound && s.expiredBy(m.seq, time.Now()):
			// Listed, then expired before this read: readable until it expired.
			continue
		case err != nil:
			s.rec.fail("api get", err)
			continue
		case msg.Subject != m.subject || msg.Text == "":
			s.rec.fail("api get", fmt.Errorf("message %s: subject %q, %d bytes of text, want %q and some", m.id, msg.Subject, len(msg.Text), m.subject))
			continue
		}
		s.rec.observe("api get", took)
		s.rec.count("api reads")
		s.tr.read(m.seq, time.Now())
	}
}

// expiredBy says whether message seq's expiry has passed at t.
func (s *soak) expiredBy(seq int64, t time.Time) bool {
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	m := s.tr.bySeq[seq]
	return m != nil && !m.expires.IsZero() && !m.expires.After(t)
}

// waiter waits, again and again, for a message about to be sent: the one a few
// hundred milliseconds ahead of the sessions, so the wait is open when it arrives.
func (s *soak) waiter(ctx context.Context) {
	lead := int64(s.cfg.Conns) + int64(math.Ceil(s.cfg.Rate/5))
	for ctx.Err() == nil {
		// Each waiter its own message: after the last one waited for, at least lead ahead.
		seq := s.q.next.Load() + lead
		for {
			last := s.lastWait.Load()
			seq = max(seq, last+1)
			if s.lastWait.CompareAndSwap(last, seq) {
				break
			}
		}
		box := s.inboxes[seq%int64(len(s.inboxes))]
		subject := fmt.Sprintf("%s%0*d", subjectPrefix, seqWidth, seq)
		var out struct{ Messages []soakSummary }
		status, _, err := s.do(ctx, box, "/wait?timeout="+waitTimeout.String()+"&subject="+url.QueryEscape(subject), waitTimeout+s.cfg.Timeout, &out)
		at := time.Now()
		switch {
		case ctx.Err() != nil:
			return
		case status == http.StatusRequestTimeout && !s.tr.accepted(seq):
			// Not sent, or refused: the SMTP session has counted that.
		case err != nil:
			s.rec.fail("api wait", err)
		case len(out.Messages) != 1 || out.Messages[0].Subject != subject:
			s.rec.fail("api wait", fmt.Errorf("wait for %q returned %d messages, the first %+v", subject, len(out.Messages), out.Messages))
		default:
			s.tr.waited(seq, at)
			s.rec.count("api waits")
		}
	}
}

// sample reads the server's gauges every SampleEvery until ctx ends.
func (s *soak) sample(ctx context.Context, progress io.Writer) {
	t := time.NewTicker(s.cfg.SampleEvery)
	defer t.Stop()
	lastProgress := time.Duration(0)
	for {
		m := s.readGauges(ctx)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.samples = append(s.samples, m)
		s.mu.Unlock()
		if progress != nil && m.at-lastProgress >= time.Minute {
			lastProgress = m.at
			s.rec.mu.Lock()
			errs := sum(s.rec.errs)
			s.rec.mu.Unlock()
			fmt.Fprintf(progress, "mayfly-load: soak %s: %d messages handed out, %d errors; server goroutines %.0f, heap in use %.1f MiB, RSS %.1f MiB, %.0f messages stored\n",
				m.at.Round(time.Second), s.q.next.Load(), errs, m.goroutines, m.heap/(1<<20), m.rss/(1<<20), m.storeMessages)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readGauges reads /metrics and, with a PID, /proc/PID/status. A gauge it cannot read
// is -1; a /metrics that does not answer is an error.
func (s *soak) readGauges(ctx context.Context) memSample {
	m := memSample{at: time.Since(s.start), goroutines: -1, heap: -1, rss: -1, storeMessages: -1}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.api+"/metrics", nil)
	resp, err := s.client.Do(req)
	if err == nil {
		var g map[string]float64
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /metrics: %s", resp.Status)
		} else if g, err = parseGauges(resp.Body, "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "mayfly_store_messages"); err == nil {
			m.goroutines, m.heap, m.rss, m.storeMessages = g["go_goroutines"], g["go_memstats_heap_inuse_bytes"], g["process_resident_memory_bytes"], g["mayfly_store_messages"]
		}
		resp.Body.Close()
	}
	if err != nil && ctx.Err() == nil {
		s.rec.fail("metrics", err)
	}
	if s.cfg.PID > 0 {
		rss, err := readRSS(s.cfg.PID)
		if err != nil {
			s.rec.fail("metrics", err)
		}
		m.rss = float64(rss)
		if err != nil {
			m.rss = -1
		}
	}
	return m
}

// parseGauges reads the unlabeled samples of the metrics named from a Prometheus text
// exposition; a name without a sample is -1.
func parseGauges(r io.Reader, names ...string) (map[string]float64, error) {
	b, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	out := make(map[string]float64, len(names))
	for _, n := range names {
		out[n] = -1
	}
	for line := range strings.Lines(string(b)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if _, wanted := out[name]; !ok || !wanted {
			continue
		}
		// A sample may carry a timestamp after its value.
		value, _, _ = strings.Cut(strings.TrimSpace(value), " ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("parse metric %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// soakLatencies are the latencies a report prints, in order, with what each measures.
var soakLatencies = []struct{ kind, what string }{
	{"smtp 250", "end of DATA to the 250"},
	{"ws event", "250 to the WebSocket event"},
	{"wait return", "250 to the return of a wait open before"},
	{"api list", "GET .../messages"},
	{"api get", "GET .../messages/{id}"},
	{"imap select", "SELECT INBOX"},
	{"imap fetch", "FETCH of the newest 5, ENVELOPE and BODY.PEEK[]"},
	{"pop3 retr", "RETR of the newest message"},
}

func (r SoakReport) text() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "soak          %s of mail at %g msg/s to %d inboxes (ttl %s), %d B messages, %d SMTP sessions, %s\n",
		c.Duration, c.Rate, c.Inboxes, c.TTL, c.Size, c.Conns, mode(c.PerConn))
	fmt.Fprintf(&b, "readers       %d API readers (%g listings/s), %d waiters, %d IMAP and %d POP3 sessions at a time, %d WebSockets\n",
		c.Readers, c.ListRate, c.Waiters, c.IMAPSessions, c.POP3Sessions, c.Inboxes)
	fmt.Fprintf(&b, "smtp          %d accepted of %d, %.1f msg/s over %.1fs, %d connections\n",
		r.Accepted, r.Attempted, perSec(float64(r.Accepted), r.Wall), r.Wall.Seconds(), r.Connections)
	fmt.Fprintf(&b, "messages      %d accepted, %d read in full over the API, lost %d (%d never readable, %d gone before they expired)\n",
		r.Accepted, r.Read, r.Lost(), r.NeverRead, r.GoneEarly)
	fmt.Fprintf(&b, "websockets    %d of %d accepted seen, %d missed; %d expiry events\n", r.WSSeen, r.Accepted, r.WSMissed(), r.Expired)
	fmt.Fprintf(&b, "views         %d listings, %d reads, %d waits answered, %d IMAP sessions (%d IDLE pushes), %d POP3 sessions, %d WebSocket reconnects\n",
		r.Counts["api listings"], r.Counts["api reads"], r.Counts["api waits"], r.Counts["imap sessions"], r.Counts["imap idle pushes"], r.Counts["pop3 sessions"], r.Counts["ws reconnects"])
	if n := r.Counts["api throttled"]; n > 0 {
		fmt.Fprintf(&b, "throttled     %d API requests answered 429 (the server's limit per client), retried after Retry-After\n", n)
	}
	fmt.Fprintf(&b, "latency ms    %-12s %8s %9s %9s %9s %9s\n", "", "n", "p50", "p90", "p99", "max")
	for _, l := range soakLatencies {
		n := r.Samples[l.kind]
		if n == 0 {
			continue
		}
		lat := r.Latency[l.kind]
		fmt.Fprintf(&b, "              %-12s %8d %9s %9s %9s %9s  %s\n", l.kind, n, ms(lat.P50), ms(lat.P90), ms(lat.P99), ms(lat.Max), l.what)
	}
	if len(r.Errors) == 0 {
		b.WriteString("errors        none\n")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(&b, "errors        %s: %d\n", k, r.Errors[k])
	}
	for _, k := range slices.Sorted(maps.Keys(r.FirstErrors)) {
		fmt.Fprintf(&b, "first error   %s: %s\n", k, r.FirstErrors[k])
	}
	fmt.Fprintf(&b, "server        from %s (after the warm-up) to %s, medians of the first and last samples\n",
		r.WarmUp.Round(time.Second), r.Wall.Round(time.Second))
	for _, g := range []Growth{r.Goroutines, r.Heap, r.RSS, r.Store} {
		if !g.Measured {
			if g.Name != r.Store.Name {
				fmt.Fprintf(&b, "  %-16s not measured: %s\n", g.Name, g.Why)
			}
			continue
		}
		verdict := "not checked: " + g.Why
		if g.Checked {
			verdict = "limit " + g.format(g.Limit) + ", ok"
			if !g.OK() {
				verdict = "limit " + g.format(g.Limit) + ", GREW"
			}
		} else if g.Name == r.Store.Name {
			verdict = "for reference"
		}
		before := ""
		if g.Initial >= 0 {
			before = "; " + g.format(g.Initial) + " before any mail"
		}
		fmt.Fprintf(&b, "  %-16s %s -> %s (max %s%s)  %s\n", g.Name, g.format(g.Start), g.format(g.End), g.format(g.Max), before, verdict)
	}
	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintf(&b, "result        FAIL: %s\n", strings.Join(f, "; "))
	} else {
		b.WriteString("result        PASS\n")
	}
	return b.String()
}
