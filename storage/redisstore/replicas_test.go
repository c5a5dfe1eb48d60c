package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// requireRig skips a test that starts a rig of the test's own (these tests stop its processes), or a skip
// where redis-server is missing and Redis tests may skip.
// replicaOf returns the replica whose primary is at primary.
func replicaOf(t *testing.T, replicas []storetest.RedisNode, primary string) storetest.RedisNode {
	t.Helper()
	for _, r := range replicas {
		c := redis.NewClient(&redis.Options{Addr: r.Addr})
		v, err := c.Do(context.Background(), "role").Slice()
		c.Close()
		if err == nil && len(v) >= 3 && v[0] == "slave" {
			if addr := fmt.Sprint(v[1], ":", v[2]); addr == primary {
				return r
			}
		}
	}
	t.Fatalf("no replica of %s among %v", primary, replicas)
	return storetest.RedisNode{}
}

// TestPutWaitsForAReplica: a Put (or an Enqueue) whose primary has a replica is done
// only when the replica has it, since a primary that dies takes what it alone had.
// With the replica stopped (SIGSTOP: connected, silent), a Put fails as unavailable
// (SMTP's 451) within the wait, rather than answer for a write only the primary has;
// once the replica runs again, Puts succeed and the replica holds the message.
func TestPutWaitsForAReplica(t *testing.T) {
	storetest.RequireRig(t)
	t.Run("sentinel", func(t *testing.T) {
		t.Parallel()
		rig := storetest.StartSentinel(t)
		nodes := rig.Nodes()
		checkPutWaits(t, rig.URL(), waitInbox, nodes[1])
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		rig := storetest.StartCluster(t)
		ctx := context.Background()
		// An inbox on the queue's primary, so that one stopped replica holds up both.
		primary, err := rig.MasterOf(ctx, storetest.KeySlot(queueTag))
		if err != nil {
			t.Fatal(err)
		}
		inbox := ""
		for i := 0; inbox == ""; i++ {
			name := fmt.Sprintf("replicated-%d@wait.test", i)
			if m, err := rig.MasterOf(ctx, storetest.KeySlot("{"+name+"}")); err == nil && m.Addr == primary.Addr {
				inbox = name
			}
		}
		checkPutWaits(t, rig.URL(), inbox, replicaOf(t, rig.Replicas(ctx), primary.Addr))
	})
}

const waitInbox = "replicated@wait.test"

func checkPutWaits(t *testing.T, url, inbox string, replica storetest.RedisNode) {
	// The default: a replica running on a busy machine (the race detector, tests in
	// parallel) can take longer than a few hundred milliseconds to answer.
	const wait = DefaultReplicaWait
	ctx := context.Background()
	st, err := New(ctx, Options{URL: url, ReplicaWait: wait, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	put := func(subject string) (*storage.Message, error) {
		m := &storage.Message{Inbox: inbox, Subject: subject, Raw: []byte("Subject: " + subject + "\r\n\r\nhi\r\n"), Expires: time.Now().Add(time.Hour)}
		return m, st.Put(ctx, m)
	}
	if _, err := put("before"); err != nil {
		t.Fatalf("Put with the replica running: %v", err)
	}

	if err := syscall.Kill(replica.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			syscall.Kill(replica.PID, syscall.SIGCONT)
		}
	})
	start := time.Now()
	_, err = put("stalled")
	took := time.Since(start)
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "MAYFLY_REDIS_REPLICA_WAIT") {
		t.Errorf("Put with the replica stopped = %v, want unavailable, naming MAYFLY_REDIS_REPLICA_WAIT", err)
	}
	if took < wait || took > wait+2*time.Second {
		t.Errorf("Put with the replica stopped took %v, want about the wait, %v", took, wait)
	}

	// A reply queued is a promise too.
	if err := st.Enqueue(ctx, storetest.NewJob("stalled")); !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "MAYFLY_REDIS_REPLICA_WAIT") {
		t.Errorf("Enqueue with the replica stopped = %v, want unavailable, naming MAYFLY_REDIS_REPLICA_WAIT", err)
	}

	syscall.Kill(replica.PID, syscall.SIGCONT)
	stopped = false
	if err := st.Enqueue(ctx, storetest.NewJob("after")); err != nil {
		t.Errorf("Enqueue with the replica running again: %v", err)
	}
	m, err := put("after")
	if err != nil {
		t.Fatalf("Put with the replica running again: %v", err)
	}
	// The replica has it the moment Put returns: no wait for replication here.
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rc.Close()
	rc.Do(ctx, "readonly")
	if n, err := rc.Exists(ctx, st.keys(inbox).msg(m.ID)).Result(); err != nil || n != 1 {
		t.Errorf("the replica, right after Put: EXISTS = %d, %v; want 1", n, err)
	}
	// The failed Put was undone: the inbox holds the two that succeeded.
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil || len(list) != 2 {
		t.Errorf("List = %d messages, %v; want before and after", len(list), err)
	}
}

// TestPutWithoutReplicaDoesNotWait: on a Redis without replicas (the shared one) there
// is nothing to wait for, and a Put is not held for the wait.
func TestPutWithoutReplicaDoesNotWait(t *testing.T) {
	st := openStore(t, testPrefix(t), Options{ReplicaWait: 2 * time.Second})
	m := &storage.Message{Inbox: "alone@wait.test", Raw: []byte("Subject: x\r\n\r\nx\r\n"), Expires: time.Now().Add(time.Hour)}
	start := time.Now()
	if err := st.Put(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Put on a Redis without replicas took %v, want no wait", took)
	}
}

// TestClusterFollowsFailover: once the Cluster has promoted a dead primary's replica,
// the store reads and writes that primary's slots again within a few seconds, Puts
// that wait for no replica too (they do not ask the Cluster for its map themselves).
// go-redis learns a moved slot from MOVED, which a dead node never sends, and reads
// the map again only every minute by default.
func TestClusterFollowsFailover(t *testing.T) {
	storetest.RequireRig(t)
	rig := storetest.StartCluster(t)
	ctx := context.Background()
	// With the replica wait, so that the message put before the kill is on the replica
	// that takes over (without it, it may be lost with its primary: see replicas.go).
	st, err := New(ctx, Options{URL: rig.URL(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const inbox = "moved@failover.test"
	put := func() error {
		return st.Put(ctx, &storage.Message{Inbox: inbox, Raw: []byte("Subject: x\r\n\r\nx\r\n"), Expires: time.Now().Add(time.Hour)})
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := rig.KillPrimary(kctx, storetest.KeySlot("{"+inbox+"}")); err != nil {
		t.Fatal(err)
	}
	if err := rig.WaitHealthy(kctx); err != nil {
		t.Fatal(err)
	}
	switched := time.Now()
	for {
		_, lerr := st.List(ctx, inbox, storage.Page{})
		perr := put()
		if lerr == nil && perr == nil {
			break
		}
		if time.Since(switched) > 5*time.Second {
			t.Fatalf("5s after the failover: List = %v, Put = %v; want both to work", lerr, perr)
		}
		time.Sleep(50 * time.Millisecond) // polling the store, with a deadline
	}
	t.Logf("reads and writes again %v after the Cluster was healthy", time.Since(switched).Round(time.Millisecond))
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil || len(list) < 2 {
		t.Errorf("List = %d messages, %v; want the one from before the failover and the ones after", len(list), err)
	}
}
