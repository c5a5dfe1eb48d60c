package report

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkReport computes the report of a well-configured sender's message, each
// time for another message id (no report cache; DNS answers from the resolver's cache
// after the first), with no rspamd.
func BenchmarkReport(b *testing.B) {
	k := keys()
	r := newReporter(b, zone(b, goodZone(b), k.good), Options{})
	m := stored(goodMail().bytes(b, k.good), "mail.good.test")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.ID = strconv.Itoa(i)
		if rep, _ := r.Report(context.Background(), m); rep.Score != 10 {
			b.Fatal(dump(rep))
		}
	}
}
