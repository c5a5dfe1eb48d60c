package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// The teams (issue 24) over the whole service: a namespace key reads every inbox of its
// namespace, on every protocol, and nothing else.

const teamsAdmin = "admin-key-for-teams-0123456789"

// teamsNode is a node with the admin key, loopback webhooks allowed and no throttle of
// wrong credentials (the test gives many on purpose).
func teamsNode(t *testing.T, flags ...string) *node {
	return startNode(t, append([]string{"-api-key", teamsAdmin, "-outbound-allow-private", "true", "-login-failures", "off"}, flags...)...)
}

type teamKey struct{ Name, Key, KeyID string }

func createTeam(t *testing.T, n *node, body string) teamKey {
	t.Helper()
	var ns struct {
		Name  string
		Key   string
		KeyID string `json:"key_id"`
	}
	// A namespace a former run left on the test Redis goes first, with its mail.
	var req struct{ Name string }
	json.Unmarshal([]byte(body), &req)
	status(t, "DELETE", "http://"+n.http+"/api/v1/namespaces/"+req.Name, teamsAdmin, "")
	if code := apiDo(t, "POST", "http://"+n.http+"/api/v1/namespaces", teamsAdmin, body, &ns); code != http.StatusCreated || ns.Key == "" {
		t.Fatalf("create namespace %s = %d %+v", body, code, ns)
	}
	return teamKey{Name: ns.Name, Key: ns.Key, KeyID: ns.KeyID}
}

// status is the status of a request with a bearer credential, its body read and dropped.
func status(t *testing.T, method, url, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// imapLogin reports whether LOGIN user password succeeds, and how many messages INBOX holds then.
func imapLogin(t *testing.T, addr, user, password string) (bool, uint32) {
	t.Helper()
	c := dialIMAP(t, addr)
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return false, 0
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("IMAP SELECT as %s: %v", user, err)
	}
	return true, sel.NumMessages
}

// pop3Login reports whether USER/PASS succeed.
func pop3Login(t *testing.T, addr, user, password string) bool {
	t.Helper()
	p := dialPOP3(t, addr)
	if line := p.cmd(t, "USER "+user); !strings.HasPrefix(line, "+OK") {
		return false
	}
	ok := strings.HasPrefix(p.cmd(t, "PASS "+password), "+OK")
	p.cmd(t, "QUIT")
	return ok
}

// sseOpens reports whether the event stream of inbox opens with token.
func sseOpens(t *testing.T, httpAddr, inbox, token string) bool {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/v1/inboxes/"+inbox+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	// The stream's first bytes: it is open, not just answered.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	return err == nil && line != ""
}

// wsOpens reports whether the WebSocket of inbox opens with token, and its HTTP status.
func wsOpens(t *testing.T, httpAddr, inbox, token string) (bool, int) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+httpAddr+"/api/v1/inboxes/"+inbox+"/ws?token="+token, nil)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		return false, code
	}
	ws.Close()
	return true, 101
}

