package mailparse

import (
	"slices"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		mail string
		want Summary
	}{
		{"plain", "From: ann@x.test\r\nTo: b@mayfly.test\r\nSubject: Hi\r\nDate: Tue, 1 Dec 2026 08:00:00 +0000\r\n\r\nbody\r\n",
			Summary{From: "ann@x.test", To: []string{"b@mayfly.test"}, Subject: "Hi", Date: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
		{"encoded words in several charsets", "From: =?ISO-8859-1?Q?J=F6rg?= <j@x.test>\r\nSubject: =?KOI8-R?B?8NLJ18XU?= =?UTF-8?B?8J+Zgg==?=\r\n\r\n",
			Summary{From: "Jörg <j@x.test>", Subject: "Привет🙂"}},
		{"shift_jis subject", "Subject: =?Shift_JIS?B?g2WDWINn?=\r\n\r\n", Summary{Subject: "テスト"}},
		{"unknown charset kept as sent", "Subject: =?x-nonsense?Q?abc?=\r\n\r\n", Summary{Subject: "=?x-nonsense?Q?abc?="}},
		{"unparsable from kept as text", "From: not an address at all\r\n\r\n", Summary{From: "not an address at all"}},
		{"several to", "To: a@x.test, \"B, Jr.\" <b@x.test>\r\n\r\n", Summary{To: []string{"a@x.test", "B, Jr. <b@x.test>"}}},
		{"reply-to addresses", "Reply-To: Help <help@x.test>, b@y.test\r\n\r\n", Summary{ReplyTo: []string{"help@x.test", "b@y.test"}}},
		{"unparsable reply-to", "Reply-To: nobody home\r\n\r\n", Summary{}},
		{"bad date", "Date: yesterday\r\n\r\n", Summary{}},
		{"date with comment and one-digit day", "Date: Tue, 1 Dec 2026 08:00:00 +0000 (UTC)\r\n\r\n", Summary{Date: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
		{"date without weekday", "Date: 01 Dec 2026 09:00:00 +0100\r\n\r\n", Summary{Date: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
		{"obsolete zone name", "Date: Tue, 1 Dec 2026 03:00:00 EST\r\n\r\n", Summary{Date: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
		{"no header at all", "just a line\r\n", Summary{}},
		{"empty", "", Summary{}},
		{"lf only", "Subject: lf\n\nbody\n", Summary{Subject: "lf"}},
		{"attachment", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment\r\n\r\nPNG\r\n--b--\r\n",
			Summary{HasAttachments: true}},
		{"name parameter", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--b--\r\n",
			Summary{HasAttachments: true}},
		{"nested inline image with file name", "Content-Type: multipart/alternative; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nt\r\n--o\r\nContent-Type: multipart/related; boundary=i\r\n\r\n--i\r\nContent-Type: text/html\r\n\r\n<img src=cid:x>\r\n--i\r\nContent-Type: image/png\r\nContent-ID: <x>\r\nContent-Disposition: inline; filename=logo.png\r\n\r\nPNG\r\n--i--\r\n--o--\r\n",
			Summary{HasAttachments: true}},
		{"alternative without attachment", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nt\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>t</p>\r\n--b--\r\n",
			Summary{}},
		{"single part attachment", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=a.zip\r\n\r\nPK\r\n", Summary{HasAttachments: true}},
		{"unterminated multipart", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nno end", Summary{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summarize([]byte(tt.mail))
			if got.From != tt.want.From || !slices.Equal(got.To, tt.want.To) || !slices.Equal(got.ReplyTo, tt.want.ReplyTo) || got.Subject != tt.want.Subject ||
				!got.Date.Equal(tt.want.Date) || got.HasAttachments != tt.want.HasAttachments {
				t.Errorf("Summarize(%q) = %+v, want %+v", tt.mail, got, tt.want)
			}
		})
	}
}

// A CRLF hidden in an encoded word (=0D=0A) must not reach a listing: it is one line.
func TestSummaryKeepsOneLine(t *testing.T) {
	got := Summarize([]byte("From: =?UTF-8?Q?Ann=0D=0AEvil?= <a@x.test>\r\nSubject: =?UTF-8?Q?one=0D=0Atwo?=\r\n\r\n"))
	if got.Subject != "one two" || got.From != "Ann Evil <a@x.test>" {
		t.Errorf("Parse = %q, %q; want one line each", got.Subject, got.From)
	}
}

// FuzzSummarize feeds hostile messages to the parser: it must not panic or
// hang. The seeds are the sample messages in the receiver's testdata.
func FuzzSummarize(f *testing.F) {
	testlib.AddFiles(f, "../mx/testdata/*.eml")
	f.Add([]byte(multipartMail))
	f.Fuzz(func(t *testing.T, data []byte) {
		Summarize(data)
	})
}

const multipartMail = testlib.MultipartMail
