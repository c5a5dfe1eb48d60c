package mx

import (
	"testing"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// BenchmarkDeliverMIME is BenchmarkDeliver on a sign-up mail with attachments
// (testlib.BenchMessage) at 10 KiB, 1 MiB and 10 MiB: the summary's walk of a MIME tree is
// what a plain-text body does not measure.
func BenchmarkDeliverMIME(b *testing.B) {
	testlib.BenchEach(b, func(b *testing.B, raw []byte) { benchDeliver(b, raw, 256<<20) })
}
