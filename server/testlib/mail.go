package testlib

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// MultipartMail is a message as the receiver's tests send it: encoded words in From
// and Subject, two recipients, a text part with lines that start with dots and a
// base64 attachment.
const MultipartMail = "From: =?UTF-8?Q?Zo=C3=A9?= <zoe@sender.test>\r\n" +
	"To: a@mayfly.test, \"Bee\" <b+news@mayfly.test>\r\n" +
	"Subject: =?ISO-8859-1?Q?Caf=E9_au_lait?=\r\n" +
	"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=XX\r\n" +
	"\r\n" +
	"--XX\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello.\r\n" +
	".a line that starts with a dot\r\n" +
	"..and one with two\r\n" +
	"--XX\r\n" +
	"Content-Type: application/pdf; name=\"invoice.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--XX--\r\n"

// AddMailSeeds seeds a fuzz test of a message parser with the package's sample mail,
// testdata/*.eml, and with base64 attachments that a decoder reading as it goes must
// survive: a lone last sextet, the URL-safe alphabet, junk after the padding,
// indentation.
func AddMailSeeds(f *testing.F) {
	f.Helper()
	AddFiles(f, "testdata/*.eml")
	for _, body := range []string{"QUJD\r\nRA", "QUJDR", "-_-_\r\n  QQ==\r\n-- \r\nfooter", "", "===", "Q\tU\rJ\nD"} {
		f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\n" + body + "\r\n--b--\r\n"))
	}
}

// AddFiles seeds a fuzz test with every file that pattern matches.
func AddFiles(f *testing.F, pattern string) {
	f.Helper()
	files, _ := filepath.Glob(pattern)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// WideMail is a multipart/mixed message of n image parts, for the parsers' limit on
// parts.
func WideMail(n int) []byte {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range n {
		b.WriteString("--b\r\nContent-Type: image/png\r\n\r\nx\r\n")
	}
	b.WriteString("--b--\r\n")
	return []byte(b.String())
}

// DeepMail is depth multipart/mixed parts, each the only part of the one above, around
// an image part with body, for the parsers' limit on depth.
func DeepMail(depth int, body string) []byte {
	var b strings.Builder
	for i := range depth {
		b.WriteString("Content-Type: multipart/mixed; boundary=b" + strings.Repeat("x", i) + "\r\n\r\n--b" + strings.Repeat("x", i) + "\r\n")
	}
	b.WriteString("Content-Type: image/png\r\n\r\n" + body + "\r\n")
	return []byte(b.String())
}
