package parse

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestMessage(t *testing.T) {
	tests := []struct {
		name        string
		file        string
		subject     string
		textHas     string
		htmlHas     string
		attachments []AttachmentInfo // Size 0 means "not checked"
		links       []string
		codes       []string
	}{
		{name: "alternative with inline cid image and pdf",
			file:    "alternative-cid-pdf.eml",
			subject: "Bitte bestätige deine E-Mail-Adresse",
			textHas: "Oder gib diesen Bestätigungscode ein: 482 917",
			htmlHas: `<img src="cid:logo@example.com"`,
			attachments: []AttachmentInfo{
				{Index: 0, Filename: "logo.png", ContentType: "image/png", Size: 70, ContentID: "logo@example.com", Inline: true},
				{Index: 1, Filename: "Rechnung März.pdf", ContentType: "application/pdf", Size: 77},
			},
			links: []string{
				"https://app.example.com/confirm?user=ann%40mayfly.test&token=8f3a2b1c9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
				"https://example.com/help",
			},
			codes: []string{"482917"}},
		{name: "base64 html only in iso-8859-1",
			file:    "html-latin1-base64.eml",
			subject: "Ihr Bestätigungscode",
			textHas: "Ihr Bestätigungscode für die Anmeldung:\n\n731 904\n\nDer Code ist 15 Minuten gültig.",
			htmlHas: "Grüße aus Köln",
			links:   []string{"https://example.de/abmelden?id=AB12CD34&l=de"},
			codes:   []string{"731904"}},
		{name: "nested message/rfc822 stays an attachment",
			file:    "nested-rfc822.eml",
			subject: "Fwd: Dein Code",
			textHas: "See the forwarded mail",
			attachments: []AttachmentInfo{
				{Index: 0, Filename: "Dein Code für den Login.eml", ContentType: "message/rfc822", Inline: true},
				{Index: 1, Filename: "message.eml", ContentType: "message/rfc822", Inline: true},
			},
			links: []string{"https://example.org/notes"}},
		{name: "boundary that does not match the parameter",
			file:    "malformed-boundary.eml",
			subject: "Your verification code",
			textHas: "Your verification code is 660142.",
			htmlHas: "<b>660142</b>",
			attachments: []AttachmentInfo{
				{Index: 0, Filename: "pass wd", ContentType: "application/octet-stream", Size: 13},
			},
			links: []string{"https://example.net/verify?c=660142&u=erin"},
			codes: []string{"660142"}},
		{name: "lf-only line ends and 8-bit",
			file:    "lf-only.eml",
			subject: "Votre code de vérification",
			textHas: "Bonjour François,\n\nVotre code de vérification est : 204 871\n",
			htmlHas: "204&#8239;871",
			links:   []string{"https://example.fr/aide"},
			codes:   []string{"204871"}},
		{name: "unknown transfer encoding and charset",
			file:    "unknown-encoding.eml",
			subject: "=?x-unknown?Q?kept?= and decoded",
			textHas: "Your PIN: 8841",
			attachments: []AttachmentInfo{
				{Index: 0, Filename: "invite.ics", ContentType: "text/calendar", Inline: true},
				{Index: 1, Filename: "attachment-1.jpg", ContentType: "image/jpeg", Size: 6, Inline: true},
			},
			codes: []string{"8841"}},
		{name: "ten kilobyte sign-up mail",
			file:    "signup-10k.eml",
			subject: "Your Example verification code",
			textHas: "Enter this code to finish creating your account:\n\n482 917\n",
			htmlHas: `<div class="code"`,
			codes:   []string{"482917"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			p, err := Message(raw)
			if err != nil {
				t.Fatalf("Message(%s) error = %v, want nil", tt.file, err)
			}
			if got := headerValue(p, "Subject"); got != tt.subject {
				t.Errorf("Message(%s) Subject = %q, want %q", tt.file, got, tt.subject)
			}
			if !strings.Contains(p.Text, tt.textHas) {
				t.Errorf("Message(%s).Text = %q, want it to contain %q", tt.file, p.Text, tt.textHas)
			}
			if !strings.Contains(p.HTML, tt.htmlHas) {
				t.Errorf("Message(%s).HTML = %q, want it to contain %q", tt.file, p.HTML, tt.htmlHas)
			}
			if len(p.Attachments) != len(tt.attachments) {
				t.Fatalf("Message(%s).Attachments = %+v, want %+v", tt.file, p.Attachments, tt.attachments)
			}
			for i, want := range tt.attachments {
				got := p.Attachments[i]
				if want.Size == 0 {
					want.Size = got.Size
				}
				if got != want {
					t.Errorf("Message(%s).Attachments[%d] = %+v, want %+v", tt.file, i, got, want)
				}
			}
			if tt.links != nil && !slices.Equal(p.Links, tt.links) {
				t.Errorf("Message(%s).Links = %q, want %q", tt.file, p.Links, tt.links)
			}
			if !slices.Equal(p.Codes, tt.codes) {
				t.Errorf("Message(%s).Codes = %q, want %q", tt.file, p.Codes, tt.codes)
			}
			checkGolden(t, tt.file, p)
		})
	}
}