// TestNamespaceKeyOnEveryProtocol: a namespace key opens every inbox ci.* — one created
// with it and one that only received mail (the catch-all) — over HTTP, WebSocket, SSE,
// IMAP, POP3, MCP and webhooks, and no inbox outside: not a plain inbox, not another
// namespace's. Another namespace's key opens none of ci's. Then the namespace's wait,
// listing and cleanup by tag.
func TestNamespaceKeyOnEveryProtocol(t *testing.T) {
	for name, flags := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := teamsNode(t, flags...)
			base := "http://" + n.http
			ci := createTeam(t, n, `{"name": "ci", "ttl": "2h"}`)
			other := createTeam(t, n, `{"name": "other"}`)

			var made inboxJSON
			if code := apiDo(t, "POST", base+"/api/v1/inboxes", ci.Key, `{"local": "signup"}`, &made); code != http.StatusCreated || made.Address != "ci.signup@serve.test" || made.ExpiresIn != 7200 {
				t.Fatalf("create with the key = %d %+v; want ci.signup@serve.test with the namespace's 2h", code, made)
			}
			if code := status(t, "POST", base+"/api/v1/inboxes", "", `{"local": "ci.steal"}`); code != http.StatusForbidden {
				t.Errorf("anonymous create of ci.steal = %d, want 403", code)
			}
			if code := status(t, "POST", base+"/api/v1/inboxes", other.Key, `{"local": "ci.x"}`); code != http.StatusCreated {
				t.Errorf("other's key, local ci.x = %d; want 201 (it becomes other.ci.x)", code)
			}
			plain := createInbox(t, n.http, "")
			fresh := "ci.fresh@serve.test" // never created: the catch-all keeps its mail
			foreign := "other.box@serve.test"
			for _, to := range []string{made.Address, fresh, plain.Address, foreign} {
				n.send(t, to, "From: app@shop.test\r\nSubject: Code for "+to+"\r\n\r\nYour code is 123456\r\n")
			}

			// HTTP.
			mine := []string{made.Address, fresh}
			notMine := []string{plain.Address, foreign}
			for _, in := range mine {
				var list struct{ Messages []struct{ Subject string } }
				if code := apiDo(t, "GET", base+"/api/v1/inboxes/"+in+"/messages", ci.Key, "", &list); code != 200 || len(list.Messages) != 1 {
					t.Errorf("HTTP list of %s with ci's key = %d %+v, want its message", in, code, list)
				}
				if code := status(t, "GET", base+"/api/v1/inboxes/"+in+"/messages", other.Key, ""); code != http.StatusForbidden {
					t.Errorf("HTTP list of %s with other's key = %d, want 403", in, code)
				}
			}
			for _, in := range notMine {
				if code := status(t, "GET", base+"/api/v1/inboxes/"+in+"/messages", ci.Key, ""); code != http.StatusForbidden {
					t.Errorf("HTTP list of %s with ci's key = %d, want 403", in, code)
				}
			}
			if code := status(t, "GET", base+"/api/v1/namespaces/other/messages", ci.Key, ""); code != http.StatusForbidden {
				t.Errorf("other's namespace listing with ci's key = %d, want 403", code)
			}
			// An inbox's token stays what it is: it opens its inbox, not its namespace.
			if code := status(t, "GET", base+"/api/v1/namespaces/ci/messages", made.Token, ""); code != http.StatusForbidden {
				t.Errorf("namespace listing with an inbox token = %d, want 403", code)
			}
			if code := status(t, "GET", base+"/api/v1/inboxes/"+fresh+"/messages", made.Token, ""); code != http.StatusForbidden {
				t.Errorf("ci.fresh with ci.signup's token = %d, want 403", code)
			}

			// WebSocket and SSE.
			if ok, code := wsOpens(t, n.http, fresh, ci.Key); !ok {
				t.Errorf("WebSocket of %s with ci's key: %d", fresh, code)
			}
			if ok, code := wsOpens(t, n.http, plain.Address, ci.Key); ok || code != http.StatusForbidden {
				t.Errorf("WebSocket of %s with ci's key = %t %d, want 403", plain.Address, ok, code)
			}
			if !sseOpens(t, n.http, fresh, ci.Key) {
				t.Errorf("event stream of %s with ci's key did not open", fresh)
			}
			if sseOpens(t, n.http, foreign, ci.Key) {
				t.Errorf("event stream of %s opened with ci's key", foreign)
			}

			// IMAP and POP3: user = the address, password = the key.
			if ok, msgs := imapLogin(t, n.imap, fresh, ci.Key); !ok || msgs != 1 {
				t.Errorf("IMAP LOGIN %s with ci's key = %t, %d messages; want in, 1", fresh, ok, msgs)
			}
			if ok, _ := imapLogin(t, n.imap, plain.Address, ci.Key); ok {
				t.Errorf("IMAP LOGIN %s with ci's key succeeded", plain.Address)
			}
			if ok, _ := imapLogin(t, n.imap, fresh, other.Key); ok {
				t.Errorf("IMAP LOGIN %s with other's key succeeded", fresh)
			}
			if !pop3Login(t, n.pop3, made.Address, ci.Key) {
				t.Errorf("POP3 login %s with ci's key failed", made.Address)
			}
			if pop3Login(t, n.pop3, foreign, ci.Key) {
				t.Errorf("POP3 login %s with ci's key succeeded", foreign)
			}

			// MCP.
			agent := newMCPClient(t, n.http, "Bearer "+ci.Key, nil)
			var list struct{ Messages []struct{ ID string } }
			if text, isErr := agent.call("list_messages", map[string]any{"address": fresh}, &list); isErr || len(list.Messages) != 1 {
				t.Errorf("MCP list_messages %s with ci's key = %q (error %t)", fresh, text, isErr)
			}
			if text, isErr := agent.call("list_messages", map[string]any{"address": plain.Address}, nil); !isErr || !strings.Contains(text, "does not open") {
				t.Errorf("MCP list_messages %s with ci's key = %q (error %t), want refused", plain.Address, text, isErr)
			}
			var agentBox mcpInbox
			if text, isErr := agent.call("create_inbox", nil, &agentBox); isErr || !strings.HasPrefix(agentBox.Address, "ci.") {
				t.Errorf("MCP create_inbox with ci's key = %q %+v; want an address ci.*", text, agentBox)
			}

			// Webhooks: of one inbox or of the namespace, never outside it.
			hooks := base + "/api/v1/webhooks"
			url, got := hookReceiver(t)
			for _, tt := range []struct {
				name, body string
				want       int
			}{
				{"its inbox", `{"url": "` + url + `", "events": ["message.received"], "inbox": "` + made.Address + `"}`, 201},
				{"a plain inbox", `{"url": "` + url + `", "events": ["message.received"], "inbox": "` + plain.Address + `"}`, 403},
				{"every inbox", `{"url": "` + url + `", "events": ["message.received"]}`, 403},
				{"another namespace", `{"url": "` + url + `", "events": ["message.received"], "namespace": "other"}`, 403},
			} {
				if code := status(t, "POST", hooks, ci.Key, tt.body); code != tt.want {
					t.Errorf("webhook of %s with ci's key = %d, want %d", tt.name, code, tt.want)
				}
			}
			nsURL, nsGot := hookReceiver(t)
			var hook struct {
				ID        string
				Namespace *string
			}
			if code := apiDo(t, "POST", hooks, ci.Key, `{"url": "`+nsURL+`", "events": ["message.received"], "namespace": "ci"}`, &hook); code != 201 || hook.Namespace == nil || *hook.Namespace != "ci" {
				t.Fatalf("namespace webhook = %d %+v", code, hook)
			}
			if code := status(t, "GET", hooks+"/"+hook.ID, other.Key, ""); code != http.StatusForbidden {
				t.Errorf("ci's webhook read with other's key = %d, want 403", code)
			}
			n.send(t, "other.late@serve.test", "Subject: not for ci\r\n\r\nx\r\n")
			n.send(t, "ci.late@serve.test", "Subject: for ci\r\n\r\nx\r\n")
			r := testlib.Next(t, nsGot, 30*time.Second, "the namespace webhook's delivery")
			var p struct{ Data struct{ Inbox string } }
			if json.Unmarshal(r.body, &p) != nil || p.Data.Inbox != "ci.late@serve.test" {
				t.Errorf("namespace webhook got %s, want ci.late's mail only", r.body)
			}
			select {
			case r := <-got:
				if !strings.Contains(string(r.body), made.Address) {
					t.Errorf("inbox webhook got %s", r.body)
				}
			default:
			}

			// The namespace's listing never shows other's mail.
			var nsList struct {
				Messages []struct{ Inbox, Subject string }
			}
			apiDo(t, "GET", base+"/api/v1/namespaces/ci/messages", ci.Key, "", &nsList)
			if len(nsList.Messages) != 3 {
				t.Errorf("namespace listing = %+v, want ci.signup's, ci.fresh's and ci.late's", nsList.Messages)
			}
			for _, m := range nsList.Messages {
				if !strings.HasPrefix(m.Inbox, "ci.") {
					t.Errorf("namespace listing shows %s", m.Inbox)
				}
			}
		})
	}
}

