package pop3d

import (
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/gate"
)

// TestRefusedLoginDelayed: a wrong password is answered gate.Delay late, as IMAP's
// and submission's are, and a right one at once.
func TestRefusedLoginDelayed(t *testing.T) {
	authFailDelay = servedDelay
	t.Cleanup(func() { authFailDelay = 0 })
	e := newEnv(t, memory(t), setup{})
	box := "delay@mayfly.test"
	c := dial(t, e.addr)
	c.ok("USER " + box)
	start := time.Now()
	c.fail("PASS wrong", "[AUTH] invalid user name or password")
	if took := time.Since(start); took < gate.Delay*9/10 {
		t.Errorf("a wrong password was answered after %v, want at least %v", took, gate.Delay)
	}
	c.ok("USER " + box)
	start = time.Now()
	c.ok("PASS " + token(box))
	if took := time.Since(start); took >= gate.Delay/2 {
		t.Errorf("the right password was answered after %v, want at once", took)
	}
}

// servedDelay is authFailDelay as the server has it, before init takes it away: tests
// answer refused logins at once, but for the test of the delay itself.
var servedDelay = authFailDelay

func init() { authFailDelay = 0 }
