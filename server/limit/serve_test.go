package limit

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFrontRefusal checks the listener layer's order and its refusal: a client over
// its cap reads the protocol's line on a plain listener and nothing on an
// implicit-TLS one, and the refusal is counted either way.
func TestFrontRefusal(t *testing.T) {
	for _, tc := range []struct {
		name        string
		implicitTLS bool
		want        string
	}{
		{"plain", false, "421 busy\r\n"},
		{"implicit TLS", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			refused := 0
			var mu sync.Mutex
			ln := Front{PerClient: NewConns(1), Refusal: "421 busy\r\n", Refused: func() { mu.Lock(); refused++; mu.Unlock() }}.Wrap(inner, tc.implicitTLS)
			defer ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			accepted := make(chan net.Conn, 2)
			done := make(chan error, 1)
			go func() {
				done <- Accept(ctx, ln, "test", slog.New(slog.DiscardHandler), func(c net.Conn) { accepted <- c })
			}()

			first, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			<-accepted
			second, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			second.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, _ := io.ReadAll(bufio.NewReader(second))
			if string(got) != tc.want {
				t.Errorf("over the cap read %q, want %q", got, tc.want)
			}
			mu.Lock()
			if refused != 1 {
				t.Errorf("refused %d, want 1", refused)
			}
			mu.Unlock()
			cancel()
			ln.Close()
			if err := <-done; err != nil {
				t.Errorf("Accept after ctx ended = %v, want nil", err)
			}
		})
	}
}

// TestAcceptClosed checks that a listener closed under a live context is an error.
func TestAcceptClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = Accept(context.Background(), ln, "test", slog.New(slog.DiscardHandler), func(net.Conn) {})
	if err == nil || !strings.HasPrefix(err.Error(), "test accept: ") {
		t.Errorf("Accept on a closed listener = %v, want a test accept: error", err)
	}
}

func TestDrain(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	done := Waited(&wg)
	cut := false
	if Drain(done, 10*time.Millisecond, slog.New(slog.DiscardHandler), "late", func() { cut = true; wg.Done() }) || !cut {
		t.Errorf("Drain of a wait that never ends: cut %v, want true and false returned", cut)
	}
	<-done
	if !Drain(done, time.Hour, slog.New(slog.DiscardHandler), "late", func() { t.Error("cut a drained wait") }) {
		t.Error("Drain of a done wait = false")
	}
}

func TestRunNeedsCertificate(t *testing.T) {
	err := Run(context.Background(), "test", "", "127.0.0.1:0", nil, func(context.Context, net.Listener, bool) error { return nil })
	if err == nil || err.Error() != "test: a TLS listener needs a certificate" {
		t.Errorf("Run with a TLS address and no certificate = %v", err)
	}
}

func TestSlots(t *testing.T) {
	s := NewSlots(1)
	if !s.Take() || s.Take() {
		t.Fatal("one slot: want the first Take and not the second")
	}
	s.Give()
	if !s.Take() {
		t.Error("a slot given back is not taken again")
	}
}

func TestDefaults(t *testing.T) {
	o := Options{MaxConnectionsPerIP: -1}
	o.Defaults()
	if o.MaxConnections != 1000 || o.MaxConnectionsPerIP != -1 || o.ShutdownTimeout != 10*time.Second || o.CommandRate != (Rate{N: 50, Per: time.Second}) {
		t.Errorf("Defaults = %+v", o)
	}
	o = Options{MaxConnections: -5, ShutdownTimeout: -time.Second, CommandRate: Rate{N: -1}}
	o.Defaults()
	if o.MaxConnections != 1000 || o.ShutdownTimeout != 10*time.Second || o.CommandRate != (Rate{N: -1}) {
		t.Errorf("Defaults on negatives = %+v", o)
	}
	n, s := int64(7), ""
	Default(&n, 3)
	DefaultIfZero(&s, "x")
	if n != 7 || s != "x" {
		t.Errorf("Default kept %d, DefaultIfZero set %q", n, s)
	}
}

// TestFinalRead: after a read passes its deadline, later reads fail at once, even
// with a new deadline and bytes waiting.
func TestFinalRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := &FinalRead{Conn: raw}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || !c.TimedOut() {
		t.Fatalf("a read past its deadline = %v (timed out %v)", err, c.TimedOut())
	}
	client.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a read after the timeout = %d, %v, want 0, os.ErrDeadlineExceeded", n, err)
	}
}

// TestTracker: shutdown returns the idle connections, not the busy ones, and after
// it nothing is added, begun or armed; a busy one ending learns of the shutdown.
func TestTracker(t *testing.T) {
	var tr Tracker[string]
	for _, c := range []string{"idle", "busy"} {
		if !tr.Add(c) {
			t.Fatalf("Add(%q) before shutdown = false", c)
		}
	}
	if !tr.Begin("busy") {
		t.Fatal("Begin before shutdown = false")
	}
	if idle := tr.Shutdown(); len(idle) != 1 || idle[0] != "idle" {
		t.Errorf("Shutdown = %q, want [idle]", idle)
	}
	if !tr.Closing() || tr.Add("late") || tr.Begin("idle") || tr.Open(func() { t.Error("Open ran after shutdown") }) {
		t.Error("the tracker let work start after shutdown")
	}
	if !tr.End("busy") {
		t.Error("End after shutdown = false, want the shutdown reported")
	}
	tr.Remove("idle")
	if all := tr.All(); len(all) != 1 || all[0] != "busy" {
		t.Errorf("All = %q, want [busy]", all)
	}
}
