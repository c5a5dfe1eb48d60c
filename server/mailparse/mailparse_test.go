package mailparse

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// summary is what a test checks of a parse: the text and HTML bodies and the
// attachments' paths.
type summary struct {
	subject, from string
	text, html    string
	attachments   []string // "path type name"
}

func summarize(m *Message) summary {
	s := summary{subject: m.Subject, text: m.Text(), html: m.HTML()}
	if len(m.From) > 0 {
		s.from = m.From[0].Address
	}
	for _, a := range m.Attachments {
		s.attachments = append(s.attachments, strings.TrimSpace(a.Path+" "+a.MediaType+" "+a.Filename))
	}
	return s
}

// TestTolerance runs the disagreements of issue 15, each as the one rule reads it.
func TestTolerance(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want summary
	}{
		{name: "header block starting with a folded line keeps its fields",
			raw:  "  stray continuation\r\nSubject: hello\r\nFrom: Ann <ann@example.com>\r\n\r\nbody\r\n",
			want: summary{subject: "hello", from: "ann@example.com", text: "body\r\n"}},
		{name: "an indented first field is a field",
			raw:  " From: Ann <ann@example.com>\r\nSubject: hello\r\n\r\nbody",
			want: summary{subject: "hello", from: "ann@example.com", text: "body"}},
		{name: "white space before the colon, not an mbox line",
			raw:  "From : Ann <ann@example.com>\r\nSubject : hello\r\n\r\nbody",
			want: summary{subject: "hello", from: "ann@example.com", text: "body"}},
		{name: "indented first lines and no field are the body",
			raw:  "  indented text\r\nmore\r\n",
			want: summary{text: "  indented text\r\nmore\r\n"}},
		{name: "no blank line after the header: the first non-field line starts the body",
			raw:  "Subject: s\r\nFrom: a@example.com\r\nthis is the body\r\nsecond line\r\n",
			want: summary{subject: "s", from: "a@example.com", text: "this is the body\r\nsecond line\r\n"}},
		{name: "declared boundary never occurs: guessed from a line followed by a field",
			raw: "Subject: g\r\nContent-Type: multipart/mixed; boundary=wrong\r\n\r\n--real\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
				"--real\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--real--\r\n",
			want: summary{subject: "g", text: "hello", attachments: []string{"2 application/pdf a.pdf"}}},
		{name: "declared boundary never occurs: guessed from a recurring line",
			raw: "Content-Type: multipart/mixed; boundary=wrong\r\n\r\n--real\r\n\r\nhello\r\n" +
				"--real\r\n\r\nworld\r\n--real--\r\n",
			want: summary{text: "hello\nworld"}},
		{name: "no delimiter at all: the multipart is text",
			raw:  "Content-Type: multipart/mixed; boundary=b\r\n\r\njust text\r\n",
			want: summary{text: "just text\r\n"}},
		{name: "multipart without a boundary parameter, guessed",
			raw:  "Content-Type: multipart/alternative\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nplain\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>h</p>\r\n--x--\r\n",
			want: summary{text: "plain", html: "<p>h</p>"}},
		{name: "missing final delimiter: the last part runs to the end",
			raw:  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nno end\r\n",
			want: summary{text: "no end"}}, // the line break may start a delimiter: go-message keeps it out
		{name: "delimiter lines with trailing white space",
			raw:  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b  \r\nContent-Type: text/plain\r\n\r\nt\r\n--b\t\r\nContent-Type: image/png\r\n\r\npng\r\n--b-- \r\n",
			want: summary{text: "t", attachments: []string{"2 image/png"}}},
		{name: "boundary parameter with trailing white space",
			raw:  "Content-Type: multipart/mixed; boundary=\"b \"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nt\r\n--b\r\nContent-Type: image/png\r\n\r\npng\r\n--b--\r\n",
			want: summary{text: "t", attachments: []string{"2 image/png"}}},
		{name: "nested multipart reusing its parent's boundary",
			raw: "Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n" +
				"--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b--\r\n" +
				"--b\r\nContent-Type: application/pdf; name=x.pdf\r\n\r\n%PDF\r\n--b--\r\n",
			want: summary{text: "plain", html: "<p>html</p>", attachments: []string{"2 application/pdf x.pdf"}}},
		{name: "unknown charset keeps the bytes, made valid UTF-8",
			raw:  "Content-Type: text/plain; charset=x-nonsense\r\n\r\nK\xf6ln \xe2\x82\xac\r\n",
			want: summary{text: "K\u00f6ln \u00e2\u201a\u00ac\r\n"}},
		{name: "charset that breaks its own rules",
			raw:  "Content-Type: text/plain; charset=utf-8\r\n\r\nbad \xff byte",
			want: summary{text: "bad \ufffd byte"}},
		{name: "malformed part header: the part still counts, the rest too",
			raw: "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n  orphan\r\nContent-Type: text/plain\r\n\r\none\r\n" +
				"--b\r\nnot a header line\r\nstill body\r\n--b\r\nContent-Type: image/gif\r\n\r\ngif\r\n--b--\r\n",
			want: summary{text: "one\nnot a header line\r\nstill body", attachments: []string{"3 image/gif"}}},
		{name: "a part whose first field is indented",
			raw: "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n Content-Type: image/gif\r\n\r\ngif\r\n" +
				"--b\r\n Content-Type: image/png\r\n\r\npng\r\n--b--\r\n",
			want: summary{attachments: []string{"1 image/gif", "2 image/png"}}},
		{name: "mixed line ends between parts",
			raw:  "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nlf\r\n--b\r\nContent-Type: image/gif\r\n\r\ngif\r\n--b--\r\n",
			want: summary{text: "lf\r", attachments: []string{"2 image/gif"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(Parse([]byte(tt.raw)))
			if got.subject != tt.want.subject || got.from != tt.want.from || got.text != tt.want.text ||
				got.html != tt.want.html || !slices.Equal(got.attachments, tt.want.attachments) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.raw, got, tt.want)
			}
		})
	}
}

