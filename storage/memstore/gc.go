package memstore

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// gcSlack is the heap growth allowed over the live data before a collection.
const gcSlack = 16 << 20

// TuneGC bounds the garbage collector's slack for the memory store, whose mail lives
// on the Go heap: by default Go lets the heap grow to twice its live data before
// collecting, which would double the resident size of a full store. Every second it
// sets GOGC so the slack is max(16MiB, 10% of live data): collections stay rare while
// the store is small, and the store's mail is marked cheaply (it holds no pointers).
// An operator's own GOGC wins. It returns when ctx ends, GOGC back at 100; the
// process runs one at most, beside the memory store it serves.
func TuneGC(ctx context.Context) {
	if os.Getenv("GOGC") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := -1
	t := time.NewTicker(time.Second)
	defer t.Stop()
	defer debug.SetGCPercent(100)
	for {
		metrics.Read(sample)
		percent := gcPercent(sample[0].Value.Uint64())
		if percent != last {
			debug.SetGCPercent(percent)
			last = percent
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gcPercent is the GOGC that gives live bytes of heap a slack of max(gcSlack, 10% of
// live). Each collection marks every message's metadata, so with a full store (512 MiB)
// a slack of 5% had the collector use a third of the receiver's CPU; 10% costs a full
// store 5% more resident size and saves a fifth of the CPU per message received.
func gcPercent(live uint64) int {
	if live == 0 {
		return 100
	}
	return int(min(max(gcSlack*100/live, 10), 100))
}
