package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// redisURL returns the Redis the tests may use, or skips the test (a failure under make
// test and in CI; see storetest.RedisURL).
func redisURL(tb testing.TB) string {
	tb.Helper()
	u := storetest.RedisURL(tb)
	if u == "" {
		tb.Skip("set MAYFLY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run the Redis tests (make test does)")
	}
	return u
}

// runID keeps this process's keys apart from other runs on the same Redis.
var runID = func() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

// testPrefix is the key prefix of one test: the same for every store the test opens, so
// a test that opens a store twice reopens the same data.
func testPrefix(tb testing.TB) string {
	return "mayfly-test:" + runID + ":" + tb.Name() + ":"
}

const testSweepEvery = 50 * time.Millisecond

// openStore opens a store on the test Redis and deletes the prefix's keys when the test
// ends, after the stores it opened are closed.
func openStore(tb testing.TB, prefix string, o Options) *Store {
	tb.Helper()
	// o.URL may be a proxy of it that the test cuts: the keys are deleted on the Redis.
	return openStoreAt(tb, prefix, o, redisURL(tb))
}

// openStoreAt is openStore on the Redis at keysURL (o.URL, or a proxy of it, as given).
func openStoreAt(tb testing.TB, prefix string, o Options, keysURL string) *Store {
	tb.Helper()
	if o.URL == "" {
		o.URL = keysURL
	}
	o.Prefix = prefix
	if o.SweepEvery == 0 {
		o.SweepEvery = testSweepEvery
	}
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := New(ctx, o)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { deleteKeys(tb, keysURL, prefix) })
	return st
}

// twoNodes opens two stores, as two Mayfly nodes, on one prefix of the test Redis;
// they close when the test ends.
func twoNodes(t testing.TB) (a, b *Store) {
	t.Helper()
	prefix := testPrefix(t)
	a, b = openStore(t, prefix, Options{}), openStore(t, prefix, Options{})
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}

// storeAndAdmin opens a store on a fresh prefix and a client that reads its keys;
// both close when the test ends.
func storeAndAdmin(t testing.TB) (prefix string, st *Store, c redis.UniversalClient) {
	t.Helper()
	prefix = testPrefix(t)
	st, c = openStore(t, prefix, Options{}), adminClient(t)
	t.Cleanup(func() {
		st.Close()
		c.Close()
	})
	return prefix, st, c
}

// testLogger shows the stores' warnings, and go-redis's, with -v only: the tests that
// cut connections cause many.
func testLogger() *slog.Logger {
	level := slog.LevelError
	if testing.Verbose() {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func newStore(tb testing.TB, o storetest.Options) storage.Store {
	tb.Helper()
	// The settings cache on, as a node runs (its default), so the conformance suite
	// holds with it.
	return openStore(tb, testPrefix(tb), Options{MaxMessages: o.MaxMessages, SettingsCache: time.Second})
}

func TestStore(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) {
		storetest.Run(t, newStore, true)
	})
}

// onlyWithoutCluster skips a test that runs the suite the Cluster's way on one Redis
// when there is a real Cluster to test: TestStore/cluster runs it there, for real.
func onlyWithoutCluster(t *testing.T) {
	if os.Getenv("MAYFLY_TEST_REDIS_CLUSTER_URL") != "" {
		t.Skip("TestStore/cluster runs the suite on a real Cluster (MAYFLY_TEST_REDIS_CLUSTER_URL)")
	}
}

// TestStoreShardedEvents runs the suite with the events on sharded Pub/Sub, one channel
// an inbox, as on a Cluster (see sharded.go).
func TestStoreShardedEvents(t *testing.T) {
	redisURL(t)
	onlyWithoutCluster(t)
	storetest.Run(t, func(tb testing.TB, o storetest.Options) storage.Store {
		return openStore(tb, testPrefix(tb), Options{MaxMessages: o.MaxMessages, shardedEvents: true})
	}, true)
}

// TestStoreFeedAfterScript runs the suite with the feed written as on a Cluster: by the
// caller, after the script (see eventlog.go).
func TestStoreFeedAfterScript(t *testing.T) {
	redisURL(t)
	onlyWithoutCluster(t)
	storetest.Run(t, func(tb testing.TB, o storetest.Options) storage.Store {
		return openStore(tb, testPrefix(tb), Options{MaxMessages: o.MaxMessages, feedAfterScript: true})
	}, true)
}

func BenchmarkStore(b *testing.B) {
	redisURL(b)
	storetest.Bench(b, newStore)
}

// BenchmarkStoreFeedAfterScript is BenchmarkStore with the feed written as on a
// Cluster: in a round trip after the scripts'.
func BenchmarkStoreFeedAfterScript(b *testing.B) {
	redisURL(b)
	storetest.Bench(b, func(tb testing.TB, o storetest.Options) storage.Store {
		return openStore(tb, testPrefix(tb), Options{MaxMessages: o.MaxMessages, feedAfterScript: true})
	})
}