// TestHeaderEnd checks the one rule for where the body starts, which IMAP's
// BODY[HEADER] and BODY[TEXT] use too.
func TestHeaderEnd(t *testing.T) {
	tests := []struct {
		raw  string
		want int
	}{
		{"Subject: a\r\n\r\nbody", len("Subject: a\r\n\r\n")},
		{"Subject: a\nX: b\n\nbody", len("Subject: a\nX: b\n\n")},
		{"Subject: a\r\nnot a field\r\n", len("Subject: a\r\n")},
		{"Subject: a\r\n folded\r\n\r\n", len("Subject: a\r\n folded\r\n\r\n")},
		{"Subject: a", len("Subject: a")},
		{"no header\r\n", 0},
		{"", 0},
		{"https://example.com/x\r\n", 0},
	}
	for _, tt := range tests {
		if got := Parse([]byte(tt.raw)).HeaderEnd; got != tt.want {
			t.Errorf("Parse(%q).HeaderEnd = %d, want %d", tt.raw, got, tt.want)
		}
	}
}

// TestHeaderBytes checks that a message's and a part's header are written back byte
// for byte, CRLF or LF as sent.
func TestHeaderBytes(t *testing.T) {
	for _, name := range []string{"alternative-cid-pdf.eml", "lf-only.eml", "nested-rfc822.eml"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		m := Parse(raw)
		var b bytes.Buffer
		if err := textproto.WriteHeader(&b, m.Header); err != nil {
			t.Fatal(err)
		}
		// The fields byte for byte; WriteHeader ends the block with CRLF whatever the
		// message used (BODY[HEADER] is raw[:HeaderEnd]).
		got := b.Bytes()[:b.Len()-2]
		want := bytes.TrimSuffix(bytes.TrimSuffix(raw[:m.HeaderEnd], []byte("\n")), []byte("\r"))
		if !bytes.Equal(got, want) {
			t.Errorf("WriteHeader(Parse(%s).Header) = %q, want %q", name, got, want)
		}
		m.Walk(func(p *Part) bool {
			if p.Path == "" {
				return true
			}
			var b bytes.Buffer
			_ = textproto.WriteHeader(&b, p.Header)
			fields := bytes.TrimRight(p.HeaderRaw, "\r\n")
			if !bytes.HasPrefix(b.Bytes(), fields) {
				t.Errorf("%s part %s: WriteHeader = %q, want it to start %q", name, p.Path, b.Bytes(), fields)
			}
			return true
		})
	}
}

// TestBodiesAreSlices checks that every located body is the part's bytes in the
// message, so serving one needs no second walk.
func TestBodiesAreSlices(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		Parse(raw).Walk(func(p *Part) bool {
			if p.Offset < 0 {
				t.Errorf("%s part %q: body not located in the message", name, p.Path)
			} else if !bytes.Equal(raw[p.Offset:p.Offset+len(p.Body)], p.Body) {
				t.Errorf("%s part %q: Offset %d does not hold the body", name, p.Path, p.Offset)
			}
			return true
		})
	}
}

