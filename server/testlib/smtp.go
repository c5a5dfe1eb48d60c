package testlib

import (
	"testing"

	"github.com/emersion/go-smtp"
)

// DialSMTP connects an SMTP client to a plain listener and says EHLO as client.test;
// the client is closed when the test ends.
func DialSMTP(t testing.TB, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}
