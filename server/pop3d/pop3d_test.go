package pop3d

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// Sample messages. dotted has lines that must be byte-stuffed, one of them a lone ".",
// which unstuffed would end the response early.
var (
	plainMsg = []byte("From: Ann <ann@sender.test>\r\nTo: box@mayfly.test\r\nSubject: hello\r\n\r\nline 1\r\nline 2\r\nline 3\r\n")
	dotted   = []byte("From: a@sender.test\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n...\r\nmiddle . dot\r\n. \r\n.\r\n")
)

// TestProtocol runs the protocol on every store.
func TestProtocol(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st fullStore)
	}{
		{"Transaction", testTransaction},
		{"DotStuffingRoundTrip", testDotStuffing},
		{"Top", testTop},
		{"DeleQuitDeletes", testDeleQuit},
		{"DeleRsetKeeps", testDeleRset},
		{"DeleDropKeeps", testDeleDrop},
		{"GoneMeanwhile", testGone},
		{"Snapshot", testSnapshot},
		{"SentCopiesLeftOut", testSent},
		{"RetrMarksSeen", testSeen},
		{"UIDLStable", testUIDLStable},
		{"AuthPlain", testAuthPlain},
	}
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
			}
		})
	}
}

func testTransaction(t *testing.T, st fullStore) {
	m1 := put(t, st, box, plainMsg)
	m2 := put(t, st, box, dotted)
	put(t, st, "other@mayfly.test", plainMsg) // not in this maildrop
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)

	want := int64(len(plainMsg) + len(dotted))
	if got := c.ok("STAT"); got != fmt.Sprintf("+OK 2 %d", want) {
		t.Errorf("STAT = %q, want +OK 2 %d", got, want)
	}
	c.ok("LIST")
	if got, want := c.lines(), []string{fmt.Sprintf("1 %d", len(plainMsg)), fmt.Sprintf("2 %d", len(dotted))}; !slices.Equal(got, want) {
		t.Errorf("LIST = %q, want %q", got, want)
	}
	if got, want := c.ok("LIST 02"), fmt.Sprintf("+OK 2 %d", len(dotted)); got != want {
		t.Errorf("LIST 02 = %q, want %q", got, want)
	}
	c.ok("UIDL")
	if got, want := c.lines(), []string{"1 " + m1.ID, "2 " + m2.ID}; !slices.Equal(got, want) {
		t.Errorf("UIDL = %q, want %q", got, want)
	}
	if got, want := c.ok("UIDL 1"), "+OK 1 "+m1.ID; got != want {
		t.Errorf("UIDL 1 = %q, want %q", got, want)
	}
	for i, raw := range [][]byte{plainMsg, dotted} {
		n := strconv.Itoa(i + 1)
		if got, want := c.ok("RETR "+n), fmt.Sprintf("+OK %d octets", len(raw)); got != want {
			t.Errorf("RETR %s = %q, want %q", n, got, want)
		}
		if got := c.multi(); !bytes.Equal(got, raw) {
			t.Errorf("RETR %s body = %q, want %q", n, got, raw)
		}
	}
	c.ok("NOOP")
	for _, bad := range []string{"LIST 3", "LIST 0", "LIST x", "LIST -1", "RETR 3", "UIDL 99999999999", "TOP 1", "TOP 1 x", "TOP 1 -1", "DELE", "RETR 1 2"} {
		c.fail(bad, "")
	}
	for _, wrong := range []string{"USER " + box, "PASS x", "STLS", "AUTH PLAIN"} {
		c.fail(wrong, "")
	}
	if got, want := c.ok("QUIT"), "+OK pop3.mayfly.test Mayfly POP3 signing off (2 messages left)"; got != want {
		t.Errorf("QUIT = %q, want %q", got, want)
	}
	c.closed()
	if got := testutil.ToFloat64(e.srv.metrics.commands.WithLabelValues("RETR")); got != 4 {
		t.Errorf("RETR commands = %v, want 4", got)
	}
	if got := testutil.ToFloat64(e.srv.metrics.logins.WithLabelValues(loginOK)); got != 1 {
		t.Errorf("ok logins = %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.srv.metrics.sent); got != float64(want) {
		t.Errorf("sent bytes = %v, want %d", got, want)
	}
}

