package main

// The cross-view test (issue 15): every message of server/mailparse/testdata/corpus is
// delivered over SMTP to an inbox of its own and read back through the listing, the API
// message, IMAP and POP3, over real sockets; the views must tell the same story.
//
// The rule the views share (docs/architecture.md, "One message reader"):
//
//   - Header. The header ends at the first empty line, or else at the first line that
//     is neither a header field ("name:" with a printable ASCII name, white space
//     before the colon allowed) nor a continuation (a line starting with space or tab);
//     that line is the first line of the body. Indented lines before the first field
//     continue nothing: one that reads as a field without its indentation is one, the
//     others are dropped (mailparse.HeaderStart); the receiver drops them before it
//     puts its trace fields on top, or they would join our Received field.
//   - Subject and sender. Subject is the first Subject field, RFC 2047 decoded (an
//     unknown charset leaves the word as sent), white space runs made one space. The
//     sender is the first From field's first address: its display name and its
//     address; an unparsable From is shown as its decoded text.
//   - Tree. multipart/* parts are containers and their children the parts; a multipart
//     whose boundary never occurs is one text/plain leaf holding its body; delimiter
//     lines may carry trailing white space; a missing close delimiter ends the last
//     part at the end of the body; an empty part (two delimiters in a row) is a part.
//     A delimiter line belongs to the innermost open multipart whose boundary it is, so
//     a nested multipart that reuses its parent's boundary holds the parts up to its
//     own close delimiter, and the parent goes on after it.
//     message/rfc822 and message/global are leaves: one part, not walked into. A
//     missing Content-Type is text/plain (multipart/digest children: message/rfc822);
//     a damaged one keeps the type/subtype it starts with and the parameters that parse,
//     and only a field with no type/subtype at all is text/plain. A parameter in RFC
//     2231 form with an unknown charset keeps its bytes.
//   - 8-bit header text (raw, not RFC 2047) is UTF-8 when it is valid UTF-8 and
//     Windows-1252 otherwise, in the Subject, the From and file names alike.
//   - Decoding: base64 skips what is not of its alphabet (RFC 2045 section 6.8) and
//     decodes an unpadded end as far as it goes; quoted-printable keeps a bad escape as
//     sent; a charset nobody knows leaves the bytes as they are.
//   - Text, HTML and attachments: server/mailparse's package rule, stated for this test
//     once, in bodyRule, which reads it off BODYSTRUCTURE. The text body is the first
//     text/plain leaf that is not an attachment (a disposition other than inline, or a
//     file name), and each further one outside a multipart/alternative follows it; the
//     HTML body the first such text/html leaf; further text leaves inside an
//     alternative that are not attachments (not text/calendar) are other renderings,
//     neither body nor attachment; every other leaf is an attachment, in tree order,
//     and an attached message (message/rfc822, message/global) is one leaf. With no
//     text body, the text shown (and searched) is the HTML body rendered as text.
//     A part's name is the Content-Disposition filename, else the Content-Type name,
//     RFC 2231 and RFC 2047 decoded.
//   - has_attachments is "the attachment list is not empty", in the listing as in the
//     message.
//
// Seen from IMAP the rule reads BODYSTRUCTURE: the text body is the sections it points
// at, their bytes fetched with BODY.PEEK[section] and decoded by each part's own
// Content-Transfer-Encoding and charset as a mail client would, one after the other, and the API's text must
// be what IMAP SEARCH BODY searches. POP3 TOP n 0 must give a header that reads the same
// subject and sender.
//
// Run alone: bash .ci/with-services go test -count=1 -run TestCrossView -v ./cmd/mayfly/

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/mayfly-mail/mayfly/server/mailparse"
)

const corpusDir = "../../server/mailparse/testdata/corpus"

