package mailparse

import (
	"io"
	"testing"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// BenchmarkParse parses a sign-up mail (text and HTML alternatives) with base64
// attachments, at 10 KiB, 1 MiB and 10 MiB, and reads its bodies and attachments as
// the API does.
func BenchmarkParse(b *testing.B) {
	testlib.BenchEach(b, func(b *testing.B, raw []byte) {
		for b.Loop() {
			m := Parse(raw)
			_, _ = m.Text(), m.HTML()
			for _, a := range m.Attachments {
				_ = a.DecodedSize()
			}
		}
	})
}

// BenchmarkAttachment reads one attachment of a parsed 10 MiB message, as the API
// serves it: no second walk.
func BenchmarkAttachment(b *testing.B) {
	m := Parse(testlib.BenchMessage(10 << 20))
	a := m.Attachments[0]
	b.SetBytes(a.DecodedSize())
	b.ReportAllocs()
	for b.Loop() {
		_, _ = io.Copy(io.Discard, a.Decoded())
	}
}
