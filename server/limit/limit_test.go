package limit

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.7:25", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:25", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:993", "2001:db8:1:2::"},
		{"[2001:db8:1:2:ffff::1]:993", "2001:db8:1:2::"},
	} {
		ap := netip.MustParseAddrPort(tt.in)
		if got := Key(net.TCPAddrFromAddrPort(ap)); got.String() != tt.want {
			t.Errorf("Key(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestConns(t *testing.T) {
	c := NewConns(2)
	a := &net.TCPAddr{IP: net.ParseIP("192.0.2.1")}
	b := &net.TCPAddr{IP: net.ParseIP("192.0.2.2")}
	r1, ok1 := c.Acquire(a)
	_, ok2 := c.Acquire(a)
	_, ok3 := c.Acquire(a)
	_, okB := c.Acquire(b)
	if !ok1 || !ok2 || ok3 || !okB {
		t.Fatalf("acquire: %v %v %v (want the third refused), other client %v", ok1, ok2, ok3, okB)
	}
	r1()
	r1() // a second release must not free a slot it does not hold
	if _, ok := c.Acquire(a); !ok {
		t.Fatal("a released slot was not given back")
	}
	if _, ok := c.Acquire(a); ok {
		t.Fatal("a double release freed two slots")
	}
}

func TestConnsExcept(t *testing.T) {
	proxy := &net.TCPAddr{IP: net.ParseIP("10.0.0.5")}
	c := NewConns(1).Except(func(a net.Addr) bool { return a.String() == proxy.String() })
	for i := range 3 {
		if _, ok := c.Acquire(proxy); !ok {
			t.Fatalf("exempt peer refused at connection %d", i+1)
		}
	}
	other := &net.TCPAddr{IP: net.ParseIP("10.0.0.6")}
	if _, ok := c.Acquire(other); !ok {
		t.Fatal("first connection of a counted peer refused")
	}
	if _, ok := c.Acquire(other); ok {
		t.Fatal("a counted peer got past its limit")
	}
}

func TestBuckets(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b := NewBuckets[string](Rate{N: 3, Per: time.Minute})
	b.now = func() time.Time { return now }
	for i := range 3 {
		if !b.Allow("x") {
			t.Fatalf("event %d of a burst of 3 refused", i+1)
		}
	}
	if b.Allow("x") || !b.Empty("x") {
		t.Fatal("a fourth event within the minute allowed")
	}
	if b.Empty("y") || !b.Allow("y") {
		t.Fatal("another key shares the first's bucket")
	}
	now = now.Add(20 * time.Second) // one token back
	if b.Empty("x") || !b.Allow("x") || b.Allow("x") {
		t.Fatal("a token refilled in 20s of 3/min was not exactly one")
	}
	var off *Buckets[string]
	if !off.Allow("x") || off.Empty("x") || !NewBuckets[string](Rate{}).Allow("x") {
		t.Fatal("a nil or zero-rate Buckets limits")
	}
}

func TestBucketsForgetIdleKeys(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b := NewBuckets[int](Rate{N: 1, Per: time.Second})
	b.now = func() time.Time { return now }
	for i := range 5000 {
		b.Allow(i)
		now = now.Add(time.Millisecond)
	}
	if n := len(b.m); n > 2100 {
		t.Errorf("%d buckets kept after 5000 clients a millisecond apart with 1s buckets; idle ones should go", n)
	}
}

func TestListenerRefusesOverLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	ln := Listener(inner, NewConns(1), "421 too many connections\r\n", func() { refused++ })
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	first, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	served := <-accepted
	second, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(second).ReadString('\n')
	if err != nil || line != "421 too many connections\r\n" {
		t.Fatalf("second connection got %q, %v", line, err)
	}
	served.Close() // releases the slot
	third, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("after the first closed, a new connection was not accepted")
	}
	if refused != 1 {
		t.Errorf("refused counted %d, want 1", refused)
	}
}

func TestListen(t *testing.T) {
	lns, err := Listen("127.0.0.1:0", "")
	if err != nil || len(lns) != 2 || lns[0] == nil || lns[1] != nil {
		t.Fatalf("Listen(addr, \"\") = %v, %v; want one listener and an off one", lns, err)
	}
	taken := lns[0].Addr().String()
	defer lns[0].Close()
	// The second address is in use.
	if _, err := Listen("127.0.0.1:0", taken); err == nil {
		t.Fatal("Listen on an address in use succeeded")
	}
	if !IsLoopback(lns[0].Addr()) || IsLoopback(&net.TCPAddr{IP: net.ParseIP("192.0.2.1")}) || !IsLoopback(&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1")}) {
		t.Error("IsLoopback is wrong about 127.0.0.1, 192.0.2.1 or a mapped 127.0.0.1")
	}
}

