package storage

import (
	"encoding/base32"
	"encoding/binary"
	"math/rand/v2"
	"time"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewID returns a message ID: 48 bits of milliseconds then 32 random bits, 16 characters
// that sort by arrival. IDs need not be secret (the inbox token guards the mail) but must
// not collide: a collision needs two messages in the same millisecond drawing the same
// 32 bits from a generator seeded per process.
func NewID(now time.Time) string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	binary.BigEndian.PutUint32(b[6:], rand.Uint32())
	return idEncoding.EncodeToString(b[:])
}
