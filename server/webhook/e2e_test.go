package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/httpapi"
	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// received is one request a receiver got.
type received struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Signature string `json:"signature"`
	Body      string `json:"body"`
	Status    int    `json:"-"` // what the receiver answered
}

// receiver is a webhook endpoint on loopback that logs every request and answers
// what answer says (200 when nil); it can be taken down (its port closed) and back up.
type receiver struct {
	t      *testing.T
	addr   string
	mu     sync.Mutex
	log    []received
	answer func(r *http.Request, n int) int // n counts requests from 1
	srv    *http.Server
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t}
	rc.up("127.0.0.1:0")
	t.Cleanup(rc.down)
	return rc
}

func (rc *receiver) URL() string { return "http://" + rc.addr + "/hook" }

func (rc *receiver) up(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		rc.t.Fatal(err)
	}
	rc.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(rc.serve)}
	rc.mu.Lock()
	rc.srv = srv
	rc.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the port: attempts now fail to connect.
func (rc *receiver) down() {
	rc.mu.Lock()
	srv := rc.srv
	rc.mu.Unlock()
	srv.Close()
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.log) + 1
	answer := rc.answer
	rc.mu.Unlock()
	status := http.StatusOK
	if answer != nil {
		status = answer(r, n)
	}
	rc.mu.Lock()
	rc.log = append(rc.log, received{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"), Signature: r.Header.Get("webhook-signature"), Body: string(body), Status: status})
	rc.mu.Unlock()
	w.WriteHeader(status)
	w.Write([]byte("answer " + http.StatusText(status)))
}

func (rc *receiver) setAnswer(f func(r *http.Request, n int) int) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.log)
}

// accepted returns the requests answered 2xx.
func (rc *receiver) accepted() []received {
	var out []received
	for _, r := range rc.requests() {
		if r.Status/100 == 2 {
			out = append(out, r)
		}
	}
	return out
}

// testOptions are short timings for tests: retries in tens of milliseconds, not hours.
func testOptions() Options {
	return Options{
		AllowPrivate: true,
		Describe:     httpapi.WebhookMessage,
		Timeout:      2 * time.Second,
		Lease:        3 * time.Second,
		Poll:         20 * time.Millisecond,
		Schedule:     slices.Repeat([]time.Duration{50 * time.Millisecond}, 40),
	}
}

// run starts s until the test ends.
func run(t *testing.T, s *Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return within 30s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func put(t *testing.T, st storage.Store, inbox, subject, body string, sent bool) *storage.Message {
	t.Helper()
	now := time.Now()
	raw := "From: Shop <noreply@shop.test>\r\nTo: " + inbox + "\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n"
	m := &storage.Message{Inbox: inbox, From: "Shop <noreply@shop.test>", To: []string{inbox}, Subject: subject, Sent: sent,
		Received: now, Expires: now.Add(time.Hour), Size: int64(len(raw)), Raw: []byte(raw), Auth: storage.AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass"}}
	if err := st.Put(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func create(t *testing.T, s *Service, w *storage.Webhook) *storage.Webhook {
	t.Helper()
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatalf("Create(%+v) = %v", w, err)
	}
	return w
}

// payloadOf decodes a delivery's body.
func payloadOf(t *testing.T, body string) (p struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		Inbox   string `json:"inbox"`
		ID      string `json:"id"`
		Webhook string `json:"webhook"`
		Message *struct {
			ID      string              `json:"id"`
			Subject string              `json:"subject"`
			Codes   []string            `json:"codes"`
			Links   []string            `json:"links"`
			Auth    storage.AuthResults `json:"auth"`
		} `json:"message"`
	} `json:"data"`
}) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("payload %q: %v", body, err)
	}
	return p
}

// verifyWithLibrary checks the deliveries' signatures with the official Standard
// Webhooks library for Node (testdata/verify, installed by .ci/with-services).
func verifyWithLibrary(t *testing.T, secret string, deliveries []received) {
	t.Helper()
	dir, _ := filepath.Abs("testdata/verify")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		if os.Getenv("MAYFLY_REQUIRE_CLIENTS") == "1" || os.Getenv("CI") != "" {
			t.Fatalf("standardwebhooks is not installed in %s, and MAYFLY_REQUIRE_CLIENTS=1", dir)
		}
		t.Logf("skipping the Node library's check: make test installs it (%v; MAYFLY_REQUIRE_CLIENTS=1 makes this a failure)", err)
		return
	}
	in, err := json.Marshal(map[string]any{"secret": secret, "deliveries": deliveries})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "deliveries.json")
	if err := os.WriteFile(file, in, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("node", filepath.Join(dir, "verify.mjs"), file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verified") {
		t.Fatalf("node verify.mjs = %v: %s", err, out)
	}
	t.Logf("standardwebhooks (Node): %s", strings.TrimSpace(string(out)))
}

