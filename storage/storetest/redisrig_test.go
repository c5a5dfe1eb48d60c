package storetest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCluster starts the rig's cluster and checks what the failover tests rely on: the
// slots all served by the three masters, KeySlot as the cluster computes it, and a
// killed master replaced by its replica.
func TestCluster(t *testing.T) {
	RequireRig(t)
	t.Parallel()
	start := time.Now()
	c := StartCluster(t)
	t.Logf("cluster up in %v: %s", time.Since(start), c.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if m := c.Masters(ctx); len(m) != 3 {
		t.Fatalf("masters: %v", m)
	}
	if r := c.Replicas(ctx); len(r) != 3 {
		t.Fatalf("replicas: %v", r)
	}
	addr := c.Nodes(ctx)[0].Addr
	for _, key := range []string{"", "a", "mayfly:{k3x9@example.org}:msgs", "{}x", "{a}{b}", "foo{}{bar}", "mayfly:expiry"} {
		out, err := cli(ctx, addr, "cluster", "keyslot", key)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := strconv.Atoi(strings.TrimSpace(out)); KeySlot(key) != want {
			t.Errorf("KeySlot(%q) = %d, the cluster says %d", key, KeySlot(key), want)
		}
	}
	slot := KeySlot("mayfly:{k3x9@example.org}:msgs")
	old, err := c.KillPrimary(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("after killing %s: %v\n%s", old.Addr, err, c.Logs())
	}
	now, err := c.MasterOf(ctx, slot)
	if err != nil || now.Addr == old.Addr {
		t.Fatalf("slot %d served by %v (%v), killed %s", slot, now, err, old.Addr)
	}
	if err := c.Restart(ctx, old.Addr); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("after restarting %s: %v\n%s", old.Addr, err, c.Logs())
	}
	t.Logf("failover and rejoin in %v", time.Since(start))
}

// TestSentinel starts the rig's Sentinel setup and fails its primary over.
func TestSentinel(t *testing.T) {
	RequireRig(t)
	t.Parallel()
	start := time.Now()
	s := StartSentinel(t)
	t.Logf("sentinel up in %v: %s", time.Since(start), s.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := s.Primary(ctx)
	if err != nil || p.Addr != s.Nodes()[0].Addr {
		t.Fatalf("primary %v (%v), want %s", p, err, s.Nodes()[0].Addr)
	}
	old, err := s.KillPrimary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now, err := s.WaitPrimaryChange(ctx, old.Addr)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Logs())
	}
	if now.Addr != s.Nodes()[1].Addr {
		t.Fatalf("new primary %s, want the replica %s", now.Addr, s.Nodes()[1].Addr)
	}
	t.Logf("failover in %v", time.Since(start))
}
