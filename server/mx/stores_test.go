package mx

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
)

// stores lists the stores an end-to-end test runs on: always memory, and Redis when
// MAYFLY_TEST_REDIS_URL is set (make test sets it; under CI its absence fails).
func stores(t *testing.T) map[string]func(t *testing.T) storage.Store {
	m := map[string]func(t *testing.T) storage.Store{
		"memory": func(t *testing.T) storage.Store {
			st := memstore.New(memstore.Options{})
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	url := os.Getenv("MAYFLY_TEST_REDIS_URL")
	if url == "" {
		if os.Getenv("CI") != "" || os.Getenv("MAYFLY_REQUIRE_REDIS") != "" {
			t.Fatal("MAYFLY_TEST_REDIS_URL is not set: the Redis tests must run under make test and CI")
		}
		t.Log("Redis variant not run: set MAYFLY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run it (make test does)")
		return m
	}
	m["redis"] = func(t *testing.T) storage.Store {
		prefix := fmt.Sprintf("mayflytest:mx:%d:", time.Now().UnixNano())
		st, err := redisstore.New(t.Context(), redisstore.Options{URL: url, Prefix: prefix, SweepEvery: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	return m
}
