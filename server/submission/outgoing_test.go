package submission

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/storage"
)

// TestPrepare readies what clients send, field bytes kept.
func TestPrepare(t *testing.T) {
	tests := []struct {
		name, raw string
		want      []string // in the output
		not       []string // not in it
		err       error
	}{
		{"date and id added", "From: box@mayfly.test\r\nSubject: x\r\n\r\nline\r\n", []string{"Message-ID: <", "@mayfly.test>\r\nDate: Tue, 03 Jun 2025 09:00:00 +0000\r\nFrom: box@mayfly.test\r\nSubject: x\r\n\r\nline\r\n"}, nil, nil},
		{"bare lf", "From: box@mayfly.test\nSubject: x\n\nline\n", nil, nil, ErrBareLineEnd},
		{"bare lf in the body", "From: box@mayfly.test\r\n\r\na\n.\nMAIL FROM:<x@y>\r\n", nil, nil, ErrBareLineEnd},
		{"bare cr in the body", "From: box@mayfly.test\r\n\r\na\r.\rMAIL FROM:<x@y>\r\n", nil, nil, errMalformed},
		{"cr at the end", "From: box@mayfly.test\r\n\r\na\r", nil, nil, ErrBareLineEnd},
		{"address in the display name", "From: \"PayPal <security@paypal.example>\" <box@mayfly.test>\r\n\r\n", nil, nil, errSender},
		{"encoded address in the display name", "From: =?utf-8?q?security=40paypal.example?= <box@mayfly.test>\r\n\r\n", nil, nil, errSender},
		{"fullwidth at in the display name", "From: \"security\uFF20paypal.example\" <box@mayfly.test>\r\n\r\n", nil, nil, errSender},
		{"address in the Sender name", "From: box@mayfly.test\r\nSender: \"a@b\" <box@mayfly.test>\r\n\r\n", nil, nil, errSender},
		{"own date and id kept", "Date: Mon, 2 Jun 2025 10:00:00 +0200\r\nMessage-ID: <mine@x>\r\nFrom: box@mayfly.test\r\n\r\n", []string{"Date: Mon, 2 Jun 2025 10:00:00 +0200\r\nMessage-ID: <mine@x>\r\n"}, []string{"2025 09:00:00"}, nil},
		{"bcc dropped", "From: box@mayfly.test\r\nBcc: a@b,\r\n c@d\r\nTo: x@y\r\n\r\nhi\r\n", []string{"To: x@y\r\n"}, []string{"Bcc", "c@d"}, nil},
		{"header only", "From: box@mayfly.test", []string{"From: box@mayfly.test\r\n\r\n"}, nil, nil},
		{"tag and case", "From: \"B\" <BOX+x@Mayfly.Test>\r\n\r\n", nil, nil, nil},
		{"no header", "\r\nbody", nil, nil, errSender},
		{"empty", "", nil, nil, errSender},
		{"group", "From: undisclosed:;\r\n\r\n", nil, nil, errSender},
		{"mbox line", "From box@mayfly.test Mon Jun  2 10:00:00 2025\r\nFrom: box@mayfly.test\r\n\r\n", nil, nil, errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := prepare([]byte(tt.raw), box, "mayfly.test", fuzzNow)
			if !errors.Is(err, tt.err) {
				t.Fatalf("prepare(%q) = %v, want %v", tt.raw, err, tt.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("prepare(%q) = %q, want it to hold %q", tt.raw, out, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(string(out), w) {
					t.Errorf("prepare(%q) = %q, want no %q", tt.raw, out, w)
				}
			}
		})
	}
}

// TestAddressesIn reads the store's display strings.
func TestAddressesIn(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"Ann <ann@sender.test>", "ann@sender.test"},
		{"ann@sender.test", "ann@sender.test"},
		{"a@b, Bob <c@d>", "a@b c@d"},
		{"Doe, John <j@x>", "j@x"},
		{"Jörg (work) <j@x>, <k@y>", "j@x k@y"},
		{"no address", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := strings.Join(addressesIn(tt.in), " "); got != tt.want {
			t.Errorf("addressesIn(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// failingQueue refuses every job.
type failingQueue struct{ storage.Queue }

func (failingQueue) Enqueue(context.Context, *storage.Job) error {
	return storage.ErrUnavailable
}

// TestQueueDown: a message the queue does not take gets 451, and leaves no sent copy
// claiming it went.
func TestQueueDown(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	e := newEnv(t, st, setup{queue: failingQueue{st}})
	c := login(t, e.addr, box, token(box))
	err := send(c, box, []string{ann}, letter(box, ann, "hi", "lost?"))
	wantCode(t, "DATA with the queue down", err, 451, smtp.EnhancedCode{4, 3, 0}, "")
	if n := len(sentCopies(t, st, box)); n != 0 {
		t.Errorf("%d sent copies of a message not queued", n)
	}
	if _, err := e.srv.Reply(ctxFor(t), testClient, box, list(t, st, box)[0].ID, "hi", ""); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Reply with the queue down = %v, want storage.ErrUnavailable", err)
	}
}

// TestOpportunisticFallback: an MX whose TLS handshake fails gets the message in the
// clear, as if it had offered no STARTTLS.
func TestOpportunisticFallback(t *testing.T) {
	st := memory(t)
	received(t, st, box, "", ann)
	k := newSink(t, sinkOptions{tls: &tls.Config{}}) // no certificate: every handshake fails
	e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port}})
	e.startWorkers()
	c := login(t, e.addr, box, token(box))
	if err := send(c, box, []string{ann, ann, "ANN@sender.test"}, letter(box, ann, "hi", "in the clear")); err != nil {
		t.Fatal(err)
	}
	m := k.next(t)
	if m.tls || len(m.to) != 1 {
		t.Errorf("sink got the message to %q with TLS %v, want once in the clear", m.to, m.tls)
	}
	e.drained(t, st, k)
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:25": true, "[::1]:25": true, "localhost:587": true, "192.0.2.1:25": false, "relay.test:25": false, "bad": false} {
		if got := isLoopbackAddr(addr); got != want {
			t.Errorf("isLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}
