package mx

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// rejected reads mayfly_smtp_rejected_total{reason} from reg.
func rejected(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mayfly_smtp_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no mayfly_smtp_rejected_total{reason=%q}", reason)
	return 0
}

// wantRefusal requires err to be a 452 4.7.1 reply saying want.
func wantRefusal(t *testing.T, what string, err error, want string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) || se.Message != want {
		t.Fatalf("%s: %v, want 452 4.7.1 %s", what, err, want)
	}
}

// TestRecipientRate refuses the recipients of a client address over RecipientRate,
// at RCPT, while a transaction it had accepted before still completes, and so do the
// recipients the flooding session had accepted.
func TestRecipientRate(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	reg := prometheus.NewRegistry()
	addr := start(t, Options{RecipientRate: limit.Rate{N: 3, Per: time.Hour}, Options: limit.Options{Metrics: reg}}, st)

	early := dial(t, addr)
	if err := early.Mail("s@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := early.Rcpt("early@mayfly.test", nil); err != nil {
		t.Fatal(err)
	}

	flood := dial(t, addr)
	if err := flood.Mail("s@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	accepted := 0
	var err error
	for i := range 10 {
		if err = flood.Rcpt(fmt.Sprintf("flood%d@mayfly.test", i), nil); err != nil {
			break
		}
		accepted++
	}
	wantRefusal(t, "RCPT over the rate", err, "too many recipients from your address (MAYFLY_RECIPIENT_RATE), slow down")
	if accepted != 2 {
		t.Errorf("%d recipients accepted before the refusal, want 2 (one token went to the early session)", accepted)
	}
	if got := rejected(t, reg, rejectRecipientRate); got != 1 {
		t.Errorf("rejected{recipient_rate} = %v, want 1", got)
	}

	if err := send(early, "Subject: early\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("the transaction accepted before the flood: %v", err)
	}
	only(t, st, "early@mayfly.test")
	if err := send(flood, "Subject: flood\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("DATA for the recipients accepted: %v", err)
	}
	only(t, st, "flood0@mayfly.test")
	only(t, st, "flood1@mayfly.test")
}

// TestReceiveRate refuses RCPT to an inbox that has had ReceiveRate messages, with
// its name, while another inbox still receives, in the same transaction.
func TestReceiveRate(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			reg := prometheus.NewRegistry()
			addr := start(t, Options{ReceiveRate: limit.Rate{N: 2, Per: time.Hour}, Options: limit.Options{Metrics: reg}}, st)
			c := dial(t, addr)
			for i := range 2 {
				if err := c.Mail("s@sender.test", nil); err != nil {
					t.Fatal(err)
				}
				if err := c.Rcpt("a@mayfly.test", nil); err != nil {
					t.Fatalf("RCPT %d within the rate: %v", i+1, err)
				}
				if err := send(c, fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i+1)); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Mail("s@sender.test", nil); err != nil {
				t.Fatal(err)
			}
			// A tag and capitals are the same inbox.
			wantRefusal(t, "RCPT to an inbox over its rate", c.Rcpt("A+more@Mayfly.test", nil), "<a@mayfly.test> receives too much mail (MAYFLY_RECEIVE_RATE), try later")
			if err := c.Rcpt("b@mayfly.test", nil); err != nil {
				t.Fatalf("RCPT to another inbox: %v", err)
			}
			if err := send(c, "Subject: 3\r\n\r\nbody\r\n"); err != nil {
				t.Fatalf("DATA to the other inbox: %v", err)
			}
			only(t, st, "b@mayfly.test")
			if list, err := st.List(t.Context(), "a@mayfly.test", storage.Page{}); err != nil || len(list) != 2 {
				t.Errorf("a@mayfly.test holds %d messages, %v; want 2", len(list), err)
			}
			if got := rejected(t, reg, rejectReceiveRate); got != 1 {
				t.Errorf("rejected{receive_rate} = %v, want 1", got)
			}
		})
	}
}

// TestSlowClient cuts off a client that sends a command a byte at a time once the
// command timeout has run out since our last reply: go-guerrilla sets the deadline
// when it replies, not per byte read. A client that keeps talking meanwhile is served.
func TestSlowClient(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	const timeout = time.Second // go-guerrilla counts whole seconds
	addr := start(t, Options{Timeout: timeout}, st)
	active := dial(t, addr)

	// Before the dial: the server's deadline starts after it accepts, and may run out
	// a little before the client has read the greeting.
	start := time.Now()
	slow := testlib.DialGreeted(t, addr, "220 ")
	line := slow.Trickle(start, "EHLO slow.client.test", func() {
		// RSET, not NOOP: go-guerrilla answers NOOP with 200, which go-smtp rejects.
		if err := active.Reset(); err != nil {
			t.Fatalf("RSET of a client that keeps talking: %v", err)
		}
	})
	if line != "" {
		t.Fatalf("slow client was answered %q, want the connection closed", line)
	}
	cut := time.Since(start)
	if cut < timeout {
		t.Errorf("slow client cut off after %v, before the %v timeout", cut, timeout)
	}
	if err := active.Mail("s@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := active.Rcpt("active@mayfly.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := send(active, "Subject: x\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("the client that kept talking: %v", err)
	}
	only(t, st, "active@mayfly.test")
}