// BenchmarkPutLatency reports the spread of one Put of 10 KiB at a time, which an
// average hides: mail reception waits for each one.
func BenchmarkPutLatency(b *testing.B) {
	redisURL(b)
	st := newStore(b, storetest.Options{MaxMessages: 200})
	defer st.Close()
	ctx := context.Background()
	raw := make([]byte, 10<<10)
	var took []time.Duration
	i := 0
	for b.Loop() {
		m := storetest.NewMessage(fmt.Sprintf("latency%d@mayfly.test", i%100), "bench")
		m.Raw, m.Size = raw, int64(len(raw))
		start := time.Now()
		if err := st.Put(ctx, m); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		i++
	}
	slices.Sort(took)
	for _, q := range []struct {
		unit string
		at   float64
	}{{"p50-µs", 0.50}, {"p99-µs", 0.99}, {"p99.9-µs", 0.999}} {
		b.ReportMetric(float64(took[int(q.at*float64(len(took)-1))].Microseconds()), q.unit)
	}
}

// BenchmarkPutParallel is Put's throughput with many senders at once, as under load.
func BenchmarkPutParallel(b *testing.B) {
	redisURL(b)
	st := newStore(b, storetest.Options{MaxMessages: 200})
	defer st.Close()
	ctx := context.Background()
	raw := make([]byte, 10<<10)
	var n atomic.Int64
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := storetest.NewMessage(fmt.Sprintf("parallel%d@mayfly.test", n.Add(1)%100), "bench")
			m.Raw, m.Size = raw, int64(len(raw))
			if err := st.Put(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// adminClient is a client for looking at and cleaning up the test Redis.
func adminClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	c, err := newClient(redisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// deleteKeys deletes every key under prefix on the Redis at url, on every master of a
// Cluster.
func deleteKeys(tb testing.TB, url, prefix string) {
	c, err := newClient(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			return scanDelete(ctx, n, prefix)
		})
	} else {
		err = scanDelete(ctx, c, prefix)
	}
	if err != nil {
		tb.Errorf("delete the test keys under %q: %v", prefix, err)
	}
}

func scanDelete(ctx context.Context, c redis.Cmdable, prefix string) error {
	keys, err := scanKeys(ctx, c, prefix)
	if err != nil || len(keys) == 0 {
		return err
	}
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Unlink(ctx, k) // one key a command: keys of a Cluster node span many slots
		}
		return nil
	})
	return err
}

var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

func scanKeys(ctx context.Context, c redis.Cmdable, prefix string) ([]string, error) {
	var keys []string
	iter := c.Scan(ctx, 0, globEscaper.Replace(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	st, err := New(ctx, Options{URL: "redis://" + addr + "/0", Logger: testLogger()})
	if err == nil {
		st.Close()
		t.Fatalf("New on closed port %s succeeded", addr)
	}
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("New on a closed port: %v, want ErrUnavailable", err)
	}
	// A bound, not a measurement: a dead Redis must fail a call, not hang it.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("New on a closed port took %v, want it to fail within seconds", d)
	}
}

// proxy forwards loopback connections to Redis, so a test can cut them.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(up, c); up.Close() })
		p.wg.Go(func() { io.Copy(c, up); c.Close() })
	}
}

// drop cuts every connection made so far and keeps accepting new ones.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) close() {
	p.ln.Close()
	p.drop()
	p.wg.Wait()
}

// proxiedURL is the test Redis's URL through a new proxy; it skips a test URL that is
// not one node.
func proxiedURL(t *testing.T) (*proxy, string) {
	raw := redisURL(t)
	if strings.Contains(raw, ",") || strings.Contains(raw, "master_name") {
		t.Skip("needs MAYFLY_TEST_REDIS_URL to name one node")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, o.Addr)
	u.Host = p.ln.Addr().String()
	return p, u.String()
}

func TestRedisGoesAway(t *testing.T) {
	p, u := proxiedURL(t)
	st := openStore(t, testPrefix(t), Options{URL: u})
	defer st.Close()
	ctx := ctxFor(t)
	inbox := "gone@mayfly.test"
	events := storetest.Subscribe(t, ctx, st, inbox)
	if err := st.Put(ctx, storetest.NewMessage(inbox, "before")); err != nil {
		t.Fatal(err)
	}
	storetest.Next(t, events)

	p.close()
	start := time.Now()
	err := st.Put(ctx, storetest.NewMessage(inbox, "after"))
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Put with Redis gone: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Put with Redis gone took %v, want it to fail within seconds", d)
	}
	if _, err := st.List(ctx, inbox, storage.Page{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("List with Redis gone: %v, want ErrUnavailable", err)
	}
	if err := st.Ping(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Ping with Redis gone: %v, want ErrUnavailable", err)
	}
	// Events published now would be missed: the subscriber must be told to List again.
	select {
	case e, ok := <-events:
		if ok {
			t.Errorf("event %+v after Redis went away, want the channel closed", e)
		}
	case <-time.After(10 * time.Second):
		t.Error("subscription still open 10s after Redis went away")
	}
}