// TestNamespaceWaitAndCleanup: the namespace's wait answers mail to an address nobody
// created, expect=none answers 204, and cleanup by tag deletes one run's mail only.
func TestNamespaceWaitAndCleanup(t *testing.T) {
	for name, flags := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := teamsNode(t, flags...)
			base := "http://" + n.http
			ci := createTeam(t, n, `{"name": "ci"}`)
			type waited struct {
				code int
				body []byte
			}
			done := make(chan waited, 1)
			go func() {
				req, _ := http.NewRequest("GET", base+"/api/v1/namespaces/ci/wait?timeout=30s&to=ci.run-7&subject=welcome", nil)
				req.Header.Set("Authorization", "Bearer "+ci.Key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- waited{}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				done <- waited{resp.StatusCode, b}
			}()
			waitMetric(t, n.http, "mayfly_http_waiters 1")
			n.send(t, "ci.run-6@serve.test", "Subject: Welcome\r\n\r\nnot this one\r\n")
			n.send(t, "ci.run-7+t42@serve.test", "To: ci.run-7+t42@serve.test\r\nSubject: Welcome\r\n\r\nhi\r\n")
			w := testlib.Next(t, done, 30*time.Second, "the namespace wait")
			var ans struct {
				Messages []struct{ Inbox, Subject, Tag string }
			}
			if w.code != 200 || json.Unmarshal(w.body, &ans) != nil || len(ans.Messages) != 1 || ans.Messages[0].Inbox != "ci.run-7@serve.test" {
				t.Fatalf("namespace wait = %d %s", w.code, w.body)
			}
			if code := status(t, "GET", base+"/api/v1/namespaces/ci/wait?timeout=300ms&expect=none&subject=never", ci.Key, ""); code != http.StatusNoContent {
				t.Errorf("expect=none wait = %d, want 204", code)
			}
			if code := status(t, "GET", base+"/api/v1/namespaces/ci/wait?timeout=5s&expect=none&subject=welcome", ci.Key, ""); code != http.StatusConflict {
				t.Errorf("expect=none wait with a match = %d, want 409", code)
			}

			n.send(t, "ci.run-8+t42@serve.test", "Subject: Second\r\n\r\nhi\r\n")
			n.send(t, "ci.run-6+t43@serve.test", "Subject: Other run\r\n\r\nhi\r\n")
			var tagged struct{ Messages []struct{ Inbox string } }
			testlib.WaitFor(t, "run t42's two messages listed", func() bool {
				apiDo(t, "GET", base+"/api/v1/namespaces/ci/messages?tag=t42", ci.Key, "", &tagged)
				return len(tagged.Messages) == 2
			})
			var del struct {
				Inboxes  int `json:"deleted_inboxes"`
				Messages int `json:"deleted_messages"`
			}
			if code := apiDo(t, "DELETE", base+"/api/v1/namespaces/ci/inboxes?tag=t42", ci.Key, "", &del); code != 200 || del.Messages != 2 || del.Inboxes != 2 {
				t.Errorf("cleanup by tag = %d %+v, want 2 inboxes, 2 messages", code, del)
			}
			var left struct{ Messages []struct{ Inbox, Tag string } }
			apiDo(t, "GET", base+"/api/v1/namespaces/ci/messages", ci.Key, "", &left)
			if len(left.Messages) != 2 {
				t.Errorf("after cleanup: %+v, want ci.run-6's two messages", left.Messages)
			}
			for _, m := range left.Messages {
				if m.Inbox != "ci.run-6@serve.test" {
					t.Errorf("after cleanup: %+v left", m)
				}
			}
			if code := apiDo(t, "DELETE", base+"/api/v1/namespaces/ci/inboxes?prefix=run-6", ci.Key, "", &del); code != 200 || del.Inboxes != 1 || del.Messages != 2 {
				t.Errorf("cleanup by prefix = %d %+v", code, del)
			}
		})
	}
}

