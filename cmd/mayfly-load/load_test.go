package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// sink is a minimal SMTP server for the tests: it answers in the usual order, records
// each message dot-unstuffed, and lets a test override any reply.
type sink struct {
	t     *testing.T
	ln    net.Listener
	wg    sync.WaitGroup
	knobs sinkKnobs

	mu       sync.Mutex
	steps    map[string]int
	conns    int
	quits    int
	accepted []sunkMessage
}

// sinkKnobs change how a sink answers; the zero value answers everything with success.
type sinkKnobs struct {
	// reply, when set, may replace the reply to the n-th (from 0, over all connections)
	// occurrence of step: "greeting", "mail", "rcpt", "data" (the command) or "message"
	// (the end of data). An empty result keeps the usual reply.
	reply func(step string, n int) string
	// onMessage, when set, runs with the number of each message received, before its reply.
	onMessage func(n int)
}

type sunkMessage struct {
	rcpt string
	data []byte // as the server stores it: dot-unstuffed, without the final ".\r\n"
}

// newSink starts a sink on a loopback port; the test's cleanup stops it.
func newSink(t *testing.T, knobs sinkKnobs) *sink {
	t.Helper()
	ln := testlib.Listen(t)
	s := &sink{t: t, ln: ln, knobs: knobs, steps: map[string]int{}}
	s.wg.Go(s.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed by the test's cleanup
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(c) })
	}
}

// next returns the reply to the next occurrence of step.
func (s *sink) next(step, usual string) string {
	s.mu.Lock()
	n := s.steps[step]
	s.steps[step]++
	if step == "message" && s.knobs.onMessage != nil {
		// Under the lock, so no later message is numbered before onMessage has run.
		s.knobs.onMessage(n)
	}
	s.mu.Unlock()
	if s.knobs.reply != nil {
		if r := s.knobs.reply(step, n); r != "" {
			return r
		}
	}
	return usual
}

func (s *sink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	// say sends reply and reports whether the session goes on: a 421 closes it (RFC
	// 5321 section 3.8).
	say := func(reply string) bool {
		_, _ = w.WriteString(reply + "\r\n")
		return w.Flush() == nil && !strings.HasPrefix(reply, "421")
	}
	if !say(s.next("greeting", "220 sink ESMTP")) {
		return
	}
	var rcpt string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if !strings.HasSuffix(line, "\r\n") {
			s.t.Errorf("sink: command %q does not end in CRLF", line)
			return
		}
		line = strings.TrimSuffix(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		var reply string
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply = "250-sink greets " + arg + "\r\n250-PIPELINING\r\n250 8BITMIME"
		case "MAIL":
			reply = s.next("mail", "250 2.1.0 ok")
		case "RCPT":
			rcpt = strings.TrimSuffix(strings.TrimPrefix(arg, "TO:<"), ">")
			reply = s.next("rcpt", "250 2.1.5 ok")
		case "DATA":
			reply = s.next("data", "354 end with <CRLF>.<CRLF>")
			if !strings.HasPrefix(reply, "354") {
				break
			}
			if !say(reply) {
				return
			}
			data, err := readData(r)
			var netErr net.Error
			if errors.As(err, &netErr) || errors.Is(err, io.EOF) {
				return // the client hung up, as an interrupted one does
			}
			if err != nil {
				s.t.Errorf("sink: read data: %v", err)
				return
			}
			reply = s.next("message", "250 2.0.0 queued")
			if strings.HasPrefix(reply, "2") {
				s.mu.Lock()
				s.accepted = append(s.accepted, sunkMessage{rcpt: rcpt, data: data})
				s.mu.Unlock()
			}
		case "RSET":
			reply = "250 2.0.0 ok"
		case "QUIT":
			s.mu.Lock()
			s.quits++
			s.mu.Unlock()
			say("221 2.0.0 bye")
			return
		default:
			reply = "500 5.5.2 unknown command"
		}
		if !say(reply) {
			return
		}
	}
}

