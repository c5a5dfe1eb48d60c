package main

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

func TestDNSStub(t *testing.T) {
	// Below the ephemeral range: a port-0 UDP socket of a test running beside this one
	// (another DNS server, whose empty answers came back here) cannot take it.
	addr := testlib.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveDNSStub(ctx, addr, "Sender.Test") }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c := &dns.Client{Timeout: time.Second}
	ask := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeTXT)
		deadline := time.Now().Add(5 * time.Second)
		for {
			r, _, err := c.Exchange(m, addr)
			if err == nil {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("no answer for %s: %v", name, err)
			}
		}
	}
	if r := ask("sender.test."); len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all" {
		t.Errorf("SPF answer = %v", r.Answer)
	}
	if r := ask("_dmarc.sender.test."); len(r.Answer) != 1 {
		t.Errorf("DMARC answer = %v", r.Answer)
	}
	if r := ask("elsewhere.test."); r.Rcode != dns.RcodeNameError {
		t.Errorf("other names: rcode %d, want NXDOMAIN", r.Rcode)
	}
}
