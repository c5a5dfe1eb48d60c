package parse

import (
	"testing"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// BenchmarkMessageSizes is Message on server/mailparse's benchmark mail at 10 KiB,
// 1 MiB and 10 MiB (docs/benchmarks.md, "Parsing (issue 15)").
func BenchmarkMessageSizes(b *testing.B) {
	testlib.BenchEach(b, func(b *testing.B, raw []byte) {
		for b.Loop() {
			if _, err := Message(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
