package testlib

// BenchMessage is the one corpus the parser, the old API parser and the receiver are
// measured on (docs/benchmarks.md, "Parsing (issue 15)", "Ingest").

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// BenchMessage is a sign-up mail of about size bytes: a multipart/mixed of a
// multipart/alternative (quoted-printable text and HTML) and base64 attachments that
// make up the rest.
func BenchMessage(size int) []byte {
	var b strings.Builder
	b.WriteString("Return-Path: <bounce@example.com>\r\n" +
		"Received: from mail.example.com (mail.example.com [192.0.2.1])\r\n\tby mx.mayfly.test with ESMTPS id 4f2a; Mon, 23 Nov 2026 12:00:00 +0000\r\n" +
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1;\r\n\th=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgbG9va3MgbGlrZSBvbmU=\r\n" +
		"From: =?utf-8?q?Example_K=C3=BCndigung?= <noreply@example.com>\r\n" +
		"To: ann@mayfly.test\r\n" +
		"Subject: =?utf-8?q?Bitte_best=C3=A4tige_deine_E-Mail-Adresse?=\r\n" +
		"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n" +
		"Message-ID: <bench@example.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"mixed-b\"\r\n\r\n")
	textLen, htmlLen, atts := 1<<10, 4<<10, 1
	switch {
	case size >= 10<<20:
		textLen, htmlLen, atts = 2<<10, 50<<10, 3
	case size >= 1<<20:
		textLen, htmlLen, atts = 2<<10, 20<<10, 2
	}
	b.WriteString("--mixed-b\r\nContent-Type: multipart/alternative; boundary=\"alt-b\"\r\n\r\n")
	b.WriteString("--alt-b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	b.WriteString(benchText(textLen, "Hallo Ann, bitte best=C3=A4tige deine Adresse: https://app.example.com/confirm?t=3D8f3a2b1c Code 482 917.\r\n"))
	b.WriteString("--alt-b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	b.WriteString("<html><body>" + benchText(htmlLen, "<p style=3D\"font-family:Arial\">Hallo Ann, <a href=3D\"https://app.example.com/confirm?t=3D8f3a2b1c\">best=C3=A4tige</a> Code <b>482 917</b>.</p>\r\n") + "</body></html>\r\n")
	b.WriteString("--alt-b--\r\n")
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	left := size - b.Len() - atts*200
	for i := range atts {
		n := max(left/atts*3/4, 64)
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(data)
		fmt.Fprintf(&b, "--mixed-b\r\nContent-Type: application/pdf; name=\"doc%d.pdf\"\r\nContent-Disposition: attachment; filename=\"doc%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", i, i)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--mixed-b--\r\n")
	return []byte(b.String())
}

// benchText repeats line up to about n bytes.
func benchText(n int, line string) string {
	return strings.Repeat(line, max(n/len(line), 1))
}

// BenchSizes are the sizes of BenchMessage the benchmarks measure.
var BenchSizes = []int{10 << 10, 1 << 20, 10 << 20}

// BenchEach runs fn on BenchMessage at each of BenchSizes, as sub-benchmarks named by
// the size in KiB that report bytes per second and allocations.
func BenchEach(b *testing.B, fn func(b *testing.B, raw []byte)) {
	for _, size := range BenchSizes {
		raw := BenchMessage(size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			fn(b, raw)
		})
	}
}