// testDotStuffing sends messages whose lines start with dots, or end in a bare LF, or
// not at all, and reads them back as a client does.
func testDotStuffing(t *testing.T, st fullStore) {
	tests := []struct {
		name string
		raw  string
		want string // as sent, unstuffed; "" = raw
	}{
		{"dots", string(dotted), ""},
		{"last line a dot without end", "Subject: x\r\n\r\na\r\n.", "Subject: x\r\n\r\na\r\n.\r\n"},
		{"no end of line", "Subject: x\r\n\r\nbody", "Subject: x\r\n\r\nbody\r\n"},
		{"bare LF", "Subject: x\n\n.\nb\r\n", "Subject: x\r\n\r\n.\r\nb\r\n"},
		{"bare CR", "Subject: x\r\n\r\na\rb\r\r\n", ""},
		{"only dots", ".\r\n..\r\n...\r\n", ""},
		{"empty lines", "\r\n\r\n\r\n", ""},
	}
	for _, tt := range tests {
		put(t, st, box, []byte(tt.raw))
	}
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	c.ok("LIST")
	sizes := c.lines()
	for i, tt := range tests {
		want := tt.want
		if want == "" {
			want = tt.raw
		}
		n := strconv.Itoa(i + 1)
		if got, want := sizes[i], fmt.Sprintf("%s %d", n, len(want)); got != want {
			t.Errorf("%s: LIST line %q, want %q", tt.name, got, want)
		}
		if got, want := c.ok("RETR "+n), fmt.Sprintf("+OK %d octets", len(want)); got != want {
			t.Errorf("%s: RETR = %q, want %q", tt.name, got, want)
		}
		if got := c.multi(); string(got) != want {
			t.Errorf("%s: RETR body = %q, want %q", tt.name, got, want)
		}
	}
}

func testTop(t *testing.T, st fullStore) {
	put(t, st, box, plainMsg)
	put(t, st, box, []byte("Subject: no body\r\n"))
	put(t, st, box, dotted)
	// Issue 15: the header ends at the first line that is neither a field nor a
	// continuation, as every view reads it (mailparse.Message.HeaderEnd).
	put(t, st, box, []byte("From: a@sender.test\r\nSubject: hasty\r\nThis starts the body.\r\nsecond\r\n"))
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	head := "From: Ann <ann@sender.test>\r\nTo: box@mayfly.test\r\nSubject: hello\r\n\r\n"
	tests := []struct {
		cmd, want string
	}{
		{"TOP 1 0", head},
		{"TOP 1 2", head + "line 1\r\nline 2\r\n"},
		{"TOP 1 3", string(plainMsg)},
		{"TOP 1 1000", string(plainMsg)},
		{"TOP 2 5", "Subject: no body\r\n\r\n"}, // the empty line after the header, which it lacks
		{"TOP 3 2", "From: a@sender.test\r\nSubject: dots\r\n\r\n.\r\n..\r\n"},
		{"TOP 4 0", "From: a@sender.test\r\nSubject: hasty\r\n\r\n"},
		{"TOP 4 1", "From: a@sender.test\r\nSubject: hasty\r\n\r\nThis starts the body.\r\n"},
	}
	for _, tt := range tests {
		c.ok(tt.cmd)
		if got := c.multi(); string(got) != tt.want {
			t.Errorf("%s = %q, want %q", tt.cmd, got, tt.want)
		}
	}
}

