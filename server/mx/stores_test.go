package mx

import (
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
)

// stores lists the stores an end-to-end test runs on: always memory, and Redis when
// MAYFLY_TEST_REDIS_URL is set (make test sets it; under CI its absence fails).
func stores(t *testing.T) map[string]func(t testing.TB) storage.Store {
	return testlib.Stores[storage.Store](t, testlib.StoreOptions{Name: "mx", SweepEvery: 50 * time.Millisecond, RedisOnly: true})
}

// eachStore runs fn as a subtest on every store of stores.
func eachStore(t *testing.T, fn func(t *testing.T, st storage.Store)) {
	testlib.EachStore(t, stores(t), fn)
}