// TestDeliveries runs the whole path on each store: mail put in the store reaches the
// webhooks that want it, signed (checked by the official Node library too), with the
// listing's summary, codes and auth verdicts; filters, scopes, sent copies and
// deletions are honoured.
func TestDeliveries(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.New(t)
			rcScoped, rcGlobal := newReceiver(t), newReceiver(t)
			s := New(testOptions(), st, testlib.Logger(t))
			scoped := create(t, s, &storage.Webhook{URL: rcScoped.URL(), Events: []string{EventReceived, EventDeleted}, Inbox: "box@x.test", Filters: map[string]string{"subject": "CODE", "dkim": "pass"}})
			global := create(t, s, &storage.Webhook{URL: rcGlobal.URL(), Events: []string{EventReceived}})
			run(t, s)

			code := put(t, st, "box@x.test", "Your code", "Your code is 482917: https://shop.test/confirm?t=abc", false)
			hello := put(t, st, "box@x.test", "Hello", "hi", false)
			put(t, st, "box@x.test", "Re: Your code", "thanks", true) // a sent copy: no event
			other := put(t, st, "other@x.test", "Your code", "Your code is 111222", false)

			testlib.WaitFor(t, "the global webhook's three deliveries", func() bool { return len(rcGlobal.accepted()) >= 3 })
			testlib.WaitFor(t, "the scoped webhook's delivery", func() bool { return len(rcScoped.accepted()) >= 1 })
			if err := st.Delete(t.Context(), "box@x.test", code.ID); err != nil {
				t.Fatal(err)
			}
			testlib.WaitFor(t, "the deletion's delivery", func() bool { return len(rcScoped.accepted()) >= 2 })

			got := rcScoped.accepted()
			if len(got) != 2 {
				t.Fatalf("scoped webhook got %d deliveries, want 2 (the code and its deletion)", len(got))
			}
			p := payloadOf(t, got[0].Body)
			if p.Type != EventReceived || p.Data.Inbox != "box@x.test" || p.Data.ID != code.ID || p.Data.Message == nil ||
				p.Data.Message.Subject != "Your code" || !slices.Contains(p.Data.Message.Codes, "482917") ||
				!slices.Contains(p.Data.Message.Links, "https://shop.test/confirm?t=abc") || p.Data.Message.Auth.DKIM != "pass" {
				t.Errorf("received payload = %s", got[0].Body)
			}
			if got[0].ID != deliveryID(EventReceived, "box@x.test", code.ID) {
				t.Errorf("webhook-id = %q, want the event's", got[0].ID)
			}
			if p := payloadOf(t, got[1].Body); p.Type != EventDeleted || p.Data.ID != code.ID || p.Data.Message != nil {
				t.Errorf("deleted payload = %s", got[1].Body)
			}
			var ids []string
			for _, r := range rcGlobal.accepted() {
				ids = append(ids, payloadOf(t, r.Body).Data.ID)
			}
			slices.Sort(ids)
			want := []string{code.ID, hello.ID, other.ID}
			slices.Sort(want)
			if !slices.Equal(ids, want) {
				t.Errorf("global webhook got messages %v, want %v (not the sent copy)", ids, want)
			}
			for _, r := range append(rcScoped.requests(), rcGlobal.requests()...) {
				secret := scoped.Secret
				if !slices.Contains(rcScoped.requests(), r) {
					secret = global.Secret
				}
				if err := Verify(secret, r.ID, r.Timestamp, r.Signature, []byte(r.Body), time.Now(), 5*time.Minute); err != nil {
					t.Errorf("Verify(%s) = %v", r.ID, err)
				}
			}
			verifyWithLibrary(t, scoped.Secret, rcScoped.requests())
			verifyWithLibrary(t, global.Secret, rcGlobal.requests())

			testlib.WaitFor(t, "the log of both deliveries", func() bool {
				list, err := s.Deliveries(t.Context(), scoped.ID, 0)
				return err == nil && len(list) == 2 && list[0].State == storage.DeliveryDelivered && list[1].State == storage.DeliveryDelivered
			})
			list, _ := s.Deliveries(t.Context(), scoped.ID, 0)
			for _, d := range list {
				if len(d.Attempts) != 1 || d.Attempts[0].Status != 200 || d.Attempts[0].Response != "answer OK" || d.Attempts[0].Latency <= 0 {
					t.Errorf("delivery %s attempts = %+v, want one 200 with its answer and latency", d.ID, d.Attempts)
				}
			}
		})
	}
}

