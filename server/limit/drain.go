package limit

import (
	"log/slog"
	"sync"
	"time"
)

// Slots counts the sessions open at once over a server's listeners.
type Slots chan struct{}

// NewSlots allows n sessions at once.
func NewSlots(n int) Slots { return make(Slots, n) }

// Take takes a slot, reporting false when all are taken.
func (s Slots) Take() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

// Give gives back a slot taken.
func (s Slots) Give() { <-s }

// Waited returns a channel closed once wg.Wait returns.
func Waited(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		wg.Wait()
	}()
	return done
}

// Drain waits for done for at most timeout, the server's ShutdownTimeout, and reports
// whether it closed in time. When not, it logs msg as a warning and calls cut, which
// ends what is left (cancels store calls, closes sockets); the caller then waits for
// done again.
func Drain(done <-chan struct{}, timeout time.Duration, logger *slog.Logger, msg string, cut func()) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		logger.Warn(msg, "timeout", timeout)
		cut()
		return false
	}
}

// Tracker knows a listener's open connections, which of them are busy (in a mail
// transaction, say), and whether shutdown has begun: so that shutdown reaches the idle
// ones at once, the busy ones when they finish, and no connection starts after it.
// Its zero value is ready to use.
type Tracker[C comparable] struct {
	mu      sync.Mutex
	conns   map[C]bool // true while busy
	closing bool
}

// Add tracks c, idle, unless shutdown has begun.
func (t *Tracker[C]) Add(c C) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	if t.conns == nil {
		t.conns = make(map[C]bool)
	}
	t.conns[c] = false
	return true
}

// Remove forgets c.
func (t *Tracker[C]) Remove(c C) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
}

// Closing reports whether shutdown has begun.
func (t *Tracker[C]) Closing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closing
}

// Open runs f unless shutdown has begun, reporting whether it ran. f runs under the
// tracker's lock, so what it sets (a read deadline for the next wait on the client)
// cannot overwrite what shutdown sets after Shutdown returns.
func (t *Tracker[C]) Open(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	f()
	return true
}

// Begin marks c busy, unless shutdown has begun.
func (t *Tracker[C]) Begin(c C) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	if _, ok := t.conns[c]; ok {
		t.conns[c] = true
	}
	return true
}

// End marks c idle again and reports whether shutdown has begun, when the caller
// closes c, its work done.
func (t *Tracker[C]) End(c C) (closing bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[c]; ok {
		t.conns[c] = false
	}
	return t.closing
}

// Shutdown begins shutdown and returns the idle connections, for the caller to close
// or wake outside the lock (closing one may Remove it).
func (t *Tracker[C]) Shutdown() (idle []C) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closing = true
	for c, busy := range t.conns {
		if !busy {
			idle = append(idle, c)
		}
	}
	return idle
}

// All returns every connection tracked, busy or not.
func (t *Tracker[C]) All() []C {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := make([]C, 0, len(t.conns))
	for c := range t.conns {
		all = append(all, c)
	}
	return all
}