func TestPaths(t *testing.T) {
	raw, err := os.ReadFile("testdata/nested-rfc822.eml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	Parse(raw).Walk(func(p *Part) bool {
		got = append(got, p.Path+" "+p.MediaType)
		return true
	})
	want := []string{" multipart/mixed", "1 text/plain", "2 message/rfc822", "2 multipart/mixed",
		"2.1 text/plain", "2.2 text/csv", "3 message/rfc822", "3 text/plain"}
	if !slices.Equal(got, want) {
		t.Errorf("Parse(nested-rfc822.eml) paths = %q, want %q", got, want)
	}
}

// TestRule checks the one rule for bodies and attachments.
func TestRule(t *testing.T) {
	mixed := func(parts ...string) string {
		return "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + strings.Join(parts, "\r\n--b\r\n") + "\r\n--b--\r\n"
	}
	tests := []struct {
		name string
		raw  string
		want summary
	}{
		{name: "inline image with a Content-ID is an attachment",
			raw: "Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<img src=cid:x>\r\n" +
				"--b\r\nContent-Type: image/png\r\nContent-ID: <x>\r\n\r\npng\r\n--b--\r\n",
			want: summary{html: "<img src=cid:x>", attachments: []string{"2 image/png"}}},
		{name: "forwarded message, DSN status, unnamed octet-stream",
			raw: mixed("Content-Type: text/plain\r\n\r\nhi", "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text",
				"Content-Type: message/delivery-status\r\n\r\nStatus: 5.1.1", "Content-Type: application/octet-stream\r\n\r\nxx"),
			want: summary{text: "hi", attachments: []string{"2 message/rfc822", "3 message/delivery-status", "4 application/octet-stream"}}},
		{name: "text with a filename is an attachment, also the first",
			raw:  mixed("Content-Type: text/plain; name=a.txt\r\n\r\na", "Content-Type: text/plain\r\n\r\nbody"),
			want: summary{text: "body", attachments: []string{"1 text/plain a.txt"}}},
		{name: "two inline texts with file names are both attachments",
			raw: mixed("Content-Type: text/plain\r\nContent-Disposition: inline; filename=a.txt\r\n\r\na",
				"Content-Type: text/plain\r\nContent-Disposition: inline; filename=b.txt\r\n\r\nb"),
			want: summary{attachments: []string{"1 text/plain a.txt", "2 text/plain b.txt"}}},
		{name: "a second text outside an alternative follows the first (a list footer)",
			raw: mixed("Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nbody\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>body</p>\r\n--a--",
				"Content-Type: text/plain\r\n\r\n-- \r\nfooter"),
			want: summary{text: "body\n-- \r\nfooter", html: "<p>body</p>"}},
		{name: "a second text inside an alternative is another rendering",
			raw:  "Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n\r\none\r\n--a\r\nContent-Type: text/plain; format=flowed\r\n\r\ntwo\r\n--a--\r\n",
			want: summary{text: "one"}},
		{name: "AMP and watch renderings are not attachments, an invitation is",
			raw: "Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nt\r\n" +
				"--a\r\nContent-Type: text/x-amp-html\r\n\r\n<html amp4email>\r\n--a\r\nContent-Type: text/watch-html\r\n\r\nw\r\n" +
				"--a\r\nContent-Type: text/html\r\n\r\n<p>t</p>\r\n--a\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n--a--\r\n",
			want: summary{text: "t", html: "<p>t</p>", attachments: []string{"5 text/calendar"}}},
		{name: "a second html outside an alternative is an attachment",
			raw:  mixed("Content-Type: text/html\r\n\r\n<p>1</p>", "Content-Type: text/html\r\n\r\n<p>2</p>"),
			want: summary{html: "<p>1</p>", attachments: []string{"2 text/html"}}},
		{name: "texts of a forwarded message are not the body",
			raw:  mixed("Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text"),
			want: summary{attachments: []string{"1 message/rfc822"}}},
		{name: "calendar invitation",
			raw:  mixed("Content-Type: text/plain\r\n\r\nsee invite", "Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR"),
			want: summary{text: "see invite", attachments: []string{"2 text/calendar"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse([]byte(tt.raw))
			got := summarize(m)
			if got.text != tt.want.text || got.html != tt.want.html || !slices.Equal(got.attachments, tt.want.attachments) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.raw, got, tt.want)
			}
			if m.HasAttachments() != (len(tt.want.attachments) > 0) {
				t.Errorf("Parse(%q).HasAttachments() = %v, want %v", tt.raw, m.HasAttachments(), len(tt.want.attachments) > 0)
			}
		})
	}
}

