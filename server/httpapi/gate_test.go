package httpapi

import (
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/gate"
)

// TestRefusedTokenDelayed: a wrong token is answered gate.Delay late, as a wrong
// password is over IMAP, POP3 and submission, and the right one at once.
func TestRefusedTokenDelayed(t *testing.T) {
	authFailDelay = servedDelay
	t.Cleanup(func() { authFailDelay = 0 })
	e := newEnv(t, stores(t)["memory"](t), Options{})
	in := e.create(`{"local": "delayed"}`)
	base := "/api/v1/inboxes/" + in.Address + "/messages"
	start := time.Now()
	if r := e.do("GET", base, "wrong", nil); r.status != 403 {
		t.Fatalf("a wrong token = %d %s, want 403", r.status, r.body)
	}
	if took := time.Since(start); took < gate.Delay*9/10 {
		t.Errorf("a wrong token was answered after %v, want at least %v", took, gate.Delay)
	}
	start = time.Now()
	if r := e.do("GET", base, in.Token, nil); r.status != 200 {
		t.Fatalf("the right token = %d %s, want 200", r.status, r.body)
	}
	if took := time.Since(start); took >= gate.Delay/2 {
		t.Errorf("the right token was answered after %v, want at once", took)
	}
}

// servedDelay is authFailDelay as the server has it, before init takes it away: tests
// answer refused logins at once, but for the test of the delay itself.
var servedDelay = authFailDelay

func init() { authFailDelay = 0 }
