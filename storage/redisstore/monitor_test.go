package redisstore

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// monitor records, through MONITOR on a connection of its own, the commands Redis runs,
// scripts' included, on keys under prefix, until stop: a marker command then shows that
// every earlier one was seen.
func monitor(t *testing.T, prefix string) (stop func() []string) {
	t.Helper()
	opts, err := redis.ParseURL(redisURL(t))
	if err != nil {
		t.Skipf("MONITOR shows one node's commands, this URL names several (%v): make test runs this on its single redis-server too", err)
	}
	conn, err := net.DialTimeout("tcp", opts.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	if opts.Password != "" {
		fmt.Fprintf(conn, "AUTH %s %s\r\n", cmp.Or(opts.Username, "default"), opts.Password)
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("AUTH: %q, %v", line, err)
		}
	}
	io.WriteString(conn, "MONITOR\r\n")
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("MONITOR: %q, %v", line, err)
	}
	admin := adminClient(t)
	return func() []string {
		defer conn.Close()
		defer admin.Close()
		marker := prefix + "end"
		if err := admin.Echo(context.Background(), marker).Err(); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("MONITOR: %v before the end marker", err)
			}
			if strings.Contains(line, marker) {
				return lines
			}
			if strings.Contains(line, prefix) {
				lines = append(lines, line)
			}
		}
	}
}

// TestUpdateDeliveriesTrimOnce: once a webhook has storage.DeliveriesKept finished
// deliveries, a batch of finished ones trims its finished set once, not once per
// delivery, and an update leaves the delivery's log entry (its score, Created, never
// changes); what is kept is the same as before (storetest's testDeliveriesTrimmed).
func TestUpdateDeliveriesTrimOnce(t *testing.T) {
	prefix := testPrefix(t)
	st := openStore(t, prefix, Options{SweepEvery: time.Hour})
	defer st.Close()
	ctx := ctxFor(t)
	start := time.Now().Add(-time.Hour)
	if err := st.PutWebhook(ctx, storetest.NewWebhook("wh_1", start)); err != nil {
		t.Fatal(err)
	}
	const batch = 20
	var all []*storage.Delivery
	for i := range storage.DeliveriesKept + batch {
		all = append(all, storetest.NewDelivery("wh_1", fmt.Sprintf("msg_%03d", i), start.Add(time.Duration(i)*time.Second), start.Add(24*time.Hour)))
	}
	if _, err := st.AddDeliveries(ctx, all); err != nil {
		t.Fatal(err)
	}
	finish := func(ds []*storage.Delivery) {
		for _, d := range ds {
			d.State = storage.DeliveryDelivered
		}
		if err := st.UpdateDeliveries(ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	finish(all[:storage.DeliveriesKept])
	stop := monitor(t, prefix)
	finish(all[storage.DeliveriesKept:])
	lines := stop()
	trims, logAdds := 0, 0
	for _, line := range lines {
		switch {
		case strings.Contains(line, `"ZREMRANGEBYRANK"`):
			trims++
		case strings.Contains(line, `"ZADD"`) && strings.Contains(line, hooksTag+"log:"):
			logAdds++
		}
	}
	if trims != 1 || logAdds != 0 {
		t.Errorf("UpdateDeliveries of %d finished deliveries over a full webhook: %d trims, %d log entries written; want 1 and 0", batch, trims, logAdds)
	}
	list, err := st.Deliveries(ctx, "wh_1", 0)
	if err != nil || len(list) != storage.DeliveriesKept || list[0].ID != all[len(all)-1].ID || list[len(list)-1].ID != all[batch].ID {
		t.Errorf("Deliveries = %d, %v; want the newest %d finished", len(list), err, storage.DeliveriesKept)
	}
}

// TestPutRawOutsideScript: Put writes a message's bytes into its hash itself, not
// through the put script, whose Lua hashes every byte of every string it is given
// (Redis 7: the cost of a 100 KiB message was most of the script's); the message reads
// back whole, listed with its expiry, and the hash expires with it.
func TestPutRawOutsideScript(t *testing.T) {
	prefix := testPrefix(t)
	st := openStore(t, prefix, Options{SweepEvery: time.Hour})
	defer st.Close()
	ctx := ctxFor(t)
	m := storetest.NewMessage("raw@mayfly.test", "raw")
	m.Raw = []byte("Subject: raw\r\n\r\n" + strings.Repeat("rawmarker ", 1000) + "\r\n")
	stop := monitor(t, prefix)
	if err := st.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	lines := stop()
	scripts, writes := 0, 0
	for _, line := range lines {
		line = strings.ToLower(line) // a client's commands as it sent them, a script's upper case
		switch {
		case strings.Contains(line, `"evalsha"`) || strings.Contains(line, `"eval"`):
			scripts++
			if strings.Contains(line, "rawmarker") {
				t.Errorf("the put script was given the message's bytes: %.200s...", line)
			}
		case strings.Contains(line, `"hset"`) && strings.Contains(line, "rawmarker"):
			writes++
		}
	}
	if scripts == 0 || writes != 1 {
		t.Errorf("Put ran %d scripts and wrote the bytes %d times, want a script and one write", scripts, writes)
	}
	raw, err := st.Raw(ctx, m.Inbox, m.ID)
	if err != nil || string(raw) != string(m.Raw) {
		t.Fatalf("Raw = %d bytes, %v; want the %d put", len(raw), err, len(m.Raw))
	}
	c := adminClient(t)
	defer c.Close()
	ttl, err := c.PTTL(ctx, st.keys(m.Inbox).msg(m.ID)).Result()
	if want := time.Until(m.Expires); err != nil || ttl <= 0 || ttl > want+time.Second {
		t.Errorf("the message's hash expires in %v, %v; want about %v", ttl, err, want)
	}
}

// TestPutScriptStateCalls: the put script reads an inbox's state once and writes it
// once, and sets its expiry in one call while it has one: each call a script makes
// costs Redis a few microseconds, and the script used six on the state.
func TestPutScriptStateCalls(t *testing.T) {
	prefix := testPrefix(t)
	st := openStore(t, prefix, Options{SweepEvery: time.Hour})
	defer st.Close()
	ctx := ctxFor(t)
	const inbox = "calls@mayfly.test"
	if err := st.Put(ctx, storetest.NewMessage(inbox, "one")); err != nil {
		t.Fatal(err)
	}
	stop := monitor(t, prefix)
	m := storetest.NewMessage(inbox, "two")
	if err := st.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	lines := stop()
	var state []string
	for _, line := range lines {
		if strings.Contains(line, " lua]") && strings.Contains(line, st.keys(inbox).state+`"`) {
			state = append(state, strings.Fields(line)[3])
		}
	}
	if want := []string{`"HMGET"`, `"HSET"`, `"PEXPIREAT"`}; !slices.Equal(state, want) {
		t.Errorf("the put script's calls on the state: %v, want %v", state, want)
	}
	if m.UID != 2 {
		t.Errorf("second message's UID = %d, want 2", m.UID)
	}
	got, err := st.Mailbox(ctx, inbox)
	if err != nil || got.UIDNext != 3 {
		t.Errorf("Mailbox = %+v, %v; want UIDNext 3", got, err)
	}
}
