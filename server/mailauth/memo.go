package mailauth

import (
	"net/netip"
	"sync"
	"time"
)

// memo is a bounded map of what was worked out, by everything it depends on: past
// maxMemo entries it starts again empty, and with a lifetime an entry older than
// that is not used.
type memo[K comparable, V any] struct {
	lifetime time.Duration // 0: entries never age
	mu       sync.Mutex
	m        map[K]memoEntry[V]
}

type memoEntry[V any] struct {
	v  V
	at time.Time // only with a lifetime
}

// maxMemo bounds a memo.
const maxMemo = 4096

func (c *memo[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && c.lifetime > 0 && time.Since(e.at) > c.lifetime {
		var zero V
		return zero, false
	}
	return e.v, ok
}

func (c *memo[K, V]) put(k K, v V) {
	e := memoEntry[V]{v: v}
	if c.lifetime > 0 {
		e.at = time.Now()
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxMemo {
		c.m = make(map[K]memoEntry[V])
	}
	c.m[k] = e
	c.mu.Unlock()
}

// unsignedMemo is how long the outcome of unsigned mail is reused for more mail from
// the same client, sender and From domain. It depends on nothing else but DNS
// answers, which the resolver caches for their TTL anyway: a changed record reaches
// verdicts at most this much later than the resolver's cache lets it. Under load,
// with most mail from a few senders, the checks run about once a second per sender
// instead of per message.
const unsignedMemo = time.Second

// unsignedKey is everything but DNS the outcome of unsigned mail depends on.
type unsignedKey struct {
	ip             netip.Addr
	helo, mailFrom string
	from           from
}