// crossDecoder decodes RFC 2047 words in any charset go-message knows, as a mail client
// reading ENVELOPE and BODYSTRUCTURE would.
var crossDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// apiMessage is what the test reads of the listing and of the message.
type apiMessage struct {
	ID             string `json:"id"`
	From           string `json:"from"`
	Subject        string `json:"subject"`
	HasAttachments bool   `json:"has_attachments"`
	Text           string `json:"text"`
	Attachments    []struct {
		Filename    string `json:"filename"`
		ContentType string `json:"content_type"`
	} `json:"attachments"`
}

// viewAttachment is one attachment as a view names it.
type viewAttachment struct{ name, mediaType string }

func (a viewAttachment) String() string { return a.mediaType + " " + fmt.Sprintf("%q", a.name) }

func TestCrossView(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", corpusDir, err)
	}
	sort.Strings(files)
	// Rates are not what this test is about: 150 inboxes and their reads in a few
	// seconds are past the defaults meant for one client.
	n := startNode(t, "-http-rate", "off", "-command-rate", "off", "-inbox-create-rate", "off", "-recipient-rate", "off")
	var failed []string
	kinds := map[string]int{} // disagreement kind: messages with it
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		ok := t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c := &crossCheck{t: t, kinds: map[string]bool{}}
			crossView(c, n, raw)
			for kind := range c.kinds {
				kinds[kind]++
			}
		})
		if !ok {
			failed = append(failed, name)
		}
	}
	t.Logf("cross-view summary: %d messages, %d agree, %d disagree", len(files), len(files)-len(failed), len(failed))
	kindNames := make([]string, 0, len(kinds))
	for kind := range kinds {
		kindNames = append(kindNames, kind)
	}
	sort.Strings(kindNames)
	for _, kind := range kindNames {
		t.Logf("  %-16s %d messages", kind+":", kinds[kind])
	}
	for _, name := range failed {
		t.Logf("  disagree: %s", name)
	}
}

// crossView delivers raw to a new inbox and compares what each view shows of it.
// crossCheck reports disagreements, keeping which kinds a message showed for the summary.
type crossCheck struct {
	t     *testing.T
	kinds map[string]bool
}

func (c *crossCheck) errorf(kind, format string, args ...any) {
	c.t.Helper()
	c.kinds[kind] = true
	c.t.Errorf(kind+": "+format, args...)
}

func crossView(c *crossCheck, n *node, raw []byte) {
	t := c.t
	in := createInbox(t, n.http, "")
	sendRaw(t, n.smtp, in.Address, raw)

	// (a) the listing
	var listing struct{ Messages []apiMessage }
	deadline := time.Now().Add(10 * time.Second)
	for {
		apiGet(t, n.http, in, "/messages", &listing)
		if len(listing.Messages) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the message is not listed within 10s of its 250")
		}
		time.Sleep(20 * time.Millisecond) // polling the listing, with a deadline
	}
	if len(listing.Messages) != 1 {
		t.Fatalf("listing has %d messages, want 1", len(listing.Messages))
	}
	list := listing.Messages[0]

	// (b) the API's message
	var msg apiMessage
	apiGet(t, n.http, in, "/messages/"+list.ID, &msg)
	apiAtts := make([]viewAttachment, len(msg.Attachments))
	for i, a := range msg.Attachments {
		apiAtts[i] = viewAttachment{a.Filename, strings.ToLower(a.ContentType)}
	}

	// (c) IMAP
	iv := readIMAP(t, n.imap, in)
	// (d) POP3
	popSubject, popFrom := readPOP3(t, n.pop3, in)

	// Subject.
	subjects := map[string]string{
		"listing": oneSpace(list.Subject), "API": oneSpace(msg.Subject),
		"IMAP ENVELOPE": oneSpace(iv.subject), "POP3 TOP": oneSpace(popSubject),
	}
	agree(c, "subject", subjects)

	// Sender: the listing's and the API's "Name <addr>" against ENVELOPE's and the
	// header POP3 gives, made the same way.
	senders := map[string]string{
		"listing": oneSpace(list.From), "API": oneSpace(msg.From),
		"IMAP ENVELOPE": oneSpace(iv.from), "POP3 TOP": oneSpace(popFrom),
	}
	agree(c, "sender", senders)

	// Text body: the API's text against the text/plain section BODYSTRUCTURE points at.
	apiText := oneSpace(msg.Text)
	switch {
	case iv.textSection == "" && apiText != "" && !iv.hasHTML:
		c.errorf("text", "the API shows %q, IMAP BODYSTRUCTURE has no text/plain or text/html body part", clip(apiText))
	case iv.textSection != "":
		imapText := oneSpace(iv.text)
		if !sameText(apiText, imapText) {
			c.errorf("text", "the API shows %q, IMAP BODY[%s] (%d bytes) decodes to %q", clip(apiText), iv.textSection, iv.textBytes, clip(imapText))
		}
	}
	// IMAP SEARCH BODY must find a word of the text the API shows.
	if word := searchWord(msg.Text); word != "" {
		if !iv.search(t, word) {
			c.errorf("search", "IMAP UID SEARCH BODY %q does not find the message; the API's text has it", word)
		}
	}

	// Attachments: count, type and name, in tree order.
	if !sameAttachments(apiAtts, iv.attachments) {
		c.errorf("attachments", "the API lists %v, IMAP BODYSTRUCTURE by the rule gives %v", apiAtts, iv.attachments)
	}
	has := map[string]string{
		"listing has_attachments": fmt.Sprint(list.HasAttachments),
		"API has_attachments":     fmt.Sprint(msg.HasAttachments),
		"API attachment list":     fmt.Sprint(len(apiAtts) > 0),
		"IMAP BODYSTRUCTURE":      fmt.Sprint(len(iv.attachments) > 0),
	}
	agree(c, "has_attachments", has)
}