// TestNamespaceRevocationAcrossNodes: two nodes on one Redis; a key revoked, or its
// namespace deleted, on node A is refused on node B from the next request and login.
func TestNamespaceRevocationAcrossNodes(t *testing.T) {
	redis := redisFlags(t)
	a, b := teamsNode(t, redis...), teamsNode(t, redis...)
	ci := createTeam(t, a, `{"name": "ci"}`)
	b.send(t, "ci.box@serve.test", "Subject: hi\r\n\r\nhi\r\n")
	inbox := "http://" + b.http + "/api/v1/inboxes/ci.box@serve.test/messages"
	if code := status(t, "GET", inbox, ci.Key, ""); code != 200 {
		t.Fatalf("key on node B = %d", code)
	}
	if ok, _ := imapLogin(t, b.imap, "ci.box@serve.test", ci.Key); !ok {
		t.Fatal("IMAP LOGIN on node B failed")
	}
	// Rotation on A: the new key works on B at once, the old one no more.
	var k struct{ ID, Key string }
	if code := apiDo(t, "POST", "http://"+a.http+"/api/v1/namespaces/ci/keys", teamsAdmin, `{"replace": "`+ci.KeyID+`"}`, &k); code != 201 {
		t.Fatalf("rotate = %d", code)
	}
	if code := status(t, "GET", inbox, ci.Key, ""); code != http.StatusForbidden {
		t.Errorf("replaced key on node B = %d, want 403", code)
	}
	if ok, _ := imapLogin(t, b.imap, "ci.box@serve.test", ci.Key); ok {
		t.Error("IMAP LOGIN with the replaced key on node B succeeded")
	}
	if code := status(t, "GET", inbox, k.Key, ""); code != 200 {
		t.Errorf("new key on node B = %d, want 200", code)
	}
	if !pop3Login(t, b.pop3, "ci.box@serve.test", k.Key) {
		t.Error("POP3 with the new key on node B failed")
	}
	// Revocation on A.
	if code := status(t, "DELETE", "http://"+a.http+"/api/v1/namespaces/ci/keys/"+k.ID, teamsAdmin, ""); code != http.StatusNoContent {
		t.Fatalf("revoke = %d", code)
	}
	if code := status(t, "GET", inbox, k.Key, ""); code != http.StatusForbidden {
		t.Errorf("revoked key on node B = %d, want 403", code)
	}
	if pop3Login(t, b.pop3, "ci.box@serve.test", k.Key) {
		t.Error("POP3 with the revoked key on node B succeeded")
	}
	// Deleting the namespace on A ends a third key on B, and its mail.
	var k3 struct{ ID, Key string }
	apiDo(t, "POST", "http://"+a.http+"/api/v1/namespaces/ci/keys", teamsAdmin, "", &k3)
	if code := status(t, "GET", inbox, k3.Key, ""); code != 200 {
		t.Fatalf("third key on node B = %d", code)
	}
	if code := status(t, "DELETE", "http://"+a.http+"/api/v1/namespaces/ci", teamsAdmin, ""); code != http.StatusNoContent {
		t.Fatalf("delete namespace = %d", code)
	}
	if code := status(t, "GET", inbox, k3.Key, ""); code != http.StatusForbidden {
		t.Errorf("key of a deleted namespace on node B = %d, want 403", code)
	}
	var list struct{ Messages []struct{ ID string } }
	apiDo(t, "GET", inbox, teamsAdmin, "", &list)
	if len(list.Messages) != 0 {
		t.Errorf("the deleted namespace's mail is still there: %+v", list)
	}
}

