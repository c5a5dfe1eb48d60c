package httpapi

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

func gaugeValue(g prometheus.Gauge) float64 { return testutil.ToFloat64(g) }

// waitForGauge polls g until it counts n or more of what.
func waitForGauge(t *testing.T, g prometheus.Gauge, n int, what string) {
	t.Helper()
	testlib.WaitFor(t, fmt.Sprintf("%d %s open", n, what), func() bool { return int(gaugeValue(g)) >= n })
}