// agree fails the test once, naming every view, if the views do not all say the same.
func agree(c *crossCheck, what string, views map[string]string) {
	c.t.Helper()
	seen := map[string]bool{}
	for _, v := range views {
		seen[v] = true
	}
	if len(seen) <= 1 {
		return
	}
	names := make([]string, 0, len(views))
	for name := range views {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "\n\t%-24s %q", name+":", clip(views[name]))
	}
	c.errorf(what, "views differ:%s", b.String())
}

// sendRaw delivers raw as it is, bare LFs and all, which go-smtp's client would turn
// into CRLFs: what the server does with them is part of what is compared.
func sendRaw(t *testing.T, addr, rcpt string, raw []byte) {
	t.Helper()
	c := dialRetry(t, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	expect := func(cmd, code string) {
		t.Helper()
		if cmd != "" {
			if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
				t.Fatalf("SMTP %s: %v", cmd, err)
			}
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("SMTP %q: %v", cmd, err)
			}
			if !strings.HasPrefix(line, code) {
				t.Fatalf("SMTP %q answered %q, want %s", cmd, strings.TrimSpace(line), code)
			}
			if len(line) < 4 || line[3] != '-' {
				return
			}
		}
	}
	expect("", "220")
	expect("EHLO crossview.test", "250")
	expect("MAIL FROM:<s@sender.test> BODY=8BITMIME", "250")
	expect("RCPT TO:<"+rcpt+">", "250")
	expect("DATA", "354")
	var data bytes.Buffer
	for line := range bytes.Lines(raw) {
		if line[0] == '.' {
			data.WriteByte('.')
		}
		data.Write(line)
	}
	// The end of data is CRLF.CRLF whatever the message's own line ends: a server that
	// took a bare LF there would be open to SMTP smuggling.
	if len(raw) > 0 && !bytes.HasSuffix(raw, []byte("\r\n")) {
		data.WriteString("\r\n")
	}
	data.WriteString(".\r\n")
	if _, err := c.Write(data.Bytes()); err != nil {
		t.Fatalf("SMTP DATA: %v", err)
	}
	expect("", "250")
	expect("QUIT", "221")
}

func apiGet(t *testing.T, httpAddr string, in inboxJSON, route string, v any) {
	t.Helper()
	getJSON(t, httpAddr, "/api/v1/inboxes/"+in.Address+route, in.Token, v)
}

