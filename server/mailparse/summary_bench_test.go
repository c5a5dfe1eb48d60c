package mailparse

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkSummarize reads the listing's facts of a plain 10 KiB mail and of a sign-up
// mail with base64 attachments at 1 MiB and 10 MiB (the attachments after the text),
// as the receiver does for each message.
func BenchmarkSummarize(b *testing.B) {
	plain := "From: Sender <sender@sender.test>\r\nTo: bench@mayfly.test\r\nSubject: =?UTF-8?Q?bench_=C3=A9?=\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\n" +
		strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n", 10<<10/78)
	msgs := []struct {
		name string
		raw  []byte
	}{{"plain10KiB", []byte(plain)}, {"mime1MiB", mimeMessage(1 << 20)}, {"mime10MiB", mimeMessage(10 << 20)}}
	for _, m := range msgs {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(len(m.raw)))
			b.ReportAllocs()
			for b.Loop() {
				if s := Summarize(m.raw); s.Subject == "" {
					b.Fatal("no subject")
				}
			}
		})
	}
}

// mimeMessage is a multipart/mixed of a text/html alternative and base64 PDFs that
// make up about size bytes.
func mimeMessage(size int) []byte {
	var sb strings.Builder
	sb.WriteString("From: Shop <noreply@shop.test>\r\nTo: ann@mayfly.test\r\nSubject: Your invoice\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n" +
		"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour invoice is attached.\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Your invoice is attached.</p>\r\n--a--\r\n")
	line := strings.Repeat("QUJD", 19) + "\r\n"
	for i := range 2 {
		fmt.Fprintf(&sb, "--m\r\nContent-Type: application/pdf; name=\"invoice%d.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", i, i)
		sb.WriteString(strings.Repeat(line, size/2/len(line)))
	}
	sb.WriteString("--m--\r\n")
	return []byte(sb.String())
}
