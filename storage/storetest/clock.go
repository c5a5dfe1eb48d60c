package storetest

import (
	"sync"
	"time"
)

// Clock is a time source the test moves by hand, for code that reads the time through
// a Now method (a store's sweeper, the DNS cache) rather than the wall clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock is a Clock that reads now until it is moved.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now is the time the test last set.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
