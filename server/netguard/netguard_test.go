package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", false}, {"127.1.2.3", false}, {"::1", false},
		{"10.0.0.1", false}, {"172.16.5.4", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"fe80::1", false},
		{"100.64.0.1", false}, {"100.127.255.255", false},
		{"fc00::1", false}, {"fd12:3456::1", false},
		{"224.0.0.1", false}, {"239.1.2.3", false}, {"ff02::1", false}, {"ff0e::1", false},
		{"0.0.0.0", false}, {"0.1.2.3", false}, {"::", false},
		{"240.0.0.1", false}, {"255.255.255.255", false},
		{"::ffff:127.0.0.1", false}, {"::ffff:10.1.1.1", false},
		{"8.8.8.8", true}, {"100.63.255.255", true}, {"100.128.0.0", true},
		{"2001:4860:4860::8888", true}, {"::ffff:8.8.8.8", true}, {"172.32.0.1", true},
	} {
		if got := Public(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Public(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if Public(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

// TestDialer dials a real listener on loopback: refused by the guarded dialer before
// any packet leaves, allowed with allowPrivate.
func TestDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// By name, as an MX is dialed: the check must see the resolved address.
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if _, err := Dialer(net.Dialer{}, false).DialContext(ctx, "tcp", net.JoinHostPort("localhost", port)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("guarded dial of localhost: %v, want ErrForbidden", err)
	}
	c, err := Dialer(net.Dialer{}, true).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with allowPrivate: %v", err)
	}
	c.Close()
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the allowed dial never arrived")
	}
	select {
	case <-accepted:
		t.Fatal("the refused dial reached the listener")
	default:
	}
}

// FuzzPublic: any 16 bytes are an address Public judges without panicking, and the
// IPv4-mapped form of an IPv4 address is judged as that address.
func FuzzPublic(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		got := Public(ip)
		if ip.Is4() && Public(netip.AddrFrom16(ip.As16())) != got {
			t.Fatalf("Public(%s) = %v, but not for its mapped form", ip, got)
		}
		if got && (ip.Unmap().IsLoopback() || ip.Unmap().IsPrivate()) {
			t.Fatalf("Public(%s) = true", ip)
		}
	})
}