func TestFilename(t *testing.T) {
	tests := []struct {
		name, header, want string
	}{
		{"RFC 2231", "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rate.txt", "€ rate.txt"},
		{"RFC 2231 continuations", "Content-Disposition: attachment; filename*0*=utf-8''a%C3%A4; filename*1=b.txt", "aäb.txt"},
		{"RFC 2047 in a parameter", "Content-Type: application/pdf; name=\"=?iso-8859-1?q?M=E4rz.pdf?=\"", "März.pdf"},
		{"8-bit UTF-8", "Content-Disposition: attachment; filename=\"Grüße.pdf\"", "Grüße.pdf"},
		{"8-bit Latin-1", "Content-Disposition: attachment; filename=\"Gr\xfc\xdfe.pdf\"", "Grüße.pdf"},
		{"8-bit Latin-1 unquoted", "Content-Disposition: attachment; filename=Gr\xfc\xdfe.pdf", "Grüße.pdf"},
		{"RFC 2047 in an unknown charset", "Content-Type: application/pdf; name=\"=?x-nonsense?q?a?=.pdf\"", "=?x-nonsense?q?a?=.pdf"},
		{"unquoted with spaces", "Content-Disposition: attachment; filename=my file.pdf", "my file.pdf"},
		{"filename before name", "Content-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment; filename=b.pdf", "b.pdf"},
	}
	for _, tt := range tests {
		m := Parse([]byte(tt.header + "\r\n\r\nx"))
		if got := m.Root.Filename; got != tt.want {
			t.Errorf("%s: Parse(%q).Root.Filename = %q, want %q", tt.name, tt.header, got, tt.want)
		}
	}
}

func TestFacts(t *testing.T) {
	raw := "From: =?utf-8?q?Fran=C3=A7ois?= <f@example.fr>\r\n" +
		"To: a@example.com, \"B, Bee\" <b@example.com>\r\n" +
		"Cc: broken <c@example.com, d@example.com\r\n" +
		"Reply-To: r@example.com\r\n" +
		"Subject: =?utf-8?q?Votre_code?= =?utf-8?q?_de_v=C3=A9rification?=\r\n" +
		"Date: Mon, 23 Nov 2026 12:00:00 +0100\r\n" +
		"Message-ID: <id1@example.fr>\r\n" +
		"In-Reply-To: <id0@example.fr>\r\n" +
		"References: <a@x> <id0@example.fr>\r\n" +
		"X-Custom: =?x-unknown?q?kept?= and =?utf-8?q?caf=C3=A9?=\r\n\r\nbody"
	m := Parse([]byte(raw))
	if m.Subject != "Votre code de vérification" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if len(m.From) != 1 || m.From[0].Name != "François" || m.From[0].Address != "f@example.fr" {
		t.Errorf("From = %+v", m.From)
	}
	if len(m.To) != 2 || m.To[1].Name != "B, Bee" || m.To[1].Address != "b@example.com" {
		t.Errorf("To = %+v", m.To)
	}
	if len(m.Cc) == 0 {
		t.Errorf("Cc = %+v, want what can be read of it", m.Cc)
	}
	if len(m.ReplyTo) != 1 || m.ReplyTo[0].Address != "r@example.com" {
		t.Errorf("ReplyTo = %+v", m.ReplyTo)
	}
	if want := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("Date = %v, want %v", m.Date, want)
	}
	if m.MessageID != "id1@example.fr" || !slices.Equal(m.InReplyTo, []string{"id0@example.fr"}) ||
		!slices.Equal(m.References, []string{"a@x", "id0@example.fr"}) {
		t.Errorf("MessageID, InReplyTo, References = %q, %q, %q", m.MessageID, m.InReplyTo, m.References)
	}
	h := m.Headers()
	if last := h[len(h)-1]; last.Name != "X-Custom" || last.Value != "=?x-unknown?q?kept?= and café" {
		t.Errorf("Headers()[last] = %+v", last)
	}
}

func TestDecoded(t *testing.T) {
	tests := []struct {
		name, enc, body, want string
	}{
		{"base64 with line breaks", "base64", "SGVs\r\nbG8=\r\n", "Hello"},
		{"base64 junk after the padding", "BASE64", "SGVsbG8sIHdvcmxkIQ==\r\n!!! not base64 !!!", "Hello, world!"},
		{"base64 without padding", "base64", "QUJDRA", "ABCD"},
		{"base64 with a lone last sextet", "base64", "QUJD\r\nQ", "ABC"},
		{"base64 URL-safe alphabet and indentation", "base64", "  -_-_\r\n", "\xfb\xff\xbf"},
		{"quoted-printable soft breaks and lower case", "quoted-printable", "caf=c3=a9 =\r\nau lait=3D", "café au lait="},
		{"quoted-printable stray equals sign", "quoted-printable", "a = b=\r\n", "a = b"},
		{"quoted-printable with control bytes", "quoted-printable", "a\x1b$Bb=\x01\x00c\r\nd", "a\x1b$Bb=\x01\x00c\r\nd"},
		{"unknown encoding is kept", "x-uuencode", "begin 644", "begin 644"},
	}
	for _, tt := range tests {
		got, err := io.ReadAll(Decode(tt.enc, []byte(tt.body)))
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: Decode(%q, %q) = %q, %v, want %q", tt.name, tt.enc, tt.body, got, err, tt.want)
		}
		if n := DecodedSize(tt.enc, []byte(tt.body)); n != int64(len(tt.want)) {
			t.Errorf("%s: DecodedSize(%q, %q) = %d, want %d", tt.name, tt.enc, tt.body, n, len(tt.want))
		}
	}
}