// A fake clock for a Pacer: its waits take no real time.
func fakePacer(r Rate) (*Pacer, *time.Time, *time.Duration) {
	now := time.Unix(1_000_000, 0)
	var waited time.Duration
	p := r.Pacer(0)
	p.now = func() time.Time { return now }
	p.at = now
	p.sleep = func(_ context.Context, d time.Duration) error {
		now = now.Add(d)
		waited += d
		return nil
	}
	return p, &now, &waited
}

func TestPacerBurstThenPace(t *testing.T) {
	p, _, waited := fakePacer(Rate{N: 50, Per: time.Second})
	for i := range PaceBurst {
		if err := p.Wait(context.Background()); err != nil || *waited != 0 {
			t.Fatalf("command %d of the burst: err %v, waited %v", i+1, err, *waited)
		}
	}
	for range 100 {
		if err := p.Wait(context.Background()); err != nil {
			t.Fatalf("a client 100 commands past its burst was cut: %v", err)
		}
	}
	if *waited < 100*20*time.Millisecond-time.Millisecond {
		t.Fatalf("100 commands past the burst at 50/s waited %v, want 2s", *waited)
	}
}

func TestPacerCutsFlood(t *testing.T) {
	p, _, _ := fakePacer(Rate{N: 50, Per: time.Second})
	n := 0
	for ; n < 100_000; n++ {
		if err := p.Wait(context.Background()); err != nil {
			if !errors.Is(err, ErrTooFast) {
				t.Fatal(err)
			}
			break
		}
	}
	// Each paced command takes 20ms of slack and gives 10ms back.
	if want := PaceBurst + 2*paceSlack; n < want-2 || n > want+2 {
		t.Fatalf("a flood was cut after %d commands, want about %d", n, want)
	}
}

func TestPacerSpares2xClient(t *testing.T) {
	p, now, _ := fakePacer(Rate{N: 50, Per: time.Second})
	for i := range 20_000 {
		// The client's own pause: half a token's time, so on its own it would go 100/s.
		*now = now.Add(10 * time.Millisecond)
		if err := p.Wait(context.Background()); err != nil {
			t.Fatalf("a client at twice the rate cut at command %d: %v", i+1, err)
		}
	}
}

func TestPacerWaitEndsWithContext(t *testing.T) {
	p := Rate{N: 1, Per: time.Hour}.Pacer(0)
	for range PaceBurst {
		p.Wait(context.Background())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Wait of an hour did not end with its context")
	}
	var off *Pacer
	if off.Wait(context.Background()) != nil || (Rate{}).Pacer(0) != nil {
		t.Fatal("an off rate paces")
	}
}

func TestPacerMaxWait(t *testing.T) {
	p := Rate{N: 1, Per: time.Hour}.Pacer(time.Minute)
	for range PaceBurst {
		p.Wait(context.Background())
	}
	if err := p.Wait(context.Background()); !errors.Is(err, ErrTooFast) {
		t.Fatalf("a wait of an hour past a maxWait of a minute = %v, want ErrTooFast", err)
	}
}

// TestPacerConcurrent: go-imap polls for updates on its reading goroutine while an
// IDLE runs on another, and both take from the connection's one Pacer (a data race the
// race detector found in the soak test).
func TestPacerConcurrent(t *testing.T) {
	p := Rate{N: 1000, Per: time.Second}.Pacer(0)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 600 {
				if err := p.Wait(context.Background()); err != nil && !errors.Is(err, ErrTooFast) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"1024", 1024}, {"64KiB", 64 << 10}, {"10MiB", 10 << 20}, {"512MiB", 512 << 20}, {"2GiB", 2 << 30}, {"7B", 7},
		{"", 0}, {"10MB", 0}, {"-1MiB", 0}, {"0", 0}, {"MiB", 0}, {"1.5MiB", 0}, {"99999999999TiB", 0},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if got != tt.want || (err == nil) != (tt.want > 0) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, in := range []string{"20/h", "50/s", "10/m", "3/d"} {
		r, err := ParseRate(in)
		if err != nil || r.String() != in {
			t.Errorf("ParseRate(%q) = %v, %v; want it back", in, r, err)
		}
	}
	for _, in := range []string{"", "20", "0/h", "-1/s", "20/w", "x/h"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) succeeded", in)
		}
	}
	if s := (Rate{N: -1}).String(); s != "off" {
		t.Errorf("Rate{N: -1}.String() = %q, want off", s)
	}
}
