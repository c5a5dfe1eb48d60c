package storage

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, tt := range []struct{ in, inbox, tag string }{
		{"Box+Tag@Example.ORG", "box@example.org", "Tag"},
		{"box@example.org", "box@example.org", ""},
		{"a+b+c@x.test", "a@x.test", "b+c"},
		{"+x@x.test", "+x@x.test", ""},
		{`"odd@local"@x.test`, `"odd@local"@x.test`, ""},
	} {
		inbox, tag, err := ParseAddress(tt.in)
		if err != nil || inbox != tt.inbox || tag != tt.tag {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q", tt.in, inbox, tag, err, tt.inbox, tt.tag)
		}
	}
	for _, bad := range []string{"", "@", "box@", "@x.test", "nobody", strings.Repeat("a", 65) + "@x.test", "a@" + strings.Repeat("d", 256)} {
		if _, _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) accepted", bad)
		}
	}
}

// FuzzParseAddress checks what every view relies on: an inbox is its own normal form
// (IMAP, POP3 and the API take it back as a login or a path), lower case, with the
// domain Domain returns.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"Box+Tag@Example.ORG", "a@b", "+@x", `"q@q"@x.test`, "İİİ@x.test", "\xff@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inbox, tag, err := ParseAddress(s)
		if err != nil {
			return
		}
		if strings.ToLower(inbox) != inbox {
			t.Fatalf("inbox %q of %q is not lower case", inbox, s)
		}
		again, tag2, err := ParseAddress(inbox)
		if err != nil || again != inbox || tag2 != "" {
			t.Fatalf("inbox %q of %q parses as %q, %q, %v", inbox, s, again, tag2, err)
		}
		if d := Domain(inbox); !strings.HasSuffix(inbox, "@"+d) || strings.Contains(d, "@") {
			t.Fatalf("Domain(%q) = %q", inbox, d)
		}
		if tag != "" && !strings.Contains(s, "+"+tag+"@") {
			t.Fatalf("tag %q is not in %q", tag, s)
		}
	})
}