// imapView is what IMAP shows of the message.
type imapView struct {
	c             *imapclient.Client
	uid           imap.UID
	subject, from string
	textSection   string // "1.2 1.4": the text/plain sections by the rule; empty when there is none
	text          string
	textBytes     int
	hasHTML       bool
	attachments   []viewAttachment
}

func readIMAP(t *testing.T, addr string, in inboxJSON) *imapView {
	t.Helper()
	conn := dialRetry(t, addr)
	c := imapclient.New(conn, &imapclient.Options{WordDecoder: crossDecoder})
	t.Cleanup(func() { c.Close() })
	if err := c.WaitGreeting(); err != nil {
		t.Fatalf("IMAP greeting: %v", err)
	}
	if err := c.Login(in.Address, in.Token).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN: %v", err)
	}
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("IMAP SELECT INBOX = %+v, %v; want 1 message", sel, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		UID: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("IMAP FETCH ENVELOPE BODYSTRUCTURE = %d messages, %v", len(msgs), err)
	}
	m := msgs[0]
	v := &imapView{c: c, uid: m.UID}
	if m.Envelope != nil {
		v.subject = m.Envelope.Subject
		v.from = formatAddresses(m.Envelope.From)
	}
	if m.BodyStructure == nil {
		t.Fatal("IMAP FETCH gave no BODYSTRUCTURE")
	}
	rule := &bodyRule{}
	rule.walk(m.BodyStructure, nil, false)
	v.hasHTML, v.attachments = rule.hasHTML, rule.attachments
	var sections []string
	for _, tp := range rule.text {
		section := make([]string, len(tp.path))
		for i, n := range tp.path {
			section[i] = fmt.Sprint(n)
		}
		sections = append(sections, strings.Join(section, "."))
		item := &imap.FetchItemBodySection{Part: tp.path, Peek: true}
		got, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{item}}).Collect()
		if err != nil || len(got) != 1 {
			t.Fatalf("IMAP FETCH BODY.PEEK[%s] = %d messages, %v", sections[len(sections)-1], len(got), err)
		}
		body := got[0].FindBodySection(item)
		v.textBytes += len(body)
		// The parts follow one another as mailparse.Message.Text joins them.
		if v.text != "" && !strings.HasSuffix(v.text, "\n") {
			v.text += "\n"
		}
		v.text += decodePart(tp.part, body)
	}
	v.textSection = strings.Join(sections, " ")
	return v
}

// bodyRule is server/mailparse's package rule (its doc, and docs/architecture.md "One
// message reader"), read off BODYSTRUCTURE as a mail client could: which sections make
// the text body, whether there is an HTML body, and which leaves are attachments.
type bodyRule struct {
	text []struct {
		path []int
		part *imap.BodyStructureSinglePart
	}
	hasHTML     bool
	attachments []viewAttachment
}

// walk visits bs, at section path, inside a multipart/alternative or not. An attached
// message is a leaf: what it holds is its own, never the body.
func (r *bodyRule) walk(bs imap.BodyStructure, path []int, inAlt bool) {
	if mp, ok := bs.(*imap.BodyStructureMultiPart); ok {
		inAlt = inAlt || strings.EqualFold(mp.Subtype, "alternative")
		for i, c := range mp.Children {
			r.walk(c, append(append([]int(nil), path...), i+1), inAlt)
		}
		return
	}
	part := bs.(*imap.BodyStructureSinglePart)
	if path == nil {
		path = []int{1} // the body of a message that is not multipart
	}
	mediaType := part.MediaType()
	disp := ""
	if d := part.Disposition(); d != nil {
		disp = strings.ToLower(d.Value)
	}
	name := part.Filename()
	if (disp == "" || disp == "inline") && name == "" {
		switch {
		case mediaType == "text/plain" && (len(r.text) == 0 || !inAlt):
			r.text = append(r.text, struct {
				path []int
				part *imap.BodyStructureSinglePart
			}{path, part})
			return
		case mediaType == "text/html" && !r.hasHTML:
			r.hasHTML = true
			return
		case inAlt && strings.HasPrefix(mediaType, "text/") && mediaType != "text/calendar":
			return // another rendering of the body
		}
	}
	if mediaType == "message/global" {
		mediaType = "message/rfc822"
	}
	r.attachments = append(r.attachments, viewAttachment{name, mediaType})
}