func testDeleQuit(t *testing.T, st fullStore) {
	m1 := put(t, st, box, plainMsg)
	m2 := put(t, st, box, dotted)
	m3 := put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	c.ok("DELE 2")
	c.fail("DELE 2", "message 2 already deleted")
	c.fail("RETR 2", "message 2 already deleted")
	c.fail("LIST 2", "")
	if got, want := c.ok("STAT"), fmt.Sprintf("+OK 2 %d", 2*len(plainMsg)); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	c.ok("LIST")
	if got, want := c.lines(), []string{fmt.Sprintf("1 %d", len(plainMsg)), fmt.Sprintf("3 %d", len(plainMsg))}; !slices.Equal(got, want) {
		t.Errorf("LIST = %q, want %q", got, want)
	}
	c.ok("UIDL")
	if got, want := c.lines(), []string{"1 " + m1.ID, "3 " + m3.ID}; !slices.Equal(got, want) {
		t.Errorf("UIDL = %q, want %q", got, want)
	}
	// Until QUIT, the store keeps it.
	if got := ids(t, st, box); !slices.Contains(got, m2.ID) {
		t.Fatalf("before QUIT the store has %q, want %s in it", got, m2.ID)
	}
	c.ok("DELE 3")
	if got := c.ok("QUIT"); !strings.HasSuffix(got, "(1 messages left)") {
		t.Errorf("QUIT = %q", got)
	}
	c.closed()
	wantIDs(t, st, "after QUIT", m1.ID)
	if got := testutil.ToFloat64(e.srv.metrics.deleted); got != 2 {
		t.Errorf("deleted = %v, want 2", got)
	}
}

func testDeleRset(t *testing.T, st fullStore) {
	m1 := put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	c.ok("DELE 1")
	if got := c.ok("RSET"); got != "+OK maildrop has 1 messages" {
		t.Errorf("RSET = %q", got)
	}
	c.ok("RETR 1")
	c.multi()
	c.ok("QUIT")
	c.closed()
	wantIDs(t, st, "after RSET and QUIT", m1.ID)
}

func testDeleDrop(t *testing.T, st fullStore) {
	m1 := put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	c.ok("DELE 1")
	c.Conn.Close()
	// Deletions happen at QUIT only; none came, so a new session sees the message.
	c = e.loggedIn(t)
	if got, want := c.ok("STAT"), fmt.Sprintf("+OK 1 %d", len(plainMsg)); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	c.ok("QUIT")
	wantIDs(t, st, "at the end", m1.ID)
}

// testGone deletes a message behind the session's back, as expiry or IMAP would.
func testGone(t *testing.T, st fullStore) {
	m1 := put(t, st, box, plainMsg)
	m2 := put(t, st, box, dotted)
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	if err := st.Delete(t.Context(), box, m1.ID); err != nil {
		t.Fatal(err)
	}
	c.fail("RETR 1", "message 1 is gone")
	c.fail("TOP 1 0", "message 1 is gone")
	// Its size stays the one from login: the message cannot be read to learn another.
	if got, want := c.ok("LIST 1"), fmt.Sprintf("+OK 1 %d", len(plainMsg)); got != want {
		t.Errorf("LIST 1 = %q, want %q", got, want)
	}
	if got, want := c.ok("STAT"), fmt.Sprintf("+OK 2 %d", len(plainMsg)+len(dotted)); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	c.ok("DELE 1")
	c.ok("DELE 2")
	c.ok("QUIT")
	c.closed()
	if got := ids(t, st, box); len(got) != 0 {
		t.Errorf("the store has %q, want nothing (%s deleted)", got, m2.ID)
	}
}

// testSnapshot: mail that arrives during a session waits for the next one.
func testSnapshot(t *testing.T, st fullStore) {
	put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	put(t, st, box, dotted)
	if got, want := c.ok("STAT"), fmt.Sprintf("+OK 1 %d", len(plainMsg)); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	c.fail("RETR 2", "no such message")
	c.ok("QUIT")
	c = e.loggedIn(t)
	if got := c.ok("STAT"); !strings.HasPrefix(got, "+OK 2 ") {
		t.Errorf("next session STAT = %q, want 2 messages", got)
	}
}

