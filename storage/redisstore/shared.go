package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/storage"
)

// Shared values are small blobs every node reads and writes, kept until deleted: the
// ACME account key, certificates and pending challenges, so that whichever node the
// CA asks can answer, and no node orders a certificate another already holds.

// GetShared returns the value stored under name, or storage.ErrNotFound.
func (s *Store) GetShared(ctx context.Context, name string) ([]byte, error) {
	b, err := s.client.Get(ctx, s.sharedKey(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("get shared "+name, err)
	}
	return b, nil
}

// PutShared stores value under name, replacing what was there.
func (s *Store) PutShared(ctx context.Context, name string, value []byte) error {
	if err := s.client.Set(ctx, s.sharedKey(name), value, 0).Err(); err != nil {
		return unavailable("put shared "+name, err)
	}
	return nil
}

// DeleteShared removes name; a name not there is no error.
func (s *Store) DeleteShared(ctx context.Context, name string) error {
	if err := s.client.Del(ctx, s.sharedKey(name)).Err(); err != nil {
		return unavailable("delete shared "+name, err)
	}
	return nil
}

func (s *Store) sharedKey(name string) string { return s.prefix + "shared:" + name }
