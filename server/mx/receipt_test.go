package mx

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

const corpusDir = "../mailparse/testdata/corpus"

// TestSummaryIsMailparse sends every message of the cross-view corpus over SMTP and
// checks that what the listing stores is what mailparse reads from the stored bytes:
// inline images, attached messages, DSN parts and unnamed octet-streams count as
// attachments for the listing exactly as they do for the API and IMAP.
func TestSummaryIsMailparse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	if err != nil || len(files) < 80 {
		t.Fatalf("corpus in %s: %d files, %v", corpusDir, len(files), err)
	}
	eachStore(t, func(t *testing.T, st storage.Store) {
		addr := start(t, Options{MaxMessageSize: 4 << 20, RecipientRate: limit.Rate{N: -1}, ReceiveRate: limit.Rate{N: -1}}, st)
		c := dial(t, addr)
		for i, file := range files {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			inbox := "corpus" + strconv.Itoa(i) + "@mayfly.test"
			if err := c.Mail("sender@sender.test", nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt(inbox, nil); err != nil {
				t.Fatal(err)
			}
			if err := send(c, dotSafe(raw)); err != nil {
				t.Fatalf("%s: DATA: %v", filepath.Base(file), err)
			}
			m := only(t, st, inbox)
			stored, err := st.Raw(t.Context(), m.Inbox, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := mailparse.Parse(stored).Summary()
			if m.HasAttachments != want.HasAttachments || m.Subject != want.Subject || m.From != want.From || !m.Date.Equal(want.Date) {
				t.Errorf("%s: listing has_attachments %v, subject %q, from %q, date %v; mailparse reads %v, %q, %q, %v",
					filepath.Base(file), m.HasAttachments, m.Subject, m.From, m.Date, want.HasAttachments, want.Subject, want.From, want.Date)
			}
		}
	})
}

// TestFoldedFirstHeaderLine sends messages whose header starts with an indented line:
// stored under our trace field, that line must not continue it and take the sender's
// first field along; the listing and mailparse's reading of the stored bytes keep
// Subject and From.
func TestFoldedFirstHeaderLine(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		addr := start(t, Options{}, st)
		for _, tt := range []struct{ file, subject, from string }{
			{"broken-folded-first-header-line.eml", "The header block starts with a folded line", "Fold First <fold@example.net>"},
			{"enmime-broken-bad-header-start.eml", "plain text", "James Hillyerd <james@makita.skynet>"},
		} {
			raw, err := os.ReadFile(filepath.Join(corpusDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			inbox := strings.TrimSuffix(tt.file, ".eml") + "@mayfly.test"
			if err := dial(t, addr).SendMail("sender@sender.test", []string{inbox}, strings.NewReader(dotSafe(raw))); err != nil {
				t.Fatal(err)
			}
			m, stored := onlyRaw(t, st, inbox)
			p := mailparse.Parse(stored)
			from := p.Summary().From
			if m.Subject != tt.subject || m.From != tt.from || p.Subject != tt.subject || from != tt.from {
				t.Errorf("%s: listing subject %q from %q, stored bytes read as %q, %q; want %q, %q", tt.file, m.Subject, m.From, p.Subject, from, tt.subject, tt.from)
			}
			if f := p.Headers(); len(f) == 0 || f[0].Name != "Received" || strings.Contains(f[0].Value, "From:") || strings.Contains(f[0].Value, "X-Continued") {
				t.Errorf("%s: first field %+v, want our Received alone", tt.file, f[:min(len(f), 1)])
			}
		}
	})
}

// TestFoldedFirstLineDKIM: a signed message with an indented line in front of its
// header still verifies once the line is dropped, and is stored under our results.
func TestFoldedFirstLineDKIM(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v := shopVerifier(t, "k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	eachStore(t, func(t *testing.T, st storage.Store) {
		srv := start(t, Options{Verifier: v}, st)
		signed := signedReceipt(t, key)
		body := " a stray folded line\r\n" + signed.String()
		if err := dial(t, srv).SendMail("bounces@bounces.test", []string{"buyer@mayfly.test"}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		m := only(t, st, "buyer@mayfly.test")
		if got := [3]string{m.Auth.SPF, m.Auth.DKIM, m.Auth.DMARC}; got != [3]string{"pass", "pass", "pass"} {
			t.Errorf("spf, dkim, dmarc = %q, want pass", got)
		}
		if m.Subject != "Your receipt" || m.From != "Shop <noreply@shop.test>" {
			t.Errorf("subject %q, from %q", m.Subject, m.From)
		}
		stored, _ := st.Raw(t.Context(), m.Inbox, m.ID)
		if !bytes.HasSuffix(stored, signed.Bytes()) || bytes.Contains(stored, []byte("stray")) {
			t.Errorf("stored bytes are not our fields and the signed message:\n%.600s", stored)
		}
	})
}

// dotSafe makes raw's line ends CRLF, as a client sends them.
func dotSafe(raw []byte) string {
	s := strings.ReplaceAll(string(raw), "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}
