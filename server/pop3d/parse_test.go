package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		want command
		err  error
	}{
		{"STAT", command{name: "STAT"}, nil},
		{"top 1 10", command{name: "TOP", args: []string{"1", "10"}, rest: "1 10"}, nil},
		{"Pass  two  spaces ", command{name: "PASS", args: []string{"two", "spaces"}, rest: " two  spaces "}, nil},
		{"USER box+tag@mayfly.test", command{name: "USER", args: []string{"box+tag@mayfly.test"}, rest: "box+tag@mayfly.test"}, nil},
		{"LIST 1 2 3 4 5", command{name: "LIST", args: []string{"1", "2", "3"}, rest: "1 2 3 4 5"}, nil},
		{"USER bøx@mayfly.test", command{name: "USER", args: []string{"bøx@mayfly.test"}, rest: "bøx@mayfly.test"}, nil},
		{"", command{}, errEmpty},
		{" STAT", command{}, errSyntax},
		{"ST4T", command{}, errSyntax},
		{"STATISTICS", command{}, errSyntax},
		{"USER a\tb", command{}, errSyntax},
		{"USER a\rb", command{}, errSyntax},
		{"USER \x7f", command{}, errSyntax},
		{"ÜSER x", command{}, errSyntax},
	}
	for _, tt := range tests {
		got, err := parseCommand(tt.line)
		if err != tt.err || got.name != tt.want.name || got.rest != tt.want.rest || !slices.Equal(got.args, tt.want.args) {
			t.Errorf("parseCommand(%q) = %+v, %v, want %+v, %v", tt.line, got, err, tt.want, tt.err)
		}
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		s    string
		want int
		ok   bool
	}{
		{"1", 1, true}, {"0", 0, true}, {"007", 7, true}, {"2147483647", 2147483647, true},
		{"2147483648", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1_0", 0, false},
		{"0x10", 0, false}, {"", 0, false}, {"１", 0, false},
	}
	for _, tt := range tests {
		if got, ok := parseNumber(tt.s); got != tt.want || ok != tt.ok {
			t.Errorf("parseNumber(%q) = %d, %v, want %d, %v", tt.s, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDecodePlain(t *testing.T) {
	tests := []struct {
		name, resp, user, pass string
		err                    error
	}{
		{"no authzid", plain("", box, "tok"), box, "tok", nil},
		{"same authzid", plain(box, box, "tok"), box, "tok", nil},
		{"authzid of the same inbox", plain("BOX+tag@mayfly.test", box, "tok"), box, "tok", nil},
		{"password with spaces", plain("", box, "a b c"), box, "a b c", nil},
		{"unpadded", strings.TrimRight(plain("", box, "to"), "="), box, "to", nil},
		{"other authzid", plain("x@mayfly.test", box, "tok"), "", "", errAuthzid},
		{"bad authzid", plain("x", box, "tok"), "", "", errAuthzid},
		{"empty", "", "", "", errPlain},
		{"not base64", "*", "", "", errPlain},
		{"no NUL", b64("abc"), "", "", errPlain},
		{"one NUL", b64(box + "\x00tok"), "", "", errPlain},
		{"three NULs", b64("\x00" + box + "\x00tok\x00x"), "", "", errPlain},
		{"no user", plain("", "", "tok"), "", "", errPlain},
		{"no password", plain("", box, ""), "", "", errPlain},
	}
	for _, tt := range tests {
		user, pass, err := decodePlain(tt.resp)
		if user != tt.user || pass != tt.pass || err != tt.err {
			t.Errorf("%s: decodePlain(%q) = %q, %q, %v, want %q, %q, %v", tt.name, tt.resp, user, pass, err, tt.user, tt.pass, tt.err)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// readBody reads a multi-line response as a strict client does: lines end in CRLF, a
// leading dot is removed, "." alone ends it. It reports whether the body was well formed.
func readBody(r *bufio.Reader) ([]byte, bool) {
	var out []byte
	for {
		l, err := r.ReadBytes('\n')
		if err != nil || !bytes.HasSuffix(l, []byte("\r\n")) {
			return out, false
		}
		l = l[:len(l)-2]
		if bytes.IndexByte(l, '\n') >= 0 {
			return out, false
		}
		if string(l) == "." {
			return out, true
		}
		l = bytes.TrimPrefix(l, []byte("."))
		out = append(append(out, l...), '\r', '\n')
	}
}

// normalize is raw as RETR promises to send it: a bare LF a CRLF, every line ended.
func normalize(raw []byte) []byte {
	var out []byte
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
			line = bytes.TrimSuffix(line, []byte("\r"))
		} else {
			raw = nil
		}
		out = append(append(out, line...), '\r', '\n')
	}
	return out
}

func checkMessage(t *testing.T, raw []byte, lines int) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	end := mailparse.Parse(raw).HeaderEnd
	n := writeMessage(w, raw, end, lines)
	w.Flush()
	r := bufio.NewReader(&buf)
	got, ok := readBody(r)
	if !ok || r.Buffered() != 0 {
		t.Fatalf("writeMessage(%q, %d) wrote %q: not one well-formed response", raw, lines, buf.Bytes())
	}
	if n != int64(len(got)) {
		t.Fatalf("writeMessage(%q, %d) = %d, but %d octets arrived", raw, lines, n, len(got))
	}
	want := normalize(raw)
	if lines < 0 {
		if !bytes.Equal(got, want) {
			t.Fatalf("writeMessage(%q) sent %q, want %q", raw, got, want)
		}
		if size := wireSize(raw); size != n {
			t.Fatalf("wireSize(%q) = %d, want %d", raw, size, n)
		}
	} else if want = topOf(raw, end); !bytes.HasPrefix(want, got) {
		t.Fatalf("writeMessage(%q, %d) sent %q, not a prefix of %q", raw, lines, got, want)
	}
}

// topOf is what TOP sends at most: the header, an empty line after it if it has
// none, and the body.
func topOf(raw []byte, end int) []byte {
	head := normalize(raw[:end])
	if !bytes.HasSuffix(head, []byte("\r\n\r\n")) && !bytes.Equal(head, []byte("\r\n")) {
		head = append(head, "\r\n"...)
	}
	return append(head, normalize(raw[end:])...)
}

func TestWriteMessage(t *testing.T) {
	for _, raw := range []string{
		"", "\n", "\r\n", "\r", ".", "..", ".\r\n", "a\r\n.\r\nb", "a\n.\nb\n", "\r\r\n.\r", "H: v\r\n\r\n.\r\n",
		"H: v\r\nno blank line\r\n.\r\nmore\r\n", "H: v", "H: v\nK: w\n",
		string(dotted), string(plainMsg),
	} {
		for _, lines := range []int{-1, 0, 1, 2, 100} {
			checkMessage(t, []byte(raw), lines)
		}
	}
}

func FuzzCommand(f *testing.F) {
	for _, s := range []string{"TOP 1 0", "USER box+tag@mayfly.test", "PASS a b  c ", "LIST", "AUTH PLAIN =", "list 1 2 3 4", "\x00", " ", "ÜSER"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := parseCommand(line)
		if err != nil {
			return
		}
		if c.name == "" || c.name != strings.ToUpper(c.name) || len(c.args) > maxArgs || !strings.HasSuffix(line, c.rest) {
			t.Fatalf("parseCommand(%q) = %+v", line, c)
		}
		for _, a := range c.args {
			if a == "" || strings.ContainsAny(a, " \r\n") || !strings.Contains(c.rest, a) {
				t.Fatalf("parseCommand(%q) = %+v: bad argument %q", line, c, a)
			}
		}
		if _, ok := commands[c.name]; ok && len(line) < 200 {
			// A known command parses the same in any case.
			if c2, err := parseCommand(strings.ToLower(c.name) + line[len(c.name):]); err != nil || c2.name != c.name {
				t.Fatalf("parseCommand of %q in lower case = %+v, %v", line, c2, err)
			}
		}
	})
}

func FuzzAuthPlain(f *testing.F) {
	f.Add(plain("", box, "token"))
	f.Add(plain(box, "Box+t@mayfly.test", "token"))
	f.Add("AGJveEBtYXlmbHkudGVzdABwYXNz")
	f.Add("=")
	f.Add("*")
	f.Fuzz(func(t *testing.T, resp string) {
		user, pass, err := decodePlain(resp)
		if err != nil {
			return
		}
		if user == "" || pass == "" || strings.IndexByte(user, 0) >= 0 || strings.IndexByte(pass, 0) >= 0 {
			t.Fatalf("decodePlain(%q) = %q, %q", resp, user, pass)
		}
	})
}

// FuzzMessage checks that any stored bytes go out as one well-formed multi-line
// response, of the size LIST announces, that unstuffs to the message.
func FuzzMessage(f *testing.F) {
	f.Add(dotted, -1)
	f.Add(plainMsg, 2)
	f.Add([]byte("a\n.\r\n.\n\r.\r"), 0)
	f.Fuzz(func(t *testing.T, raw []byte, lines int) {
		checkMessage(t, raw, max(lines, -1))
	})
}

// problemCatcher is a slog.Handler that keeps what a session must never log with a
// client that sends its script and goes: an error (a panic, or a store failure with the
// memory store), or an autologout, which would mean the session waited on the client
// after it had gone.
type problemCatcher struct {
	mu       sync.Mutex
	problems []string
}

func (h *problemCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (h *problemCatcher) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	problem := r.Level >= slog.LevelError
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		problem = problem || strings.Contains(a.Value.String(), "autologout")
		return true
	})
	if problem {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.problems = append(h.problems, b.String())
	}
	return nil
}
func (h *problemCatcher) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *problemCatcher) WithGroup(string) slog.Handler      { return h }