// testSent: the copy of a reply the inbox sent is no mail to download.
func testSent(t *testing.T, st fullStore) {
	m1 := put(t, st, box, plainMsg)
	sent := storetest.NewMessage(box, "Re: hello")
	sent.Sent = true
	if err := st.Put(t.Context(), sent); err != nil {
		t.Fatal(err)
	}
	m3 := put(t, st, box, dotted)
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	c.ok("UIDL")
	if got, want := c.lines(), []string{"1 " + m1.ID, "2 " + m3.ID}; !slices.Equal(got, want) {
		t.Errorf("UIDL = %q, want %q", got, want)
	}
	c.ok("RETR 2")
	if got := c.multi(); !bytes.Equal(got, dotted) {
		t.Errorf("RETR 2 = %q, want %q", got, dotted)
	}
	c.ok("DELE 1")
	c.ok("DELE 2")
	c.ok("QUIT")
	c.closed()
	wantIDs(t, st, "at the end", sent.ID)
}

func testSeen(t *testing.T, st fullStore) {
	put(t, st, box, plainMsg)
	put(t, st, box, dotted)
	e := newEnv(t, st, setup{})
	c := e.loggedIn(t)
	c.ok("TOP 1 1")
	c.multi()
	c.ok("RETR 2")
	c.multi()
	c.ok("NOOP") // the flag is set after RETR's answer; NOOP's answer comes after it
	list, err := st.List(t.Context(), box, storage.Page{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for i, m := range list {
		seen[len(list)-i] = m.Flags&storage.FlagSeen != 0
	}
	if seen[1] || !seen[2] {
		t.Errorf("seen = %v, want only message 2 (RETR, not TOP)", seen)
	}
}

// testUIDLStable: a client that leaves mail on the server knows it again by its UIDL.
func testUIDLStable(t *testing.T, st fullStore) {
	put(t, st, box, plainMsg)
	put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})
	uidls := func() []string {
		c := e.loggedIn(t)
		c.ok("UIDL")
		l := c.lines()
		c.ok("DELE 1")
		c.ok("QUIT")
		c.closed()
		return l
	}
	first := uidls()
	put(t, st, box, plainMsg)
	second := uidls()
	if len(first) != 2 || len(second) != 2 {
		t.Fatalf("UIDL = %q then %q, want 2 lines each", first, second)
	}
	id := func(l string) string { return l[strings.IndexByte(l, ' ')+1:] }
	if id(first[1]) != id(second[0]) || id(second[1]) == id(first[0]) || id(second[1]) == id(first[1]) {
		t.Errorf("UIDL = %q then %q: message 2 should keep its id as message 1, and the new one get a new id", first, second)
	}
}

func testAuthPlain(t *testing.T, st fullStore) {
	put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})
	tests := []struct {
		name   string
		script []string // lines sent; the last reply is checked
		want   string
	}{
		{"initial response", []string{"AUTH PLAIN " + plain("", box, token(box))}, "+OK"},
		{"continuation", []string{"AUTH PLAIN", plain("", box, token(box))}, "+OK"},
		{"lower case, authzid", []string{"auth plain " + plain(box, "Box+x@Mayfly.Test", token(box))}, "+OK"},
		{"admin key", []string{"AUTH PLAIN " + plain("", box, adminKey)}, "+OK"},
		{"no padding", []string{"AUTH PLAIN " + strings.TrimRight(plain("", box, token(box)), "=")}, "+OK"},
		{"cancel", []string{"AUTH PLAIN", "*"}, "-ERR authentication cancelled"},
		{"empty initial response", []string{"AUTH PLAIN ="}, "-ERR [AUTH]"},
		{"empty continuation", []string{"AUTH PLAIN", ""}, "-ERR [AUTH]"},
		{"wrong password", []string{"AUTH PLAIN " + plain("", box, "nope")}, "-ERR [AUTH]"},
		{"other's authzid", []string{"AUTH PLAIN " + plain("other@mayfly.test", box, token(box))}, "-ERR [AUTH]"},
		{"not base64", []string{"AUTH PLAIN !!!!"}, "-ERR [AUTH]"},
		{"one NUL", []string{"AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte(box+"\x00"+token(box)))}, "-ERR [AUTH]"},
		{"other mechanism", []string{"AUTH CRAM-MD5"}, "-ERR unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, e.addr)
			var got string
			for i, l := range tt.script {
				got = c.cmd(l)
				if i < len(tt.script)-1 && got != "+ " {
					t.Fatalf("%q = %q, want the continuation \"+ \"", l, got)
				}
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("%q = %q, want %s...", tt.script, got, tt.want)
			}
			if tt.want == "+OK" {
				c.ok("RETR 1")
				if got := c.multi(); !bytes.Equal(got, plainMsg) {
					t.Errorf("RETR = %q", got)
				}
			}
			c.ok("QUIT")
		})
	}
	c := dial(t, e.addr)
	c.ok("AUTH")
	if got := c.lines(); !slices.Equal(got, []string{"PLAIN"}) {
		t.Errorf("AUTH = %q, want [PLAIN]", got)
	}
}