// checkGolden compares the whole parse with testdata/NAME.golden; -update rewrites it.
func checkGolden(t *testing.T, file string, p *Parsed) {
	t.Helper()
	got, err := json.MarshalIndent(p, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", strings.TrimSuffix(file, ".eml")+".golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (go test -run TestMessage -update writes it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Message(%s) = %s\nwant %s", file, got, want)
	}
}

func headerValue(p *Parsed, name string) string {
	for _, h := range p.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// TestMessageMalformed runs small broken messages that must still give what they can.
func TestMessageMalformed(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		headers []Header
		text    string
		html    string
		files   []string // attachment file names
	}{
		{name: "empty", raw: ""},
		{name: "no header at all", raw: "just a line\r\n", text: "just a line\n"},
		{name: "header only", raw: "Subject: hi", headers: []Header{{"Subject", "hi"}}},
		{name: "names as written, folded and repeated",
			raw:     "SUBJECT : a\r\n b\r\nx-custom: =?utf-8?q?caf=C3=A9?=\r\nX-Custom: two\r\n\r\nbody",
			headers: []Header{{"SUBJECT", "a b"}, {"x-custom", "café"}, {"X-Custom", "two"}}, text: "body"},
		{name: "raw latin-1 header and body without charset",
			raw:     "Subject: Gr\xfc\xdfe\r\n\r\nK\xf6ln",
			headers: []Header{{"Subject", "Grüße"}}, text: "Köln"},
		{name: "mbox separator and bom",
			raw:     "\xef\xbb\xbfFrom sender@example.com Mon Nov 23 10:00:00 2026\nSubject: s\n\nb\n",
			headers: []Header{{"Subject", "s"}}, text: "b\n"},
		{name: "garbage line ends the header",
			raw:     "Subject: s\r\nthis is not a header\r\nnor this\r\n",
			headers: []Header{{"Subject", "s"}}, text: "this is not a header\nnor this\n"},
		{name: "multipart without boundary anywhere shows the body as text",
			raw:  "Content-Type: multipart/mixed\r\n\r\nhello there",
			text: "hello there", headers: []Header{{"Content-Type", "multipart/mixed"}}},
		{name: "unterminated multipart",
			raw:  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nno end",
			text: "no end", headers: []Header{{"Content-Type", "multipart/mixed; boundary=b"}}},
		{name: "part without header",
			raw: "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nplain part\r\n--b\r\nhttps://x.test/a\r\n--b--\r\n",
			// The second part is a further text outside an alternative: shown after the
			// first, as Thunderbird does (mailparse's rule).
			text: "plain part\nhttps://x.test/a", headers: []Header{{"Content-Type", "multipart/mixed; boundary=b"}}},
		{name: "digest parts default to message/rfc822",
			raw:     "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\nx\r\n--d--\r\n",
			headers: []Header{{"Content-Type", "multipart/digest; boundary=d"}}, files: []string{"one.eml"}},
		{name: "hostile file names",
			raw: "Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
				"--b\r\nContent-Disposition: attachment; filename=\"C:\\\\Users\\\\x\\\\..\\\\evil.exe\"\r\n\r\nx\r\n" +
				"--b\r\nContent-Disposition: attachment; filename=\"gpj\u202e.exe\"\r\n\r\nx\r\n" +
				"--b\r\nContent-Disposition: attachment; filename=\"..\"\r\n\r\nx\r\n" +
				"--b\r\nContent-Type: application/pdf; name=\"a\x01b.pdf\"\r\n\r\nx\r\n" +
				"--b\r\nContent-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rate.txt\r\n\r\nx\r\n--b--\r\n",
			headers: []Header{{"Content-Type", "multipart/mixed; boundary=b"}},
			files:   []string{"evil.exe", "gpj.exe", "attachment-2.txt", "ab.pdf", "€ rate.txt"}},
		{name: "text with a filename is an attachment, a second text follows the first",
			raw: "Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: text/plain; name=notes.txt\r\n\r\nnotes\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\nfooter\r\n--b--\r\n",
			headers: []Header{{"Content-Type", "multipart/mixed; boundary=b"}},
			text:    "body\nfooter", files: []string{"notes.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Message([]byte(tt.raw))
			if err != nil {
				t.Fatalf("Message(%q) error = %v, want nil", tt.raw, err)
			}
			if !slices.Equal(p.Headers, tt.headers) && !(len(p.Headers) == 0 && len(tt.headers) == 0) {
				t.Errorf("Message(%q).Headers = %q, want %q", tt.raw, p.Headers, tt.headers)
			}
			if p.Text != tt.text || p.HTML != tt.html {
				t.Errorf("Message(%q) Text, HTML = %q, %q, want %q, %q", tt.raw, p.Text, p.HTML, tt.text, tt.html)
			}
			var files []string
			for _, a := range p.Attachments {
				files = append(files, a.Filename)
			}
			if !slices.Equal(files, tt.files) {
				t.Errorf("Message(%q) attachment names = %q, want %q", tt.raw, files, tt.files)
			}
		})
	}
}

// TestMessageLimits checks that the walk stops at maxParts and maxDepth.
func TestMessageLimits(t *testing.T) {
	p, _ := Message(testlib.WideMail(maxParts + 500))
	if len(p.Attachments) != maxParts-1 {
		t.Errorf("Message(%d parts) has %d attachments, want %d (the root counts as a part)", maxParts+500, len(p.Attachments), maxParts-1)
	}

	p, _ = Message(testlib.DeepMail(maxDepth+20, "deep"))
	if len(p.Attachments) != 0 {
		t.Errorf("Message(%d levels deep) has %d attachments, want 0 past depth %d", maxDepth+20, len(p.Attachments), maxDepth)
	}
}

func TestAttachment(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n")
	tests := []struct {
		name     string
		file     string
		index    int
		wantName string
		wantHas  []byte // a prefix of the data
		wantErr  error
	}{
		{name: "inline image", file: "alternative-cid-pdf.eml", index: 0, wantName: "logo.png", wantHas: png},
		{name: "pdf", file: "alternative-cid-pdf.eml", index: 1, wantName: "Rechnung März.pdf", wantHas: []byte("%PDF-1.4\n")},
		{name: "past the end", file: "alternative-cid-pdf.eml", index: 2, wantErr: ErrNoAttachment},
		{name: "negative", file: "alternative-cid-pdf.eml", index: -1, wantErr: ErrNoAttachment},
		{name: "forwarded message", file: "nested-rfc822.eml", index: 0, wantName: "Dein Code für den Login.eml", wantHas: []byte("From: Shop <shop@example.com>\r\n")},
		{name: "junk after base64 padding", file: "malformed-boundary.eml", index: 0, wantName: "pass wd", wantHas: []byte("Hello, world!")},
		{name: "none at all", file: "lf-only.eml", index: 0, wantErr: ErrNoAttachment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			data, a, err := Attachment(raw, tt.index)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Attachment(%s, %d) error = %v, want %v", tt.file, tt.index, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if a.Filename != tt.wantName || !bytes.HasPrefix(data, tt.wantHas) {
				t.Errorf("Attachment(%s, %d) = %q (%q), want %q starting %q", tt.file, tt.index, a.Filename, data, tt.wantName, tt.wantHas)
			}
			p, _ := Message(raw)
			if want := p.Attachments[tt.index]; a != want || int64(len(data)) != want.Size {
				t.Errorf("Attachment(%s, %d) = %+v with %d bytes, want %+v as in Message", tt.file, tt.index, a, len(data), want)
			}
		})
	}
}

