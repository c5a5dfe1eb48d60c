package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// postfix is a throwaway Postfix instance of the test's own: its configuration, queue
// and log in a directory of its own, no listener (mail goes in with its sendmail), and
// every message relayed to one host, retried every second or two.
type postfix struct {
	dir, config string
}

// startPostfix starts Postfix relaying all mail to relay (host:port). It needs root, as
// Postfix's master does; make test installs Postfix (.ci/with-services).
func startPostfix(t *testing.T, relay string) *postfix {
	t.Helper()
	for _, program := range []string{"postfix", "postconf", "sendmail", "postqueue"} {
		needClient(t, program)
	}
	if os.Getuid() != 0 {
		missingClient(t, "Postfix needs root to start its master")
	}
	// Not t.TempDir: Postfix's daemons run as the postfix user and must reach the queue.
	dir, err := os.MkdirTemp("", "mayfly-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &postfix{dir: dir, config: filepath.Join(dir, "etc")}
	for _, sub := range []string{"etc", "spool", "data"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runClient(t, nil, "", "chown", "postfix", filepath.Join(dir, "data"))
	host, port, _ := strings.Cut(relay, ":")
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = sender.test
mydomain = sender.test
myorigin = sender.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [%[2]s]:%[3]s
smtp_dns_support_level = disabled
smtp_tls_security_level = none
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
`, dir, host, port)
	// Debian's master.cf less the smtpd on port 25 and the chroots (the queue is ours).
	master := `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	for name, text := range map[string]string{"main.cf": mainCF, "master.cf": master} {
		if err := os.WriteFile(filepath.Join(p.config, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// check makes the queue's directories.
	runClient(t, nil, "", "postfix", "-c", p.config, "check")
	runClient(t, nil, "", "postfix", "-c", p.config, "start")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "postfix", "-c", p.config, "stop").CombinedOutput(); err != nil {
			t.Errorf("postfix stop: %v\n%s", err, out)
		}
	})
	t.Cleanup(p.nudgeQueue()) // before the stop above: cleanups run last first
	return p
}

// send queues a message to the recipients (separated by spaces) with Postfix's
// sendmail, as an application would hand it over.
func (p *postfix) send(t *testing.T, from, to, message string) {
	t.Helper()
	runClient(t, nil, message, "sendmail", append([]string{"-C", p.config, "-f", from}, strings.Fields(to)...)...)
}

// nudgeQueue has Postfix try its deferred mail every few seconds until stop is called:
// its queue manager can skip a message whose delivery is still finishing when it scans
// ("skipped, still being delivered") and then leave it far longer than the backoff set
// above (seen once in a minute-long wait). The retry itself stays Postfix's.
func (p *postfix) nudgeQueue() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(3 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = exec.CommandContext(ctx, "postqueue", "-c", p.config, "-f").Run()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// log is Postfix's log so far.
func (p *postfix) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// TestGreylistingRetryingSender: Postfix, a real MTA that retries on 4xx, relays a
// message to an inbox created with greylisting ({"stage":"rcpt","code":451,"times":1}):
// its first attempt is answered 451 (the fault's one attempt, in GET), it defers the
// message, and the retry delivers it.
func TestGreylistingRetryingSender(t *testing.T) {
	for name, flags := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, flags...)
			in := createInbox(t, n.http, `{"faults": [{"stage": "rcpt", "code": 451, "times": 1}]}`)
			p := startPostfix(t, n.smtp)
			wait := startWait(n.http, in, "timeout=60s&subject=greylisted")
			p.send(t, "app@sender.test", in.Address, "From: app@sender.test\nTo: "+in.Address+"\nSubject: greylisted\n\nhello\n")
			r := <-wait
			if r.err != nil || r.status != 200 || len(r.messages) != 1 {
				t.Fatalf("wait: %d %v %d messages; Postfix's log:\n%s", r.status, r.err, len(r.messages), p.log())
			}
			// The message is stored before Postfix reads the 250 and logs it.
			testlib.WaitFor(t, "Postfix to log the delivery", func() bool { return strings.Contains(p.log(), "status=sent (250 2.0.0 OK") })
			if log := p.log(); !strings.Contains(log, "status=deferred (host 127.0.0.1[127.0.0.1] said: 451 4.7.1 <"+in.Address+"> greylisted") {
				t.Errorf("Postfix's log has no deferral with our 451:\n%s", log)
			}
			var inbox struct {
				Faults []struct {
					Stage    string
					Code     int
					Attempts int
				}
			}
			getJSON(t, n.http, "/api/v1/inboxes/"+in.Address, in.Token, &inbox)
			if len(inbox.Faults) != 1 || inbox.Faults[0].Attempts != 1 {
				t.Errorf("GET inbox faults = %+v, want one with 1 attempt", inbox.Faults)
			}
		})
	}
}

// TestFaultsSpareOtherInboxesPostfix: Postfix sends one message to an inbox whose faults
// act on the whole transaction and to a clean inbox, in one pipelined transaction. The
// clean inbox is deferred with the faulty one (452 4.5.3), never bounced, and both get
// the message on the retry.
func TestFaultsSpareOtherInboxesPostfix(t *testing.T) {
	n := startNode(t)
	p := startPostfix(t, n.smtp)
	// Postfix sends a message's recipients in address order: both orders are tried.
	for _, tc := range []struct{ stage, faulty, clean string }{
		{"mail", "a-mail-faulty", "z-mail-clean"},
		{"mail", "z-mail-faulty2", "a-mail-clean2"},
		{"data", "a-data-faulty", "z-data-clean"},
		{"data", "z-data-faulty2", "a-data-clean2"},
		{"connect", "a-connect-faulty", "z-connect-clean"},
		{"connect", "z-connect-faulty2", "a-connect-clean2"},
	} {
		t.Run(tc.faulty, func(t *testing.T) {
			faulty := createInbox(t, n.http, `{"local": "`+tc.faulty+`", "faults": [{"stage": "`+tc.stage+`", "code": 451, "times": 1}]}`)
			clean := createInbox(t, n.http, `{"local": "`+tc.clean+`"}`)
			subject := "both-" + tc.faulty
			waits := []<-chan waitResult{startWait(n.http, faulty, "timeout=60s&subject="+subject), startWait(n.http, clean, "timeout=60s&subject="+subject)}
			p.send(t, "app@sender.test", faulty.Address+" "+clean.Address, "From: app@sender.test\nSubject: "+subject+"\n\nhello\n")
			for i, wait := range waits {
				if r := <-wait; r.err != nil || r.status != 200 || len(r.messages) != 1 {
					t.Fatalf("wait %d: %d %v %d messages; Postfix's log:\n%s", i, r.status, r.err, len(r.messages), p.log())
				}
			}
			log := p.log()
			if strings.Contains(log, "status=bounced") {
				t.Errorf("Postfix bounced a recipient:\n%s", log)
			}
			if !strings.Contains(log, "<"+faulty.Address+"> greylisted by this inbox's faults ("+tc.stage+" stage)") {
				t.Errorf("Postfix's log has no deferral with the %s fault:\n%s", tc.stage, log)
			}
		})
	}
}
