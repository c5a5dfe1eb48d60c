// Package testlib holds what the tests of cmd/, server/ and storage/ share: servers on
// free ports, a test CA, protocol clients, the stores under test and waits with a
// deadline, written once instead of in every package's tests. Only tests import it; it
// sits outside internal/ so that cmd/ and storage/ tests can, as storage/storetest does.
package testlib

import (
	"os"
	"os/exec"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Curl returns the path of curl, a client nobody here wrote, or skips the test; under
// MAYFLY_REQUIRE_CURL=1, as make test sets, a missing curl fails it instead.
func Curl(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("MAYFLY_REQUIRE_CURL") == "1" {
			t.Fatal("curl is not installed, and MAYFLY_REQUIRE_CURL=1 says the curl tests must run")
		}
		t.Skip("curl is not installed: apt-get install curl, or run make test, which installs it (MAYFLY_REQUIRE_CURL=1 makes this a failure)")
	}
	return path
}

// Metric sums the series of the counter or histogram name in g that carry the label
// label=value: a counter's value, a histogram's count of observations.
func Metric(t testing.TB, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return sum
}
