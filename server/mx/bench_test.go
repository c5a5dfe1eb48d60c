package mx

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/flashmob/go-guerrilla/mail"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// BenchmarkDeliver measures what the receiver adds to go-guerrilla's own work for each
// message: the summary parse, the wire copy with its trace header, and the store write.
func BenchmarkDeliver(b *testing.B) {
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			var body bytes.Buffer
			body.WriteString("From: Sender <sender@sender.test>\r\nTo: bench@mayfly.test\r\nSubject: =?UTF-8?Q?bench_=C3=A9?=\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\n")
			for body.Len() < size {
				body.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n")
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			benchDeliver(b, body.Bytes(), 64<<20)
		})
	}
}

// benchDeliver measures deliver of raw to one inbox of a memory store that holds
// memoryLimit bytes.
func benchDeliver(b *testing.B, raw []byte, memoryLimit int64) {
	st := testlib.Memory(b, memstore.Options{MemoryLimit: memoryLimit})
	s := New(Options{Hostname: "mx.mayfly.test", Domains: []string{"mayfly.test"}}, st, testLogger(nil))
	e := mail.NewEnvelope("127.0.0.1", 1)
	e.Helo, e.ESMTP = "client.test", true
	e.MailFrom = mail.Address{User: "sender", Host: "sender.test"}
	e.RcptTo = []mail.Address{{User: "bench", Host: "mayfly.test"}}
	for b.Loop() {
		e.Data = *bytes.NewBuffer(raw) // deliver lets it go
		if reply := s.deliver(e); reply[0] != '2' {
			b.Fatal(reply)
		}
	}
}

// BenchmarkReceive measures a whole transaction over loopback, as a sender sees it:
// MAIL, RCPT, the DATA transfer through go-guerrilla's reader, our delivery and the
// store write, one session reused.
func BenchmarkReceive(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			st := testlib.Memory(b, memstore.Options{MemoryLimit: 256 << 20})
			addr := start(b, Options{
				MaxMessageSize: 4 << 20,
				RecipientRate:  limit.Rate{N: -1},
				ReceiveRate:    limit.Rate{N: -1},
			}, st)
			c := testlib.DialSMTP(b, addr)
			var body bytes.Buffer
			body.WriteString("From: Sender <sender@sender.test>\r\nTo: bench@mayfly.test\r\nSubject: bench\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\n")
			for body.Len() < size {
				body.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n")
			}
			b.SetBytes(int64(body.Len()))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Mail("sender@sender.test", nil); err != nil {
					b.Fatal(err)
				}
				if err := c.Rcpt("bench@mayfly.test", nil); err != nil {
					b.Fatal(err)
				}
				if err := send(c, body.String()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
