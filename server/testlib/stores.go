package testlib

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// Store is what the memory and the Redis store both are.
type Store interface {
	storage.Store
	storage.Queue
	Close() error
}

// StoreOptions shape the stores Backends opens.
type StoreOptions struct {
	Name       string        // in the Redis key prefix, e.g. "pop3"
	SweepEvery time.Duration // zero: the store's default
	// RedisOnly sweeps on Redis alone; the memory store keeps its default.
	RedisOnly bool
	// Clean are inboxes deleted from Redis when the test ends.
	Clean []string
}

// Backend is a store under test.
type Backend struct {
	Name string
	// Open returns a store of this kind, with nothing of other tests in it, and node,
	// which opens another Mayfly node on the same data (for memory, the same store).
	Open func(t testing.TB) (st Store, node func() Store)
}

// New opens a store of this kind.
func (b Backend) New(t testing.TB) Store {
	st, _ := b.Open(t)
	return st
}

// RedisURL is the test Redis (MAYFLY_TEST_REDIS_URL), or "" with a log line that says
// how to set it; under CI or MAYFLY_REQUIRE_REDIS its absence fails the test.
func RedisURL(t testing.TB) string {
	t.Helper()
	return storetest.RedisURL(t)
}

// Memory is a memory store closed when the test ends.
func Memory(t testing.TB, o memstore.Options) *memstore.Store {
	st := memstore.New(o)
	t.Cleanup(func() { st.Close() })
	return st
}

// Backends lists the stores an end-to-end test runs on: memory always, and Redis
// when MAYFLY_TEST_REDIS_URL is set (make test sets it; under CI its absence fails).
func Backends(t testing.TB, o StoreOptions) []Backend {
	mem := memstore.Options{SweepEvery: o.SweepEvery}
	if o.RedisOnly {
		mem = memstore.Options{}
	}
	b := []Backend{{"memory", func(t testing.TB) (Store, func() Store) {
		st := Memory(t, mem)
		return st, func() Store { return st }
	}}}
	url := RedisURL(t)
	if url == "" {
		return b
	}
	return append(b, Backend{"redis", func(t testing.TB) (Store, func() Store) {
		prefix := fmt.Sprintf("mayflytest:%s:%d:", o.Name, time.Now().UnixNano())
		node := func() Store {
			st, err := redisstore.New(context.Background(), redisstore.Options{URL: url, Prefix: prefix, SweepEvery: o.SweepEvery})
			if err != nil {
				t.Fatalf("redisstore.New: %v", err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for _, inbox := range o.Clean {
					st.DeleteInbox(ctx, inbox)
				}
				st.Close()
			})
			return st
		}
		return node(), node
	}})
}

// Stores is Backends as a map from name to opener of S, the part of the store a
// package's tests use.
func Stores[S any](t testing.TB, o StoreOptions) map[string]func(t testing.TB) S {
	m := map[string]func(t testing.TB) S{}
	for _, b := range Backends(t, o) {
		m[b.Name] = func(t testing.TB) S { return b.New(t).(S) }
	}
	return m
}

// EachStore runs fn as a subtest on each store of stores, as Stores makes them.
func EachStore[S any](t *testing.T, stores map[string]func(t testing.TB) S, fn func(t *testing.T, st S)) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) { fn(t, open(t)) })
	}
}
