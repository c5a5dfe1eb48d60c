package mx

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/flashmob/go-guerrilla/mail"

	"github.com/mayfly-mail/mayfly/server/internal/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// BenchmarkDeliverMIME is BenchmarkDeliver on a sign-up mail with attachments
// (testlib.BenchMessage) at 10 KiB, 1 MiB and 10 MiB: the summary's walk of a MIME tree is
// what a plain-text body does not measure.
func BenchmarkDeliverMIME(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20, 10 << 20} {
		raw := testlib.BenchMessage(size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			st := memstore.New(memstore.Options{MemoryLimit: 256 << 20})
			defer st.Close()
			s := New(Options{Hostname: "mx.mayfly.test", Domains: []string{"mayfly.test"}}, st, testLogger(nil))
			e := mail.NewEnvelope("127.0.0.1", 1)
			e.Helo, e.ESMTP = "client.test", true
			e.MailFrom = mail.Address{User: "sender", Host: "sender.test"}
			e.RcptTo = []mail.Address{{User: "bench", Host: "mayfly.test"}}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				e.Data = *bytes.NewBuffer(raw) // deliver lets it go
				if reply := s.deliver(e); reply[0] != '2' {
					b.Fatal(reply)
				}
			}
		})
	}
}
