package main

import (
	"errors"
	"io"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/gorilla/websocket"

	"github.com/mayfly-mail/mayfly/server/gate"
)

// revokeBound is how soon a session opened with a namespace key must end once the key
// is revoked: the gate's Recheck, plus room for a loaded machine.
const revokeBound = gate.Recheck + 3*time.Second

// TestNamespaceRevocationEndsSessions: sessions opened with a namespace key on node B
// (IMAP idle and IMAP between commands, POP3, submission, WebSocket, SSE, an inbox wait and a
// namespace wait) end within revokeBound of the key's revocation on node A, and of the
// namespace's deletion; a session opened with the admin key runs on. On the memory
// store both are one node.
func TestNamespaceRevocationEndsSessions(t *testing.T) {
	for name, flags := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			a := teamsNode(t, flags...)
			b := a
			if name != "memory" {
				b = teamsNode(t, flags...)
			}
			t.Run("revoke", func(t *testing.T) {
				rv := createTeam(t, a, `{"name": "rv"}`)
				endsWithKey(t, a, b, rv.Key, func() {
					if code := status(t, "DELETE", "http://"+a.http+"/api/v1/namespaces/rv/keys/"+rv.KeyID, teamsAdmin, ""); code != http.StatusNoContent {
						t.Fatalf("revoke = %d", code)
					}
				})
			})
			t.Run("delete", func(t *testing.T) {
				rv := createTeam(t, a, `{"name": "rv"}`)
				endsWithKey(t, a, b, rv.Key, func() {
					if code := status(t, "DELETE", "http://"+a.http+"/api/v1/namespaces/rv", teamsAdmin, ""); code != http.StatusNoContent {
						t.Fatalf("delete namespace = %d", code)
					}
				})
			})
		})
	}
}

// endsWithKey opens every kind of session on b with key, runs revoke, and checks that
// each ends within revokeBound, a mail delivered after reaching none of them.
func endsWithKey(t *testing.T, a, b *node, key string, revoke func()) {
	const addr = "rv.box@serve.test"
	b.send(t, addr, "Subject: before\r\n\r\nbefore\r\n")

	imapOpen := func(password string) *imapclient.Client {
		c := dialIMAP(t, b.imap)
		if err := c.Login(addr, password).Wait(); err != nil {
			t.Fatalf("IMAP LOGIN: %v", err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatalf("IMAP SELECT: %v", err)
		}
		return c
	}
	idler := imapOpen(key)
	idle, err := idler.Idle()
	if err != nil {
		t.Fatalf("IMAP IDLE: %v", err)
	}
	defer idle.Close()
	busy := imapOpen(key)
	admin := imapOpen(teamsAdmin)

	pop := dialPOP3(t, b.pop3)
	if line := pop.cmd(t, "USER "+addr); !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 USER = %q", line)
	}
	if line := pop.cmd(t, "PASS "+key); !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 PASS = %q", line)
	}

	sub, err := smtp.Dial(b.submission)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Auth(smtp.PlainAuth("", addr, key, "127.0.0.1")); err != nil {
		t.Fatalf("submission AUTH: %v", err)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.http+"/api/v1/inboxes/"+addr+"/ws?token="+key, nil)
	if err != nil {
		t.Fatalf("WebSocket: %v", err)
	}
	defer ws.Close()
	wsDone := make(chan error, 1)
	go func() {
		for {
			if _, msg, err := ws.ReadMessage(); err != nil {
				wsDone <- err
				return
			} else if strings.Contains(string(msg), "after") {
				wsDone <- errors.New("the WebSocket showed mail delivered after the revocation")
				return
			}
		}
	}()

	sseDone := make(chan string, 1)
	sseReq, _ := http.NewRequest("GET", "http://"+b.http+"/api/v1/inboxes/"+addr+"/events", nil)
	sseReq.Header.Set("Authorization", "Bearer "+key)
	sse, err := http.DefaultClient.Do(sseReq)
	if err != nil || sse.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %v %v", err, sse)
	}
	defer sse.Body.Close()
	go func() {
		body, _ := io.ReadAll(sse.Body)
		sseDone <- string(body)
	}()

	waitFor := func(url string) chan int {
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		return done
	}
	inboxWait := waitFor("http://" + b.http + "/api/v1/inboxes/" + addr + "/wait?subject=never&timeout=55s")
	nsWait := waitFor("http://" + b.http + "/api/v1/namespaces/rv/wait?subject=never&timeout=55s")
	// The waits are running, not refused, before the revocation.
	select {
	case code := <-inboxWait:
		t.Fatalf("inbox wait answered %d before the revocation", code)
	case code := <-nsWait:
		t.Fatalf("namespace wait answered %d before the revocation", code)
	case <-time.After(200 * time.Millisecond):
	}

	revoke()
	deadline := time.After(revokeBound)
	for _, c := range []struct {
		name string
		c    *imapclient.Client
	}{{"idling", idler}, {"busy", busy}} {
		select {
		case <-c.c.Closed():
		case <-deadline:
			t.Fatalf("IMAP session %s still open %s after the revocation", c.name, revokeBound)
		}
	}
	for {
		line := pop.cmd(t, "NOOP")
		if strings.HasPrefix(line, "-ERR") {
			pop.c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := pop.r.ReadString('\n'); err == nil {
				t.Error("POP3 connection still open after its -ERR")
			}
			break
		}
		select {
		case <-deadline:
			t.Fatalf("POP3 session still answers %q %s after the revocation", line, revokeBound)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for {
		err := sub.Mail(addr)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "530") {
				t.Errorf("submission MAIL after the revocation: %v, want 530", err)
			}
			break
		}
		sub.Reset()
		select {
		case <-deadline:
			t.Fatalf("submission session still takes MAIL %s after the revocation", revokeBound)
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case err := <-wsDone:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Errorf("WebSocket ended with %v, want close 1008", err)
		}
	case <-deadline:
		t.Fatalf("WebSocket still open %s after the revocation", revokeBound)
	}
	select {
	case <-sseDone:
	case <-deadline:
		t.Fatalf("event stream still open %s after the revocation", revokeBound)
	}
	for _, w := range []struct {
		name string
		c    chan int
	}{{"inbox", inboxWait}, {"namespace", nsWait}} {
		select {
		case code := <-w.c:
			if code != http.StatusForbidden {
				t.Errorf("%s wait answered %d, want 403", w.name, code)
			}
		case <-deadline:
			t.Fatalf("%s wait still running %s after the revocation", w.name, revokeBound)
		}
	}

	// The admin key's session runs on, and sees the mail delivered now.
	b.send(t, addr, "Subject: after\r\n\r\nafter\r\n")
	if err := admin.Noop().Wait(); err != nil {
		t.Errorf("IMAP session of the admin key ended: %v", err)
	}
}
