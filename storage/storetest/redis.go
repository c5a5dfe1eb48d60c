package storetest

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// RedisURL returns the Redis that tests run against, from MAYFLY_TEST_REDIS_URL, or ""
// when there is none. Under make test and CI (MAYFLY_REQUIRE_REDIS or CI set) a missing
// URL fails the test: Redis tests never skip silently there. Within ForEachRedis it
// returns the URL of the subtest's topology.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	if url, ok := topologyURL(tb.Name()); ok {
		return url
	}
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

// RedisTopologies are the Redis setups ForEachRedis runs a test on: the subtest's name
// and the variable that has its URL. make test (.ci/with-services) sets all three.
var RedisTopologies = []struct{ Name, Env string }{
	{"single", "MAYFLY_TEST_REDIS_URL"},
	{"cluster", "MAYFLY_TEST_REDIS_CLUSTER_URL"},   // 3 masters, 3 replicas
	{"sentinel", "MAYFLY_TEST_REDIS_SENTINEL_URL"}, // primary, replica, 3 sentinels
}

// ForEachRedis runs f as one parallel subtest per Redis topology: one redis-server, a
// Redis Cluster and a Sentinel setup. Inside it RedisURL, and every helper built on it,
// returns that topology's URL. A topology whose URL is not set skips its subtest, or
// fails it under make test and CI. The shared Cluster and Sentinel must not be killed:
// failover tests start their own (StartCluster, StartSentinel).
func ForEachRedis(t *testing.T, f func(t *testing.T, url string)) {
	t.Helper()
	ForRedis(t, nil, f)
}

// ForRedis is ForEachRedis on the named topologies only (nil: all of them), for a test
// that mostly waits and would add its whole length once more for each: go test runs
// only GOMAXPROCS parallel subtests at once. Sentinel is one Redis to the store, so a
// slow test that Sentinel adds nothing to runs on "single" and "cluster".
func ForRedis(t *testing.T, names []string, f func(t *testing.T, url string)) {
	t.Helper()
	for _, topo := range RedisTopologies {
		if names != nil && !slices.Contains(names, topo.Name) {
			continue
		}
		t.Run(topo.Name, func(t *testing.T) {
			url := os.Getenv(topo.Env)
			if url == "" {
				if RequireRedis() {
					t.Fatalf("%s is not set, and CI or MAYFLY_REQUIRE_REDIS says the Redis tests must run", topo.Env)
				}
				t.Skipf("not run on a Redis %s: set %s (make test does)", topo.Name, topo.Env)
			}
			t.Parallel()
			topologies.Store(t.Name(), url)
			t.Cleanup(func() { topologies.Delete(t.Name()) })
			f(t, url)
		})
	}
}

// topologies maps the name of a ForEachRedis subtest to its URL.
var topologies sync.Map

// topologyURL returns the URL of the ForEachRedis subtest that name is, or is under.
func topologyURL(name string) (string, bool) {
	for {
		if url, ok := topologies.Load(name); ok {
			return url.(string), true
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return "", false
		}
		name = name[:i]
	}
}
