package mailauth

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mayfly-mail/mayfly/server/mailparse"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestStripOwn(t *testing.T) {
	const id = "mx.mayfly.test"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"none", "From: a@b\r\nSubject: x\r\n\r\nbody\r\n", "From: a@b\r\nSubject: x\r\n\r\nbody\r\n"},
		{"ours removed", "Authentication-Results: mx.mayfly.test; spf=pass\r\nFrom: a@b\r\n\r\nbody\r\n", "From: a@b\r\n\r\nbody\r\n"},
		{"case-insensitive", "authentication-results: MX.Mayfly.TEST; dkim=pass\r\nFrom: a@b\r\n\r\nbody\r\n", "From: a@b\r\n\r\nbody\r\n"},
		{"folded", "From: a@b\r\nAuthentication-Results:\r\n  mx.mayfly.test;\r\n\tspf=pass smtp.mailfrom=a@b;\r\n\tdkim=pass\r\nTo: c@d\r\n\r\nbody\r\n", "From: a@b\r\nTo: c@d\r\n\r\nbody\r\n"},
		{"comment and version", "Authentication-Results: (forged) mx.mayfly.test 1; spf=pass\r\n\r\nb", "\r\nb"},
		{"quoted id", "Authentication-Results: \"mx.mayfly.test\"; spf=pass\r\n\r\nb", "\r\nb"},
		{"others kept", "Authentication-Results: mx.example.net; spf=pass\r\nAuthentication-Results: mx.mayfly.test.evil; spf=pass\r\n\r\nb", "Authentication-Results: mx.example.net; spf=pass\r\nAuthentication-Results: mx.mayfly.test.evil; spf=pass\r\n\r\nb"},
		{"several", "Authentication-Results: mx.mayfly.test; a=b\r\nX: 1\r\nAuthentication-Results: mx.mayfly.test;\r\n c=d\r\n\r\nb", "X: 1\r\n\r\nb"},
		{"body untouched", "From: a@b\r\n\r\nAuthentication-Results: mx.mayfly.test; spf=pass\r\n", "From: a@b\r\n\r\nAuthentication-Results: mx.mayfly.test; spf=pass\r\n"},
		{"no header section", "\r\nAuthentication-Results: mx.mayfly.test; spf=pass\r\n", "\r\nAuthentication-Results: mx.mayfly.test; spf=pass\r\n"},
		{"bare LF", "Authentication-Results: mx.mayfly.test; spf=pass\nFrom: a@b\n\nbody\n", "From: a@b\n\nbody\n"},
		{"header only, no final newline", "From: a@b\r\nAuthentication-Results: mx.mayfly.test; spf=pass", "From: a@b\r\n"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StripOwn([]byte(tt.in), id)
			if string(got) != tt.want {
				t.Errorf("StripOwn =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	t.Run("no copy when nothing to strip", func(t *testing.T) {
		in := []byte("From: a@b\r\n\r\nbody")
		if got := StripOwn(in, id); &got[0] != &in[0] {
			t.Error("StripOwn copied a message it did not change")
		}
	})
}

func FuzzStripOwn(f *testing.F) {
	f.Add([]byte("Authentication-Results: mx.mayfly.test; spf=pass\r\nFrom: a@b\r\n\r\nbody"), "mx.mayfly.test")
	f.Add([]byte("From: a@b\r\nAuthentication-Results:\r\n (c) \"mx\\.mayfly.test\";\r\n\tspf=pass\r\n\r\n"), "MX.mayfly.test")
	f.Add([]byte("\r\n\r\n"), "x")
	f.Add([]byte("Authentication-Results: (((x"), "x")
	f.Fuzz(func(t *testing.T, msg []byte, id string) {
		orig := bytes.Clone(msg)
		out := StripOwn(msg, id)
		if !bytes.Equal(msg, orig) {
			t.Fatal("StripOwn changed its input")
		}
		if len(out) > len(msg) {
			t.Fatal("StripOwn grew the message")
		}
		// The body stays byte for byte.
		if i := bodyStart(msg); !bytes.HasSuffix(out, msg[i:]) {
			t.Fatalf("body changed: %q -> %q", msg, out)
		}
		for _, f := range headerFields(out) {
			if id != "" && strings.EqualFold(f.name, "Authentication-Results") && strings.EqualFold(authservIDOf(unfold(out[f.value:f.end])), id) {
				t.Fatalf("our field left in %q", out)
			}
		}
		if again := StripOwn(out, id); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
	})
}

// bodyStart is where headerFields stopped: after the last field.
func bodyStart(msg []byte) int {
	fields := headerFields(msg)
	if len(fields) == 0 {
		return 0
	}
	return fields[len(fields)-1].end
}

// FuzzHeaderParsers feeds hostile header sections to every parser of ours that
// reads them: fields, From, DKIM-Signature tags.
func FuzzHeaderParsers(f *testing.F) {
	f.Add([]byte("From: \"a\" <a@b.test>\r\nDKIM-Signature: v=1; d=b.test; s=x; b=abc\r\n\r\n"))
	f.Add([]byte("From: =?x?q?a?= <a@[1.2.3.4]>\r\nDKIM-Signature: b=\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields := headerFields(msg)
		for _, f := range fields {
			if f.start > f.value || f.value > f.end || f.end > len(msg) {
				t.Fatalf("bad field %+v in %d bytes", f, len(msg))
			}
		}
		fromDomain(mailparse.ParseHeader(msg))
		dkimSignatures(msg, fields)
		for _, name := range []string{"DKIM-Signature", "Authentication-Results"} {
			if got, want := headerFieldsNamed(msg, name), namedOf(fields, name); !slices.Equal(got, want) {
				t.Fatalf("headerFieldsNamed(%q, %s) = %+v, want %+v", msg, name, got, want)
			}
		}
	})
}

// namedOf is fields less those not named name, with their name as asked.
func namedOf(fields []field, name string) []field {
	var out []field
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			f.name = name
			out = append(out, f)
		}
	}
	return out
}

// TestStripOwnAllocations: the receiver strips every message; one without an
// Authentication-Results field, as nearly all are, costs no allocation, where reading
// every field of its header did.
func TestStripOwnAllocations(t *testing.T) {
	msg := []byte("Received: from a by b; Mon, 7 Dec 2026 10:00:00 +0000\r\nFrom: Ann <a@b.test>\r\nTo: c@d.test\r\n" +
		"Subject: hello\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@b.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain\r\n\r\nbody\r\n")
	if n := testing.AllocsPerRun(100, func() { StripOwn(msg, "mx.mayfly.test") }); n != 0 {
		t.Errorf("StripOwn of a message without Authentication-Results: %v allocations, want 0", n)
	}
	for _, tt := range []struct{ msg, name string }{
		{"DKIM-Signature: a\r\n b\r\nX: 1\r\n dkim-signature: c\r\ndkim-signature : d\r\n\r\nDKIM-Signature: body", "DKIM-Signature"},
		{" DKIM-Signature: indented first\r\nDKIM-Signature:\r\n\r\n", "DKIM-Signature"},
		{"From: a\nAuthentication-Results: x;\n\ty\nTo: b", "Authentication-Results"},
	} {
		msg := []byte(tt.msg)
		if got, want := headerFieldsNamed(msg, tt.name), namedOf(headerFields(msg), tt.name); !slices.Equal(got, want) {
			t.Errorf("headerFieldsNamed(%q, %s) = %+v, want %+v", msg, tt.name, got, want)
		}
	}
}
