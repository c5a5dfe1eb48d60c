package parse

import (
	"slices"
	"testing"
)

// TestMessageIssue15 runs the messages on which the API disagreed with the other
// views (issue 15), as mailparse's one rule reads them.
func TestMessageIssue15(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		subject string
		text    string
		files   []string
	}{
		{name: "header block starting with a folded line keeps Subject and From",
			raw:     "  continued from nothing\r\nSubject: hello\r\nFrom: a@example.com\r\n\r\nbody",
			subject: "hello", text: "body"},
		{name: "a mailing list footer follows the text",
			raw: "Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\nTo unsubscribe: https://lists.example.com/u\r\n--b--\r\n",
			subject: "s", text: "body\nTo unsubscribe: https://lists.example.com/u"},
		{name: "nested multipart reusing its parent's boundary keeps the attachment after it",
			raw: "Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b--\r\n" +
				"--b\r\nContent-Type: application/pdf; name=x.pdf\r\n\r\n%PDF\r\n--b--\r\n",
			subject: "s", text: "plain", files: []string{"x.pdf"}},
		{name: "a part whose header starts with a folded line",
			raw: "Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n stray\r\nContent-Type: text/plain\r\n\r\ntext\r\n" +
				"--b\r\nContent-Type: image/png; name=a.png\r\n\r\npng\r\n--b--\r\n",
			subject: "s", text: "text", files: []string{"a.png"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := Message([]byte(tt.raw))
			var files []string
			for _, a := range p.Attachments {
				files = append(files, a.Filename)
			}
			if got := headerValue(p, "Subject"); got != tt.subject || p.Text != tt.text || !slices.Equal(files, tt.files) {
				t.Errorf("Message(%q) = subject %q, text %q, files %q; want %q, %q, %q", tt.raw, got, p.Text, files, tt.subject, tt.text, tt.files)
			}
		})
	}
}