func TestLogin(t *testing.T) {
	st := memory(t)
	put(t, st, box, plainMsg)
	put(t, st, "x@other.test", plainMsg)
	e := newEnv(t, st, setup{})
	tests := []struct {
		name, user, pass string
		ok               bool
	}{
		{"token", box, token(box), true},
		{"plus tag and case", "Box+Tag@MAYFLY.test", token(box), true},
		{"admin key", box, adminKey, true},
		{"second domain", "x@other.test", token("x@other.test"), true},
		{"token of another inbox", box, token("other@mayfly.test"), false},
		{"domain not ours", "box@elsewhere.test", token("box@elsewhere.test"), false},
		{"not an address", "box", token("box"), false},
		{"admin key, one space short", box, strings.ReplaceAll(adminKey, " ", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, e.addr)
			c.ok("USER " + tt.user)
			if tt.ok {
				c.ok("PASS " + tt.pass)
				c.ok("STAT")
			} else {
				c.fail("PASS "+tt.pass, "[AUTH] ")
				c.fail("STAT", "")
			}
		})
	}
}

func TestTooManyFailedLogins(t *testing.T) {
	e := newEnv(t, memory(t), setup{})
	c := dial(t, e.addr)
	for range maxLoginFailures - 1 {
		c.ok("USER " + box)
		c.fail("PASS wrong", "[AUTH] invalid user name or password")
	}
	// Then the right password still works on this connection.
	c.login(box, token(box))
	c.ok("QUIT")

	c = dial(t, e.addr)
	for range maxLoginFailures - 1 {
		c.fail("AUTH PLAIN "+plain("", box, "wrong"), "[AUTH] invalid")
	}
	c.ok("USER " + box)
	c.fail("PASS wrong", "[AUTH] too many failed logins")
	c.closed()
	if got := testutil.ToFloat64(e.srv.metrics.logins.WithLabelValues(loginFailed)); got != 2*maxLoginFailures-1 {
		t.Errorf("failed logins = %v, want %d", got, 2*maxLoginFailures-1)
	}
}

func TestStrictParsing(t *testing.T) {
	e := newEnv(t, memory(t), setup{})
	c := dial(t, e.addr)
	c.fail("STAT", "STAT is not valid in this state")
	c.fail("RETR 1", "RETR is not valid")
	c.fail("NOOP", "NOOP is not valid")
	c.fail("PASS x", "USER first")
	c.ok("USER " + box)
	c.ok("CAPA")
	c.lines()
	c.fail("PASS "+token(box), "USER first") // PASS right after USER only
	c.fail("HELO", "unknown command")
	c.fail("APOP "+box+" 0123456789abcdef", "unknown command")
	c.fail("", "empty command")
	c.fail("US3R x", "malformed command")
	c.fail("USER a\x00b", "malformed command")
	c.fail("USER", "USER: missing argument")
	c.ok("USER " + box)
	c.fail("PASS ", "PASS: missing argument")
	c.fail("USER a b", "USER: too many arguments")
	c.fail("QUIT now", "QUIT: too many arguments")
	// A long line within the AUTH limit is one bad command; the session goes on.
	c.fail("USER "+strings.Repeat("a", maxCommandLine), "line too long")
	c.ok("USER  " + box + "  ") // extra spaces are forgiven
	c.ok("PASS " + token(box))
	c.ok("stat")
	c.ok("list ")
	c.lines()
	c.fail("USER x", "USER is not valid in this state")
	c.send("RETR " + strings.Repeat("1", maxAuthLine))
	if got := c.line(); got != "-ERR line too long" {
		t.Errorf("over-long line = %q", got)
	}
	c.closed()
	if got := testutil.ToFloat64(e.srv.metrics.commands.WithLabelValues("unknown")); got != 5 {
		t.Errorf("unknown commands = %v, want 5", got)
	}
}

