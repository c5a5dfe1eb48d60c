package parse

import (
	"fmt"
	"testing"

	"github.com/mayfly-mail/mayfly/server/internal/testlib"
)

// BenchmarkMessageSizes is Message on server/mailparse's benchmark mail at 10 KiB,
// 1 MiB and 10 MiB (docs/benchmarks.md, "Parsing (issue 15)").
func BenchmarkMessageSizes(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20, 10 << 20} {
		raw := testlib.BenchMessage(size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Message(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