// TestReceiverDown takes the receiver down, first answering 503 and then with its port
// closed, and back up: every event reaches it exactly once (answered 2xx), and each
// request is an attempt at one of the events, under the event's webhook-id.
func TestReceiverDown(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.New(t)
			rc := newReceiver(t)
			rc.setAnswer(func(*http.Request, int) int { return http.StatusServiceUnavailable })
			s := New(testOptions(), st, testlib.Logger(t))
			w := create(t, s, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			run(t, s)

			const n = 20
			want := map[string]bool{}
			for i := range n {
				m := put(t, st, "box@x.test", "message", strings.Repeat("x", i), false)
				want[deliveryID(EventReceived, "box@x.test", m.ID)] = true
			}
			testlib.WaitFor(t, "an attempt at every event, answered 503", func() bool {
				seen := map[string]bool{}
				for _, r := range rc.requests() {
					seen[r.ID] = true
				}
				return len(seen) == n
			})
			rc.down()
			testlib.WaitFor(t, "attempts that could not connect", func() bool {
				list, _ := s.Deliveries(t.Context(), w.ID, 0)
				for _, d := range list {
					if a := d.Attempts; len(a) > 0 && a[len(a)-1].Status == 0 && a[len(a)-1].Error != "" {
						return true
					}
				}
				return false
			})
			rc.setAnswer(nil)
			rc.up(rc.addr)
			testlib.WaitFor(t, "every delivery made", func() bool {
				list, err := s.Deliveries(t.Context(), w.ID, 0)
				if err != nil || len(list) != n {
					return false
				}
				for _, d := range list {
					if d.State != storage.DeliveryDelivered {
						return false
					}
				}
				return true
			})
			count := map[string]int{}
			for _, r := range rc.accepted() {
				count[r.ID]++
			}
			for id := range want {
				if count[id] != 1 {
					t.Errorf("event %s accepted %d times, want once", id, count[id])
				}
			}
			for _, r := range rc.requests() {
				if !want[r.ID] {
					t.Errorf("request with webhook-id %q, which is no event's", r.ID)
				}
			}
			t.Logf("%d events, %d requests, %d accepted", n, len(rc.requests()), len(rc.accepted()))
		})
	}
}

// killable is a node's store that can die: once dead, every write and claim fails, as
// they would for a node that was killed, so nothing it had in hand is recorded.
type killable struct {
	Store
	dead atomic.Bool
	// dieOnAdd kills the node as it stores a delivery: the delivery is stored, and
	// the node neither claims it nor acknowledges the event. dupes counts the
	// deliveries the store already had.
	dieOnAdd    bool
	adds, dupes atomic.Int64
	// failAdds is how many AddDeliveries calls still fail, as a store that hiccups.
	failAdds atomic.Int64
}

// Store is what the webhooks use of the stores under test.
type Store interface{ store }

var errDead = errors.New("node killed")

func (k *killable) ReadFeed(ctx context.Context, group, consumer string, n int, block, lease time.Duration) ([]storage.LoggedEvent, error) {
	if k.dead.Load() {
		return nil, errDead
	}
	return k.Store.ReadFeed(ctx, group, consumer, n, block, lease)
}

func (k *killable) AckFeed(ctx context.Context, group string, seqs ...string) error {
	if k.dead.Load() {
		return errDead
	}
	return k.Store.AckFeed(ctx, group, seqs...)
}

func (k *killable) AddDelivery(ctx context.Context, d *storage.Delivery) (bool, error) {
	if k.dead.Load() {
		return false, errDead
	}
	if k.failAdds.Add(-1) >= 0 {
		return false, storage.ErrUnavailable
	}
	if k.dieOnAdd {
		k.dead.Store(true) // before the store has it, so that no worker of this node claims it
	}
	added, err := k.Store.AddDelivery(ctx, d)
	if err == nil {
		k.adds.Add(1)
	}
	if err == nil && !added {
		k.dupes.Add(1)
	}
	return added, err
}

func (k *killable) AddDeliveries(ctx context.Context, ds []*storage.Delivery) ([]bool, error) {
	if k.dead.Load() {
		return nil, errDead
	}
	if k.failAdds.Add(-1) >= 0 {
		return nil, storage.ErrUnavailable
	}
	if k.dieOnAdd {
		k.dead.Store(true) // before the store has them, so that no worker of this node claims one
	}
	added, err := k.Store.AddDeliveries(ctx, ds)
	for _, ok := range added {
		k.adds.Add(1)
		if !ok {
			k.dupes.Add(1)
		}
	}
	return added, err
}

