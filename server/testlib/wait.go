package testlib

import (
	"context"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// Ctx is a context that ends after d or with the test, a safety net against a hung
// server.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond until it holds; the 30-second deadline is a safety net, not a
// synchronisation.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Next waits for a value on ch for at most d.
func Next[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
		var zero T
		return zero
	}
}

// Returned waits up to d for the error a Run or Serve sends on done when it returns,
// and requires it to be nil; what names the call in the failure.
func Returned(t testing.TB, done <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s = %v, want nil", what, err)
		}
	case <-time.After(d):
		t.Errorf("%s did not return within %v", what, d)
	}
}

// Clock is a time source the test moves by hand (storetest.Clock, which storage's own
// tests use).
type Clock = storetest.Clock

// NewClock is a Clock that reads now until the test moves it.
func NewClock(now time.Time) *Clock { return storetest.NewClock(now) }
