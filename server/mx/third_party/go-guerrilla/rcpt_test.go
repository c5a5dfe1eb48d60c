package guerrilla

import (
	"errors"
	"net"
	"net/textproto"
	"strings"
	"testing"

	"github.com/flashmob/go-guerrilla/backends"
	"github.com/flashmob/go-guerrilla/log"
	"github.com/flashmob/go-guerrilla/mail"
	"github.com/flashmob/go-guerrilla/response"
)

// rcptBackend refuses each recipient by its user part, and accepts the others.
type rcptBackend struct{}

func (rcptBackend) ValidateRcpt(e *mail.Envelope) backends.RcptError {
	switch e.RcptTo[len(e.RcptTo)-1].User {
	case "plain":
		return errors.New("4.7.1 slow down")
	case "refused":
		return &backends.RcptReply{Reply: "550 5.7.1 refused"}
	case "reset":
		return &backends.RcptReply{Reply: "451 4.7.1 start over", Reset: true}
	case "reset-pipelined":
		return &backends.RcptReply{Reply: "451 4.7.1 start over", Reset: true, ResetRcpt: "452 4.5.3 in a new transaction"}
	case "closed":
		return &backends.RcptReply{Reply: "421 4.7.0 closing", Close: true}
	}
	return nil
}

func (rcptBackend) Process(*mail.Envelope) backends.Result  { return backends.NewResult("250 2.0.0 OK") }
func (rcptBackend) Initialize(backends.BackendConfig) error { return nil }
func (rcptBackend) Reinitialize() error                     { return nil }
func (rcptBackend) Shutdown() error                         { return nil }
func (rcptBackend) Start() error                            { return nil }

// TestRcptReply runs a server on loopback: a RcptReply is the whole reply and may
// reset the transaction or close the connection; any other RcptError still follows
// FailRcptCmd's code; RCPT needs MAIL first.
func TestRcptReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger, err := log.GetLogger(log.OutputOff.String(), log.InfoLevel.String())
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(&AppConfig{
		Servers: []ServerConfig{{
			Hostname: "mx.test", ListenInterface: ln.Addr().String(), Listener: ln,
			MaxSize: 1 << 20, Timeout: 10, MaxClients: 4, IsEnabled: true,
		}},
		AllowedHosts: []string{"test"},
	}, rcptBackend{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Shutdown)

	c, err := textproto.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	step := func(cmd string, want string) {
		t.Helper()
		if cmd != "" {
			if err := c.PrintfLine("%s", cmd); err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
		}
		line, err := c.ReadLine()
		if err != nil || !strings.HasPrefix(line, want) {
			t.Fatalf("%q answered %q, %v; want %q...", cmd, line, err, want)
		}
	}
	step("", "220 ")
	step("EHLO client.test", "250-")
	for {
		line, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "250 ") {
			break
		}
	}
	step("RCPT TO:<a@test>", "503 5.5.1 ")
	step("MAIL FROM:<s@client.test>", "250 ")
	step("RCPT TO:<a@test>", "250 ")
	step("RCPT TO:<plain@test>", response.Canned.FailRcptCmd.String()+" 4.7.1 slow down")
	step("RCPT TO:<refused@test>", "550 5.7.1 refused")
	step("RCPT TO:<reset@test>", "451 4.7.1 start over")
	// The reset forgot the MAIL, and the recipient accepted before it.
	step("RCPT TO:<a@test>", "503 5.5.1 ")
	step("DATA", "503 ")
	step("MAIL FROM:<s@client.test>", "250 ")
	step("RSET", "250 ")
	// A null sender (a bounce) begins a transaction too.
	step("MAIL FROM:<>", "250 ")
	step("RCPT TO:<a@test>", "250 ")
	step("RSET", "250 ")
	step("MAIL FROM:<s@client.test>", "250 ")
	// RCPTs pipelined after a reset read ResetRcpt until the next MAIL or RSET.
	step("RCPT TO:<reset-pipelined@test>", "451 4.7.1 start over")
	step("RCPT TO:<a@test>", "452 4.5.3 in a new transaction")
	step("RCPT TO:<b@test>", "452 4.5.3 in a new transaction")
	step("RSET", "250 ")
	step("RCPT TO:<a@test>", "503 5.5.1 ")
	step("MAIL FROM:<s@client.test>", "250 ")
	step("RCPT TO:<reset-pipelined@test>", "451 4.7.1 start over")
	step("MAIL FROM:<s@client.test>", "250 ")
	step("RCPT TO:<a@test>", "250 ")
	step("RSET", "250 ")
	step("MAIL FROM:<s@client.test>", "250 ")
	step("RCPT TO:<closed@test>", "421 4.7.0 closing")
	if line, err := c.ReadLine(); err == nil {
		t.Fatalf("after a RcptReply with Close the server sent %q, want the connection closed", line)
	}
}
