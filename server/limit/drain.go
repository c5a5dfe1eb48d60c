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

// Defaults fills the zero values of the options every mail listener has, each
// pointer nil where a server has no such option: 1000 sessions at once, 20 per
// client, 10 seconds of drain and 50 commands a second.
func Defaults(maxConns, perClient *int, shutdown *time.Duration, commands *Rate) {
	if maxConns != nil && *maxConns <= 0 {
		*maxConns = 1000
	}
	if perClient != nil && *perClient == 0 {
		*perClient = 20
	}
	if shutdown != nil && *shutdown <= 0 {
		*shutdown = 10 * time.Second
	}
	if commands != nil && *commands == (Rate{}) {
		*commands = Rate{N: 50, Per: time.Second}
	}
}