// FuzzMessage feeds hostile messages to the parser, seeded with the sample mail: it
// must not panic or hang, and what it returns must hold together.
func FuzzMessage(f *testing.F) {
	testlib.AddMailSeeds(f) // AttachmentReader decodes base64 as it reads
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := Message(raw)
		if err != nil {
			t.Fatalf("Message(%q) error = %v, want nil", raw, err)
		}
		for _, s := range append([]string{p.Text, p.HTML}, append(p.Links, p.Codes...)...) {
			if !utf8.ValidString(s) {
				t.Errorf("Message(%q) returned invalid UTF-8 %q", raw, s)
			}
		}
		for i, a := range p.Attachments {
			if a.Index != i || a.Filename == "" || strings.ContainsAny(a.Filename, "/\\") ||
				strings.IndexFunc(a.Filename, unicode.IsControl) >= 0 {
				t.Errorf("Message(%q).Attachments[%d] = %+v", raw, i, a)
			}
			data, got, err := Attachment(raw, i)
			if err != nil || got != a || int64(len(data)) != a.Size {
				t.Errorf("Attachment(%q, %d) = %d bytes, %+v, %v, want %+v", raw, i, len(data), got, err, a)
			}
			if p.spans[i].off < 0 {
				t.Errorf("Message(%q): attachment %d not located in the raw bytes", raw, i)
			}
			cached, got, err := p.Attachment(raw, i)
			if err != nil || got != a || !bytes.Equal(cached, data) {
				t.Errorf("Parsed.Attachment(%q, %d) = %q, %+v, %v; want %q, %+v", raw, i, cached, got, err, data, a)
			}
			r, got, err := p.AttachmentReader(raw, i)
			if err != nil || got != a {
				t.Errorf("Parsed.AttachmentReader(%q, %d) = %+v, %v; want %+v", raw, i, got, err, a)
			} else if read, err := io.ReadAll(r); err != nil || !bytes.Equal(read, data) {
				t.Errorf("Parsed.AttachmentReader(%q, %d) read %q, %v; want %q", raw, i, read, err, data)
			}
		}
		if _, _, err := Attachment(raw, len(p.Attachments)); !errors.Is(err, ErrNoAttachment) {
			t.Errorf("Attachment(%q, %d) error = %v, want ErrNoAttachment", raw, len(p.Attachments), err)
		}
	})
}

