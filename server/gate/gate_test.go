package gate

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
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

// keyLookup is a store of namespace keys that counts its lookups.
type keyLookup struct {
	mu      sync.Mutex
	keys    map[string]string // hash -> namespace
	err     error             // answered instead, when set
	lookups int
}

func (k *keyLookup) NamespaceOfKey(_ context.Context, hash string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lookups++
	if k.err != nil {
		return "", k.err
	}
	if name, ok := k.keys[hash]; ok {
		return name, nil
	}
	return "", storage.ErrNotFound
}

func (k *keyLookup) set(f func()) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	f()
	return k.lookups
}

// TestWatch: a session's namespace key is looked up once per Recheck and the session
// ended once the store no longer knows it; a store that fails ends nothing; inbox
// tokens and the admin key are never looked up.
func TestWatch(t *testing.T) {
	key, k := storage.NewNamespaceKey(time.Now())
	store := &keyLookup{keys: map[string]string{k.Hash: "ci"}}
	g := Gate{Keys: storage.Keys{Tokens: tokens, APIKey: "admin", Namespaces: store}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	never := func() { t.Error("a session without a namespace key was ended") }
	g.Watch(ctx, "admin", never)
	g.Watch(ctx, tokens.Token("ci.x@mayfly.test"), never)

	ended := make(chan struct{})
	start := time.Now()
	g.Watch(ctx, key, func() { close(ended) })
	// The store fails: the session goes on.
	store.set(func() { store.err = errors.New("down") })
	for store.set(func() {}) < 2 {
		select {
		case <-ended:
			t.Fatal("a store that fails ended the session")
		case <-time.After(50 * time.Millisecond):
		}
	}
	store.set(func() { store.err = nil; delete(store.keys, k.Hash) })
	select {
	case <-ended:
	case <-time.After(Recheck + 3*time.Second):
		t.Fatal("the session outlived its key")
	}
	// Lookups: one per Recheck since the watch began, none for the token and admin key.
	if n, most := store.set(func() {}), int(time.Since(start)/Recheck); n > most {
		t.Errorf("%d lookups in %s, want at most %d (one per Recheck)", n, time.Since(start), most)
	}
}