func TestTextSniffsHTMLCharset(t *testing.T) {
	m := Parse([]byte("Content-Type: text/html\r\n\r\n<meta charset=\"iso-8859-1\"><p>K\xf6ln</p>"))
	if got := m.HTML(); got != "<meta charset=\"iso-8859-1\"><p>Köln</p>" {
		t.Errorf("HTML() = %q", got)
	}
}

func TestSearchText(t *testing.T) {
	raw, err := os.ReadFile("testdata/nested-rfc822.eml")
	if err != nil {
		t.Fatal(err)
	}
	m := Parse(raw)
	header, body := m.SearchText(256 << 10)
	if !strings.Contains(header, "subject: fwd: dein code") || strings.Contains(body, "subject: fwd: dein code") {
		t.Errorf("SearchText header = %q", header)
	}
	if !strings.Contains(body, "see the forwarded mail") {
		t.Errorf("SearchText body = %q, want the text part, folded", body)
	}
	h, b := m.SearchText(100)
	if len(h)+len(b) > 100 {
		t.Errorf("SearchText(100) = %d bytes", len(h)+len(b))
	}
}

// TestLimits checks MaxParts, MaxDepth and the bytes the walk may copy.
func TestLimits(t *testing.T) {
	if m := Parse(testlib.WideMail(MaxParts + 500)); len(m.Attachments) != MaxParts-1 {
		t.Errorf("Parse(%d parts) has %d attachments, want %d", MaxParts+500, len(m.Attachments), MaxParts-1)
	}

	// Every level of a deep nesting holds the whole megabyte below it: read level by
	// level it is 50 MiB of copying; the budget ends it.
	raw := testlib.DeepMail(MaxDepth, strings.Repeat("x", 1<<20))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m := Parse(raw)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*uint64(len(raw)) {
		t.Errorf("Parse(%d levels of %d bytes) allocated %d bytes", MaxDepth, len(raw), alloc)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].MediaType != "application/octet-stream" {
		t.Errorf("Parse(deep) attachments = %+v, want the part past the budget as one octet-stream", summarize(m).attachments)
	}
}

// FuzzParse feeds hostile messages to Parse, seeded with the sample mail and the
// old parser's fuzz inputs (testdata/fuzz/FuzzParse): it must not panic or hang, and
// what it returns must hold together.
func FuzzParse(f *testing.F) {
	testlib.AddMailSeeds(f)
	f.Add([]byte(" folded\r\nSubject: s\r\n\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n--b\r\n\r\ny\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := Parse(raw)
		sameFacts(t, "fuzz input", m, ParseFacts(raw))
		if m.HeaderEnd < 0 || m.HeaderEnd > len(raw) {
			t.Fatalf("Parse(%q).HeaderEnd = %d", raw, m.HeaderEnd)
		}
		for _, s := range []string{m.Text(), m.HTML(), m.Subject} {
			if !utf8.ValidString(s) {
				t.Errorf("Parse(%q) returned invalid UTF-8 %q", raw, s)
			}
		}
		for _, h := range m.Headers() {
			if !utf8.ValidString(h.Value) {
				t.Errorf("Parse(%q) header %q invalid UTF-8", raw, h.Name)
			}
		}
		parts := 0
		m.Walk(func(p *Part) bool {
			parts++
			if p.Offset >= 0 && (p.Offset+len(p.Body) > len(raw) || !bytes.Equal(raw[p.Offset:p.Offset+len(p.Body)], p.Body)) {
				t.Errorf("Parse(%q) part %q: Offset %d does not hold its body", raw, p.Path, p.Offset)
			}
			if !utf8.ValidString(p.Filename) {
				t.Errorf("Parse(%q) part %q: file name %q", raw, p.Path, p.Filename)
			}
			return true
		})
		if parts > 2*MaxParts {
			t.Errorf("Parse(%q) has %d parts", raw, parts)
		}
		for _, a := range m.Attachments {
			if len(a.Children) > 0 {
				t.Errorf("Parse(%q): attachment %q has children", raw, a.Path)
			}
			n, _ := io.Copy(io.Discard, a.Decoded())
			if n != a.DecodedSize() {
				t.Errorf("Parse(%q): attachment %q decodes to %d bytes, DecodedSize %d", raw, a.Path, n, a.DecodedSize())
			}
		}
		m.SearchText(1 << 10)
	})
}

