package mx

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/flashmob/go-guerrilla/mail"

	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// BenchmarkDeliver measures what the receiver adds to go-guerrilla's own work for each
// message: the summary parse, the wire copy with its trace header, and the store write.
func BenchmarkDeliver(b *testing.B) {
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			st := memstore.New(memstore.Options{MemoryLimit: 64 << 20})
			defer st.Close()
			s := New(Options{Hostname: "mx.mayfly.test", Domains: []string{"mayfly.test"}}, st, testLogger(nil))
			e := mail.NewEnvelope("127.0.0.1", 1)
			e.Helo, e.ESMTP = "client.test", true
			e.MailFrom = mail.Address{User: "sender", Host: "sender.test"}
			e.RcptTo = []mail.Address{{User: "bench", Host: "mayfly.test"}}
			var body bytes.Buffer
			body.WriteString("From: Sender <sender@sender.test>\nTo: bench@mayfly.test\nSubject: =?UTF-8?Q?bench_=C3=A9?=\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <1@sender.test>\n\n")
			for body.Len() < size {
				body.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\n")
			}
			e.Data.Write(body.Bytes())
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if reply := s.deliver(e); reply[0] != '2' {
					b.Fatal(reply)
				}
			}
		})
	}
}