func (k *killable) ClaimDeliveries(ctx context.Context, n int, lease time.Duration) ([]*storage.Delivery, error) {
	if k.dead.Load() {
		return nil, errDead
	}
	ds, err := k.Store.ClaimDeliveries(ctx, n, lease)
	if k.dead.Load() {
		// Died while the claim was on its way: what it took stays leased to the dead
		// node until the lease runs out, as with a real death.
		return nil, errDead
	}
	return ds, err
}

func (k *killable) UpdateDelivery(ctx context.Context, d *storage.Delivery) error {
	if k.dead.Load() {
		return errDead
	}
	return k.Store.UpdateDelivery(ctx, d)
}

func (k *killable) UpdateDeliveries(ctx context.Context, ds []*storage.Delivery) error {
	if k.dead.Load() {
		return errDead
	}
	return k.Store.UpdateDeliveries(ctx, ds)
}

func (k *killable) PutWebhook(ctx context.Context, w *storage.Webhook) error {
	if k.dead.Load() {
		return errDead
	}
	return k.Store.PutWebhook(ctx, w)
}

// survivor is the options of the node that lives: a longer lease than the dying
// node's, so that a slow attempt of its own (under -race, on a busy machine) is not
// taken for a dead node's and made twice.
func survivor(opts Options) Options {
	opts.Lease = 5 * time.Second
	return opts
}

// TestNodeDiesMidDelivery kills a node while its attempt is in flight: it records
// nothing, and once its lease runs out the other node, on the same store, delivers
// the event under the same webhook-id.
func TestNodeDiesMidDelivery(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			first, node := b.Open(t)
			rc := newReceiver(t)
			inFlight, killed := make(chan struct{}), make(chan struct{})
			rc.setAnswer(func(r *http.Request, n int) int {
				if n == 1 {
					close(inFlight)
					<-killed // the node dies with the request open; its answer reaches nobody
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			})
			opts := testOptions()
			opts.Lease = time.Second
			a := &killable{Store: first}
			nodeA := New(opts, a, testlib.Logger(t).With("node", "a"))
			w := create(t, nodeA, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			stopA := run(t, nodeA)
			m := put(t, first, "box@x.test", "Your code", "123456", false)
			testlib.Next(t, inFlight, 30*time.Second, "node a's attempt")

			b := node()
			nodeB := New(survivor(opts), b, testlib.Logger(t).With("node", "b"))
			run(t, nodeB)
			a.dead.Store(true)
			close(killed)
			stopA()

			id := deliveryID(EventReceived, "box@x.test", m.ID)
			testlib.WaitFor(t, "node b's delivery", func() bool { return len(rc.accepted()) == 1 })
			if got := rc.accepted()[0].ID; got != id {
				t.Errorf("node b delivered webhook-id %q, want the event's %q", got, id)
			}
			testlib.WaitFor(t, "the delivery recorded", func() bool {
				d, err := b.GetDelivery(t.Context(), w.ID, id)
				return err == nil && d.State == storage.DeliveryDelivered
			})
			d, _ := b.GetDelivery(t.Context(), w.ID, id)
			if len(d.Attempts) != 1 || d.Attempts[0].Status != 200 {
				t.Errorf("attempts = %+v, want node b's alone (node a recorded nothing)", d.Attempts)
			}
			if n := len(rc.requests()); n != 2 {
				t.Errorf("receiver got %d requests, want 2 (node a's, cut short, and node b's)", n)
			}
		})
	}
}

// TestNodeDiesBeforeDispatch kills a node that read an event from the feed before it
// queued its delivery: the feed hands the event to the other node after the lease,
// and it is delivered once.
func TestNodeDiesBeforeDispatch(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			first, node := b.Open(t)
			rc := newReceiver(t)
			opts := testOptions()
			opts.Lease = time.Second
			a := &killable{Store: first}
			nodeA := New(opts, a, testlib.Logger(t).With("node", "a"))
			create(t, nodeA, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			// Node a reads the feed and dies before queuing anything.
			events, err := a.ReadFeed(t.Context(), feedGroup, "a", 10, time.Second, opts.Lease)
			if err != nil || len(events) != 0 {
				t.Fatalf("ReadFeed = %v, %v; want nothing yet", events, err)
			}
			m := put(t, first, "box@x.test", "Your code", "123456", false)
			testlib.WaitFor(t, "node a's read of the event", func() bool {
				events, err = a.ReadFeed(t.Context(), feedGroup, "a", 10, 100*time.Millisecond, opts.Lease)
				return err == nil && len(events) == 1
			})
			a.dead.Store(true)

			nodeB := New(survivor(opts), node(), testlib.Logger(t).With("node", "b"))
			run(t, nodeB)
			testlib.WaitFor(t, "node b's delivery", func() bool { return len(rc.accepted()) == 1 })
			if got, want := rc.accepted()[0].ID, deliveryID(EventReceived, "box@x.test", m.ID); got != want {
				t.Errorf("webhook-id %q, want %q", got, want)
			}
		})
	}
}