// decodePart decodes a part's bytes by its own transfer encoding and charset, as the
// rule says a reader must, so that the API's text is held to the rule rather than to one
// library's tolerance: base64 skips what is not of its alphabet (RFC 2045 section 6.8)
// and decodes an unpadded end as far as it goes; quoted-printable keeps a bad escape as
// it is (section 6.7, note 1); an unknown charset leaves the bytes as they are.
func decodePart(part *imap.BodyStructureSinglePart, body []byte) string {
	switch strings.ToLower(strings.TrimSpace(part.Encoding)) {
	case "base64":
		body = lenientBase64(body)
	case "quoted-printable":
		body = lenientQP(body)
	}
	cs := strings.ToLower(part.Params["charset"])
	if cs == "" || cs == "us-ascii" || cs == "utf-8" || cs == "utf8" {
		return string(body)
	}
	r, err := charset.Reader(cs, bytes.NewReader(body))
	if err != nil {
		return string(body)
	}
	out, _ := io.ReadAll(r)
	return string(out)
}

func lenientBase64(in []byte) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var out []byte
	var acc uint32
	n := 0
	for _, c := range in {
		if c == '=' {
			break
		}
		i := strings.IndexByte(alphabet, c)
		if i < 0 {
			continue
		}
		acc = acc<<6 | uint32(i)
		if n++; n == 4 {
			out = append(out, byte(acc>>16), byte(acc>>8), byte(acc))
			acc, n = 0, 0
		}
	}
	switch n {
	case 2:
		out = append(out, byte(acc>>4))
	case 3:
		out = append(out, byte(acc>>10), byte(acc>>2))
	}
	return out
}

func lenientQP(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for line := range bytes.Lines(in) {
		text := bytes.TrimRight(line, "\r\n")
		end := line[len(text):]
		text = bytes.TrimRight(text, " \t") // trailing white space is padding (section 6.7, rule 3)
		if bytes.HasSuffix(text, []byte("=")) {
			text, end = text[:len(text)-1], nil // a soft line break
		}
		for i := 0; i < len(text); i++ {
			var b [1]byte
			if text[i] == '=' && i+2 < len(text) {
				if _, err := hex.Decode(b[:], text[i+1:i+3]); err == nil {
					out = append(out, b[0])
					i += 2
					continue
				}
			}
			out = append(out, text[i])
		}
		out = append(out, end...)
	}
	return out
}

func (v *imapView) search(t *testing.T, word string) bool {
	t.Helper()
	data, err := v.c.UIDSearch(&imap.SearchCriteria{Body: []string{word}}, nil).Wait()
	if err != nil {
		t.Errorf("IMAP UID SEARCH BODY %q: %v", word, err)
		return true // reported already
	}
	for _, uid := range data.AllUIDs() {
		if uid == v.uid {
			return true
		}
	}
	return false
}

// formatAddresses writes addresses as the listing does: "Name <addr>", comma-joined.
func formatAddresses(list []imap.Address) string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		if a.IsGroupStart() || a.IsGroupEnd() {
			continue
		}
		addr := a.Mailbox // a local part with no domain is still who the field names
		if a.Host != "" {
			addr += "@" + a.Host
		}
		// What a broken field left out, in Dovecot's words (server/imapd, envelope):
		// "From: foo" is the name foo and no address.
		if a.Mailbox == "MISSING_MAILBOX" && a.Host == "MISSING_DOMAIN" {
			addr = ""
		}
		switch {
		case addr == "":
			out = append(out, a.Name)
		case a.Name == "":
			out = append(out, addr)
		default:
			out = append(out, a.Name+" <"+addr+">")
		}
	}
	return strings.Join(out, ", ")
}