func TestEventsAfterReconnect(t *testing.T) {
	p, u := proxiedURL(t)
	prefix := testPrefix(t)
	st := openStore(t, prefix, Options{URL: u})
	defer st.Close()
	other := openStore(t, prefix, Options{}) // a second node, not behind the proxy
	defer other.Close()
	ctx := ctxFor(t)
	inbox := "reconnect@mayfly.test"
	events := storetest.Subscribe(t, ctx, st, inbox)

	p.drop()
	select {
	case _, ok := <-events:
		if ok {
			t.Fatal("event before any Put")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscription still open 10s after its connection dropped")
	}
	// Ping, which /readyz asks, fails with ErrUnavailable until the store has
	// subscribed again, and then Subscribe works: a node that says it is ready takes
	// the WebSocket and wait clients sent to it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := st.Ping(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Ping after the connection dropped: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	events = storetest.Subscribe(t, ctx, st, inbox) // once Ping succeeds
	m := storetest.NewMessage(inbox, "after reconnect")
	if err := other.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	if e := storetest.Next(t, events); e.Type != storage.EventAdded || e.ID != m.ID {
		t.Errorf("event %+v, want added %s", e, m.ID)
	}
}

func TestEventsAcrossNodes(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testEventsAcrossNodes(t) })
}

func testEventsAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	ctx := ctxFor(t)
	inbox := "nodes@mayfly.test"
	onA := storetest.Subscribe(t, ctx, a, inbox)
	onB := storetest.Subscribe(t, ctx, b, inbox)

	m := storetest.NewMessage(inbox, "from node a")
	if err := a.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan storage.Event{"a": onA, "b": onB} {
		e := storetest.Next(t, ch)
		if e.Type != storage.EventAdded || e.ID != m.ID || e.UID != m.UID || e.Message == nil || e.Message.Subject != m.Subject {
			t.Errorf("node %s got %+v, want added %s with its metadata", name, e, m.ID)
		}
	}

	// Both nodes sweep; each expiry must be reported once all the same.
	var short []*storage.Message
	for i := range 20 {
		s := storetest.NewMessage(inbox, fmt.Sprintf("short %d", i))
		s.Expires = time.Now().Add(200 * time.Millisecond)
		short = append(short, s)
	}
	if err := b.Put(ctx, short...); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan storage.Event{"a": onA, "b": onB} {
		expired := map[string]int{}
		for range 2 * len(short) {
			if e := storetest.Next(t, ch); e.Type == storage.EventExpired {
				expired[e.ID]++
			}
		}
		// Several sweeps more, for any second report to arrive.
		quiet := time.After(10 * testSweepEvery)
	drain:
		for {
			select {
			case e := <-ch:
				if e.Type == storage.EventExpired {
					expired[e.ID]++
				}
			case <-quiet:
				break drain
			}
		}
		for _, s := range short {
			if n := expired[s.ID]; n != 1 {
				t.Errorf("node %s: %s reported expired %d times, want once", name, s.Subject, n)
			}
		}
	}
	if list, err := b.List(ctx, inbox, storage.Page{}); err != nil || len(list) != 1 {
		t.Errorf("List after expiry = %d messages, %v; want 1", len(list), err)
	}
}

func TestSweepBacklog(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testSweepBacklog(t) })
}

func testSweepBacklog(t *testing.T) {
	prefix := testPrefix(t)
	st := openStore(t, prefix, Options{})
	defer st.Close()
	ctx := ctxFor(t)
	const n = 3*sweepBatch + 7 // several claims in one sweep
	var msgs []*storage.Message
	for i := range n {
		m := storetest.NewMessage(fmt.Sprintf("backlog%d@mayfly.test", i%10), "backlog")
		m.Expires = time.Now().Add(100 * time.Millisecond)
		msgs = append(msgs, m)
	}
	if err := st.Put(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	c := adminClient(t)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, err := c.ZCard(ctx, prefix+"expiry").Result()
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d expiry entries left after 10s", left, n)
		}
		time.Sleep(testSweepEvery)
	}
	for i := range 10 {
		inbox := fmt.Sprintf("backlog%d@mayfly.test", i)
		if n, err := c.ZCard(ctx, prefix+"{"+inbox+"}:uids").Result(); err != nil || n != 0 {
			t.Errorf("%s lists %d messages after the sweep, %v; want none", inbox, n, err)
		}
	}
}

// tagOf is the part of key that Redis Cluster hashes.
func tagOf(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func TestKeysHaveTTLAndOneTag(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testKeysHaveTTLAndOneTag(t) })
}

