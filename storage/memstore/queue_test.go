package memstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

func newQueue(tb testing.TB) storage.Queue {
	st := New(Options{})
	tb.Cleanup(func() { st.Close() })
	return st
}

func TestQueue(t *testing.T) {
	storetest.RunQueue(t, func(t *testing.T) storage.Queue { return newQueue(t) })
}

func BenchmarkQueue(b *testing.B) {
	storetest.BenchQueue(b, func(b *testing.B) storage.Queue { return newQueue(b) })
}

func TestQueueCloseEndsNext(t *testing.T) {
	st := New(Options{})
	defer st.Close()
	storetest.NextEnds(t, context.Background(), st, 50*time.Millisecond, 5*time.Second, "after Close", func() { st.Close() })
	if _, err := st.Next(context.Background(), "a", time.Minute); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Next after Close: %v, want ErrUnavailable", err)
	}
}