func TestTooManyBadCommands(t *testing.T) {
	e := newEnv(t, memory(t), setup{})
	c := dial(t, e.addr)
	for range maxBadCommands {
		c.fail("XYZZY", "unknown command")
	}
	c.fail("XYZZY", "too many bad commands")
	c.closed()
}

// TestPipelining sends every command in one write (RFC 2449 PIPELINING).
func TestPipelining(t *testing.T) {
	st := memory(t)
	put(t, st, box, plainMsg)
	put(t, st, box, dotted)
	e := newEnv(t, st, setup{})
	c := dial(t, e.addr)
	c.send("USER " + box + "\r\nPASS " + token(box) + "\r\nSTAT\r\nRETR 1\r\nRETR 2\r\nDELE 1\r\nQUIT")
	for _, want := range []string{"+OK", "+OK", "+OK 2"} {
		if got := c.line(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %s...", got, want)
		}
	}
	for _, raw := range [][]byte{plainMsg, dotted} {
		c.line()
		if got := c.multi(); !bytes.Equal(got, raw) {
			t.Errorf("RETR = %q, want %q", got, raw)
		}
	}
	if got := c.line(); got != "+OK message 1 deleted" {
		t.Errorf("DELE = %q", got)
	}
	if got := c.line(); !strings.HasPrefix(got, "+OK") {
		t.Errorf("QUIT = %q", got)
	}
	c.closed()
	if got := len(ids(t, st, box)); got != 1 {
		t.Errorf("%d messages left, want 1", got)
	}
}