// TestNodeDiesBeforeAck kills a node that queued an event's delivery but did not
// acknowledge the event: the other node is handed the event again, stores nothing new
// (the delivery's ID is the event's), and the receiver gets it once.
func TestNodeDiesBeforeAck(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			first, node := b.Open(t)
			rc := newReceiver(t)
			opts := testOptions()
			opts.Lease = time.Second
			a := &killable{Store: first}
			a.dieOnAdd = true // dies before its AckFeed and its workers' claims
			nodeA := New(opts, a, testlib.Logger(t).With("node", "a"))
			w := create(t, nodeA, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			run(t, nodeA)
			m := put(t, first, "box@x.test", "Your code", "123456", false)
			testlib.WaitFor(t, "node a's death", a.dead.Load)

			b := &killable{Store: node()}
			nodeB := New(survivor(opts), b, testlib.Logger(t).With("node", "b"))
			run(t, nodeB)
			testlib.WaitFor(t, "node b's dispatch of the event again, and every delivery made", func() bool {
				list, err := b.Deliveries(t.Context(), w.ID, 0)
				if err != nil || b.adds.Load() == 0 {
					return false
				}
				for _, d := range list {
					if d.State != storage.DeliveryDelivered {
						return false
					}
				}
				return true
			})
			list, err := b.Deliveries(t.Context(), w.ID, 0)
			var ids []string
			for _, d := range list {
				ids = append(ids, d.ID)
			}
			if want := deliveryID(EventReceived, "box@x.test", m.ID); err != nil || !slices.Equal(ids, []string{want}) || b.dupes.Load() != 1 {
				t.Errorf("deliveries %v (%v), %d found stored already; want %s alone, found stored once", ids, err, b.dupes.Load(), want)
			}
			if n := len(rc.requests()); n != 1 {
				t.Errorf("receiver got %d requests, want 1", n)
			}
		})
	}
}

// TestDispatchRetries fails the store's AddDeliveries once: the dispatcher tries the
// event again at once, not a feed lease (a minute) later.
func TestDispatchRetries(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := &killable{Store: b.New(t)}
			st.failAdds.Store(1)
			rc := newReceiver(t)
			opts := testOptions()
			opts.Lease = time.Minute
			s := New(opts, st, testlib.Logger(t))
			create(t, s, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			run(t, s)
			put(t, st.Store.(storage.Store), "box@x.test", "Your code", "123456", false)
			start := time.Now()
			testlib.WaitFor(t, "the delivery", func() bool { return len(rc.accepted()) == 1 })
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("delivered after %v, want well within the feed's lease", d)
			}
		})
	}
}

// TestSSRF refuses loopback without AllowPrivate: a literal address when the webhook
// is created, a name that resolves to loopback at delivery, recorded in the attempt.
func TestSSRF(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.New(t)
			rc := newReceiver(t)
			_, port, _ := net.SplitHostPort(rc.addr)
			a, _ := dns.NewRR("hooks.rebind.test. 60 IN A 127.0.0.1")
			server := dnstest.ZoneServer(t, []dns.RR{a})
			opts := testOptions()
			opts.AllowPrivate = false
			opts.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, server)
			}}
			s := New(opts, st, testlib.Logger(t))
			run(t, s)

			err := s.Create(t.Context(), &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "MAYFLY_OUTBOUND_ALLOW_PRIVATE") {
				t.Errorf("Create(%s) = %v, want 400 naming MAYFLY_OUTBOUND_ALLOW_PRIVATE", rc.URL(), err)
			}
			w := create(t, s, &storage.Webhook{URL: "http://hooks.rebind.test:" + port + "/hook", Events: []string{EventReceived}})
			put(t, st, "box@x.test", "Your code", "123456", false)
			var last storage.Attempt
			testlib.WaitFor(t, "a refused attempt", func() bool {
				list, _ := s.Deliveries(t.Context(), w.ID, 0)
				if len(list) == 1 && len(list[0].Attempts) > 0 {
					last = list[0].Attempts[0]
					return true
				}
				return false
			})
			if last.Status != 0 || !strings.Contains(last.Error, "127.0.0.1 is not a public address") || !strings.Contains(last.Error, "MAYFLY_OUTBOUND_ALLOW_PRIVATE") {
				t.Errorf("attempt = %+v, want refused for 127.0.0.1, naming the setting", last)
			}
			if n := len(rc.requests()); n != 0 {
				t.Errorf("the receiver on loopback got %d requests, want none", n)
			}
		})
	}
}

