package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/storage"
)

// syncBuffer is a bytes.Buffer the service's logger and the test may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServe runs the whole command as `mayfly serve` would, on each store, sends it a
// message with a real SMTP client, and stops it as SIGTERM would.
func TestServe(t *testing.T) {
	variants := map[string][]string{"memory": nil}
	if url := os.Getenv("MAYFLY_TEST_REDIS_URL"); url != "" {
		variants["redis"] = []string{"-redis-url", url}
	} else if os.Getenv("CI") != "" || os.Getenv("MAYFLY_REQUIRE_REDIS") != "" {
		t.Fatal("MAYFLY_TEST_REDIS_URL is not set: the Redis tests must run under make test and CI")
	}
	for name, extra := range variants {
		t.Run(name, func(t *testing.T) {
			addr := freeAddr(t)
			args := append([]string{"serve", "-smtp-addr", addr, "-domains", "serve.test", "-hostname", "mx.serve.test"}, extra...)
			var stdout, stderr syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- command(ctx, args, &stdout, &stderr) }()

			listening := regexp.MustCompile(`msg=listening proto=smtp addr=` + regexp.QuoteMeta(addr))
			deadline := time.Now().Add(10 * time.Second)
			for !listening.MatchString(stderr.String()) {
				if time.Now().After(deadline) {
					t.Fatalf("no listening line within 10s; log:\n%s", stderr.String())
				}
				select {
				case err := <-done:
					t.Fatalf("serve ended early: %v\n%s", err, stderr.String())
				case <-time.After(10 * time.Millisecond): // polling the log, with a deadline
				}
			}
			rcpt := "e2e-" + name + "@serve.test"
			c, err := smtp.Dial(addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.SendMail("s@sender.test", []string{rcpt}, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
				t.Fatalf("SendMail: %v", err)
			}
			c.Close()
			if !strings.Contains(stderr.String(), "msg=received proto=smtp remote=127.0.0.1 inbox="+rcpt) {
				t.Errorf("no received line for %s; log:\n%s", rcpt, stderr.String())
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve returned %v after its context ended", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("serve did not stop within 15s of its context ending")
			}
			if _, err := net.Dial("tcp", addr); err == nil {
				t.Error("still listening after shutdown")
			}
		})
	}
}

func TestTokenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := command(context.Background(), []string{"token", "Box+Tag@Mayfly.Test", "-secret", "0123456789abcdef"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	want := storage.NewTokens([]byte("0123456789abcdef")).Token("box@mayfly.test")
	if got := strings.TrimSpace(out.String()); got != want || len(got) != 22 {
		t.Errorf("token = %q, want %q (22 URL-safe characters, of the normalized address)", got, want)
	}
	err := command(context.Background(), []string{"token", "box@mayfly.test"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "MAYFLY_SECRET") {
		t.Errorf("token without a secret or Redis: %v, want an error that says to set MAYFLY_SECRET", err)
	}
	if err := command(context.Background(), []string{"token", "not-an-address", "-secret", "0123456789abcdef"}, &out, &errOut); err == nil {
		t.Error("token of a non-address succeeded")
	}
}

func TestVersionAndUnknown(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := command(context.Background(), []string{"version"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "mayfly ") {
		t.Errorf("version = %q, %v", out.String(), err)
	}
	if err := command(context.Background(), []string{"frobnicate"}, &out, &errOut); err == nil {
		t.Error("an unknown command succeeded")
	}
}

func TestTopLevelHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	err := command(context.Background(), []string{"--help"}, &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v, want flag.ErrHelp (exit 0)", err)
	}
	for _, want := range []string{"mayfly token ADDRESS", "mayfly version", "-smtp-addr  (MAYFLY_SMTP_ADDR, default 127.0.0.1:2525)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not show %q:\n%s", want, out.String())
		}
	}
}