// FuzzSession runs whole client scripts against a session: whatever a client sends,
// the session must neither panic nor wait for a client that has gone.
func FuzzSession(f *testing.F) {
	login := "USER " + box + "\r\nPASS " + token(box) + "\r\n"
	for _, s := range []string{
		login + "STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nDELE 2\r\nQUIT\r\n",
		"CAPA\r\nAUTH PLAIN\r\n" + plain("", box, token(box)) + "\r\nLIST 2\r\nUIDL 1\r\nNOOP\r\nQUIT\r\n",
		"AUTH PLAIN " + plain("", box, token(box)) + "\r\nRETR 2\r\nRETR 3\r\nDELE 2\r\nDELE 2\r\nQUIT\r\n",
		"STLS\r\nUSER x\r\nPASS y\r\nAUTH\r\nAUTH PLAIN\r\n*\r\nQUIT\r\n",
		login + "TOP 1 0\r\nLIST 0\r\nRETR 99999999999\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		st := testlib.Memory(t, memstore.Options{})
		put(t, st, box, plainMsg)
		put(t, st, box, dotted)
		catcher := &problemCatcher{}
		cert, _ := testCert()
		s := New(Options{
			Domains: []string{"mayfly.test"},
			Keys:    keys,
			TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
			Timeout: 10 * time.Second,
		}, st, slog.New(catcher))
		s.isLoopback = func(net.Addr) bool { return true }
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(context.Background(), &tracker{}, server, false)
		}()
		read := make(chan struct{})
		go func() {
			defer close(read)
			io.Copy(io.Discard, client)
		}()
		client.Write(script)
		client.Close()
		<-done
		<-read
		if len(catcher.problems) > 0 {
			t.Fatalf("session logged %q", catcher.problems)
		}
	})
}
