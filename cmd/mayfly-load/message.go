package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	// maxSize bounds -size: every session shares one body built in memory, and mail
	// larger than this is not what a disposable inbox is sized for.
	maxSize = 64 << 20

	// lineLen is the body line length without CRLF. RFC 5322 section 2.1.1 says lines
	// SHOULD stay within 78 characters; 76 is what base64 and quoted-printable use, so the
	// load looks like ordinary mail.
	lineLen = 76

	// seqWidth zero-pads the message number in Subject and Message-ID so every header
	// block of a run has the same length and -size holds for every message.
	seqWidth = 10
)

// parseSize parses a byte count: plain bytes ("1500", "1500B") or binary units ("10KiB",
// "1MiB"). KB and MB mean KiB and MiB: the flag sizes mail, where the 2% difference
// only causes confusion about which one a benchmark used.
func parseSize(s string) (int, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("parse size %q: want a number with an optional unit B, KiB or MiB", s)
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil {
		return 0, fmt.Errorf("parse size %q: %w", s, err)
	}
	var unit int
	switch strings.ToLower(s[i:]) {
	case "", "b":
		unit = 1
	case "k", "kb", "kib":
		unit = 1 << 10
	case "m", "mb", "mib":
		unit = 1 << 20
	default:
		return 0, fmt.Errorf("parse size %q: unknown unit %q, want B, KiB or MiB", s, s[i:])
	}
	if n == 0 || n > maxSize/unit {
		return 0, fmt.Errorf("parse size %q: want 1B to %dMiB", s, maxSize>>20)
	}
	return n * unit, nil
}

// sizeFlag is a flag.Value for -size.
type sizeFlag int

func (f *sizeFlag) String() string {
	switch n := int(*f); {
	case n > 0 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n > 0 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	default:
		return strconv.Itoa(n)
	}
}

func (f *sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f = sizeFlag(n)
	return nil
}

// template holds what every message of a run shares, built once so that sending a
// message costs a header append and two writes, not a formatting pass over the body.
type template struct {
	ehloCmd  []byte   // "EHLO name\r\n"
	mailCmd  []byte   // "MAIL FROM:<from>\r\n"
	rcptCmds [][]byte // "RCPT TO:<to>\r\n", one per inbox
	toHdrs   [][]byte // "To: <to>\r\n", one per inbox
	fromHdr  []byte   // "From: <from>\r\n"
	runID    []byte   // makes Message-IDs unique across runs against one server
	body     []byte   // the body as the server should store it
	wire     []byte   // body dot-stuffed and followed by ".\r\n"
	size     int      // header block plus body of the longest recipient's messages
}

func newTemplate(cfg Config, now time.Time) *template {
	rcpts := make([]string, cfg.Inboxes)
	for i := range rcpts {
		rcpts[i] = strings.Replace(cfg.To, "%d", strconv.Itoa(i), 1)
	}
	return newTemplateTo(cfg, rcpts, now)
}

// newTemplateTo is newTemplate for the recipients rcpts, message n going to rcpts[n %
// len(rcpts)], instead of cfg.To and cfg.Inboxes.
func newTemplateTo(cfg Config, rcpts []string, now time.Time) *template {
	t := &template{
		ehloCmd: []byte("EHLO " + cfg.EHLO + "\r\n"),
		mailCmd: []byte("MAIL FROM:<" + cfg.From + ">\r\n"),
		fromHdr: []byte("From: <" + cfg.From + ">\r\n"),
		runID:   strconv.AppendInt(nil, now.UnixNano(), 36),
	}
	longest := 0
	for i, to := range rcpts {
		t.rcptCmds = append(t.rcptCmds, []byte("RCPT TO:<"+to+">\r\n"))
		t.toHdrs = append(t.toHdrs, []byte("To: <"+to+">\r\n"))
		if len(t.toHdrs[i]) > len(t.toHdrs[longest]) {
			longest = i
		}
	}
	hdrLen := len(t.appendHeader(nil, 0, longest, now))
	t.body = buildBody(max(cfg.Size-hdrLen, 3))
	t.wire = dotStuff(t.body)
	t.size = hdrLen + len(t.body)
	return t
}

// appendHeader appends the header block of message seq, blank line included. Dates
// from time.RFC1123Z have a fixed width, like the padded seq, so only the recipient
// changes the length.
func (t *template) appendHeader(b []byte, seq int64, inbox int, now time.Time) []byte {
	b = append(b, "Date: "...)
	b = now.AppendFormat(b, time.RFC1123Z)
	b = append(b, "\r\n"...)
	b = append(b, t.fromHdr...)
	b = append(b, t.toHdrs[inbox]...)
	b = append(b, "Subject: mayfly-load "...)
	b = appendSeq(b, seq)
	b = append(b, "\r\nMessage-ID: <"...)
	b = appendSeq(b, seq)
	b = append(b, '.')
	b = append(b, t.runID...)
	b = append(b, "@mayfly-load>\r\n"...)
	b = append(b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"...)
	return b
}

func appendSeq(b []byte, seq int64) []byte {
	var d [20]byte
	s := strconv.AppendInt(d[:0], seq, 10)
	for range seqWidth - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// buildBody returns n >= 3 bytes of CRLF-terminated lines of printable ASCII, lineLen
// characters each except the last one or two, which absorb the remainder so that the
// length is exact. Every eighth line, from the second on, starts with '.' so that every
// run exercises the server's dot-unstuffing (RFC 5321 section 4.5.2).
func buildBody(n int) []byte {
	b := make([]byte, 0, n)
	for line := 0; len(b) < n; line++ {
		rest := n - len(b)
		var l int
		switch {
		case rest == lineLen+2 || rest >= lineLen+2+3:
			l = lineLen
		case rest > lineLen+2:
			l = rest - 2 - 3 // leave room for a last line of one character
		default:
			l = rest - 2
		}
		start := len(b)
		for j := range l {
			b = append(b, byte('!'+(line+j)%('~'-'!'+1)))
		}
		if line%8 == 1 {
			b[start] = '.'
		}
		b = append(b, '\r', '\n')
	}
	return b
}

// dotStuff returns body, which must end in CRLF, as sent after DATA: a '.' doubled at
// the start of each line and the terminating ".\r\n" appended (RFC 5321 section 4.5.2).
func dotStuff(body []byte) []byte {
	w := make([]byte, 0, len(body)+len(body)/lineLen+8)
	bol := true
	for _, c := range body {
		if bol && c == '.' {
			w = append(w, '.')
		}
		w = append(w, c)
		bol = c == '\n'
	}
	return append(w, ".\r\n"...)
}
