package redisstore

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// clusterURL is the shared test Cluster's URL, or a skip (a failure under make test).
func clusterURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("MAYFLY_TEST_REDIS_CLUSTER_URL")
	if url == "" {
		if storetest.RequireRedis() {
			t.Fatal("MAYFLY_TEST_REDIS_CLUSTER_URL is not set, and CI or MAYFLY_REQUIRE_REDIS says the Redis tests must run")
		}
		t.Skip("not run on a Redis Cluster: set MAYFLY_TEST_REDIS_CLUSTER_URL (make test does)")
	}
	return url
}

// TestClusterEventsEveryMaster: on a real Cluster, for an inbox on each master, a
// subscriber on node B gets exactly the events after its Subscribe of mail node A put:
// not the one A put just before (a PUBLISH reaches other Redis nodes over the cluster
// bus, after the subscriber's barrier), and through a sharded subscription on the
// inbox's own master, not a broadcast to every node.
func TestClusterEventsEveryMaster(t *testing.T) {
	url := clusterURL(t)
	prefix := testPrefix(t)
	a := openStoreAt(t, prefix, Options{}, url)
	b := openStoreAt(t, prefix, Options{}, url)
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	cc := a.client.(*redis.ClusterClient)
	ctx := ctxFor(t)
	shards, err := cc.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	masterOf := func(slot int) string {
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if r.Start <= int64(slot) && int64(slot) <= r.End {
					for _, n := range sh.Nodes {
						if n.Role == "master" {
							return net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
						}
					}
				}
			}
		}
		return ""
	}
	// One inbox on each master.
	inboxes := map[string]string{}
	for i := 0; len(inboxes) < len(shards) && i < 1000; i++ {
		inbox := fmt.Sprintf("every%d@mayfly.test", i)
		master := masterOf(storetest.KeySlot(a.keys(inbox).state))
		if _, ok := inboxes[master]; !ok && master != "" {
			inboxes[master] = inbox
		}
	}
	if len(inboxes) < 3 {
		t.Fatalf("inboxes on %d masters, want 3 or more: %+v", len(inboxes), shards)
	}
	for master, inbox := range inboxes {
		before := storetest.NewMessage(inbox, "before")
		if err := a.Put(ctx, before); err != nil {
			t.Fatal(err)
		}
		// Two subscribers of the inbox on node B share its one subscription.
		subCtx, cancel := context.WithCancel(ctx)
		events := storetest.Subscribe(t, subCtx, b, inbox)
		more := storetest.Subscribe(t, subCtx, b, inbox)
		node := redis.NewClient(&redis.Options{Addr: master})
		defer node.Close()
		subscribers := func() int64 {
			n, err := node.PubSubShardNumSub(ctx, a.channelOf(inbox)).Result()
			if err != nil {
				t.Fatal(err)
			}
			return n[a.channelOf(inbox)]
		}
		if n := subscribers(); n != 1 {
			t.Errorf("subscribers of %s on its master %s = %d; want 1 (sharded Pub/Sub, one connection a node)", inbox, master, n)
		}
		after := storetest.NewMessage(inbox, "after")
		if err := a.Put(ctx, after); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []<-chan storage.Event{events, more} {
			if e := storetest.Next(t, ch); e.Type != storage.EventAdded || e.ID != after.ID {
				t.Errorf("inbox %s on %s: first event %s %s, want added %s (the mail put after Subscribe; %s was before)", inbox, master, e.Type, e.ID, after.ID, before.ID)
			}
		}
		// Once its subscribers are gone the node unsubscribes.
		cancel()
		deadline := time.Now().Add(10 * time.Second)
		for subscribers() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s still subscribed on %s 10s after its subscribers ended", inbox, master)
			}
			time.Sleep(20 * time.Millisecond) // polling Redis, with a deadline
		}
	}
}

// TestSentinelPassword: on a real Sentinel setup whose primary and replica have a
// password and whose sentinels have none, the URL's password is the primary's, as in
// every other Redis URL (go-redis alone would give it to the sentinels, which refuse it,
// and none to the primary).
func TestSentinelPassword(t *testing.T) {
	storetest.RequireRig(t)
	t.Parallel()
	rig := storetest.StartSentinelWith(t, storetest.SentinelOptions{Password: "p@ss w:rd"})
	st := openStoreAt(t, testPrefix(t), Options{}, rig.URL())
	defer st.Close()
	ctx := ctxFor(t)
	inbox := "sentinel-password@mayfly.test"
	events := storetest.Subscribe(t, ctx, st, inbox)
	m := storetest.NewMessage(inbox, "behind a password")
	if err := st.Put(ctx, m); err != nil {
		t.Fatalf("Put through %s: %v", rig.URL(), err)
	}
	if e := storetest.Next(t, events); e.Type != storage.EventAdded || e.ID != m.ID {
		t.Errorf("event %+v, want added %s", e, m.ID)
	}
	// The sentinels' own password, when they have one, is sentinel_password=; with
	// password= the URL keeps go-redis's meaning.
	for _, tt := range []struct{ url, primary, sentinel string }{
		{"redis://:pw@127.0.0.1:26379/0?master_name=m", "pw", ""},
		{"redis://:pw@127.0.0.1:26379/0?master_name=m&sentinel_password=sp", "pw", "sp"},
		{"redis://:sp@127.0.0.1:26379/0?master_name=m&password=pw", "pw", "sp"},
	} {
		c, err := newClient(tt.url)
		if err != nil {
			t.Fatalf("newClient(%q): %v", tt.url, err)
		}
		if got := c.(*redis.Client).Options().Password; got != tt.primary {
			t.Errorf("newClient(%q): primary's password %q, want %q", tt.url, got, tt.primary)
		}
		c.Close()
	}
}

