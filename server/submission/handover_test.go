package submission

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// TestHandover: a node stopped in the middle of a delivery leaves the job leased; once
// the lease runs out another node on the same Redis takes it and delivers it, once.
func TestHandover(t *testing.T) {
	url := storetest.RedisURL(t)
	if url == "" {
		t.Skip("the handover between nodes needs Redis: set MAYFLY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run it (make test does)")
	}
	prefix := redisPrefix()
	stA, stB := redisStore(t, url, prefix), redisStore(t, url, prefix)
	received(t, stA, box, "", ann)

	// The sink keeps node A's session waiting at EHLO until the test is over.
	hold := make(chan struct{})
	defer close(hold)
	k := newSink(t, sinkOptions{hold: hold})
	const lease = 2 * time.Second
	opts := Options{Relay: relayURL(t, k, "", ""), Workers: 1, Lease: lease, Options: limit.Options{ShutdownTimeout: 50 * time.Millisecond}}
	a := newEnv(t, stA, setup{opts: opts})
	b := newEnv(t, stB, setup{opts: opts})

	a.startWorkers()
	c := login(t, a.addr, box, token(box))
	if err := send(c, box, []string{ann}, letter(box, ann, "handover", "from A, via B")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-k.held:
	case <-time.After(30 * time.Second):
		t.Fatal("node A never reached the sink")
	}
	leasedAt := time.Now()
	a.stopWorkers() // cuts the delivery after its 50ms of grace

	b.startWorkers()
	m := k.next(t)
	if waited := time.Since(leasedAt); waited < lease/2 {
		t.Errorf("node B delivered %v after A took the job, before A's lease of %v could run out", waited, lease)
	}
	if m.from != box || len(m.to) != 1 || m.to[0] != ann {
		t.Errorf("sink got MAIL FROM %q RCPT TO %q", m.from, m.to)
	}
	waitFor(t, "B to count the delivery", func() bool {
		return testutil.ToFloat64(b.srv.metrics.delivery.WithLabelValues(deliveryDelivered)) == 1
	})
	b.drained(t, stB, k)
	if got := testutil.ToFloat64(a.srv.metrics.delivery.WithLabelValues(deliveryDelivered)); got != 0 {
		t.Errorf("node A counted %v deliveries, want 0", got)
	}
}