// TestTestEventAndReplay sends a webhook.test event through the queue, then replays
// it: the same webhook-id and body come again, and the log has both attempts.
func TestTestEventAndReplay(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.New(t)
			rc := newReceiver(t)
			s := New(testOptions(), st, testlib.Logger(t))
			w := create(t, s, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}, Inbox: "box@x.test"})
			run(t, s)
			d, err := s.Test(t.Context(), w.ID)
			if err != nil {
				t.Fatal(err)
			}
			testlib.WaitFor(t, "the test event", func() bool { return len(rc.accepted()) == 1 })
			p := payloadOf(t, rc.accepted()[0].Body)
			if p.Type != EventTest || p.Data.Webhook != w.ID || p.Data.Inbox != "box@x.test" || rc.accepted()[0].ID != d.ID {
				t.Errorf("test event = %s (id %s), want webhook.test of %s", rc.accepted()[0].Body, rc.accepted()[0].ID, w.ID)
			}
			testlib.WaitFor(t, "the test event recorded", func() bool {
				got, err := st.GetDelivery(t.Context(), w.ID, d.ID)
				return err == nil && got.State == storage.DeliveryDelivered
			})
			if _, err := s.Retry(t.Context(), w.ID, d.ID); err != nil {
				t.Fatal(err)
			}
			testlib.WaitFor(t, "the replay", func() bool { return len(rc.accepted()) == 2 })
			first, again := rc.accepted()[0], rc.accepted()[1]
			if again.ID != first.ID || again.Body != first.Body {
				t.Errorf("replay = %s %s, want the same webhook-id and body as %s %s", again.ID, again.Body, first.ID, first.Body)
			}
			testlib.WaitFor(t, "both attempts in the log", func() bool {
				got, err := st.GetDelivery(t.Context(), w.ID, d.ID)
				return err == nil && got.State == storage.DeliveryDelivered && len(got.Attempts) == 2
			})
			if _, err := s.Retry(t.Context(), w.ID, "msg_none"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Retry of no delivery = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestDisable fails every delivery of a webhook for longer than DisableAfter: it is
// disabled, saying why, and gets no more events.
func TestDisable(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.New(t)
			rc := newReceiver(t)
			rc.setAnswer(func(*http.Request, int) int { return http.StatusInternalServerError })
			opts := testOptions()
			opts.DisableAfter = 300 * time.Millisecond
			s := New(opts, st, testlib.Logger(t))
			w := create(t, s, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			run(t, s)
			put(t, st, "box@x.test", "one", "1", false)
			var got *storage.Webhook
			testlib.WaitFor(t, "the webhook disabled", func() bool {
				var err error
				got, err = st.GetWebhook(t.Context(), w.ID)
				return err == nil && got.Disabled != ""
			})
			if !strings.Contains(got.Disabled, "every delivery failed") || got.FailingSince.IsZero() {
				t.Errorf("disabled = %q since %v, want why and since when", got.Disabled, got.FailingSince)
			}
			testlib.WaitFor(t, "the delivery failed", func() bool {
				list, _ := s.Deliveries(t.Context(), w.ID, 0)
				return len(list) == 1 && list[0].State == storage.DeliveryFailed
			})
			before := len(rc.requests())
			put(t, st, "box@x.test", "two", "2", false)
			if _, err := s.Test(t.Context(), w.ID); err == nil {
				t.Error("Test of a disabled webhook = nil, want refused")
			}
			// The next event is dispatched to nobody: wait for the dispatcher to pass it
			// (a later webhook gets a later event), then look.
			rc2 := newReceiver(t)
			w2 := create(t, s, &storage.Webhook{URL: rc2.URL(), Events: []string{EventReceived}})
			put(t, st, "box@x.test", "three", "3", false)
			testlib.WaitFor(t, "the later event at the other webhook", func() bool { return len(rc2.accepted()) >= 1 })
			if list, _ := s.Deliveries(t.Context(), w.ID, 0); len(list) != 1 {
				t.Errorf("the disabled webhook has %d deliveries, want still 1", len(list))
			}
			if n := len(rc.requests()); n != before {
				t.Errorf("the disabled webhook's URL got %d more requests", n-before)
			}
			_ = w2
		})
	}
}