// readData reads a message after the 354 up to the line ".", undoing the dot-stuffing
// of RFC 5321 section 4.5.2 independently of the generator's code.
func readData(r *bufio.Reader) ([]byte, error) {
	var data []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			return nil, fmt.Errorf("line %q does not end in CRLF", line)
		}
		if string(line) == ".\r\n" {
			return data, nil
		}
		data = append(data, bytes.TrimPrefix(line, []byte("."))...)
	}
}

func (s *sink) stats() (conns, quits int, accepted []sunkMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.quits, s.accepted
}

func testConfig(addr string) Config {
	return Config{
		Addr:    addr,
		N:       50,
		Size:    1 << 10,
		Conns:   4,
		PerConn: 1,
		To:      "load%d@mayfly.test",
		Inboxes: 10, // single digits: every message then has exactly Size bytes
		From:    "load@sender.test",
		EHLO:    "mayfly-load",
		Timeout: 10 * time.Second,
	}
}

func TestRunDelivers(t *testing.T) {
	tests := []struct {
		name    string
		perConn int
		conns   int
		n       int
		size    int
	}{
		{name: "connection per message", perConn: 1, conns: 4, n: 200, size: 1 << 10},
		{name: "connection per session", perConn: 0, conns: 4, n: 200, size: 10 << 10},
		{name: "three per connection", perConn: 3, conns: 3, n: 100, size: 1000},
		{name: "large", perConn: 0, conns: 2, n: 20, size: 100 << 10},
		{name: "one session", perConn: 0, conns: 1, n: 30, size: 4000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sk := newSink(t, sinkKnobs{})
			cfg := testConfig(sk.addr())
			cfg.N, cfg.Conns, cfg.PerConn, cfg.Size = tt.n, tt.conns, tt.perConn, tt.size

			rep, err := run(t.Context(), cfg)
			if err != nil {
				t.Fatalf("run(%+v) error = %v", cfg, err)
			}
			conns, quits, msgs := sk.stats()
			if rep.Sent != int64(tt.n) || len(rep.Errors) != 0 {
				t.Errorf("run() sent %d, errors %v (first %q), want %d and none", rep.Sent, rep.Errors, rep.FirstError, tt.n)
			}
			if len(msgs) != tt.n {
				t.Errorf("sink accepted %d messages, want %d", len(msgs), tt.n)
			}
			if rep.Size != tt.size || rep.Bytes != int64(tt.n*tt.size) {
				t.Errorf("run() size %d, bytes %d, want %d and %d", rep.Size, rep.Bytes, tt.size, tt.n*tt.size)
			}

			minConns, maxConns := 1, tt.conns
			if tt.perConn > 0 {
				minConns = (tt.n + tt.perConn - 1) / tt.perConn
				maxConns = minConns + tt.conns - 1
			}
			if conns < minConns || conns > maxConns || rep.Connections != int64(conns) {
				t.Errorf("sink saw %d connections, report %d, want %d to %d", conns, rep.Connections, minConns, maxConns)
			}
			if quits != conns {
				t.Errorf("sink saw %d QUITs for %d connections, want one each", quits, conns)
			}
			if rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max {
				t.Errorf("run() latency %+v, want 0 < p50 <= p99 <= max", rep.Latency)
			}

			ids := map[string]bool{}
			perRcpt := map[string]int{}
			for _, m := range msgs {
				checkMessage(t, m.data, tt.size)
				msg, err := mail.ReadMessage(bytes.NewReader(m.data))
				if err != nil {
					t.Fatalf("parse message: %v", err)
				}
				id := msg.Header.Get("Message-Id")
				if ids[id] {
					t.Errorf("Message-ID %s sent twice", id)
				}
				ids[id] = true
				if to := msg.Header.Get("To"); to != "<"+m.rcpt+">" {
					t.Errorf("To %q, want envelope recipient %q", to, m.rcpt)
				}
				if _, err := msg.Header.Date(); err != nil {
					t.Errorf("Date: %v", err)
				}
				perRcpt[m.rcpt]++
			}
			// Round-robin over 10 inboxes: each gets an equal share.
			for rcpt, got := range perRcpt {
				if got != tt.n/cfg.Inboxes {
					t.Errorf("recipients %v: %s got %d, want %d each", perRcpt, rcpt, got, tt.n/cfg.Inboxes)
					break
				}
			}
		})
	}
}