func TestCapa(t *testing.T) {
	base := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	withPlain := append(slices.Clone(base), "USER", "SASL PLAIN")
	tests := []struct {
		name string
		su   setup
		tls  bool
		want []string
	}{
		{"loopback", setup{}, false, append(slices.Clone(withPlain), "STLS", "IMPLEMENTATION mayfly")},
		{"loopback, no certificate", setup{noTLS: true}, false, append(slices.Clone(withPlain), "IMPLEMENTATION mayfly")},
		{"remote", setup{remote: true}, false, append(slices.Clone(base), "STLS", "IMPLEMENTATION mayfly")},
		{"remote, no certificate", setup{remote: true, noTLS: true}, false, append(slices.Clone(base), "IMPLEMENTATION mayfly")},
		{"remote, POP3S", setup{remote: true}, true, append(slices.Clone(withPlain), "IMPLEMENTATION mayfly")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, memory(t), tt.su)
			var c *client
			if tt.tls {
				c = dialTLS(t, e.tlsAddr, e.pool)
			} else {
				c = dial(t, e.addr)
			}
			if got := c.capa(); !slices.Equal(got, tt.want) {
				t.Errorf("CAPA = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPlaintextRefused: a client that is not on loopback must use TLS to log in.
func TestPlaintextRefused(t *testing.T) {
	st := memory(t)
	put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{remote: true})
	c := dial(t, e.addr)
	c.fail("USER "+box, "[AUTH] plaintext authentication is not allowed without TLS: use STLS first")
	c.fail("PASS "+token(box), "[AUTH] plaintext")
	c.fail("AUTH PLAIN "+plain("", box, token(box)), "[AUTH] plaintext")
	c.fail("AUTH PLAIN", "[AUTH] plaintext")
	c.ok("AUTH")
	if got := c.lines(); len(got) != 0 {
		t.Errorf("AUTH lists %q without TLS, want nothing", got)
	}
	c.fail("STAT", "")
	if got := testutil.ToFloat64(e.srv.metrics.logins.WithLabelValues(loginRefusedPlaintext)); got != 3 {
		t.Errorf("refused logins = %v, want 3", got)
	}

	c.starttls(e.pool)
	if got := c.capa(); !slices.Contains(got, "USER") || !slices.Contains(got, "SASL PLAIN") || slices.Contains(got, "STLS") {
		t.Errorf("CAPA after STLS = %q, want USER and SASL PLAIN, no STLS", got)
	}
	c.retrOverTLS()

	// Without a certificate there is no STLS to point to.
	e = newEnv(t, st, setup{remote: true, noTLS: true})
	c = dial(t, e.addr)
	c.fail("STLS", "STLS not available")
	c.fail("USER "+box, "[AUTH] plaintext authentication is not allowed without TLS: use POP3S")
}

func TestSTLS(t *testing.T) {
	st := memory(t)
	put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})

	t.Run("AUTH PLAIN after STLS", func(t *testing.T) {
		c := dial(t, e.addr)
		c.starttls(e.pool)
		c.ok("AUTH PLAIN " + plain("", box, token(box)))
		c.ok("STAT")
		c.fail("STLS", "STLS is not valid in this state")
		c.ok("QUIT")
	})
	t.Run("USER before STLS is forgotten", func(t *testing.T) {
		c := dial(t, e.addr)
		c.ok("USER " + box)
		c.starttls(e.pool)
		c.fail("PASS "+token(box), "USER first")
	})
	t.Run("commands pipelined after STLS", func(t *testing.T) {
		// CVE-2011-0411: what follows STLS in plaintext must not run after the handshake.
		c := dial(t, e.addr)
		c.send("STLS\r\nUSER " + box)
		if got := c.line(); !strings.HasPrefix(got, "-ERR") {
			t.Errorf("STLS with a command after it = %q, want -ERR", got)
		}
		c.closed()
	})
	t.Run("no handshake", func(t *testing.T) {
		c := dial(t, e.addr)
		c.ok("STLS")
		c.send("USER " + box) // not a TLS ClientHello
		c.closed()
	})
	t.Run("POP3S", func(t *testing.T) {
		c := dialTLS(t, e.tlsAddr, e.pool)
		c.retrOverTLS()
	})
}

// brokenStore is a store whose calls fail with the given errors.
type brokenStore struct {
	fullStore
	listErr, rawErr, deleteErr error
}

func (b *brokenStore) List(ctx context.Context, inbox string, p storage.Page) ([]storage.Message, error) {
	if b.listErr != nil {
		return nil, b.listErr
	}
	return b.fullStore.List(ctx, inbox, p)
}

func (b *brokenStore) Raw(ctx context.Context, inbox, id string) ([]byte, error) {
	if b.rawErr != nil {
		return nil, b.rawErr
	}
	return b.fullStore.Raw(ctx, inbox, id)
}

func (b *brokenStore) Delete(ctx context.Context, inbox, id string) error {
	if b.deleteErr != nil {
		return b.deleteErr
	}
	return b.fullStore.Delete(ctx, inbox, id)
}

func TestStoreUnavailable(t *testing.T) {
	down := fmt.Errorf("redis: %w", storage.ErrUnavailable)
	mem := memory(t)
	m := put(t, mem, box, plainMsg)

	st := &brokenStore{fullStore: mem, listErr: down}
	e := newEnv(t, st, setup{})
	c := dial(t, e.addr)
	c.ok("USER " + box)
	c.fail("PASS "+token(box), "[SYS/TEMP] ")
	c.fail("STAT", "") // still not logged in
	if got := testutil.ToFloat64(e.srv.metrics.logins.WithLabelValues(loginUnavailable)); got != 1 {
		t.Errorf("unavailable logins = %v, want 1", got)
	}

	st = &brokenStore{fullStore: mem, rawErr: errors.New("something else")}
	e = newEnv(t, st, setup{})
	c = e.loggedIn(t)
	c.fail("STAT", "[SYS/TEMP] ")
	c.fail("LIST", "[SYS/TEMP] ")
	c.fail("LIST 1", "[SYS/TEMP] ")
	c.fail("RETR 1", "[SYS/TEMP] ")
	c.fail("TOP 1 0", "[SYS/TEMP] ")
	c.ok("UIDL 1")

	st = &brokenStore{fullStore: mem, deleteErr: down}
	e = newEnv(t, st, setup{})
	c = e.loggedIn(t)
	c.ok("DELE 1")
	c.fail("QUIT", "[SYS/TEMP] some deleted messages not removed")
	c.closed()
	if got, want := ids(t, mem, box), []string{m.ID}; !slices.Equal(got, want) {
		t.Errorf("the store has %q, want %q", got, want)
	}
}

func TestAutologout(t *testing.T) {
	e := newEnv(t, memory(t), setup{opts: Options{Timeout: 50 * time.Millisecond}})
	c := e.loggedIn(t)
	// No command: the server gives up waiting.
	if got := c.line(); got != "-ERR autologout: idle for too long" {
		t.Errorf("idle session got %q", got)
	}
	c.closed()
}

func TestMaxConnections(t *testing.T) {
	e := newEnv(t, memory(t), setup{opts: Options{Options: limit.Options{MaxConnections: 1}}})
	c1 := dial(t, e.addr) // holds the one slot: its greeting came, so it was accepted
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c2 := &client{Client: testlib.NewClient(t, conn), t: t}
	if got := c2.line(); !strings.HasPrefix(got, "-ERR [SYS/TEMP] ") {
		t.Errorf("second connection got %q, want -ERR [SYS/TEMP]", got)
	}
	c2.closed()
	c1.ok("QUIT")
	c1.closed()
	if got := testutil.ToFloat64(e.srv.metrics.refused); got != 1 {
		t.Errorf("refused = %v, want 1", got)
	}
}

// TestShutdown: idle sessions are told goodbye, and what was marked deleted stays.
func TestShutdown(t *testing.T) {
	st := memory(t)
	m := put(t, st, box, plainMsg)
	e := newEnv(t, st, setup{})
	fresh := dial(t, e.addr)
	loggedIn := e.loggedIn(t)
	loggedIn.ok("DELE 1")
	overTLS := dialTLS(t, e.tlsAddr, e.pool)
	e.stop(2)
	for _, c := range []*client{fresh, loggedIn, overTLS} {
		if got := c.line(); got != "-ERR server shutting down" {
			t.Errorf("at shutdown a session got %q", got)
		}
		c.closed()
	}
	wantIDs(t, st, "at the end: no QUIT, no deletion", m.ID)
	if got := testutil.ToFloat64(e.srv.metrics.sessions); got != 0 {
		t.Errorf("sessions = %v after shutdown, want 0", got)
	}
}

// TestShutdownTimeout: a session stuck writing to a client that does not read is cut
// when the shutdown timeout ends.
func TestShutdownTimeout(t *testing.T) {
	st := memory(t)
	big := bytes.Repeat([]byte("0123456789012345678901234567890123456789012345678901234567890123456789\r\n"), 1<<19) // 36 MiB
	put(t, st, box, big)
	e := newEnv(t, st, setup{noTLS: true, opts: Options{Options: limit.Options{ShutdownTimeout: 50 * time.Millisecond}}})
	c := e.loggedIn(t)
	c.ok("RETR 1") // the server is now writing far more than the socket buffers hold
	e.stop(1)      // returns only once the session is cut
	if got := testutil.ToFloat64(e.srv.metrics.sessions); got != 0 {
		t.Errorf("sessions = %v after shutdown, want 0", got)
	}
}

func TestRun(t *testing.T) {
	s := New(Options{TLSAddr: "127.0.0.1:0", Keys: keys}, memory(t), testLogger(t))
	if err := s.Run(t.Context()); err == nil {
		t.Error("Run with TLSAddr and no certificate: no error")
	}
	s = New(Options{Keys: keys}, memory(t), testLogger(t))
	if err := s.Run(t.Context()); err != nil {
		t.Errorf("Run without listeners = %v, want nil", err)
	}
	s = New(Options{Addr: "127.0.0.1:0", Keys: keys}, memory(t), testLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	s = New(Options{Addr: "127.0.0.1:0"}, memory(t), testLogger(t))
	if err := s.Run(t.Context()); err == nil {
		t.Error("Run without a token key: no error")
	}
}