// TestCaps bounds the webhooks of an inbox and of the service.
func TestCaps(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	opts := testOptions()
	opts.MaxPerInbox, opts.MaxTotal = 2, 3
	s := New(opts, st, testlib.Logger(t))
	hook := func(inbox string) *storage.Webhook {
		return &storage.Webhook{URL: "https://hooks.example.com/", Events: []string{EventReceived}, Inbox: inbox}
	}
	create(t, s, hook("a@x.test"))
	create(t, s, hook("a@x.test"))
	var e *Error
	if err := s.Create(t.Context(), hook("a@x.test")); !errors.As(err, &e) || e.Status != http.StatusConflict || e.Code != "too_many_webhooks" {
		t.Errorf("third webhook of an inbox = %v, want 409 too_many_webhooks", err)
	}
	create(t, s, hook(""))
	if err := s.Create(t.Context(), hook("b@x.test")); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Errorf("webhook past the service's cap = %v, want 409", err)
	}
}

// TestShutdownDrains ends Run while an attempt is in flight: the attempt finishes and
// is recorded, within the shutdown timeout; one that outlasts the timeout is cut short
// and Run still returns.
func TestShutdownDrains(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	rc := newReceiver(t)
	inFlight, release := make(chan struct{}, 2), make(chan struct{})
	rc.setAnswer(func(r *http.Request, n int) int {
		inFlight <- struct{}{}
		<-release
		return http.StatusOK
	})
	opts := testOptions()
	opts.ShutdownTimeout = 5 * time.Second
	s := New(opts, st, testlib.Logger(t))
	w := create(t, s, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
	stop := run(t, s)
	m := put(t, st, "box@x.test", "Your code", "123456", false)
	testlib.Next(t, inFlight, 30*time.Second, "the attempt")
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned with an attempt in flight")
	case <-time.After(100 * time.Millisecond): // Run is waiting for the attempt, as it should
	}
	close(release)
	testlib.Next(t, stopped, 10*time.Second, "Run's return")
	d, err := st.GetDelivery(t.Context(), w.ID, deliveryID(EventReceived, "box@x.test", m.ID))
	if err != nil || d.State != storage.DeliveryDelivered || len(d.Attempts) != 1 {
		t.Errorf("after shutdown: %+v, %v; want delivered, its attempt recorded", d, err)
	}

	// An attempt that outlasts the shutdown timeout is cut short.
	hang := make(chan struct{})
	defer close(hang)
	rc.setAnswer(func(r *http.Request, n int) int {
		inFlight <- struct{}{}
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return http.StatusOK
	})
	opts.ShutdownTimeout = 200 * time.Millisecond
	s = New(opts, st, testlib.Logger(t))
	stop = run(t, s)
	put(t, st, "box@x.test", "Your code", "654321", false)
	testlib.Next(t, inFlight, 30*time.Second, "the second attempt")
	start := time.Now()
	stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned %v after its context ended, want about the 200ms shutdown timeout", d)
	}
}

// counting is a store that counts the webhooks' batched calls and what they carry.
type counting struct {
	Store
	adds, added, claims, claimed, updates, updated atomic.Int64
	mostAdded                                      atomic.Int64 // the most of one AddDeliveries
}

func (c *counting) AddDeliveries(ctx context.Context, ds []*storage.Delivery) ([]bool, error) {
	c.adds.Add(1)
	c.added.Add(int64(len(ds)))
	for n := c.mostAdded.Load(); int64(len(ds)) > n && !c.mostAdded.CompareAndSwap(n, int64(len(ds))); n = c.mostAdded.Load() {
	}
	return c.Store.AddDeliveries(ctx, ds)
}

func (c *counting) ClaimDeliveries(ctx context.Context, n int, lease time.Duration) ([]*storage.Delivery, error) {
	ds, err := c.Store.ClaimDeliveries(ctx, n, lease)
	if len(ds) > 0 {
		c.claims.Add(1)
		c.claimed.Add(int64(len(ds)))
	}
	return ds, err
}

func (c *counting) UpdateDeliveries(ctx context.Context, ds []*storage.Delivery) error {
	c.updates.Add(1)
	c.updated.Add(int64(len(ds)))
	return c.Store.UpdateDeliveries(ctx, ds)
}

