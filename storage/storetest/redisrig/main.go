// Command redisrig starts the test rig's Redis Cluster and Sentinel setup once for a
// whole test run (.ci/with-services runs it), prints the store URLs as shell
// assignments, MAYFLY_TEST_REDIS_CLUSTER_URL=... and MAYFLY_TEST_REDIS_SENTINEL_URL=...,
// then a line "ready", and stops them on SIGINT or SIGTERM, or when its parent exits.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mayfly-mail/mayfly/storage/storetest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: redisrig DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "redisrig:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// Both at once: each takes about 2s, mostly waiting for gossip.
	type result struct {
		stop func()
		line string
		err  error
	}
	results := make(chan result, 2)
	go func() {
		c, err := storetest.NewCluster(start, dir)
		if err != nil {
			results <- result{err: fmt.Errorf("cluster: %w", err)}
			return
		}
		results <- result{c.Stop, "MAYFLY_TEST_REDIS_CLUSTER_URL=" + c.URL(), nil}
	}()
	go func() {
		s, err := storetest.NewSentinel(start, dir)
		if err != nil {
			results <- result{err: fmt.Errorf("sentinel: %w", err)}
			return
		}
		results <- result{s.Stop, "MAYFLY_TEST_REDIS_SENTINEL_URL=" + s.URL(), nil}
	}()
	var firstErr error
	for range 2 {
		r := <-results
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		defer r.stop()
		fmt.Println(r.line)
	}
	if firstErr != nil {
		return firstErr
	}
	fmt.Println("ready")
	// The servers die with this process (Pdeathsig); this process ends with its parent,
	// the script, even if the script was killed before it could signal.
	parent := os.Getppid()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if os.Getppid() != parent {
				return nil
			}
		}
	}
}
