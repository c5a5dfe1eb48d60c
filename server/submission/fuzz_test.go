package submission

import (
	"bytes"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

var fuzzNow = time.Date(2025, 6, 3, 9, 0, 0, 0, time.UTC)

// FuzzPrepare feeds prepare what a client may submit. It must not panic, and what it
// accepts it must accept again unchanged: our additions are made once, and every
// field the client wrote keeps its bytes.
func FuzzPrepare(f *testing.F) {
	f.Add([]byte("From: Box <box@mayfly.test>\r\nTo: ann@sender.test\r\nSubject: hi\r\n\r\nbody\r\n"))
	f.Add([]byte("From: box+tag@MAYFLY.test\nBcc: x@y\nDate: Mon, 2 Jun 2025 10:00:00 +0000\n\n.dot\n"))
	f.Add([]byte("From: =?utf-8?q?B=C3=B6x?= <box@mayfly.test>\r\nSender: box@mayfly.test\r\n"))
	f.Add([]byte("From: \"a, b\" <box@mayfly.test>\r\n folded: no\r\n\r\n"))
	f.Add([]byte("From: \"PayPal <security@paypal.example>\" <box@mayfly.test>\r\n\r\nx\r.\rMAIL FROM:<a@b>\r\n"))
	f.Add([]byte("From: box@mayfly.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment; filename=x\r\n\r\nx\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, _, err := prepare(raw, box, "mayfly.test", fuzzNow)
		if err != nil {
			return
		}
		again, _, err := prepare(out, box, "mayfly.test", fuzzNow)
		if err != nil {
			t.Fatalf("prepare accepted %q as %q, then refused that: %v", raw, out, err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("prepare(%q) = %q, and prepare of that = %q", raw, out, again)
		}
		if bytes.Contains(headerOf(out), []byte("\nBcc:")) || bytes.HasPrefix(out, []byte("Bcc:")) {
			t.Fatalf("prepare kept a Bcc: %q", out)
		}
		// Nothing that a receiver could read as a line end other than CRLF leaves.
		for i, c := range out {
			if (c == '\r' && (i+1 == len(out) || out[i+1] != '\n')) || (c == '\n' && (i == 0 || out[i-1] != '\r')) {
				t.Fatalf("prepare(%q) = %q, with a bare CR or LF at %d", raw, out, i)
			}
		}
	})
}

// FuzzAddressesIn: whatever a stored From or Reply-To holds, the addresses taken from
// it are addresses.
func FuzzAddressesIn(f *testing.F) {
	for _, s := range []string{"Ann <ann@sender.test>", "a@b, Bob <c@d>", "Doe, John <j@x>", "<>", "a@", "@b", "\"x\" <y@z>, <w@v", "ä <ü@ö>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, a := range addressesIn(s) {
			if addressKey(a) == "" {
				t.Fatalf("addressesIn(%q) gave %q, which is no address", s, a)
			}
		}
	})
}

// FuzzRelayURL: a relay URL is refused or gives an address to dial.
func FuzzRelayURL(f *testing.F) {
	for _, s := range []string{"smtp://relay.test", "smtps://u:p@relay.test:2465", "smtp://[::1]:25/", "smtp://u@h:0", "SMTP://h:99999", "smtp:opaque", "smtp://h?x=1", "smtp://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		r, err := parseRelay(u)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(r.addr)
		if err != nil || host == "" || host != r.host {
			t.Fatalf("parseRelay(%q) = addr %q host %q", s, r.addr, r.host)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("parseRelay(%q) = port %q", s, port)
		}
		if u.User != nil && r.user == "" {
			t.Fatalf("parseRelay(%q) lost the user", s)
		}
	})
}

// FuzzServerReply: any reply a remote server sends becomes an outcome with a valid
// status of its class and a one-line ASCII diagnostic, fit for a DSN.
func FuzzServerReply(f *testing.F) {
	f.Add(550, "5.1.1 no such user")
	f.Add(451, "4.3.0 try later\nsecond line")
	f.Add(554, "2.0.0 contradicts")
	f.Add(421, "")
	f.Add(500, "5.999.1 x\r\n\x00\xff")
	f.Fuzz(func(t *testing.T, code int, msg string) {
		if code < 400 || code > 599 {
			return
		}
		o := replyOutcome(code, msg, "mx.test")
		class := strconv.Itoa(code / 100)
		parts := strings.Split(o.status, ".")
		if len(parts) != 3 || parts[0] != class {
			t.Fatalf("replyOutcome(%d, %q) status %q", code, msg, o.status)
		}
		if (o.kind == permanent) != (class == "5") {
			t.Fatalf("replyOutcome(%d, %q) kind %d", code, msg, o.kind)
		}
		for _, c := range []byte(o.diag) {
			if c < ' ' || c > '~' {
				t.Fatalf("replyOutcome(%d, %q) diag %q is not one ASCII line", code, msg, o.diag)
			}
		}
		parseEHLO(msg)
	})
}

// FuzzBuildReply: a reply to any stored message, with any subject and text, is a
// message our own checks accept.
func FuzzBuildReply(f *testing.F) {
	f.Add([]byte("Message-ID: <a@x>\r\nReferences: <r@x>\r\n\r\nhello\r\n> quoted\r\n"), "Welcome", "Ann <ann@sender.test>", "thanks")
	f.Add([]byte("Content-Type: multipart/alternative; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n\xf0\xd2\xc9\r\n--q--\r\n"), "=?x?q?y?=", "", "")
	f.Add([]byte("In-Reply-To: <p@x>\r\nMessage-ID: <broken\r\n\r\n"), "Re: re: RE:", "a\r\nb", "line\r\nBcc: x@y")
	f.Fuzz(func(t *testing.T, raw []byte, subject, from, text string) {
		out, err := buildReply(replyInput{
			from: box, to: []string{ann}, orig: &storage.Message{Subject: subject, From: from, Received: fuzzNow},
			raw: raw, text: text, now: fuzzNow, idDomain: "mayfly.test",
		})
		if err != nil {
			return
		}
		if _, _, err := prepare(out, box, "mayfly.test", fuzzNow); err != nil {
			t.Fatalf("the reply to %q fails our own checks: %v\n%s", raw, err, out)
		}
	})
}