func testKeysHaveTTLAndOneTag(t *testing.T) {
	prefix, st, c := storeAndAdmin(t)
	ctx := ctxFor(t)

	for _, inbox := range []string{"plain@mayfly.test", "}odd{%7D@mayfly.test"} {
		m := storetest.NewMessage(inbox, "ttl")
		if err := st.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
		tag := prefix + "{" + escapeTag(inbox) + "}:"
		keys, err := scanKeys(ctx, c, tag)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{tag + "log", tag + "m:" + m.ID, tag + "state", tag + "uids"}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Fatalf("keys of %s = %q, want %q", inbox, keys, want)
		}
		for _, k := range keys {
			if got := tagOf(k); got != escapeTag(inbox) {
				t.Errorf("hash tag of %q = %q, want %q", k, got, escapeTag(inbox))
			}
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil || ttl <= 0 {
				t.Errorf("PTTL %s = %v, %v; want a TTL", k, ttl, err)
			}
			if until := time.Until(m.Expires); k == tag+"m:"+m.ID && (ttl > until+time.Second || ttl < until-5*time.Second) {
				t.Errorf("PTTL %s = %v, want the message's %v", k, ttl, until)
			}
			if k == tag+"log" && (ttl > 2*storage.EventHistory || ttl < 2*storage.EventHistory-5*time.Second) {
				t.Errorf("PTTL %s = %v, want twice the event history", k, ttl)
			}
			if k != tag+"m:"+m.ID && k != tag+"log" && ttl < time.Until(m.Expires)+grace-5*time.Second {
				t.Errorf("PTTL %s = %v, want past the message's expiry plus %v", k, ttl, grace)
			}
		}
		if _, err := st.DeleteInbox(ctx, inbox); err != nil {
			t.Fatal(err)
		}
		if ttl, err := c.PTTL(ctx, tag+"state").Result(); err != nil || ttl <= 0 {
			t.Errorf("PTTL of the state after DeleteInbox = %v, %v; want it kept with a TTL", ttl, err)
		}
	}

	// An inbox only looked at gets state, with a TTL, and nothing else.
	inbox := "looked-at@mayfly.test"
	if _, err := st.Mailbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	tag := prefix + "{" + inbox + "}:"
	if keys, err := scanKeys(ctx, c, tag); err != nil || !slices.Equal(keys, []string{tag + "state"}) {
		t.Errorf("keys after Mailbox = %q, %v; want the state alone", keys, err)
	}
	if ttl, err := c.PTTL(ctx, tag+"state").Result(); err != nil || ttl <= 0 || ttl > grace {
		t.Errorf("PTTL of the state of an inbox only looked at = %v, %v; want at most %v", ttl, err, grace)
	}
}

func TestRejects(t *testing.T) {
	st := openStore(t, testPrefix(t), Options{})
	defer st.Close()
	ctx := ctxFor(t)
	noExpiry := storetest.NewMessage("box@mayfly.test", "forever")
	noExpiry.Expires = time.Time{}
	tests := []struct {
		name string
		msgs []*storage.Message
	}{
		{"no inbox", []*storage.Message{storetest.NewMessage("", "x")}},
		{"newline in inbox", []*storage.Message{storetest.NewMessage("a\nb@mayfly.test", "x")}},
		{"no expiry", []*storage.Message{storetest.NewMessage("ok@mayfly.test", "x"), noExpiry}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.Put(ctx, tt.msgs...); err == nil || errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("Put = %v, want a permanent error", err)
			}
			for _, m := range tt.msgs {
				if m.ID != "" {
					t.Errorf("Put stored %q of a rejected batch", m.Subject)
				}
			}
		})
	}
}

func TestNewClient(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		cluster bool
		addrs   []string
		db      int
		dial    time.Duration
	}{
		{"one node", "redis://127.0.0.1:6379/2", false, []string{"127.0.0.1:6379"}, 2, dialTimeout},
		{"bare address", "127.0.0.1:7000", false, []string{"127.0.0.1:7000"}, 0, dialTimeout},
		{"own timeout", "redis://127.0.0.1:6379/0?dial_timeout=5s", false, []string{"127.0.0.1:6379"}, 0, 5 * time.Second},
		{"cluster addresses", "127.0.0.1:7000, 127.0.0.1:7001,127.0.0.1:7002", true, []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}, 0, dialTimeout},
		{"cluster URLs", "redis://127.0.0.1:7000,redis://127.0.0.1:7001?pool_size=5", true, []string{"127.0.0.1:7001", "127.0.0.1:7000"}, 0, dialTimeout},
		{"cluster addr parameters", "redis://127.0.0.1:7000?addr=127.0.0.1:7001", true, []string{"127.0.0.1:7000", "127.0.0.1:7001"}, 0, dialTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newClient(tt.url)
			if err != nil {
				t.Fatalf("newClient(%q): %v", tt.url, err)
			}
			defer c.Close()
			switch c := c.(type) {
			case *redis.ClusterClient:
				o := c.Options()
				if !tt.cluster || !slices.Equal(o.Addrs, tt.addrs) || o.DialTimeout != tt.dial || o.ReadTimeout != ioTimeout || !o.ContextTimeoutEnabled {
					t.Errorf("newClient(%q) = cluster %q, dial %v, read %v; want cluster %v %q, dial %v", tt.url, o.Addrs, o.DialTimeout, o.ReadTimeout, tt.cluster, tt.addrs, tt.dial)
				}
			case *redis.Client:
				o := c.Options()
				if tt.cluster || o.Addr != tt.addrs[0] || o.DB != tt.db || o.DialTimeout != tt.dial || o.ReadTimeout != ioTimeout || !o.ContextTimeoutEnabled {
					t.Errorf("newClient(%q) = node %s db %d, dial %v, read %v; want cluster %v, %q db %d, dial %v", tt.url, o.Addr, o.DB, o.DialTimeout, o.ReadTimeout, tt.cluster, tt.addrs, tt.db, tt.dial)
				}
			default:
				t.Errorf("newClient(%q) = %T", tt.url, c)
			}
		})
	}
	for _, bad := range []string{"", " , ", "http://127.0.0.1:6379", "redis://user:secret@[::1", "redis://127.0.0.1:6379/0?nonsense=1"} {
		if c, err := newClient(bad); err == nil {
			c.Close()
			t.Errorf("newClient(%q) succeeded, want an error", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("newClient(%q) = %v: the error shows the password", bad, err)
		}
	}
}

