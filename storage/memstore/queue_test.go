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
	errc := make(chan error, 1)
	go func() {
		_, err := st.Next(context.Background(), "a", time.Minute)
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Next on an empty queue returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	st.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Next when the store closed: %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still waiting 5s after Close")
	}
	if _, err := st.Next(context.Background(), "a", time.Minute); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Next after Close: %v, want ErrUnavailable", err)
	}
}