func BenchmarkMessage(b *testing.B) {
	raw, err := os.ReadFile("testdata/signup-10k.eml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Message(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHostileInputs runs inputs built to make a careless parser quadratic: each must
// finish in far less than the time a quadratic walk over it would take.
func TestHostileInputs(t *testing.T) {
	const n = 128 << 10
	texts := []struct{ name, text string }{
		{"keyword and number repeated", strings.Repeat("code 4829 ", n/10)},
		{"one long number", strings.Repeat("1.", n/2) + " 4829 code"},
		{"closing parentheses", "https://x.test/" + strings.Repeat(")", n)},
		{"unclosed angle brackets", strings.Repeat("<http://a ", n/10)},
		{"at signs", strings.Repeat("a", n/2) + strings.Repeat("@", n/2)},
		{"one cjk run", strings.Repeat("验证码", n/9) + "482917"},
		{"stars", strings.Repeat("*", n) + "1234 code"},
		{"codes alone on lines", strings.Repeat("code\n4829\n", n/10)},
		{"single digits", strings.Repeat("1 ", n/2)},
		{"hyphen chain", strings.Repeat("AB12-", n/5)},
		{"table cells", strings.Repeat("<td>1</td>", n/10)},
		{"nested templates", strings.Repeat("<template>", n/10)},
	}
	for _, tt := range texts {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			Codes(tt.text, tt.text, tt.text)
			Links(tt.text, tt.text)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Codes and Links on %d bytes took %v", len(tt.text), d)
			}
		})
	}
	msgs := []struct{ name, raw string }{
		{"many empty parts", "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n", n/5)},
		{"delimiter-like header lines", "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--a:b\r\n", n/7)},
		{"deep nesting", strings.Repeat("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n", 2*maxDepth) + strings.Repeat("x", n)},
		{"long folded header", strings.Repeat("X-A: b\r\n c\r\n", n/12) + "\r\nbody"},
		{"boundary inside lines", "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("x--b", n/4)},
		{"soft breaks only", "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + strings.Repeat("=\r\n", n/3)},
		{"undecodable words", "Subject: " + strings.Repeat("=?x-bad?q?a?= ", n/14) + "\r\n\r\n"},
	}
	for _, tt := range msgs {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			p, _ := Message([]byte(tt.raw))
			for i := range min(len(p.Attachments), 3) {
				_, _, _ = Attachment([]byte(tt.raw), i)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Message on %d bytes took %v", len(tt.raw), d)
			}
		})
	}
}