func TestSentinelURL(t *testing.T) {
	c, err := newClient("redis://127.0.0.1:26379,127.0.0.1:26380/0?master_name=mymaster")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*redis.Client); !ok {
		t.Errorf("Sentinel URL gave a %T, want a failover *redis.Client", c)
	}
}

func TestEscapeTag(t *testing.T) {
	tests := []struct{ in, want string }{
		{"box@mayfly.test", "box@mayfly.test"},
		{"}x@y", "%7Dx@y"},
		{"{a}@y", "%7Ba%7D@y"},
		{"%7D@y", "%257D@y"},
	}
	for _, tt := range tests {
		if got := escapeTag(tt.in); got != tt.want {
			t.Errorf("escapeTag(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEventRoundTrip(t *testing.T) {
	m := storetest.NewMessage("box@mayfly.test", "event")
	meta := encodeMeta(m)
	payload := "a\nbox@mayfly.test\nid1\n7\n0\n" + string(meta)
	typ, inbox, rest, err := eventHeader(payload)
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseEvent(typ, inbox, rest)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != storage.EventAdded || e.Inbox != m.Inbox || e.ID != "id1" || e.UID != 7 || e.Message == nil ||
		e.Message.Subject != m.Subject || !e.Message.Expires.Equal(m.Expires.Truncate(time.Microsecond)) || !e.Message.Date.Equal(m.Date) {
		t.Errorf("parseEvent(%q) = %+v", payload, e)
	}
	for _, bad := range []string{"", "a", "x\nbox\nid\n1\n0\n", "d\nbox\nid\nnope\n0\n", "d\nbox\nid\n1\n"} {
		if typ, inbox, rest, err := eventHeader(bad); err == nil {
			if _, err := parseEvent(typ, inbox, rest); err == nil {
				t.Errorf("parseEvent(%q) succeeded, want an error", bad)
			}
		}
	}
}

// roundTrips counts the commands and pipelines a client sends: one round trip each.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func TestInboxTTLRoundTrips(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testInboxTTLRoundTrips(t) })
}

func testInboxTTLRoundTrips(t *testing.T) {
	// No sweeps during the test: only Put's own round trips are counted.
	st := openStore(t, testPrefix(t), Options{SweepEvery: time.Hour})
	defer st.Close()
	ctx := ctxFor(t)
	c := adminClient(t)
	defer c.Close()
	if err := st.SetInbox(ctx, "ttl@mayfly.test", storage.InboxSettings{TTL: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetInbox(ctx, "ttl2@mayfly.test", storage.InboxSettings{TTL: 20 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	same := messageAt("same@mayfly.test", time.Now(), 10*time.Minute)
	if err := st.SetInbox(ctx, same.Inbox, storage.InboxSettings{TTL: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	hook := &roundTrips{}
	st.client.AddHook(hook)
	// The first command on a connection may bring the connection's own (HELLO, ...).
	if err := st.Put(ctx, storetest.NewMessage("warm-up@mayfly.test", "warm up")); err != nil {
		t.Fatal(err)
	}
	// On a Cluster the feed is written after the scripts, in a round trip of its own
	// unless an expiry's correction carries it.
	feedTrip := int64(0)
	if !st.feedInScript {
		feedTrip = 1
	}
	tests := []struct {
		name  string
		to    []string
		trips int64
	}{
		// On one Redis the scripts write the event feed too (see eventlog.go): no round
		// trip more for it.
		{"no TTL", []string{"plain@mayfly.test"}, 1},
		{"no TTL, three inboxes", []string{"a@mayfly.test", "b@mayfly.test", "c@mayfly.test"}, 1},
		{"TTL", []string{"ttl@mayfly.test"}, 2},
		{"two TTLs among three inboxes", []string{"ttl@mayfly.test", "plain@mayfly.test", "ttl2@mayfly.test"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msgs []*storage.Message
			for _, to := range tt.to {
				msgs = append(msgs, storetest.NewMessage(to, tt.name))
			}
			before := hook.n.Load()
			if err := st.Put(ctx, msgs...); err != nil {
				t.Fatal(err)
			}
			if n := hook.n.Load() - before; n != max(tt.trips, 1+feedTrip) {
				t.Errorf("Put to %q took %d round trips, want %d", tt.to, n, max(tt.trips, 1+feedTrip))
			}
			for _, m := range msgs {
				score, err := c.ZScore(ctx, st.expiryKey, expiryMember(m.Inbox, m.ID)).Result()
				if err != nil || int64(score) != expiryMillis(m.Expires) {
					t.Errorf("expiry index entry of %s = %v, %v; want %d", m.Inbox, int64(score), err, expiryMillis(m.Expires))
				}
				exp, err := c.HGet(ctx, st.keys(m.Inbox).msg(m.ID), "exp").Int64()
				if err != nil || exp != expiryMillis(m.Expires) {
					t.Errorf("exp of %s = %d, %v; want %d", m.Inbox, exp, err, expiryMillis(m.Expires))
				}
			}
		})
	}
	// A receiver's expiry that already is the inbox's needs no correction.
	before := hook.n.Load()
	if err := st.Put(ctx, same); err != nil {
		t.Fatal(err)
	}
	if n := hook.n.Load() - before; n != 1+feedTrip {
		t.Errorf("Put whose expiry is the inbox's took %d round trips, want %d", n, 1+feedTrip)
	}
	if score, err := c.ZScore(ctx, st.expiryKey, expiryMember(same.Inbox, same.ID)).Result(); err != nil || int64(score) != expiryMillis(same.Expires) {
		t.Errorf("expiry index entry = %v, %v; want %d", int64(score), err, expiryMillis(same.Expires))
	}
}

// messageAt is a test message received at received (truncated to the millisecond, so
// its expiry is what an inbox TTL gives it) that expires ttl later.
func messageAt(inbox string, received time.Time, ttl time.Duration) *storage.Message {
	m := storetest.NewMessage(inbox, "at")
	m.Received = received.Truncate(time.Millisecond)
	m.Expires = m.Received.Add(ttl)
	return m
}

func TestInboxTTLKeys(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testInboxTTLKeys(t) })
}

func testInboxTTLKeys(t *testing.T) {
	_, st, c := storeAndAdmin(t)
	ctx := ctxFor(t)
	inbox := "long@mayfly.test"
	k := st.keys(inbox)
	const ttl = 30 * time.Hour

	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.HGet(ctx, k.state, "ttl").Result(); err != nil || v != "108000000" {
		t.Errorf("ttl field = %q, %v; want 108000000 (ms)", v, err)
	}
	if pttl, err := c.PTTL(ctx, k.state).Result(); err != nil || pttl < ttl+grace-5*time.Second || pttl > ttl+grace {
		t.Errorf("PTTL of the state after SetInbox(%v) = %v, %v; want the TTL plus %v", ttl, pttl, err, grace)
	}
	m := storetest.NewMessage(inbox, "long")
	if err := st.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	if want := time.UnixMilli(expiryMillis(m.Received)).Add(ttl); !m.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", m.Expires, want)
	}
	// Received is rounded up to the millisecond and Redis's clock is not ours: allow a second.
	if pttl, err := c.PTTL(ctx, k.msg(m.ID)).Result(); err != nil || pttl < ttl-5*time.Second || pttl > ttl+time.Second {
		t.Errorf("PTTL of the message = %v, %v; want about %v", pttl, err, ttl)
	}
	for _, key := range []string{k.state, k.uids} {
		if pttl, err := c.PTTL(ctx, key).Result(); err != nil || pttl < ttl+grace-5*time.Second {
			t.Errorf("PTTL %s = %v, %v; want past the message's expiry plus %v", key, pttl, err, grace)
		}
	}
	// An inbox only looked at keeps its TTL as long as SetInbox does.
	looked := "looked-at@mayfly.test"
	if err := st.SetInbox(ctx, looked, storage.InboxSettings{TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if err := c.PExpire(ctx, st.keys(looked).state, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Mailbox(ctx, looked); err != nil {
		t.Fatal(err)
	}
	if mb, err := st.Settings(ctx, looked); err != nil || mb.TTL != ttl {
		t.Errorf("Mailbox = %+v, %v; want TTL %v", mb, err, ttl)
	}
	if pttl, err := c.PTTL(ctx, st.keys(looked).state).Result(); err != nil || pttl < ttl+grace-5*time.Second || pttl > ttl+grace {
		t.Errorf("PTTL of the state after Mailbox = %v, %v; want the TTL plus %v", pttl, err, grace)
	}

	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: -time.Second}); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.HExists(ctx, k.state, "ttl").Result(); err != nil || ok {
		t.Errorf("ttl field after SetInbox(-1s): %v, %v; want it gone", ok, err)
	}
	for _, bad := range []string{"", "a\r\nb@mayfly.test"} {
		if err := st.SetInbox(ctx, bad, storage.InboxSettings{TTL: ttl}); !errors.Is(err, storage.ErrBadAddress) {
			t.Errorf("SetInbox(%q) = %v, want ErrBadAddress", bad, err)
		}
	}
}

// TestPutScriptExpiry runs the put script on inboxes with TTLs from a second to
// decades, and again with the same ID, as a client resending after a lost reply does.
func TestPutScriptExpiry(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testPutScriptExpiry(t) })
}

func testPutScriptExpiry(t *testing.T) {
	st := openStore(t, testPrefix(t), Options{})
	defer st.Close()
	ctx := ctxFor(t)
	c := adminClient(t)
	defer c.Close()
	for _, ttl := range []time.Duration{1234 * time.Millisecond, 36 * time.Hour, 50 * 365 * 24 * time.Hour} {
		inbox := fmt.Sprintf("ttl-%d@mayfly.test", ttl.Milliseconds())
		if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: ttl}); err != nil {
			t.Fatal(err)
		}
		for _, received := range []time.Time{time.Now(), time.Unix(1e9, 999_999_999), {}} {
			m := storetest.NewMessage(inbox, "script")
			m.Received = received
			before := time.Now()
			if err := st.Put(ctx, m); err != nil {
				t.Fatal(err)
			}
			from := received
			if from.IsZero() {
				from = before
			}
			want := time.UnixMilli(expiryMillis(from)).Add(ttl)
			if received.IsZero() {
				// Put's own clock, read after before.
				if m.Expires.Before(want) || m.Expires.After(time.UnixMilli(expiryMillis(time.Now())).Add(ttl)) {
					t.Errorf("TTL %v, no Received: Expires %v, want %v or a little later", ttl, m.Expires, want)
				}
			} else if !m.Expires.Equal(want) {
				t.Errorf("TTL %v, Received %v: Expires %v, want %v", ttl, received, m.Expires, want)
			}
			got, err := st.Get(ctx, inbox, m.ID)
			if received.Before(time.Now().Add(-ttl)) && !received.IsZero() {
				// Expired at once.
				if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("TTL %v, Received %v: Get = %v, want ErrNotFound", ttl, received, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("TTL %v, Received %v: Get: %v", ttl, received, err)
			} else if !got.Expires.Equal(m.Expires) {
				t.Errorf("TTL %v, Received %v: Get = Expires %v, want %v", ttl, received, got.Expires, m.Expires)
			}
			// The script changed Expires and nothing else.
			stored, err := c.HGet(ctx, st.keys(inbox).msg(m.ID), "meta").Result()
			if want := string(encodeMeta(m)); err != nil || stored != want {
				t.Errorf("TTL %v, Received %v: stored meta %q, %v; want %q", ttl, received, stored, err, want)
			}
		}
	}

	// The same ID again stores nothing and answers as the first time.
	inbox := "again@mayfly.test"
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	k := st.keys(inbox)
	m := storetest.NewMessage(inbox, "again")
	meta, at := encodeMetaExpires(m)
	exp := expiryMillis(m.Expires)
	run := func() (uid, exp int64, events []string) {
		uid, exp, events, err := putReply(putScript.Run(ctx, st.client, []string{k.state, k.uids, k.msg("id1"), k.log},
			"id1", meta, m.Raw, exp, grace.Milliseconds(), 10, time.Now().Unix(), inbox, k.msgPrefix, st.channel,
			expiryMillis(m.Received), at, lastField(m), 0, historyMs, len(m.Raw), "1"))
		if err != nil {
			t.Fatal(err)
		}
		return uid, exp, events
	}
	uid1, exp1, events1 := run()
	uid2, exp2, events2 := run()
	wantExp := expiryMillis(m.Received) + time.Minute.Milliseconds()
	if uid1 != 1 || uid2 != 1 || exp1 != wantExp || exp2 != wantExp {
		t.Errorf("put script twice = %d, %d then %d, %d; want 1, %d both times", uid1, exp1, uid2, exp2, wantExp)
	}
	// The first put made the event, the second nothing.
	if len(events1) != 1 || len(events2) != 0 {
		t.Errorf("put script twice made %d then %d events, want 1 then 0", len(events1), len(events2))
	}
	if mb, err := st.Mailbox(ctx, inbox); err != nil || mb.Messages != 1 || mb.UIDNext != 2 {
		t.Errorf("Mailbox after the same put twice = %+v, %v; want 1 message", mb, err)
	}
	// Without a TTL the expiry is the one sent, both times.
	plain := st.keys("plain@mayfly.test")
	for range 2 {
		uid, got, _, err := putReply(putScript.Run(ctx, st.client, []string{plain.state, plain.uids, plain.msg("id1"), plain.log},
			"id1", meta, m.Raw, exp, grace.Milliseconds(), 10, time.Now().Unix(), "plain@mayfly.test", plain.msgPrefix, st.channel,
			expiryMillis(m.Received), at, lastField(m), 0, historyMs, len(m.Raw), "1"))
		if err != nil || uid != 1 || got != exp {
			t.Errorf("put script without a TTL = %d, %d, %v; want UID 1, expiry %d", uid, got, err, exp)
		}
	}
}

// TestSweepEarlyEntry: an expiry index entry that comes due before its message (a Put
// whose correction of the entry has not landed yet) leaves the message alone and is
// put back at the message's expiry.
func TestSweepEarlyEntry(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testSweepEarlyEntry(t) })
}

func testSweepEarlyEntry(t *testing.T) {
	prefix, st, c := storeAndAdmin(t)
	ctx := ctxFor(t)
	inbox := "early@mayfly.test"
	events := storetest.Subscribe(t, ctx, st, inbox)
	m := storetest.NewMessage(inbox, "early")
	if err := st.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	if e := storetest.Next(t, events); e.Type != storage.EventAdded {
		t.Fatalf("event %+v, want added", e)
	}
	member := expiryMember(inbox, m.ID)
	if err := c.ZAdd(ctx, prefix+"expiry", redis.Z{Score: float64(time.Now().Add(-time.Second).UnixMilli()), Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		score, err := c.ZScore(ctx, prefix+"expiry", member).Result()
		if err != nil {
			t.Fatalf("expiry index entry: %v, want it kept", err)
		}
		if int64(score) == expiryMillis(m.Expires) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expiry index entry at %d 10s after it came due early, want it back at %d", int64(score), expiryMillis(m.Expires))
		}
		time.Sleep(testSweepEvery)
	}
	if _, err := st.Get(ctx, inbox, m.ID); err != nil {
		t.Errorf("Get after its entry came due early: %v, want the message kept", err)
	}
	select {
	case e := <-events:
		t.Errorf("event %+v, want none", e)
	default:
	}
}

// TestSettingsKeys checks that reading settings makes no key (the receiver reads them at
// every RCPT, for any address), and that the settings live in the inbox's state hash.
func TestSettingsKeys(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testSettingsKeys(t) })
}

