package mx

import (
	"fmt"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
	"github.com/mayfly-mail/mayfly/storage/storetest"
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
	url := storetest.RedisURL(t)
	if url == "" {
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
