package redisstore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mayfly-mail/mayfly/storage"
)

// TestSharedValues: a value one node puts, another reads, replaces and deletes.
func TestSharedValues(t *testing.T) {
	a, b := twoNodes(t)
	ctx := ctxFor(t)

	if _, err := b.GetShared(ctx, "acme:mx.test"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetShared of nothing = %v, want ErrNotFound", err)
	}
	binary := []byte{0, 1, 2, 0xff, '\n'}
	if err := a.PutShared(ctx, "acme:mx.test", binary); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetShared(ctx, "acme:mx.test"); err != nil || !bytes.Equal(got, binary) {
		t.Errorf("GetShared on the other node = %q, %v; want %q", got, err, binary)
	}
	if err := b.PutShared(ctx, "acme:mx.test", []byte("renewed")); err != nil {
		t.Fatal(err)
	}
	if got, err := a.GetShared(ctx, "acme:mx.test"); err != nil || string(got) != "renewed" {
		t.Errorf("GetShared after a replace = %q, %v; want renewed", got, err)
	}
	if err := b.DeleteShared(ctx, "acme:mx.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetShared(ctx, "acme:mx.test"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetShared after DeleteShared = %v, want ErrNotFound", err)
	}
	if err := a.DeleteShared(ctx, "acme:mx.test"); err != nil {
		t.Errorf("DeleteShared of nothing = %v, want no error", err)
	}
}
