package redisstore

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// TestInboxEventsGone: a position before the first event kept, once trimming took some,
// is gone, one at or after it is not; a log whose key expired answers by the
// position's age.
func TestInboxEventsGone(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testInboxEventsGone(t) })
}

func testInboxEventsGone(t *testing.T) {
	_, st, c := storeAndAdmin(t)
	ctx := ctxFor(t)
	inbox := "gone@mayfly.test"
	for i := range 3 {
		if err := st.Put(ctx, storetest.NewMessage(inbox, strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	list := storetest.InboxEvents(t, st, inbox, "")
	if len(list) != 3 {
		t.Fatalf("events = %d, want 3", len(list))
	}
	// Trim as the scripts do past the history, exactly: the first two go.
	if err := c.XTrimMinID(ctx, st.keys(inbox).log, list[2].Seq).Err(); err != nil {
		t.Fatal(err)
	}
	first, _ := parseStreamID(list[0].Seq)
	before := strconv.FormatUint(first.ms-1, 10) + "-0"
	for _, after := range []string{before, list[0].Seq, list[1].Seq} {
		if got, err := st.InboxEvents(ctx, inbox, after, 0); !errors.Is(err, storage.ErrGone) {
			t.Errorf("after %s, before the first kept %s: %d events, %v; want ErrGone", after, list[2].Seq, len(got), err)
		}
	}
	if got, err := st.InboxEvents(ctx, inbox, list[2].Seq, 0); err != nil || len(got) != 0 {
		t.Errorf("after the first kept event = %d events, %v; want none, no error", len(got), err)
	}
	if got, err := st.InboxEvents(ctx, inbox, "", 0); err != nil || len(got) != 1 || got[0].Seq != list[2].Seq {
		t.Errorf("from the oldest kept = %d events, %v; want the one kept", len(got), err)
	}
	// No log at all: recent positions have missed nothing, old ones may have.
	now := time.Now()
	recent := strconv.FormatInt(now.Add(-time.Minute).UnixMilli(), 10) + "-0"
	old := strconv.FormatInt(now.Add(-storage.EventHistory-time.Minute).UnixMilli(), 10) + "-0"
	if got, err := st.InboxEvents(ctx, "nolog@mayfly.test", recent, 0); err != nil || len(got) != 0 {
		t.Errorf("no log, after a minute ago = %d events, %v; want none, no error", len(got), err)
	}
	if _, err := st.InboxEvents(ctx, "nolog@mayfly.test", old, 0); !errors.Is(err, storage.ErrGone) {
		t.Errorf("no log, after a position older than the history: %v, want ErrGone", err)
	}
}

// TestFeedNodeDies: a node reads an event of the feed and dies without acknowledging it;
// the other node of the store gets it once the lease runs out.
func TestFeedNodeDies(t *testing.T) {
	a, b := twoNodes(t)
	ctx := ctxFor(t)
	feedOn(t, a)
	m := storetest.NewMessage("dies@mayfly.test", "dies")
	if err := a.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	const lease = 500 * time.Millisecond
	got, err := a.ReadFeed(ctx, "hooks", "node-a", 10, time.Second, lease)
	if err != nil || len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("node a read %+v, %v; want the event", got, err)
	}
	a.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := b.ReadFeed(ctx, "hooks", "node-b", 10, 100*time.Millisecond, lease)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].ID == m.ID && got[0].Type == storage.EventAdded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node b never got the event node a died with")
		}
	}
}

// TestFeedTrim: the feed drops what is older than feedHistory.
func TestFeedTrim(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testFeedTrim(t) })
}

func testFeedTrim(t *testing.T) {
	_, st, c := storeAndAdmin(t)
	ctx := ctxFor(t)
	old := strconv.FormatInt(time.Now().Add(-feedHistory-time.Hour).UnixMilli(), 10) + "-0"
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: st.feedKey(), ID: old, Values: []any{"e", "x"}}).Err(); err != nil {
		t.Fatal(err)
	}
	// Full stream nodes go with MINID ~; make the old entry's node full.
	for range 200 {
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: st.feedKey(), ID: strings.Replace(old, "-0", "-*", 1), Values: []any{"e", "x"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(ctx, storetest.NewMessage("trim@mayfly.test", "new")); err != nil {
		t.Fatal(err)
	}
	st.trimFeed(ctx)
	// MINID ~ takes whole stream nodes (100 entries): the old ones in a node with the
	// new one stay until later.
	if n, err := c.XLen(ctx, st.feedKey()).Result(); err != nil || n > 101 {
		t.Errorf("feed length after trimming = %d, %v; want 201 old entries gone but for a node's", n, err)
	}
}

// TestWebhookKeysOneTag: every webhook key shares one hash tag, so each script runs on
// one slot of a Cluster, and none but the webhook's own are left after DeleteWebhook.
func TestWebhookKeysOneTag(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testWebhookKeysOneTag(t) })
}

