package redisstore

import (
	"sync"
	"time"
)

// The receiver asks for an inbox's settings at every RCPT (for its faults), and almost
// every inbox has none: that read was a tenth of a node's CPU per received message on
// Redis, and a round trip (docs/benchmarks.md, issue 23). So a node remembers, for
// Options.SettingsCache, that an inbox had no settings. Only that: an inbox with
// settings is read every time, so a node never applies faults or a TTL that were
// removed, nor stale fault attempt counts. A SetInbox through this node forgets the
// inbox at once; one through another node reaches this one's receiver within
// SettingsCache (the TTL itself is applied by the put script, from the state, at once).

// settingsCacheMax bounds the inboxes remembered; past it the cache starts over.
const settingsCacheMax = 100_000

type settingsCache struct {
	ttl time.Duration // 0: off
	mu  sync.Mutex
	// none holds the inboxes known to have no settings, with when that was read, and
	// gen the SetInbox calls begun: a read that a SetInbox began during is not kept.
	none map[string]time.Time
	gen  uint64
}

// known reports whether inbox was read to have no settings within the cache's TTL.
func (c *settingsCache) known(inbox string, now time.Time) bool {
	if c.ttl <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.none[inbox]
	if ok && now.Sub(at) >= c.ttl {
		delete(c.none, inbox)
		ok = false
	}
	return ok
}

// begin returns the generation to give remember for a read that starts now.
func (c *settingsCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// remember notes that inbox had no settings when read at at, unless a SetInbox began
// since gen.
func (c *settingsCache) remember(inbox string, at time.Time, gen uint64) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.none == nil || len(c.none) >= settingsCacheMax {
		c.none = make(map[string]time.Time)
	}
	c.none[inbox] = at
}

// forget drops inbox before a SetInbox writes it, and keeps reads in flight from
// remembering what they saw.
func (c *settingsCache) forget(inbox string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.none, inbox)
}