// TestBatches: a backlog of deliveries is stored, claimed and saved after its attempts
// in batches, not with a store round trip per delivery each (the profile of the fan-out
// benchmark, docs/benchmarks.md), and the POSTs to one receiver keep their connections.
func TestBatches(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := &counting{Store: b.New(t)}
			rc := newReceiver(t)
			var mu sync.Mutex
			conns := map[string]bool{}
			rc.setAnswer(func(r *http.Request, n int) int {
				mu.Lock()
				conns[r.RemoteAddr] = true
				mu.Unlock()
				return http.StatusNoContent
			})
			s := New(testOptions(), st, testlib.Logger(t))
			const hooks, messages = 5, 80
			for range hooks {
				create(t, s, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			}
			for i := range messages {
				put(t, st.Store.(storage.Store), "box@x.test", fmt.Sprintf("Message %d", i), "hello", false)
			}
			run(t, s)
			const total = hooks * messages
			testlib.WaitFor(t, "every delivery", func() bool { return len(rc.accepted()) >= total && st.updated.Load() >= total })
			if got := len(rc.accepted()); got != total {
				t.Errorf("%d POSTs, want %d", got, total)
			}
			if n := st.adds.Load(); n > messages/4 || st.added.Load() != total {
				t.Errorf("%d deliveries stored in %d calls, want %d in at most %d", st.added.Load(), n, total, messages/4)
			}
			if n := st.claims.Load(); n > total/4 {
				t.Errorf("%d deliveries claimed in %d claims, want at most %d claims", st.claimed.Load(), n, total/4)
			}
			// In memory a save is no round trip, and is over before the next attempt ends.
			if n := st.updates.Load(); b.Name == "redis" && n > total*3/4 {
				t.Errorf("%d deliveries saved in %d calls, want at most %d calls", st.updated.Load(), n, total*3/4)
			}
			mu.Lock()
			defer mu.Unlock()
			// One per worker, and a few more: a worker's connection goes back to the pool
			// just after its attempt ends, and the next attempt may not wait for it.
			if workers := New(Options{}, st, testlib.Logger(t)).opts.Workers; len(conns) > workers*3/2 {
				t.Errorf("%d connections to the receiver, want about one per worker (%d): kept alive", len(conns), workers)
			}
		})
	}
}

// TestShutdownReleases stops a node that claimed a delivery it had no worker free for:
// it is due again at once, and another node makes it well before its lease ends.
func TestShutdownReleases(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := &counting{Store: b.New(t)}
			rc := newReceiver(t)
			held := make(chan struct{}, 1)
			release := make(chan struct{})
			var once sync.Once
			rc.setAnswer(func(r *http.Request, n int) int {
				hold := false
				once.Do(func() { hold = true })
				if hold {
					held <- struct{}{}
					<-release
				}
				return http.StatusOK
			})
			opts := testOptions()
			opts.Workers = 1
			opts.Lease = time.Minute
			opts.ShutdownTimeout = 10 * time.Second
			a := New(opts, st, testlib.Logger(t))
			create(t, a, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			put(t, st.Store.(storage.Store), "box@x.test", "First", "1", false)
			ctx, stopA := context.WithCancel(context.Background())
			defer stopA()
			stopped := make(chan struct{})
			go func() { a.Run(ctx); close(stopped) }()
			testlib.Next(t, held, 30*time.Second, "node A's first attempt")
			// A's one worker is busy: the next delivery is claimed and waits for it.
			put(t, st.Store.(storage.Store), "box@x.test", "Second", "2", false)
			testlib.WaitFor(t, "node A claiming the second", func() bool { return st.claimed.Load() == 2 })
			// A stops while its worker holds the first attempt, which then finishes.
			stopA()
			close(release)
			testlib.Next(t, stopped, 20*time.Second, "node A's stop")
			if n := len(rc.accepted()); n != 1 {
				t.Fatalf("node A made %d deliveries, want the first alone", n)
			}
			start := time.Now()
			run(t, New(opts, st, testlib.Logger(t)))
			testlib.WaitFor(t, "the second delivery made by node B", func() bool { return len(rc.accepted()) == 2 })
			if d := time.Since(start); d > opts.Lease/2 {
				t.Errorf("node B made the delivery node A claimed %v after A stopped, want at once, not after its lease (%v)", d, opts.Lease)
			}
		})
	}
}

// TestDispatchBounded: events to many global webhooks are stored a bounded number of
// deliveries at a time, not a whole batch of events' worth at once.
func TestDispatchBounded(t *testing.T) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "webhook"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := &counting{Store: b.New(t)}
			rc := newReceiver(t)
			s := New(testOptions(), st, testlib.Logger(t))
			const hooks, messages = 50, 60
			for range hooks {
				create(t, s, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived}})
			}
			for i := range messages {
				put(t, st.Store.(storage.Store), "box@x.test", fmt.Sprintf("Message %d", i), "hello", false)
			}
			run(t, s)
			testlib.WaitFor(t, "every delivery stored", func() bool { return st.added.Load() >= hooks*messages })
			// maxAdd, and the deliveries of the event that passed it.
			if most := st.mostAdded.Load(); most > 1024+hooks {
				t.Errorf("%d deliveries stored in one call, want at most %d", most, 1024+hooks)
			}
		})
	}
}
