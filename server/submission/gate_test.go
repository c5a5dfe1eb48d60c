package submission

import (
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/server/gate"
)

// TestRefusedLoginDelayed: a wrong token is answered gate.Delay late, as IMAP's and
// POP3's are, and a right one at once.
func TestRefusedLoginDelayed(t *testing.T) {
	authFailDelay = servedDelay
	t.Cleanup(func() { authFailDelay = 0 })
	e := newEnv(t, memory(t), setup{})
	c := dial(t, e.addr)
	start := time.Now()
	err := c.Auth(sasl.NewPlainClient("", box, "wrong"))
	wantCode(t, "a wrong token", err, 535, smtp.EnhancedCode{5, 7, 8}, "")
	if took := time.Since(start); took < gate.Delay*9/10 {
		t.Errorf("a wrong token was answered after %v, want at least %v", took, gate.Delay)
	}
	start = time.Now()
	if err := c.Auth(sasl.NewPlainClient("", box, token(box))); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= gate.Delay/2 {
		t.Errorf("the right token was answered after %v, want at once", took)
	}
}

// servedDelay is authFailDelay as the server has it, before init takes it away: tests
// answer refused logins at once, but for the test of the delay itself.
var servedDelay = authFailDelay

func init() { authFailDelay = 0 }