// TestHostile runs inputs built to make a careless walk quadratic or deep: each must
// finish in far less than such a walk over it would take.
func TestHostile(t *testing.T) {
	const n = 1 << 20
	var guessed strings.Builder
	for i := range 2 * MaxDepth {
		guessed.WriteString("Content-Type: multipart/mixed; boundary=wrong\r\n\r\n--real" + strings.Repeat("x", i) + "\r\n")
	}
	guessed.WriteString("\r\n" + strings.Repeat("--a\r\n", n/5))
	msgs := []struct{ name, raw string }{
		{"many empty parts", "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n", n/5)},
		{"many close delimiters", "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n\r\nx\r\n--b--\r\n", n/16)},
		{"delimiter-like header lines", "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n--a:b\r\n", n/12)},
		{"parts whose header go-message refuses", "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n x\r\n", n/10)},
		{"deep nesting, same boundary", strings.Repeat("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n", 2*MaxDepth) + strings.Repeat("x", n)},
		{"deep nesting, guessed boundaries", guessed.String()},
		{"deep forwards", strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 2*MaxDepth) + strings.Repeat("x", n)},
		{"long folded header", strings.Repeat("X-A: b\r\n c\r\n", n/12) + "\r\nbody"},
		{"boundary inside lines", "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("x--b", n/4)},
		{"boundary-like text", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + strings.Repeat("\r\n--b-x", n/7)},
		{"soft breaks only", "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + strings.Repeat("=\r\n", n/3)},
		{"undecodable words", "Subject: " + strings.Repeat("=?x-bad?q?a?= ", n/14) + "\r\n\r\n"},
		{"many addresses", "To: " + strings.Repeat("a@b, <c", n/8) + "\r\n\r\n"},
	}
	for _, tt := range msgs {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			m := Parse([]byte(tt.raw))
			_, _ = m.Text(), m.HTML()
			m.SearchText(256 << 10)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Parse on %d bytes took %v", len(tt.raw), d)
			}
		})
	}
}

func TestPathsOfAForwardAtTheTop(t *testing.T) {
	raw := "Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--\r\n"
	var got []string
	Parse([]byte(raw)).Walk(func(p *Part) bool {
		got = append(got, p.Path)
		return true
	})
	if want := []string{"", "1", "1.1", "1.2"}; !slices.Equal(got, want) {
		t.Errorf("Parse(%q) paths = %q, want %q", raw, got, want)
	}
}