func testSettingsKeys(t *testing.T) {
	_, st, c := storeAndAdmin(t)
	ctx := ctxFor(t)
	inbox := "unknown@mayfly.test"
	k := st.keys(inbox)
	if _, err := st.Settings(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	if _, err := st.FaultAttempt(ctx, inbox, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("FaultAttempt of an unknown inbox = %v, want ErrNotFound", err)
	}
	if n, err := c.Exists(ctx, k.state, k.uids).Result(); err != nil || n != 0 {
		t.Errorf("keys after Settings and FaultAttempt of an unknown inbox: %d, %v; want none", n, err)
	}
	set := storage.InboxSettings{BurnAfterRead: true, Faults: []storage.Fault{{Stage: "rcpt", Code: 451, Times: 1}}}
	if err := st.SetInbox(ctx, inbox, set); err != nil {
		t.Fatal(err)
	}
	if _, err := st.FaultAttempt(ctx, inbox, 0); err != nil {
		t.Fatal(err)
	}
	v, err := c.HMGet(ctx, k.state, "burn", "nf", "fa0").Result()
	if err != nil || v[0] != "1" || v[1] != "1" || v[2] != "1" {
		t.Errorf("state fields burn, nf, fa0 = %v, %v; want 1, 1, 1", v, err)
	}
	if pttl, err := c.PTTL(ctx, k.state).Result(); err != nil || pttl < grace-5*time.Second || pttl > grace {
		t.Errorf("PTTL of the state = %v, %v; want about %v", pttl, err, grace)
	}
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.HExists(ctx, k.state, "fa0").Result(); err != nil || n {
		t.Errorf("fa0 after the faults were cleared: %v, %v; want it gone", n, err)
	}
}

// TestSetInboxLeavesTimelyMail checks that SetInbox with the TTL mail was put with
// rewrites none of it (a PATCH of burn_after_read alone sends the TTL again).
func TestSetInboxLeavesTimelyMail(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testSetInboxLeavesTimelyMail(t) })
}

