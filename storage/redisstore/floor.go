//go:build mayfly_floor

package redisstore

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// A build with -tags mayfly_floor is no store: Put writes each message's bytes with
// one SET and does nothing else (no UID kept, no index, event, log, expiry index or
// namespace count), so nothing can read the mail back. It measures the least that
// storing in Redis can cost a receiving node and redis-server per message, to set
// beside the real store's cost (cmd/mayfly-load/receive.sh FLOOR=1, docs/benchmarks.md).
func init() {
	var uid atomic.Uint32
	floorPut = func(s *Store, ctx context.Context, msgs []*storage.Message) error {
		pipe := s.client.Pipeline()
		for _, m := range msgs {
			m.ID, m.UID = storage.NewID(time.Now()), uid.Add(1)
			pipe.Do(ctx, "SET", s.keys(m.Inbox).msg(m.ID), m.Raw, "PXAT", expiryMillis(m.Expires))
		}
		_, err := pipe.Exec(ctx)
		return err
	}
}