func TestSection(t *testing.T) {
	raw, err := os.ReadFile("testdata/nested-rfc822.eml")
	if err != nil {
		t.Fatal(err)
	}
	m := Parse(raw)
	tests := []struct{ section, want string }{
		{"1", "1 text/plain"},
		{"2", "2 message/rfc822"},
		{"2.1", "2.1 text/plain"},
		{"2.2", "2.2 text/csv"},
		{"3", "3 message/rfc822"},
		{"3.1", "3 text/plain"}, // the body of an attached message that is not multipart
		{"4", ""}, {"2.3", ""}, {"0", ""}, {"x", ""}, {"", ""}, {"1.2", ""},
		// A leaf has no parts, however many times it is asked for its first.
		{"1.1", ""}, {"1.1.1.1", ""}, {"2.1.1", ""}, {"3.1.1", ""},
	}
	for _, tt := range tests {
		got := ""
		if p := m.Section(tt.section); p != nil {
			got = p.Path + " " + p.MediaType
		}
		if got != tt.want {
			t.Errorf("Section(%q) = %q, want %q", tt.section, got, tt.want)
		}
	}
	single := Parse([]byte("Subject: s\r\n\r\nbody"))
	if p := single.Section("1"); p != single.Root {
		t.Errorf("Section(1) of a single-part message = %+v, want its root", p)
	}
	if p := single.Section("1.1"); p != nil {
		t.Errorf("Section(1.1) of a single-part message = %+v, want none", p)
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct{ raw, mediaType, charset string }{
		{"\r\nx", "text/plain", "us-ascii"},
		{"Content-Type: nonsense\r\n\r\nx", "text/plain", "us-ascii"},
		{"Content-Type: text/plain\r\n\r\nx", "text/plain", "us-ascii"},
		{"Content-Type: TEXT/Plain; charset=\"ISO-8859-1\"\r\n\r\nx", "text/plain", "iso-8859-1"},
		{"Content-Type: multipart/mixed\r\n\r\nno delimiter", "text/plain", "us-ascii"},
		{"Content-Type: text/html\r\n\r\nx", "text/html", ""},
		{"Content-Type: image/png\r\n\r\nx", "image/png", ""},
	}
	for _, tt := range tests {
		r := Parse([]byte(tt.raw)).Root
		if r.MediaType != tt.mediaType || r.Charset != tt.charset {
			t.Errorf("Parse(%q).Root = %s charset %q, want %s charset %q", tt.raw, r.MediaType, r.Charset, tt.mediaType, tt.charset)
		}
	}
	d := Parse([]byte("Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\nx\r\n--d--\r\n"))
	if c := d.Root.Children; len(c) != 1 || c[0].MediaType != "message/rfc822" || c[0].Message == nil || c[0].Message.Subject != "one" {
		t.Errorf("digest part = %+v, want message/rfc822 by default", c)
	}
}

func TestUnknownDispositionIsAnAttachment(t *testing.T) {
	m := Parse([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nbody\r\n--b\r\nContent-Disposition: x-unknown\r\n\r\nmore\r\n--b--\r\n"))
	if got := summarize(m); got.text != "body" || !slices.Equal(got.attachments, []string{"2 text/plain"}) {
		t.Errorf("Parse(unknown disposition) = %+v, want the part as an attachment (RFC 2183 section 2.8)", got)
	}
}

// TestQPControls reads the escaping reader a byte at a time and whole: the control
// bytes of a quoted-printable body come out as =XX, everything else as it is.
func TestQPControls(t *testing.T) {
	in := "a\x1b$B\x00=3D\tb\r\nc\x7f\x01"
	want := "a=1B$B=00=3D\tb\r\nc=7F=01"
	for _, r := range []io.Reader{&qpControls{b: []byte(in)}, iotest.OneByteReader(&qpControls{b: []byte(in)})} {
		got, err := io.ReadAll(r)
		if err != nil || string(got) != want {
			t.Errorf("qpControls(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if err := iotest.TestReader(&qpControls{b: []byte(in)}, []byte(want)); err != nil {
		t.Error(err)
	}
}

// TestSearchTextCutsAtRunes: a limit that falls inside a character drops the
// character, leaving valid UTF-8 and no replacement character, in header and body.
func TestSearchTextCutsAtRunes(t *testing.T) {
	m := Parse([]byte("Subject: ééé\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.Repeat("é", 100)))
	for limit := 1; limit < 80; limit++ {
		header, body := m.SearchText(limit)
		for _, s := range []string{header, body} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) {
				t.Fatalf("SearchText(%d) = %q, %q: not cut at a character", limit, header, body)
			}
		}
		if len(header)+len(body) > limit {
			t.Fatalf("SearchText(%d) = %d bytes", limit, len(header)+len(body))
		}
	}
	if got := cutRune([]byte("aé")[:2]); string(got) != "a" {
		t.Errorf("cutRune(a + half of é) = %q, want a", got)
	}
	if got := cutRune([]byte("aé")); string(got) != "aé" {
		t.Errorf("cutRune(aé) = %q", got)
	}
}

// The Date the listing shows: obsolete zone names (RFC 5322 section 4.3) keep their
// offset, a trailing comment is dropped, an unparsable date is zero.
func TestDate(t *testing.T) {
	tests := []struct {
		name, date string
		want       time.Time
	}{
		{"usual", "Tue, 1 Dec 2026 08:00:00 +0000", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{"comment", "Tue, 1 Dec 2026 08:00:00 +0000 (UTC)", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{"no weekday", "01 Dec 2026 09:00:00 +0100", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{"obsolete zone", "Tue, 1 Dec 2026 03:00:00 EST", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{"seconds left out", "Tue, 1 Dec 2026 08:00 +0000", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{"nonsense", "yesterday", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse([]byte("Date: " + tt.date + "\r\n\r\n"))
			if !m.Date.Equal(tt.want) {
				t.Errorf("Parse(Date: %q).Date = %v, want %v", tt.date, m.Date, tt.want)
			}
		})
	}
}

// HeaderStart: what is dropped before a receiver's own fields go on top leaves a
// message that Parse reads the same, fields and body.
func TestHeaderStart(t *testing.T) {
	tests := []struct {
		name, raw string
		want      int
	}{
		{"plain", "From: a@x.test\r\nSubject: s\r\n\r\nbody\r\n", 0},
		{"folded first line", "  not a field\r\nFrom: a@x.test\r\nSubject: s\r\n\r\nbody\r\n", 15},
		{"two orphan lines", " one\r\n\ttwo\r\nSubject: s\r\n\r\nb\r\n", 12},
		{"indented field", "  Subject: s\r\nFrom: a@x.test\r\n\r\nb\r\n", 2},
		{"byte order mark", "\xef\xbb\xbfSubject: s\r\n\r\nb\r\n", 3},
		{"mbox line", "From a@x.test Mon Nov 23 10:00:00 2026\r\nSubject: s\r\n\r\nb\r\n", 40},
		{"no field: the body", " just text\r\n\r\nmore\r\n", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HeaderStart([]byte(tt.raw))
			if got != tt.want {
				t.Fatalf("HeaderStart(%q) = %d, want %d", tt.raw, got, tt.want)
			}
			if got == 0 {
				return
			}
			// Our own field on top of what is left reads as the message did, plus it.
			before := Parse([]byte(tt.raw))
			after := Parse([]byte("Received: by mx.test; Mon, 23 Nov 2026 10:00:00 +0000\r\n" + tt.raw[got:]))
			if after.Subject != before.Subject || after.Text() != before.Text() || len(after.Headers()) != len(before.Headers())+1 {
				t.Errorf("after dropping %d bytes: subject %q text %q %d fields; before %q %q %d", got,
					after.Subject, after.Text(), len(after.Headers()), before.Subject, before.Text(), len(before.Headers()))
			}
		})
	}
}

// ParseFacts stops at the first attachment, and gives Parse's answer where the parts
// before an attachment use up MaxParts, so that Parse never reaches it.
func TestParseFacts(t *testing.T) {
	var many strings.Builder
	many.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n")
	for range MaxParts + 10 {
		many.WriteString("--a\r\nContent-Type: text/plain\r\n\r\nx\r\n")
	}
	many.WriteString("--a--\r\n--m\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--m--\r\n")
	big := "Subject: big\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--m\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n\r\n" + strings.Repeat("iVBORw0KGgo=\r\n", 1<<16) + "--m--\r\n"
	tests := []struct {
		name, raw string
		want      bool
	}{
		{"attachment after the text", big, true},
		{"attachment past MaxParts", many.String(), false},
		{"text and html only", "Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nt\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>t</p>\r\n--a--\r\n", false},
		{"second html outside an alternative", "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>1</p>\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>2</p>\r\n--a--\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := Parse([]byte(tt.raw)), ParseFacts([]byte(tt.raw))
			if m.HasAttachments() != tt.want || f.HasAttachments() != tt.want {
				t.Errorf("HasAttachments: Parse %v, ParseFacts %v; want %v", m.HasAttachments(), f.HasAttachments(), tt.want)
			}
			sameFacts(t, tt.name, m, f)
			if tt.raw == big && len(f.Attachments) != 0 {
				t.Errorf("ParseFacts listed %d attachments: it read on past the first", len(f.Attachments))
			}
		})
	}
}

// ParseHeader reads the header facts as Parse does, without the body.
func TestParseHeader(t *testing.T) {
	raw := []byte(" stray\r\nFrom: Ann <ann@x.test>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <a@x>\r\nReferences: <r@x> <s@x>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--\r\n")
	h, m := ParseHeader(raw), Parse(raw)
	if h.Subject != m.Subject || h.HeaderEnd != m.HeaderEnd || h.MessageID != m.MessageID || fmt.Sprint(h.From) != fmt.Sprint(m.From) ||
		fmt.Sprint(h.References) != fmt.Sprint(m.References) || h.Header.Len() != m.Header.Len() || h.Root != nil {
		t.Errorf("ParseHeader = %q %d %q %v %v (%d fields), Parse = %q %d %q %v %v (%d fields)", h.Subject, h.HeaderEnd, h.MessageID, h.From, h.References, h.Header.Len(),
			m.Subject, m.HeaderEnd, m.MessageID, m.From, m.References, m.Header.Len())
	}
	if _, err := StrictAddressList(h.Header, "From"); err != nil {
		t.Errorf("StrictAddressList(From) = %v", err)
	}
	if l, err := StrictAddressList(ParseHeader([]byte("From: <a@x.test> junk\r\n\r\n")).Header, "From"); err == nil {
		t.Errorf("StrictAddressList(<a@x.test> junk) = %v, want an error", l)
	}
}

func TestAddresses(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Ann <ann@x.test>", "ann@x.test"},
		{"Doe, John <j@x.test>", " j@x.test"},
		{"Jörg (work) <j@x.test>, <k@y.test>", "j@x.test k@y.test"},
		{"no address", ""},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range Addresses(tt.in) {
			got = append(got, a.Address)
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("Addresses(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