// checkMessage checks that data, as the sink stored it, has size bytes and the body
// the generator builds, lines starting with a dot included.
func checkMessage(t *testing.T, data []byte, size int) {
	t.Helper()
	if len(data) != size {
		t.Errorf("message has %d bytes, want %d", len(data), size)
	}
	_, body, ok := bytes.Cut(data, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("message has no blank line after the header:\n%s", data)
	}
	if want := buildBody(len(body)); !bytes.Equal(body, want) {
		t.Errorf("body differs from what was built:\n got %q\nwant %q", body, want)
	}
	if size > 500 && !bytes.Contains(body, []byte("\r\n.")) {
		t.Errorf("body has no line starting with a dot: %q", body)
	}
}

func TestRunCountsErrors(t *testing.T) {
	every := func(step string, k int, reply string) func(string, int) string {
		return func(s string, n int) string {
			if s == step && n%k == k-1 {
				return reply
			}
			return ""
		}
	}
	tests := []struct {
		name     string
		reply    func(step string, n int) string
		perConn  int
		n        int
		want     map[string]int64
		wantSent int64
	}{
		{
			name:  "451 to the end of data",
			reply: every("message", 5, "451 4.3.0 try again later"),
			n:     20, want: map[string]int64{"451": 4}, wantSent: 16,
		},
		{
			name:  "550 to rcpt",
			reply: every("rcpt", 4, "550 5.1.1 no such user"),
			n:     20, want: map[string]int64{"550": 5}, wantSent: 15,
		},
		{
			name:    "421 greeting",
			reply:   every("greeting", 3, "421 4.3.2 busy"),
			perConn: 1, n: 12, want: map[string]int64{"421": 4}, wantSent: 8,
		},
		{
			name:  "250 to data",
			reply: every("data", 2, "250 2.0.0 ok"),
			n:     10, want: map[string]int64{"250": 5}, wantSent: 5,
		},
		{
			name:  "malformed reply",
			reply: every("mail", 10, "hello"),
			n:     10, want: map[string]int64{"proto": 1}, wantSent: 9,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sk := newSink(t, sinkKnobs{reply: tt.reply})
			cfg := testConfig(sk.addr())
			cfg.N, cfg.Conns, cfg.PerConn = tt.n, 2, tt.perConn

			rep, err := run(t.Context(), cfg)
			if err != nil {
				t.Fatalf("run() error = %v", err)
			}
			if !maps.Equal(rep.Errors, tt.want) || rep.Sent != tt.wantSent {
				t.Errorf("run() sent %d, errors %v, want %d and %v", rep.Sent, rep.Errors, tt.wantSent, tt.want)
			}
			if rep.FirstError == "" {
				t.Errorf("run() FirstError empty with errors %v", rep.Errors)
			}
			conns, _, msgs := sk.stats()
			if int64(len(msgs)) != rep.Sent || rep.Connections != int64(conns) {
				t.Errorf("sink accepted %d on %d connections, report %d on %d", len(msgs), conns, rep.Sent, rep.Connections)
			}
			// A failed message costs its connection, so even sessions that keep theirs
			// for the whole run use one per error at least.
			if conns < int(rep.ErrorCount()) {
				t.Errorf("sink saw %d connections for %d errors, want one each at least", conns, rep.ErrorCount())
			}
		})
	}
}