// TestCLIWithANamespaceKey: CI's one secret is the namespace key in MAYFLY_API_KEY:
// mayfly inbox makes an address of the namespace, mayfly wait reads it, and mayfly
// wait --namespace waits across the namespace for an address nobody created.
func TestCLIWithANamespaceKey(t *testing.T) {
	n := teamsNode(t)
	ci := createTeam(t, n, `{"name": "ci"}`)
	t.Setenv("MAYFLY_URL", "http://"+n.http)
	t.Setenv("MAYFLY_API_KEY", ci.Key)
	t.Setenv("MAYFLY_TOKEN", "")
	t.Setenv("MAYFLY_INBOX", "")
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := command(ctx, args, &out, &errb)
		if err != nil {
			return out.String() + errb.String(), err
		}
		return out.String(), nil
	}
	out, err := run("inbox")
	lines := strings.Fields(out)
	if err != nil || len(lines) != 2 || !strings.HasPrefix(lines[0], "ci.") {
		t.Fatalf("mayfly inbox with a namespace key = %q, %v; want an address ci.*", out, err)
	}
	n.send(t, lines[0], "Subject: Sign up\r\n\r\nYour code is 774411\r\n")
	if out, err := run("wait", lines[0], "--code", "--timeout", "10s"); err != nil || out != "774411\n" {
		t.Errorf("mayfly wait ADDRESS with the key = %q, %v", out, err)
	}
	n.send(t, "ci.nobody-made-me@serve.test", "Subject: Reset\r\n\r\nYour code is 551122\r\n")
	if out, err := run("wait", "--namespace", "ci", "--to", "ci.nobody-made-me", "--code", "--timeout", "10s"); err != nil || out != "551122\n" {
		t.Errorf("mayfly wait --namespace ci = %q, %v", out, err)
	}
	if out, err := run("wait", "--namespace", "other", "--timeout", "1s"); err == nil || !strings.Contains(err.Error(), "does not open namespace other") {
		t.Errorf("mayfly wait --namespace other with ci's key = %q, %v; want refused", out, err)
	}
}

