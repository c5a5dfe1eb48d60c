package gate

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

var (
	tokens = storage.NewTokens([]byte("gate-test-secret"))
	client = netip.MustParseAddr("192.0.2.1")
)

func TestLogin(t *testing.T) {
	g := Gate{Domains: Domains([]string{"Mayfly.Test"}), Keys: storage.Keys{Tokens: tokens, APIKey: "admin"}}
	tok := tokens.Token("box@mayfly.test")
	for _, tc := range []struct {
		name, user, secret, want string
	}{
		{"token", "box@mayfly.test", tok, "box@mayfly.test"},
		{"tag and capitals", "Box+Tag@MAYFLY.test", tok, "box@mayfly.test"},
		{"admin key", "other@mayfly.test", "admin", "other@mayfly.test"},
		{"wrong token", "box@mayfly.test", "wrong", ""},
		{"another inbox's token", "other@mayfly.test", tok, ""},
		{"foreign domain", "box@other.test", "admin", ""},
		{"not an address", "box", "admin", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := g.Login(context.Background(), slog.New(slog.DiscardHandler), "remote", client, tc.user, tc.secret)
			if got != tc.want || (err == nil) != (tc.want != "") || err != nil && !errors.Is(err, ErrDenied) {
				t.Errorf("Login(%q, %q) = %q, %v, want %q", tc.user, tc.secret, got, err, tc.want)
			}
		})
	}
}

// TestNoTokenKey: a gate without the token key opens nothing by token, not even a
// token made under an empty secret, which anybody can make; the admin key still opens.
func TestNoTokenKey(t *testing.T) {
	g := Gate{Keys: storage.Keys{APIKey: "admin"}}
	if g.Opens(t.Context(), "box@mayfly.test", storage.NewTokens(nil).Token("box@mayfly.test")) {
		t.Error("a gate without a token key took a token of the empty secret")
	}
	if !g.Opens(t.Context(), "box@mayfly.test", "admin") {
		t.Error("a gate without a token key refused the admin key")
	}
	if (Gate{}).Opens(t.Context(), "box@mayfly.test", "") {
		t.Error("a gate without keys opened with an empty secret")
	}
}

// TestThrottle: once a client's failures are used up, even the right secret is
// refused, without being looked at, and late; another client is not affected.
func TestThrottle(t *testing.T) {
	g := Gate{
		Keys:     storage.Keys{Tokens: tokens},
		Failures: limit.NewBuckets[netip.Addr](limit.Rate{N: 2, Per: time.Hour}),
		Delay:    50 * time.Millisecond,
	}
	log := slog.New(slog.DiscardHandler)
	tok := tokens.Token("box@mayfly.test")
	for range 2 {
		start := time.Now()
		if _, err := g.Login(context.Background(), log, "r", client, "box@mayfly.test", "wrong"); !errors.Is(err, ErrDenied) {
			t.Fatalf("a wrong token = %v, want ErrDenied", err)
		}
		if took := time.Since(start); took < g.Delay {
			t.Errorf("a denial took %v, want at least %v", took, g.Delay)
		}
	}
	looked := false
	start := time.Now()
	if err := g.Check(context.Background(), log, "r", client, func() bool { looked = true; return true }); !errors.Is(err, ErrThrottled) || looked {
		t.Errorf("the right secret after the failures = %v (looked at: %v), want ErrThrottled unlooked", err, looked)
	}
	if took := time.Since(start); took < g.Delay {
		t.Errorf("a throttled refusal took %v, want at least %v", took, g.Delay)
	}
	if _, err := g.Login(context.Background(), log, "r", netip.MustParseAddr("192.0.2.2"), "box@mayfly.test", tok); err != nil {
		t.Errorf("another client's right token = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.Delay = time.Hour
	if _, err := g.Login(ctx, log, "r", client, "box@mayfly.test", tok); !errors.Is(err, ErrThrottled) {
		t.Errorf("with an ended context = %v, want ErrThrottled at once", err)
	}
}
