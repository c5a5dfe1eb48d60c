package parse

import (
	"mime"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUnnamed(t *testing.T) {
	tests := []struct {
		name, raw string
		want      []string
	}{
		{"calendar", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n--b--\r\n", []string{"invite.ics"}},
		{"typed parts", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment\r\n\r\nPNG\r\n" +
			"--b\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n" +
			"--b\r\nContent-Type: image/jpeg\r\n\r\nJFIF\r\n" +
			"--b\r\nContent-Type: application/x-mayfly-unknown\r\n\r\n?\r\n" +
			"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnotes\r\n--b--\r\n",
			[]string{"attachment-0.png", "attachment-1.pdf", "attachment-2.jpg", "attachment-3", "attachment-4.txt"}},
		{"a name is kept", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/calendar; name=meeting.ics\r\n\r\nBEGIN:VCALENDAR\r\n" +
			"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"/\"\r\n\r\nPNG\r\n--b--\r\n",
			[]string{"meeting.ics", "attachment-1.png"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Message([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range p.Attachments {
				got = append(got, a.Filename)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Message(%q) attachment names = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

// plainFilename reads a Content-Disposition as curl -OJ and wget do: filename= only.
func plainFilename(t testing.TB, v string) string {
	t.Helper()
	plain, _, _ := strings.Cut(v, "; filename*=")
	d, params, err := mime.ParseMediaType(plain)
	if err != nil || d != "attachment" {
		t.Fatalf("ParseMediaType(%q) = %q, %v", plain, d, err)
	}
	return params["filename"]
}

func TestContentDisposition(t *testing.T) {
	tests := []struct {
		name, want, plain string
	}{
		{"terms.pdf", "attachment; filename=terms.pdf", "terms.pdf"},
		{"my file.pdf", `attachment; filename="my file.pdf"`, "my file.pdf"},
		{"résumé.pdf", `attachment; filename=r_sum_.pdf; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`, "r_sum_.pdf"},
		{"€ rate.txt", `attachment; filename="_ rate.txt"; filename*=UTF-8''%E2%82%AC%20rate.txt`, "_ rate.txt"},
		{"履歴書", `attachment; filename=___; filename*=UTF-8''%E5%B1%A5%E6%AD%B4%E6%9B%B8`, "___"},
		{`say "hi"\.txt`, `attachment; filename="say hi.txt"; filename*=UTF-8''say%20%22hi%22%5C.txt`, "say hi.txt"},
		{"100%.txt", `attachment; filename=100_.txt; filename*=UTF-8''100%25.txt`, "100_.txt"},
		{"\"\"", `attachment; filename=attachment; filename*=UTF-8''%22%22`, "attachment"},
	}
	for _, tt := range tests {
		got := ContentDisposition(tt.name)
		if got != tt.want {
			t.Errorf("ContentDisposition(%q) = %q, want %q", tt.name, got, tt.want)
		}
		if p := plainFilename(t, got); p != tt.plain {
			t.Errorf("ContentDisposition(%q): filename= %q, want %q", tt.name, p, tt.plain)
		}
		if _, params, err := mime.ParseMediaType(got); err != nil || params["filename"] != tt.name {
			t.Errorf("ContentDisposition(%q): a browser reads %q, %v", tt.name, params["filename"], err)
		}
	}
}

// FuzzContentDisposition: whatever the name, the header parses, its filename= is plain
// ASCII a shell can save under, and its filename*= (or filename=) gives the name back.
func FuzzContentDisposition(f *testing.F) {
	for _, s := range []string{"terms.pdf", "résumé.pdf", "a\x01b\"c\\d/e%f", " ..", "\xff.bin"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" {
			return
		}
		v := ContentDisposition(name)
		plain := plainFilename(t, v)
		if plain == "" || plain == "." || plain == ".." || strings.ContainsAny(plain, "/\\\"%") {
			t.Fatalf("ContentDisposition(%q) = %q: filename= %q", name, v, plain)
		}
		for i := 0; i < len(plain); i++ {
			if plain[i] < 0x20 || plain[i] >= 0x7f {
				t.Fatalf("ContentDisposition(%q) = %q: filename= %q is not printable ASCII", name, v, plain)
			}
		}
		if !utf8.ValidString(name) {
			return
		}
		if _, params, err := mime.ParseMediaType(v); err != nil || params["filename"] != name {
			t.Fatalf("ContentDisposition(%q) = %q: read back as %q, %v", name, v, params["filename"], err)
		}
	})
}