func TestRunNetErrors(t *testing.T) {
	cfg := testConfig(testlib.FreePort(t))
	cfg.N = 5
	rep, err := run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("run() error = %v", err)
	}
	if want := map[string]int64{"net": 5}; !maps.Equal(rep.Errors, want) || rep.Sent != 0 {
		t.Errorf("run() sent %d, errors %v, want 0 and %v", rep.Sent, rep.Errors, want)
	}
	if !strings.Contains(rep.FirstError, "dial") {
		t.Errorf("run() FirstError = %q, want a dial error", rep.FirstError)
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sk := newSink(t, sinkKnobs{onMessage: func(n int) {
		if n == 10 {
			cancel()
		}
	}})
	cfg := testConfig(sk.addr())
	cfg.N, cfg.Conns, cfg.PerConn = 1_000_000, 2, 0

	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatalf("run() error = %v", err)
	}
	// The 11th message cancels the run. Its 250 and that of the other session's message
	// under way may be lost or beat the connections' closing (which runs after the
	// cancel, in its own goroutine), and that session may have one more under way.
	_, _, accepted := sk.stats()
	if !rep.Interrupted || rep.Sent < 9 || rep.Sent > 12 || len(rep.Errors) != 0 {
		t.Errorf("run() interrupted %v, sent %d, errors %v; want true, 9 to 12, none", rep.Interrupted, rep.Sent, rep.Errors)
	}
	if rep.Sent > int64(len(accepted)) {
		t.Errorf("run() counted %d sent, the server accepted %d", rep.Sent, len(accepted))
	}
}

func TestRunDuration(t *testing.T) {
	sk := newSink(t, sinkKnobs{})
	cfg := testConfig(sk.addr())
	cfg.N, cfg.Duration, cfg.Conns, cfg.PerConn = 0, 100*time.Millisecond, 2, 0

	rep, err := run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("run() error = %v", err)
	}
	conns, quits, msgs := sk.stats()
	if rep.Interrupted || rep.Sent == 0 || len(rep.Errors) != 0 || rep.Wall < cfg.Duration {
		t.Errorf("run() interrupted %v, sent %d, errors %v, wall %v; want false, > 0, none, >= %v",
			rep.Interrupted, rep.Sent, rep.Errors, rep.Wall, cfg.Duration)
	}
	// The last messages finish and every connection ends with QUIT.
	if int64(len(msgs)) != rep.Sent || quits != conns {
		t.Errorf("sink accepted %d with %d QUITs on %d connections, report sent %d", len(msgs), quits, conns, rep.Sent)
	}
}

func TestRunMeasuresServer(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("needs /proc, as on the Linux machines make test runs on: %v", err)
	}
	sk := newSink(t, sinkKnobs{})
	cfg := testConfig(sk.addr())
	cfg.PID = os.Getpid() // the sink runs in this process

	rep, err := run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("run() error = %v", err)
	}
	if rep.Server == nil || rep.Server.RSS <= 0 || rep.Server.CPU < 0 {
		t.Errorf("run() Server = %+v, want a positive RSS", rep.Server)
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr error
	}{
		{name: "single line", in: "220 mx ESMTP\r\n", want: 220},
		{name: "multi-line", in: "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n", want: 250},
		{name: "code only", in: "250\r\n", want: 250},
		{name: "bare LF", in: "354 go ahead\n", want: 354},
		{name: "continuation only", in: "250-mx\r\n", wantErr: io.EOF},
		{name: "empty", in: "", wantErr: io.EOF},
		{name: "short", in: "25\r\n", wantErr: errMalformed},
		{name: "letters", in: "abc def\r\n", wantErr: errMalformed},
		{name: "bad separator", in: "250_ok\r\n", wantErr: errMalformed},
		{name: "1xx", in: "150 what\r\n", wantErr: errMalformed},
		{name: "too long", in: "250 " + strings.Repeat("x", 64) + "\r\n", wantErr: errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			got, err := readReply(r)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("readReply(%q) = %d, %v, want %d, %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil && r.Buffered() != 0 {
				t.Errorf("readReply(%q) left %d bytes unread", tt.in, r.Buffered())
			}
		})
	}
}

func FuzzReadReply(f *testing.F) {
	f.Add("250-mx\r\n250 ok\r\n")
	f.Add("421 bye\r\n")
	f.Add("2\n50 \r")
	f.Fuzz(func(t *testing.T, in string) {
		r := bufio.NewReaderSize(strings.NewReader(in), 16)
		for range len(in) + 1 { // each call consumes a line, or fails at the end
			code, err := readReply(r)
			if err != nil {
				if errors.Is(err, io.EOF) {
					return
				}
				continue
			}
			if code < 200 || code > 599 {
				t.Fatalf("readReply(%q) = %d, want a 2xx to 5xx code", in, code)
			}
		}
	})
}
