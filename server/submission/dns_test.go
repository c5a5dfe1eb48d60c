package submission

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// TestDeliverSharesDNSClient: the MX lookup and the MX host's address lookup of a
// delivery go through the DNS client of Options.Resolver, the one verification uses,
// so its cache and its metrics see them.
func TestDeliverSharesDNSClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	res, err := dnsclient.New(dnsclient.Options{Server: testZone(t), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	st := memory(t)
	received(t, st, box, "bounce@sender.test", "Ann <"+ann+">")
	k := newSink(t, sinkOptions{})
	e := newEnv(t, st, setup{opts: Options{Resolver: res, OutboundPort: k.port}})
	e.startWorkers()
	c := login(t, e.addr, box, token(box))
	if err := send(c, box, []string{"ann@sender.test"}, letter(box, ann, "Re: hello", "Thanks!")); err != nil {
		t.Fatal(err)
	}
	k.next(t)
	for _, qtype := range []string{"MX", "A"} {
		if n := testlib.Metric(t, reg, "mayfly_dns_query_duration_seconds", "type", qtype); n == 0 {
			t.Errorf("the shared DNS client sent no %s query, want the MX of sender.test and the A of its MX host", qtype)
		}
	}
}
