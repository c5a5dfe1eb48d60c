package imapd

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mayfly-mail/mayfly/storage"
)

// The messages of issue 15 that IMAP read differently from the API before it read
// through server/mailparse. Each is also in server/mailparse/testdata/corpus, where
// cmd/mayfly's cross-view test compares every view of it.
const (
	noBlankLine = "From: Hasty Script <script@example.net>\r\nTo: qa@serve.test\r\n" +
		"Subject: No blank line after the header\r\n" +
		"This line starts the body although no blank line came before it.\r\n" +
		"Deploy finished successfully on host web3.\r\n"
	wrongBoundary = "From: Broken Mailer <broken@example.net>\r\nSubject: Report with a wrong boundary\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"declared-but-never-used\"\r\n\r\n" +
		"--actual-boundary\r\nContent-Type: text/plain\r\n\r\nThe report is attached as a PDF.\r\n" +
		"--actual-boundary\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n" +
		"Content-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"JVBERi0xLjQKJSVFT0YK\r\n--actual-boundary--\r\n"
	reusedBoundary = "From: Broken Mailer <broken@example.net>\r\nSubject: Nested multiparts reusing one boundary\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"same\"\r\n\r\n" +
		"--same\r\nContent-Type: multipart/alternative; boundary=\"same\"\r\n\r\n" +
		"--same\r\nContent-Type: text/plain\r\n\r\nInner text with the outer boundary reused.\r\n" +
		"--same\r\nContent-Type: text/html\r\n\r\n<p>Inner html</p>\r\n--same--\r\n" +
		"--same\r\nContent-Type: application/zip; name=\"bundle.zip\"\r\n" +
		"Content-Disposition: attachment; filename=\"bundle.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\r\n--same--\r\n"
	brokenFrom = "From: foo\r\nTo: Bob Dunite <bob@extern> Bobby Dunite <bobby@extern>\r\nSubject: broken addresses\r\n\r\nhi\r\n"
)

// fetchOne fetches one message by UID, failing the test on anything but one answer.
func fetchOne(t *testing.T, c *imapclient.Client, uid uint32, options *imap.FetchOptions) *imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), options).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("UID FETCH %d = %d messages, %v", uid, len(msgs), err)
	}
	return msgs[0]
}

// shape writes a BODYSTRUCTURE as types and file names: multipart/mixed[text/plain,
// application/pdf "report.pdf"].
func shape(bs imap.BodyStructure) string {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		var kids []string
		for _, c := range bs.Children {
			kids = append(kids, shape(c))
		}
		return bs.MediaType() + "[" + strings.Join(kids, ", ") + "]"
	case *imap.BodyStructureSinglePart:
		if name := bs.Filename(); name != "" {
			return bs.MediaType() + " " + `"` + name + `"`
		}
		return bs.MediaType()
	}
	return "?"
}

func TestReadsAsMailparse(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		noBlank := put(t, st, inbox, "no blank", []byte(noBlankLine))
		wrong := put(t, st, inbox, "wrong boundary", []byte(wrongBoundary))
		reused := put(t, st, inbox, "reused boundary", []byte(reusedBoundary))
		from := put(t, st, inbox, "broken from", []byte(brokenFrom))
		c, _ := open(t, srv.addr, inbox, nil)

		t.Run("no blank line after the header", func(t *testing.T) {
			text := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
			header := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
			m := fetchOne(t, c, noBlank.UID, &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{text, header}})
			wantText := "This line starts the body although no blank line came before it.\r\nDeploy finished successfully on host web3.\r\n"
			if got := string(m.FindBodySection(text)); got != wantText {
				t.Errorf("BODY[TEXT] = %q, want %q", got, wantText)
			}
			if got := string(m.FindBodySection(header)); !strings.HasSuffix(got, "Subject: No blank line after the header\r\n") {
				t.Errorf("BODY[HEADER] = %q, want it to end with the Subject field", got)
			}
			if m.Envelope == nil || m.Envelope.Subject != "No blank line after the header" {
				t.Errorf("ENVELOPE = %+v", m.Envelope)
			}
			data, err := c.UIDSearch(&imap.SearchCriteria{Body: []string{"although"}}, nil).Wait()
			if err != nil || len(data.AllUIDs()) != 1 || data.AllUIDs()[0] != imap.UID(noBlank.UID) {
				t.Errorf("UID SEARCH BODY although = %v, %v; want UID %d", data.AllUIDs(), err, noBlank.UID)
			}
		})

		t.Run("wrong boundary", func(t *testing.T) {
			part1 := &imap.FetchItemBodySection{Part: []int{1}, Peek: true}
			m := fetchOne(t, c, wrong.UID, &imap.FetchOptions{
				BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
				BodySection:   []*imap.FetchItemBodySection{part1},
			})
			if got, want := shape(m.BodyStructure), `multipart/mixed[text/plain, application/pdf "report.pdf"]`; got != want {
				t.Errorf("BODYSTRUCTURE = %s, want %s", got, want)
			}
			if got := string(m.FindBodySection(part1)); got != "The report is attached as a PDF." {
				t.Errorf("BODY[1] = %q", got)
			}
			pdf := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
			m = fetchOne(t, c, wrong.UID, &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{pdf}})
			if got := string(m.FindBinarySection(pdf)); got != "%PDF-1.4\n%%EOF\n" {
				t.Errorf("BINARY[2] = %q, want the PDF", got)
			}
		})

		t.Run("nested multipart reusing its parent's boundary", func(t *testing.T) {
			inner := &imap.FetchItemBodySection{Part: []int{1, 1}, Peek: true}
			m := fetchOne(t, c, reused.UID, &imap.FetchOptions{
				BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
				BodySection:   []*imap.FetchItemBodySection{inner},
			})
			if got, want := shape(m.BodyStructure), `multipart/mixed[multipart/alternative[text/plain, text/html], application/zip "bundle.zip"]`; got != want {
				t.Errorf("BODYSTRUCTURE = %s, want %s", got, want)
			}
			if got := string(m.FindBodySection(inner)); got != "Inner text with the outer boundary reused." {
				t.Errorf("BODY[1.1] = %q", got)
			}
		})

		t.Run("addresses without a domain or a comma", func(t *testing.T) {
			m := fetchOne(t, c, from.UID, &imap.FetchOptions{Envelope: true})
			e := m.Envelope
			if e == nil || len(e.From) != 1 || e.From[0].Name != "foo" || e.From[0].IsGroupStart() || e.From[0].IsGroupEnd() {
				t.Errorf("ENVELOPE From = %+v, want the name foo, not a group marker", e)
			}
			if e == nil || len(e.To) != 1 || e.To[0].Mailbox != "bobby" || e.To[0].Host != "extern" || !strings.Contains(e.To[0].Name, "Bob Dunite") {
				t.Errorf("ENVELOPE To = %+v, want Bob Dunite's names and bobby@extern", e)
			}
		})
	})
}