func testSetInboxLeavesTimelyMail(t *testing.T) {
	// No sweeps during the test: only SetInbox's own round trips are counted (a sweep
	// came between them on a loaded machine).
	st := openStore(t, testPrefix(t), Options{SweepEvery: time.Hour})
	defer st.Close()
	c := adminClient(t)
	defer c.Close()
	ctx := ctxFor(t)
	inbox := "timely@mayfly.test"
	set := storage.InboxSettings{TTL: 10 * time.Minute}
	if err := st.SetInbox(ctx, inbox, set); err != nil {
		t.Fatal(err)
	}
	m := storetest.NewMessage(inbox, "timely")
	if err := st.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	before, err := c.HGet(ctx, st.keys(inbox).msg(m.ID), "meta").Result()
	if err != nil {
		t.Fatal(err)
	}
	hook := &roundTrips{}
	st.client.AddHook(hook)
	set.BurnAfterRead = true
	if err := st.SetInbox(ctx, inbox, set); err != nil {
		t.Fatal(err)
	}
	if after, err := c.HGet(ctx, st.keys(inbox).msg(m.ID), "meta").Result(); err != nil || after != before {
		t.Errorf("meta after SetInbox with the same TTL changed: %v", err)
	}
	// The settings script and the read of the mail's metadata; no rewrite.
	if n := hook.n.Load(); n != 2 {
		t.Errorf("SetInbox with the same TTL took %d round trips, want 2", n)
	}
}