func testWebhookKeysOneTag(t *testing.T) {
	prefix, st, c := storeAndAdmin(t)
	ctx := ctxFor(t)
	now := time.Now()
	for _, id := range []string{"wh_1", "wh_{2}"} {
		if err := st.PutWebhook(ctx, storetest.NewWebhook(id, now)); err != nil {
			t.Fatal(err)
		}
		d := storetest.NewDelivery(id, "msg_1", now, now)
		if _, err := st.AddDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		d.State = storage.DeliveryDelivered
		if err := st.UpdateDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddDelivery(ctx, storetest.NewDelivery(id, "msg_2", now, now)); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := scanKeys(ctx, c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if strings.Contains(k, "webhooks") {
			n++
			if got := tagOf(k); got != "mayfly-webhooks" {
				t.Errorf("hash tag of %q = %q, want mayfly-webhooks", k, got)
			}
		}
	}
	if n != 2+3*2 {
		t.Errorf("%d webhook keys, want hooks, due and three of each webhook: %q", n, keys)
	}
	if err := st.DeleteWebhook(ctx, "wh_{2}"); err != nil {
		t.Fatal(err)
	}
	keys, _ = scanKeys(ctx, c, prefix+hooksTag)
	for _, k := range keys {
		if strings.Contains(k, "wh_{2}") {
			t.Errorf("key %q left after DeleteWebhook", k)
		}
	}
	if due, err := c.ZRange(ctx, st.hookKeys("").due, 0, -1).Result(); err != nil || len(due) != 1 || due[0] != "wh_1\nmsg_2" {
		t.Errorf("due set after DeleteWebhook = %q, %v; want wh_1's pending one", due, err)
	}
}

// TestFeedHasTTL: the feed expires if no node writes or trims it any more, written by
// the scripts or after them.
func TestFeedHasTTL(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testFeedHasTTL(t) })
}

func testFeedHasTTL(t *testing.T) {
	prefix, _, c := storeAndAdmin(t)
	ctx := ctxFor(t)
	for _, after := range []bool{false, true} {
		st := openStore(t, prefix, Options{feedAfterScript: after})
		defer st.Close()
		if err := c.Del(ctx, st.feedKey()).Err(); err != nil {
			t.Fatal(err)
		}
		feedOn(t, st)
		if err := st.Put(ctx, storetest.NewMessage("ttl@mayfly.test", "ttl")); err != nil {
			t.Fatal(err)
		}
		if ttl, err := c.PTTL(ctx, st.feedKey()).Result(); err != nil || ttl < feedTTL-time.Minute || ttl > feedTTL {
			t.Errorf("feed written after the script %v: PTTL %v, %v; want %v", after, ttl, err, feedTTL)
		}
	}
}

// feedOn makes a webhook: on one Redis and Sentinel's the scripts write the feed only
// while one exists.
func feedOn(t *testing.T, st *Store) {
	t.Helper()
	if err := st.PutWebhook(ctxFor(t), storetest.NewWebhook("wh_feed", time.Now())); err != nil {
		t.Fatal(err)
	}
}

// TestFeedOnlyWhileWebhooks: the scripts write the feed while a webhook exists and not
// otherwise (Cluster: the caller always does); a webhook made later reads what came
// after it.
func TestFeedOnlyWhileWebhooks(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) {
		prefix, _, c := storeAndAdmin(t)
		ctx := ctxFor(t)
		st := openStore(t, prefix, Options{})
		defer st.Close()
		length := func() int64 {
			t.Helper()
			n, err := c.XLen(ctx, st.feedKey()).Result()
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		put := func(subject string) *storage.Message {
			t.Helper()
			m := storetest.NewMessage("only-hooks@mayfly.test", subject)
			if err := st.Put(ctx, m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		if _, err := st.ReadFeed(ctx, "only-hooks", "c", 10, time.Millisecond, time.Minute); err != nil {
			t.Fatal(err) // makes the group, and the feed with it
		}
		if ttl, err := c.PTTL(ctx, st.feedKey()).Result(); err != nil || ttl <= 0 {
			t.Errorf("the feed made empty by its first reader: PTTL %v, %v; want a TTL", ttl, err)
		}
		put("before")
		if n := length(); st.feedInScript && n != 0 {
			t.Errorf("no webhook: the feed has %d events, want none", n)
		} else if !st.feedInScript && n != 1 {
			t.Errorf("no webhook, Cluster: the feed has %d events, want 1", n)
		}
		before := length()
		feedOn(t, st)
		after := put("after")
		if n := length(); n != before+1 {
			t.Errorf("with a webhook: the feed has %d events, want %d", n, before+1)
		}
		got, err := st.ReadFeed(ctx, "only-hooks", "c", 10, time.Second, time.Minute)
		if err != nil || len(got) == 0 || got[len(got)-1].ID != after.ID {
			t.Errorf("ReadFeed = %+v, %v; want the message put after the webhook last", got, err)
		}
		if err := st.DeleteWebhook(ctx, "wh_feed"); err != nil {
			t.Fatal(err)
		}
		put("gone")
		if n := length(); st.feedInScript && n != before+1 {
			t.Errorf("webhook deleted: the feed has %d events, want %d", n, before+1)
		}
	})
}
