package report

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// rspamdConfig is the smallest configuration of a real rspamd: one normal worker on
// loopback, no DNS to reach (a closed port), the actions of its default config and one
// rule of ours, so that a test can make a message spam by its subject.
const rspamdConfig = `options {
  dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 0; }
}
logging { type = "console"; level = "error"; }
actions { reject = 15; add_header = 6; greylist = 4; }
lua = "%s";
worker "normal" { bind_socket = "%s"; count = 1; }
`

const rspamdRules = `rspamd_config.MAYFLY_TEST_SPAM = {
  callback = function(task)
    local s = task:get_subject()
    if s and s:find("SPAMTEST", 1, true) then return true, "subject" end
    return false
  end,
  score = 8.0,
  description = "Subject has the test spam marker",
}
rspamd_config.MAYFLY_TEST_ENVELOPE = {
  callback = function(task)
    local from = task:get_from('smtp')
    local rcpt = task:get_recipients('smtp')
    return tostring(task:get_from_ip()) == "127.0.0.1" and task:get_helo() == "mail.good.test" and
      from ~= nil and from[1].addr == "news@good.test" and rcpt ~= nil and rcpt[1].addr == "box@mayfly.test"
  end,
  score = 0.0,
  description = "The envelope came in the IP, Helo, From and Rcpt headers",
}
`

// startRspamd runs rspamd -f on a free loopback port with rspamdConfig until the test
// ends and returns its URL. Without rspamd the test is skipped, or fails when
// MAYFLY_REQUIRE_CLIENTS is set (make test).
func startRspamd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		if os.Getenv("MAYFLY_REQUIRE_CLIENTS") != "" {
			t.Fatal("rspamd not installed (Debian package rspamd; .ci/with-services installs it)")
		}
		t.Skip("rspamd not installed (Debian package rspamd): make test installs it, and MAYFLY_REQUIRE_CLIENTS=1 makes this a failure")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.lua")
	conf := filepath.Join(dir, "rspamd.conf")
	if err := os.WriteFile(rules, []byte(rspamdRules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(rspamdConfig, rules, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", "-c", conf}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root", "-g", "root") // rspamd refuses to run as root otherwise
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RSPAMD_DBDIR="+dir, "RSPAMD_RUNDIR="+dir, "RSPAMD_LOGDIR="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	// rspamd reads its Lua for some seconds before it listens.
	url := "http://" + addr
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Post(url+"/checkv2", "text/plain", strings.NewReader("Subject: ping\r\n\r\nping\r\n"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case <-done:
			t.Fatalf("rspamd exited: %s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rspamd did not answer within 90s: %s", out.String())
		}
	}
}

// TestRspamd asks a real rspamd: a clean message keeps its 10, a spam one loses the
// rspamd check's points and shows the symbol with its description, and rspamd down
// makes the check say so while the report still answers.
func TestRspamd(t *testing.T) {
	url := startRspamd(t)
	k := keys()
	addr := zone(t, goodZone(t), k.good)

	t.Run("clean", func(t *testing.T) {
		r := newReporter(t, addr, Options{RspamdURL: url})
		rep, err := r.Report(context.Background(), stored(goodMail().bytes(t, k.good), "mail.good.test"))
		if err != nil {
			t.Fatal(err)
		}
		c := find(rep, "rspamd")
		if rep.Score != 10 || c.Status != Pass || rep.Spam == nil || rep.Spam.Action != "no action" {
			t.Errorf("clean mail: score %v, rspamd %+v, spam %+v\n%s", rep.Score, c, rep.Spam, dump(rep))
		}
		if rep.Spam == nil || !slices.ContainsFunc(rep.Spam.Symbols, func(s Symbol) bool { return s.Name == "MAYFLY_TEST_ENVELOPE" }) {
			t.Errorf("rspamd did not see the envelope: %+v", rep.Spam)
		}
	})
	t.Run("spam", func(t *testing.T) {
		r := newReporter(t, addr, Options{RspamdURL: url})
		m := goodMail()
		m.header["Subject"] = "SPAMTEST buy now"
		rep, err := r.Report(context.Background(), stored(m.bytes(t, k.good), "mail.good.test"))
		if err != nil {
			t.Fatal(err)
		}
		c := find(rep, "rspamd")
		if rep.Score != 10-weights["rspamd"].points || c.Status != Fail || c.Points != weights["rspamd"].points {
			t.Errorf("spam: score %v, rspamd %+v\n%s", rep.Score, c, dump(rep))
		}
		if rep.Spam == nil || rep.Spam.Score < 8 || rep.Spam.Action != "add header" || rep.Spam.RequiredScore != 15 {
			t.Fatalf("spam = %+v", rep.Spam)
		}
		var sym *Symbol
		for i := range rep.Spam.Symbols {
			if rep.Spam.Symbols[i].Name == "MAYFLY_TEST_SPAM" {
				sym = &rep.Spam.Symbols[i]
			}
		}
		if sym == nil || sym.Score != 8 || sym.Description != "Subject has the test spam marker" || len(sym.Options) != 1 || sym.Options[0] != "subject" {
			t.Errorf("symbol = %+v in %+v", sym, rep.Spam.Symbols)
		}
	})
	t.Run("down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + ln.Addr().String()
		ln.Close()
		r := newReporter(t, addr, Options{RspamdURL: closed})
		msg := stored(goodMail().bytes(t, k.good), "mail.good.test")
		rep, err := r.Report(context.Background(), msg)
		if err != nil {
			t.Fatal(err)
		}
		c := find(rep, "rspamd")
		if rep.Score != 10 || c.Status != Info || !strings.Contains(c.Detail, "rspamd did not answer") || rep.Spam != nil {
			t.Errorf("rspamd down: score %v, rspamd %+v", rep.Score, c)
		}
		if r.cached(msg.Inbox+"\x00"+msg.ID) != nil {
			t.Error("a report without rspamd's answer was cached: asking again would not try again")
		}
	})
}

// TestRspamdBounds: an rspamd that answers too much, too late or nonsense costs the
// report its spam check, which says why, and nothing else.
func TestRspamdBounds(t *testing.T) {
	k := keys()
	addr := zone(t, goodZone(t), k.good)
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Rcpt") {
		case "big@mayfly.test":
			w.Write([]byte(`{"score":1,"action":"no action","symbols":{"A":{"description":"`))
			w.Write(bytes.Repeat([]byte("x"), maxRspamdAnswer))
			w.Write([]byte(`"}}}`))
		case "slow@mayfly.test":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "bad@mayfly.test":
			w.Write([]byte("<html>not rspamd</html>"))
		default:
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(func() { close(release); hs.Close() })
	for _, tt := range []struct{ rcpt, want string }{
		{"big@mayfly.test", "larger than"},
		{"slow@mayfly.test", "no answer within 200ms"},
		{"bad@mayfly.test", "unreadable answer"},
		{"error@mayfly.test", "500"},
	} {
		t.Run(tt.rcpt, func(t *testing.T) {
			r := newReporter(t, addr, Options{RspamdURL: hs.URL, RspamdTimeout: 200 * time.Millisecond})
			m := stored(goodMail().bytes(t, k.good), "mail.good.test")
			m.Envelope.Recipients = []string{tt.rcpt}
			rep, err := r.Report(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if c := find(rep, "rspamd"); rep.Score != 10 || c.Status != Info || !strings.Contains(c.Detail, tt.want) || rep.Spam != nil {
				t.Errorf("score %v, rspamd %+v; want 10 and %q", rep.Score, c, tt.want)
			}
		})
	}
}

func find(rep *Report, id string) Check {
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	return Check{}
}