// TestClusterSubscribeAfterFailover: when the master of an inbox's slot dies, its
// sharded subscribers' channels close (they must List again), and a Subscribe once its
// replica has taken over succeeds and hears the inbox, with nothing else having touched
// the slot meanwhile to tell the client the cluster changed.
func TestClusterSubscribeAfterFailover(t *testing.T) {
	storetest.RequireRig(t)
	t.Parallel()
	rig := storetest.StartCluster(t)
	st := openStoreAt(t, testPrefix(t), Options{}, rig.URL())
	defer st.Close()
	ctx := ctxFor(t)
	inbox := "failover@mayfly.test"
	events := storetest.Subscribe(t, ctx, st, inbox)
	if _, err := rig.KillPrimary(ctx, storetest.KeySlot(st.keys(inbox).state)); err != nil {
		t.Fatal(err)
	}
	select {
	case e, ok := <-events:
		if ok {
			t.Fatalf("event %+v after the master died, want the channel closed", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber's channel stayed open 10s after its master died")
	}
	if err := rig.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	var again <-chan storage.Event
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		if again, err = st.Subscribe(ctx, inbox); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Subscribe 15s after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling a client that relearns the cluster, with a deadline
	}
	m := storetest.NewMessage(inbox, "after the failover")
	if err := st.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	if e := storetest.Next(t, again); e.Type != storage.EventAdded || e.ID != m.ID {
		t.Errorf("event %+v after the failover, want added %s", e, m.ID)
	}
}

// BenchmarkClusterSubscriberMemory reports what one more watcher costs a Mayfly node on
// a Cluster, where each watched inbox is a sharded subscription on the node's one
// connection to its master: the Go heap and goroutines per Subscribe, with 500
// subscribers of different inboxes. (A connection of its own for each cost 75 KB of
// buffers and a goroutine.)
func BenchmarkClusterSubscriberMemory(b *testing.B) {
	url := os.Getenv("MAYFLY_TEST_REDIS_CLUSTER_URL")
	if url == "" {
		b.Skip("set MAYFLY_TEST_REDIS_CLUSTER_URL (make test's with-services does)")
	}
	st := openStoreAt(b, testPrefix(b), Options{}, url)
	defer st.Close()
	const n = 500
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		goroutines := runtime.NumGoroutine()
		for i := range n {
			if _, err := st.Subscribe(ctx, fmt.Sprintf("memory%d@mayfly.test", i)); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/subscriber")
		b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/n, "goroutines/subscriber")
		cancel()
	}
}

// TestClusterSubscribeChurn: watchers of a few inboxes come and go at once on one node
// (each subscribes, gets the mail put after it, and leaves) while the node subscribes
// and unsubscribes the inboxes' channels on their shared connections: every watcher
// gets its mail, and no channel stays subscribed once all are gone.
func TestClusterSubscribeChurn(t *testing.T) {
	url := clusterURL(t)
	t.Parallel()
	prefix := testPrefix(t)
	a := openStoreAt(t, prefix, Options{}, url)
	b := openStoreAt(t, prefix, Options{}, url)
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	ctx := ctxFor(t)
	inboxes := []string{"churn0@mayfly.test", "churn1@mayfly.test", "churn2@mayfly.test"}
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Go(func() {
			for i := range 10 {
				inbox := inboxes[(w+i)%len(inboxes)]
				subCtx, cancel := context.WithCancel(ctx)
				events, err := b.Subscribe(subCtx, inbox)
				if err != nil {
					t.Errorf("Subscribe %s: %v", inbox, err)
					cancel()
					return
				}
				m := storetest.NewMessage(inbox, fmt.Sprintf("churn %d %d", w, i))
				if err := a.Put(ctx, m); err != nil {
					t.Error(err)
					cancel()
					return
				}
				// Others' mail to the inbox may come first; this one must come.
				for got := false; !got; {
					select {
					case e, ok := <-events:
						if !ok {
							t.Errorf("watcher %d: channel of %s closed before its mail", w, inbox)
							got = true
						}
						got = got || e.ID == m.ID
					case <-time.After(10 * time.Second):
						t.Errorf("watcher %d: no event of its mail to %s within 10s", w, inbox)
						got = true
					}
				}
				cancel()
			}
		})
	}
	wg.Wait()
	cc := b.client.(*redis.ClusterClient)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var subscribed atomic.Int64 // ForEachMaster asks the masters at once
		err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			for _, inbox := range inboxes {
				m, err := n.PubSubShardNumSub(ctx, b.channelOf(inbox)).Result()
				if err != nil {
					return err
				}
				subscribed.Add(m[b.channelOf(inbox)])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if subscribed.Load() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d channels still subscribed 10s after every watcher left", subscribed.Load())
		}
		time.Sleep(20 * time.Millisecond) // polling Redis, with a deadline
	}
}
