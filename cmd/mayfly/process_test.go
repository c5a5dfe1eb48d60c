package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// TestMain lets a test start this binary as the real mayfly in a process of its own
// (see startProcess): with MAYFLY_TEST_RUN_MAIN set, it is main, not the tests.
func TestMain(m *testing.M) {
	if os.Getenv("MAYFLY_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// process is a mayfly serving in a child process.
type process struct {
	smtp, http string
	log        *testlib.SyncBuffer // the child's log, as it comes
	cmd        *exec.Cmd
	exited     chan error
	stopOnce   sync.Once
}

// startProcess runs `mayfly serve` in a child process on free loopback ports and waits
// until its SMTP and HTTP listeners are up. It is stopped with SIGTERM at the end of
// the test.
func startProcess(t *testing.T, extra ...string) *process {
	t.Helper()
	return startProcessOn(t, testlib.FreePort(t), extra...)
}

// startProcessOn is startProcess with the HTTP listener on httpAddr.
func startProcessOn(t *testing.T, httpAddr string, extra ...string) *process {
	t.Helper()
	p := &process{smtp: testlib.FreePort(t), http: httpAddr, exited: make(chan error, 1), log: &testlib.SyncBuffer{}}
	args := append([]string{"serve", "-smtp-addr", p.smtp, "-http-addr", p.http, "-imap-addr", "", "-pop3-addr", "", "-submission-addr", "",
		"-domains", "serve.test", "-hostname", "mx.serve.test", "-dns", "127.0.0.1:1"}, extra...)
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), "MAYFLY_TEST_RUN_MAIN=1")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{})
	go func() {
		// Read the log to the end, so the child never blocks on a full pipe.
		lines := bufio.NewScanner(stderr)
		waiting := map[string]bool{"proto=smtp addr=" + p.smtp: true, "proto=http addr=" + p.http: true}
		for lines.Scan() {
			p.log.Write(append(lines.Bytes(), '\n'))
			for want := range waiting {
				if strings.Contains(lines.Text(), "msg=listening "+want) {
					delete(waiting, want)
					if len(waiting) == 0 {
						close(up)
					}
				}
			}
		}
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case <-up:
	case err := <-p.exited:
		p.stopOnce.Do(func() {}) // nothing left to stop
		t.Fatalf("mayfly exited before listening: %v; its log:\n%s", err, p.log.String())
	case <-time.After(20 * time.Second):
		t.Fatal("mayfly did not listen within 20s")
	}
	return p
}

// stop sends SIGTERM and expects a clean exit.
func (p *process) stop(t *testing.T) {
	p.stopOnce.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.exited:
			if err != nil {
				t.Errorf("mayfly after SIGTERM: %v, want exit status 0", err)
			}
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			t.Error("mayfly did not exit within 20s of SIGTERM")
		}
	})
}

// TestWebSocketAcrossProcesses runs two mayfly processes on one Redis: a WebSocket
// client of process B receives the mail that process A received.
func TestWebSocketAcrossProcesses(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testWebSocketAcrossProcesses(t) })
}

func testWebSocketAcrossProcesses(t *testing.T) {
	redis := redisFlags(t)
	a := startProcess(t, redis...)
	b := startProcess(t, redis...)
	in := createInbox(t, b.http, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+b.http+"/api/v1/inboxes/"+in.Address+"/ws?token="+in.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	waitMetric(t, b.http, "mayfly_http_websockets 1")
	(&node{smtp: a.smtp}).send(t, in.Address, signupMail)
	if typ, subject, err := nextEvent(ws); err != nil || typ != "message" || subject != "Confirm your account" {
		t.Fatalf("event on process B = %s %q, %v; want the mail process A received", typ, subject, err)
	}
	b.stop(t)
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after SIGTERM to process B: %v, want close 1001 (going away)", err)
	}
}