// readPOP3 returns the subject and sender of the header TOP 1 0 gives, read as a mail
// client reads a header.
func readPOP3(t *testing.T, addr string, in inboxJSON) (subject, from string) {
	t.Helper()
	p := dialPOP3(t, addr)
	p.login(t, in)
	if line := p.cmd(t, "TOP 1 0"); !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 TOP 1 0 = %q", line)
	}
	top := p.multiline(t)
	p.cmd(t, "QUIT")
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(top + "\n")))
	if err != nil && h.Len() == 0 {
		t.Errorf("POP3 TOP 1 0: header unreadable: %v", err)
		return "", ""
	}
	mh := mail.Header{Header: message.Header{Header: h}}
	subject, err = mh.Text("Subject")
	if err != nil {
		subject = mh.Get("Subject")
	}
	list, err := mh.AddressList("From")
	if err != nil {
		// A list go-message refuses (an empty "<>" of a bounce) is read as mailparse
		// reads it: what the client shows is then the same text.
		list = mailparse.Addresses(mh.Get("From"))
	}
	if len(list) > 0 {
		parts := make([]string, len(list))
		for i, a := range list {
			switch {
			case a.Name == "":
				parts[i] = a.Address
			case a.Address == "":
				parts[i] = a.Name
			default:
				parts[i] = a.Name + " <" + a.Address + ">"
			}
		}
		from = strings.Join(parts, ", ")
	} else if mh.Get("From") != "" {
		from, err = mh.Text("From")
		if err != nil {
			from = mh.Get("From")
		}
	}
	return subject, from
}

// sameAttachments compares two views' lists: the same count and, in order, the same
// media type and, where the sender gave one, the same name (the API makes names safe as
// file names and invents one where none was given, so only its base name is compared).
func sameAttachments(api, imapAtts []viewAttachment) bool {
	if len(api) != len(imapAtts) {
		return false
	}
	for i := range api {
		if api[i].mediaType != imapAtts[i].mediaType {
			return false
		}
		want := strings.TrimSpace(imapAtts[i].name)
		if want == "" {
			continue
		}
		want = path.Base(strings.ReplaceAll(want, "\\", "/"))
		if oneSpace(api[i].name) != oneSpace(want) {
			return false
		}
	}
	return true
}

// sameText says two views show the same text: equal once white space is made one
// space, or, for long text, equal over the first 2000 characters (a view may cut a
// large body where another does not).
func sameText(a, b string) bool {
	if a == b {
		return true
	}
	const prefix = 2000
	if len(a) > prefix && len(b) > prefix {
		return a[:prefix] == b[:prefix]
	}
	return false
}

// searchWord picks a word of text to search for: the longest ASCII word of at least
// four letters among the first 60 words, else the first word of two or more letters.
func searchWord(text string) string {
	words := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	best := ""
	for i, w := range words {
		if i >= 60 {
			break
		}
		ascii := true
		for _, r := range w {
			if r >= utf8.RuneSelf {
				ascii = false
				break
			}
		}
		if ascii && len(w) >= 4 && len(w) > len(best) {
			best = w
		}
	}
	if best != "" {
		return best
	}
	for _, w := range words {
		if utf8.RuneCountInString(w) >= 2 {
			return w
		}
	}
	return ""
}

// oneSpace makes every run of white space one space and trims the ends, and each run
// of bytes that are not UTF-8 one U+FFFD: how many replacement characters a view shows
// for a byte run that is not text is not something to agree on.
func oneSpace(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	for strings.Contains(s, "\uFFFD\uFFFD") {
		s = strings.ReplaceAll(s, "\uFFFD\uFFFD", "\uFFFD")
	}
	return strings.Join(strings.Fields(s), " ")
}

func clip(s string) string {
	if len(s) <= 160 {
		return s
	}
	n := 160
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
