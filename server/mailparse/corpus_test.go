package mailparse

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"
)

// TestCorpus reads every message of the cross-view corpus (testdata/corpus, issue
// 15) and checks what the views rely on: each body located in the message, valid
// UTF-8, and each leaf outside attached messages filed once by the rule.
func TestCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.eml")
	if len(files) == 0 {
		t.Fatal("no corpus in testdata/corpus: it is part of the repository (issue 15)")
	}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		m := Parse(raw)
		if !utf8.ValidString(m.Text()) || !utf8.ValidString(m.HTML()) || !utf8.ValidString(m.Subject) {
			t.Errorf("%s: text, HTML or subject is not valid UTF-8", name)
		}
		m.Walk(func(p *Part) bool {
			if p.Offset < 0 {
				t.Errorf("%s part %q: body not located in the message", name, p.Path)
			}
			return true
		})
		var leaves func(p *Part)
		leaves = func(p *Part) {
			if len(p.Children) > 0 {
				for _, c := range p.Children {
					leaves(c)
				}
				return
			}
			if p.IsMultipart() {
				return
			}
			n := 0
			if slices.Contains(m.TextParts, p) {
				n++
			}
			if m.HTMLPart == p {
				n++
			}
			if slices.Contains(m.Attachments, p) {
				n++
			}
			if n == 0 && !p.rendering() {
				t.Errorf("%s part %q (%s): neither body nor attachment", name, p.Path, p.MediaType)
			}
			if n > 1 {
				t.Errorf("%s part %q: filed %d times", name, p.Path, n)
			}
		}
		leaves(m.Root)
		if m.HasAttachments() != (len(m.Attachments) > 0) {
			t.Errorf("%s: HasAttachments() = %v with %d attachments", name, m.HasAttachments(), len(m.Attachments))
		}
		sameFacts(t, name, m, ParseFacts(raw))
	}
}

// sameFacts checks that ParseFacts reads what Parse reads of the listing's facts.
func sameFacts(t *testing.T, name string, m, f *Message) {
	t.Helper()
	if f.HasAttachments() != m.HasAttachments() || f.Subject != m.Subject || !f.Date.Equal(m.Date) ||
		fmt.Sprint(f.From) != fmt.Sprint(m.From) || fmt.Sprint(f.To) != fmt.Sprint(m.To) || fmt.Sprint(f.ReplyTo) != fmt.Sprint(m.ReplyTo) {
		t.Errorf("%s: ParseFacts has_attachments %v, subject %q, from %v, to %v, reply-to %v, date %v; Parse %v, %q, %v, %v, %v, %v", name,
			f.HasAttachments(), f.Subject, f.From, f.To, f.ReplyTo, f.Date, m.HasAttachments(), m.Subject, m.From, m.To, m.ReplyTo, m.Date)
	}
}
