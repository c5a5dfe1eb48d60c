package redisstore

import (
	"flag"
	"os"
	"strconv"
	"testing"

	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// TestMain lets the topologies of a storetest.ForEachRedis test run at once: go test
// runs only GOMAXPROCS parallel tests at a time (two on CI), and these mostly wait on
// Redis and on expiries, so the third would otherwise wait for the first two and add
// its whole length to the run. A -test.parallel given on the command line wins.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); p != nil && !given {
		n, err := strconv.Atoi(p.Value.String())
		if want := len(storetest.RedisTopologies); err == nil && n < want {
			p.Value.Set(strconv.Itoa(want))
		}
	}
	os.Exit(m.Run())
}
