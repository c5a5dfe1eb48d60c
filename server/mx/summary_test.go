package mx

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseSummary(t *testing.T) {
	tests := []struct {
		name string
		mail string
		want summary
	}{
		{"plain", "From: ann@x.test\r\nTo: b@mayfly.test\r\nSubject: Hi\r\nDate: Tue, 1 Dec 2026 08:00:00 +0000\r\n\r\nbody\r\n",
			summary{From: "ann@x.test", To: []string{"b@mayfly.test"}, Subject: "Hi", Date: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
		{"encoded words in several charsets", "From: =?ISO-8859-1?Q?J=F6rg?= <j@x.test>\r\nSubject: =?KOI8-R?B?8NLJ18XU?= =?UTF-8?B?8J+Zgg==?=\r\n\r\n",
			summary{From: "Jörg <j@x.test>", Subject: "Привет🙂"}},
		{"shift_jis subject", "Subject: =?Shift_JIS?B?g2WDWINn?=\r\n\r\n", summary{Subject: "テスト"}},
		{"unknown charset kept as sent", "Subject: =?x-nonsense?Q?abc?=\r\n\r\n", summary{Subject: "=?x-nonsense?Q?abc?="}},
		{"unparsable from kept as text", "From: not an address at all\r\n\r\n", summary{From: "not an address at all"}},
		{"several to", "To: a@x.test, \"B, Jr.\" <b@x.test>\r\n\r\n", summary{To: []string{"a@x.test", "B, Jr. <b@x.test>"}}},
		{"reply-to addresses", "Reply-To: Help <help@x.test>, b@y.test\r\n\r\n", summary{ReplyTo: []string{"help@x.test", "b@y.test"}}},
		{"unparsable reply-to", "Reply-To: nobody home\r\n\r\n", summary{}},
		{"bad date", "Date: yesterday\r\n\r\n", summary{}},
		{"date with comment and one-digit day", "Date: Tue, 1 Dec 2026 08:00:00 +0000 (UTC)\r\n\r\n", summary{Date: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
		{"date without weekday", "Date: 01 Dec 2026 09:00:00 +0100\r\n\r\n", summary{Date: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
		{"obsolete zone name", "Date: Tue, 1 Dec 2026 03:00:00 EST\r\n\r\n", summary{Date: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
		{"no header at all", "just a line\r\n", summary{}},
		{"empty", "", summary{}},
		{"lf only", "Subject: lf\n\nbody\n", summary{Subject: "lf"}},
		{"attachment", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment\r\n\r\nPNG\r\n--b--\r\n",
			summary{HasAttachments: true}},
		{"name parameter", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--b--\r\n",
			summary{HasAttachments: true}},
		{"nested inline image with file name", "Content-Type: multipart/alternative; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nt\r\n--o\r\nContent-Type: multipart/related; boundary=i\r\n\r\n--i\r\nContent-Type: text/html\r\n\r\n<img src=cid:x>\r\n--i\r\nContent-Type: image/png\r\nContent-ID: <x>\r\nContent-Disposition: inline; filename=logo.png\r\n\r\nPNG\r\n--i--\r\n--o--\r\n",
			summary{HasAttachments: true}},
		{"alternative without attachment", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nt\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>t</p>\r\n--b--\r\n",
			summary{}},
		{"single part attachment", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=a.zip\r\n\r\nPK\r\n", summary{HasAttachments: true}},
		{"unterminated multipart", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nno end", summary{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseSummary([]byte(tt.mail))
			if got.From != tt.want.From || !slices.Equal(got.To, tt.want.To) || !slices.Equal(got.ReplyTo, tt.want.ReplyTo) || got.Subject != tt.want.Subject ||
				!got.Date.Equal(tt.want.Date) || got.HasAttachments != tt.want.HasAttachments {
				t.Errorf("parseSummary(%q) = %+v, want %+v", tt.mail, got, tt.want)
			}
		})
	}
}

func TestWireBytes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "T"},
		{"a\nb\n", "Ta\r\nb\r\n"},
		{"a\r\n", "Ta\r\r\n"}, // a CR that stood before CRLF on the wire
		{"no newline", "Tno newline"},
		{"\n\n", "T\r\n\r\n"},
	}
	for _, tt := range tests {
		got := wireBytes([]byte("T"), []byte(tt.in))
		if string(got) != tt.want || cap(got) != len(got) {
			t.Errorf("wireBytes(%q) = %q (cap %d), want %q, exact size", tt.in, got, cap(got), tt.want)
		}
	}
}

// FuzzParseSummary feeds hostile messages to the summary parser: it must not panic or
// hang. The seeds are the sample messages in testdata.
func FuzzParseSummary(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(multipartMail))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseSummary(data)
	})
}
