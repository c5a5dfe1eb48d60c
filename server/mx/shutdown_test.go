package mx

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// TestShutdownDrains: on SIGTERM the receiver stops accepting, lets a transaction in
// DATA finish with its 250 (the mail stored), tells an idle client 421 and closes it,
// and returns within the shutdown timeout.
func TestShutdownDrains(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	addr := freeAddr(t)
	srv := New(Options{Addr: addr, Hostname: "mx.mayfly.test", Domains: []string{"mayfly.test"}, Options: limit.Options{ShutdownTimeout: 5 * time.Second}}, st, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	type session struct {
		conn net.Conn
		r    *bufio.Reader
	}
	// reply reads one reply and returns its last line.
	reply := func(s session) string {
		s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				return "closed: " + err.Error()
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimSpace(line)
			}
		}
	}
	// say sends each line and reads its reply, returning the last; with no lines it
	// reads the greeting.
	say := func(s session, lines ...string) string {
		t.Helper()
		if len(lines) == 0 {
			return reply(s)
		}
		var last string
		for _, l := range lines {
			if _, err := s.conn.Write([]byte(l + "\r\n")); err != nil {
				t.Fatalf("write %q: %v", l, err)
			}
			last = reply(s)
		}
		return last
	}
	open := func() session {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			conn, err := net.Dial("tcp", addr)
			if err == nil {
				t.Cleanup(func() { conn.Close() })
				s := session{conn, bufio.NewReader(conn)}
				if greeting := say(s); !strings.HasPrefix(greeting, "220") {
					t.Fatalf("greeting %q", greeting)
				}
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("receiver not listening: %v", err)
			}
			time.Sleep(10 * time.Millisecond) // polling for the listener, with a deadline
		}
	}
	sending, idle := open(), open()
	say(idle, "EHLO idle.test")
	if got := say(sending, "EHLO sending.test", "MAIL FROM:<s@sender.test>", "RCPT TO:<late@mayfly.test>", "DATA"); !strings.HasPrefix(got, "354") {
		t.Fatalf("DATA: %q", got)
	}
	sending.conn.Write([]byte("Subject: in flight\r\n\r\nhalf of it"))

	cancel() // SIGTERM
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			break // no longer accepting
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 10s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond) // polling for the listener to close, with a deadline
	}
	if got := say(sending, " and the rest\r\n."); !strings.HasPrefix(got, "250") {
		t.Fatalf("end of DATA after shutdown began: %q, want 250", got)
	}
	only(t, st, "late@mayfly.test")
	// go-guerrilla marks its sessions as shutting down just after its listener closes, so
	// a command in between may still be served; the next one is turned away.
	for deadline := time.Now().Add(5 * time.Second); ; {
		got := say(idle, "RSET")
		if strings.HasPrefix(got, "421") || strings.HasPrefix(got, "closed") {
			break
		}
		if !strings.HasPrefix(got, "250") || time.Now().After(deadline) {
			t.Fatalf("an idle client after shutdown: %q, want 421 or closed", got)
		}
	}
	// Within 10s of shutdown with a 5s shutdown timeout.
	testlib.Returned(t, done, 10*time.Second, "Run")
}