// TestNamespaceSendLimitOverHTTP: the API's reply route, with the namespace key, is held
// to the namespace's send_limit across its inboxes: 429 send_limit naming it.
func TestNamespaceSendLimitOverHTTP(t *testing.T) {
	sink := newRelaySink(t)
	dnsAddr := dnstest.TXTServer(t, map[string]string{"sender.test.": "v=spf1 ip4:127.0.0.0/8 -all"})
	n := teamsNode(t, "-relay", "smtp://"+sink.addr, "-dns", dnsAddr)
	ci := createTeam(t, n, `{"name": "ci", "send_limit": "1/d"}`)
	var ids []string
	for _, box := range []string{"ci.a@serve.test", "ci.b@serve.test"} {
		n.sendAs(t, "alice@sender.test", box, "From: Alice <alice@sender.test>\r\nSubject: Hi\r\n\r\nhi\r\n")
		var list struct{ Messages []struct{ ID string } }
		getJSON(t, n.http, "/api/v1/inboxes/"+box+"/messages", ci.Key, &list)
		if len(list.Messages) != 1 {
			t.Fatalf("%s: %+v", box, list)
		}
		ids = append(ids, list.Messages[0].ID)
	}
	if status, body := postReply(t, n.http, inboxJSON{Address: "ci.a@serve.test", Token: ci.Key}, ids[0], `{"text":"thanks"}`); status != http.StatusAccepted {
		t.Fatalf("first reply of the namespace: %d %v", status, body)
	}
	sink.next(t)
	status, body := postReply(t, n.http, inboxJSON{Address: "ci.b@serve.test", Token: ci.Key}, ids[1], `{"text":"thanks"}`)
	if e := fmt.Sprint(body["error"]); status != http.StatusTooManyRequests || !strings.Contains(e, "code:send_limit") || !strings.Contains(e, "send_limit of namespace ci") {
		t.Errorf("second reply, from another inbox of the namespace: %d %v; want 429 naming namespace ci's send_limit", status, body)
	}
}