// commandNames records the names of the commands sent, pipelined or not.
type commandNames struct {
	mu    sync.Mutex
	names []string
}

func (h *commandNames) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandNames) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.names = append(h.names, cmd.Name())
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *commandNames) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		for _, c := range cmds {
			h.names = append(h.names, c.Name())
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *commandNames) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := h.names
	h.names = nil
	return names
}

// TestSettingsReadsOnlySettings: the receiver reads an inbox's settings at every RCPT;
// for an inbox without faults that is one HMGET of the settings' fields, not the whole
// state hash (HGETALL), which also holds the inbox's UID counters.
func TestSettingsReadsOnlySettings(t *testing.T) {
	st := openStore(t, testPrefix(t), Options{SweepEvery: time.Hour})
	defer st.Close()
	ctx := ctxFor(t)
	const inbox = "settings@mayfly.test"
	if err := st.Put(ctx, storetest.NewMessage(inbox, "one")); err != nil {
		t.Fatal(err)
	}
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	hook := &commandNames{}
	st.client.AddHook(hook)
	set, err := st.Settings(ctx, inbox)
	if err != nil || set.TTL != time.Hour || set.Faults != nil {
		t.Fatalf("Settings = %+v, %v; want a TTL of 1h and no faults", set, err)
	}
	if got := hook.take(); !slices.Equal(got, []string{"hmget"}) {
		t.Errorf("Settings sent %q, want just one hmget", got)
	}
}
