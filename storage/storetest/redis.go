package storetest

import (
	"os"
	"testing"
)

// RedisURL returns the Redis that tests run against, from MAYFLY_TEST_REDIS_URL, or ""
// when there is none. Under make test and CI (MAYFLY_REQUIRE_REDIS or CI set) a missing
// URL fails the test: Redis tests never skip silently there.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv("MAYFLY_TEST_REDIS_URL")
	if url == "" {
		if RequireRedis() {
			tb.Fatal("MAYFLY_TEST_REDIS_URL is not set, and CI or MAYFLY_REQUIRE_REDIS says the Redis tests must run")
		}
		tb.Log("not run on Redis: set MAYFLY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run it there too (make test does)")
	}
	return url
}

// RequireRedis reports whether Redis tests must run rather than skip: under make test
// (MAYFLY_REQUIRE_REDIS) and in CI.
func RequireRedis() bool {
	return os.Getenv("CI") != "" || os.Getenv("MAYFLY_REQUIRE_REDIS") != ""
}
