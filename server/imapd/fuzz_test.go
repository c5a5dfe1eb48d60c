package imapd

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// FuzzMessage feeds a stranger's message and a client's search text to everything
// here that parses them: BODYSTRUCTURE, ENVELOPE, body and binary sections, and the
// SEARCH matchers. Besides not panicking or hanging, the structure must be one
// imapserver can write (it panics on a multipart without parts), and BODY[] must be
// the message itself.
func FuzzMessage(f *testing.F) {
	for _, name := range []string{"testdata/invoice.eml"} {
		f.Add(readFile(f, name), "invoice")
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n"), "")
	f.Add([]byte(strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 200)+"Subject: deep\r\n\r\nx"), "DEEP")
	f.Add([]byte("Subject: =?utf-8?B?w6k=?=\n\nbody\n"), "é")
	f.Fuzz(func(t *testing.T, raw []byte, pattern string) {
		m := mailparse.Parse(raw)
		bs := bodyStructure(m)
		checkStructure(t, bs, 0)
		if env, head := envelope(m), headerEnvelope(raw); !reflect.DeepEqual(env, head) {
			t.Fatalf("ENVELOPE from the header alone = %+v, from the message %+v", head, env)
		}
		whole := bodySection(m, &imap.FetchItemBodySection{})
		header := bodySection(m, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
		text := bodySection(m, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
		if !bytes.Equal(whole, raw) || !bytes.Equal(append(append([]byte{}, header...), text...), raw) {
			t.Fatalf("BODY[] or BODY[HEADER] + BODY[TEXT] is not the message")
		}
		for _, item := range []*imap.FetchItemBodySection{
			{Part: []int{1}},
			{Part: []int{2}, Partial: &imap.SectionPartial{Offset: 3, Size: 7}},
			{Part: []int{1, 1}, Specifier: imap.PartSpecifierMIME},
			{Part: []int{2, 1}, Specifier: imap.PartSpecifierText},
			{Part: []int{1}, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Content-Type"}},
			{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Received"}},
		} {
			bodySection(m, item)
		}
		binarySection(m, &imap.FetchItemBinarySection{Part: []int{1}})
		binarySection(m, &imap.FetchItemBinarySection{Part: []int{2, 1}, Partial: &imap.SectionPartial{Offset: 1, Size: 2}})
		st := extractText(m)
		if st.size() > maxSearchText {
			t.Fatalf("searchable text of %d bytes, over %d", st.size(), maxSearchText)
		}
		if st.contains(pattern, false) && !st.contains(pattern, true) {
			t.Fatalf("BODY %q matches where TEXT does not", pattern)
		}
		headerContains(m, "From", pattern)
		headerContains(m, pattern, "")
	})
}

// checkStructure fails where imapserver's writer would panic.
func checkStructure(t *testing.T, bs imap.BodyStructure, depth int) {
	t.Helper()
	if depth > mailparse.MaxDepth+2 {
		t.Fatalf("structure deeper than %d", mailparse.MaxDepth)
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(bs.Children) == 0 || bs.Extended == nil {
			t.Fatalf("multipart with %d children, extended %v", len(bs.Children), bs.Extended)
		}
		for _, c := range bs.Children {
			checkStructure(t, c, depth+1)
		}
	case *imap.BodyStructureSinglePart:
		if bs.Extended == nil {
			t.Fatal("single part without extended data")
		}
		if bs.MessageRFC822 != nil {
			checkStructure(t, bs.MessageRFC822.BodyStructure, depth+1)
		}
	default:
		t.Fatalf("structure of type %T", bs)
	}
}

// FuzzAuthenticate feeds LOGIN's user and password to the login check: whatever the
// input, only the inbox's token or the admin key opens it, and only on our domains.
func FuzzAuthenticate(f *testing.F) {
	inbox, token := "box@mayfly.test", testTokens.Token("box@mayfly.test")
	f.Add(inbox, token)
	f.Add("Box+Tag@MAYFLY.test", token)
	f.Add("box@other.test", testTokens.Token("box@other.test"))
	f.Add(`"quoted local"@mayfly.test`, adminKey)
	f.Add("@", "")
	f.Add("a@b@mayfly.test", "x")
	srv := New(Options{Domains: []string{"Mayfly.Test"}, Keys: storage.Keys{Tokens: testTokens, APIKey: adminKey}}, nil, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, user, password string) {
		got, err := srv.authenticate(user, password)
		if err != nil {
			return
		}
		want, _, perr := storage.ParseAddress(user)
		if perr != nil || got != want {
			t.Fatalf("authenticate(%q) = %q, want %q (%v)", user, got, want, perr)
		}
		if storage.Domain(got) != "mayfly.test" {
			t.Fatalf("authenticate(%q) let in a user of %q", user, storage.Domain(got))
		}
		if password != adminKey && !testTokens.Valid(got, password) {
			t.Fatalf("authenticate(%q, %q) let in a password that is neither token nor admin key", user, password)
		}
	})
}

// TestFuzzCorpus keeps the seed corpus in testdata/fuzz readable by the fuzzer.
func TestFuzzCorpus(t *testing.T) {
	for _, target := range []string{"FuzzMessage", "FuzzAuthenticate"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil || !bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
				t.Errorf("%s is not a corpus file: %v", name, err)
			}
		}
	}
}
