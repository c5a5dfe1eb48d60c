package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/gorilla/websocket"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// node is one `mayfly serve` run in-process on free loopback ports.
type node struct {
	smtp, http             string
	imap, pop3, submission string
	log                    *testlib.SyncBuffer
	done                   chan error
	cancel                 context.CancelFunc
}

// startNode runs the whole command as `mayfly serve` would and waits until both
// listeners are up.
func startNode(t testing.TB, extra ...string) *node {
	t.Helper()
	return startNodeOn(t, testlib.FreePort(t), testlib.FreePort(t), extra...)
}

// startNodeOn starts a node on given SMTP and HTTP addresses: a restarted node comes
// back where its clients were.
func startNodeOn(t testing.TB, smtpAddr, httpAddr string, extra ...string) *node {
	t.Helper()
	n := &node{smtp: smtpAddr, http: httpAddr, imap: testlib.FreePort(t), pop3: testlib.FreePort(t), submission: testlib.FreePort(t), log: &testlib.SyncBuffer{}, done: make(chan error, 1)}
	// The verifier asks a loopback port where nothing listens: tests send no traffic
	// off this machine, and every DNS answer is a quick temperror.
	// IMAP, POP3 and submission on ports of their own, so nodes never collide.
	args := append([]string{"serve", "-smtp-addr", n.smtp, "-http-addr", n.http, "-imap-addr", n.imap, "-pop3-addr", n.pop3, "-submission-addr", n.submission,
		"-domains", "serve.test", "-hostname", "mx.serve.test", "-dns", "127.0.0.1:1"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- command(ctx, args, io.Discard, n.log) }()
	t.Cleanup(func() { n.stop(t) })
	for _, want := range []string{"proto=smtp addr=" + n.smtp, "proto=http addr=" + n.http} {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(n.log.String(), "msg=listening "+want) {
			if time.Now().After(deadline) {
				t.Fatalf("no listening line %q within 10s; log:\n%s", want, n.log.String())
			}
			select {
			case err := <-n.done:
				t.Fatalf("serve ended early: %v\n%s", err, n.log.String())
			case <-time.After(10 * time.Millisecond): // polling the log, with a deadline
			}
		}
	}
	return n
}

// stop ends the node as SIGTERM would and checks it drains and returns cleanly.
func (n *node) stop(t testing.TB) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("serve returned %v after its context ended", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of its context ending")
	}
}

func (n *node) send(t *testing.T, to, body string) {
	t.Helper()
	n.sendAs(t, "s@sender.test", to, body)
}

func (n *node) sendAs(t *testing.T, from, to, body string) {
	t.Helper()
	c, err := smtp.Dial(n.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, []string{to}, strings.NewReader(body)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
}

// storeVariants lists the store flags the whole-service tests run with.
func storeVariants(t *testing.T) map[string][]string {
	variants := map[string][]string{"memory": nil}
	if url := storetest.RedisURL(t); url != "" {
		variants["redis"] = []string{"-redis-url", url}
	}
	return variants
}

// nextEvent reads the next event of a WebSocket, waiting 10s at most: its type and the
// subject of its message.
func nextEvent(ws *websocket.Conn) (typ, subject string, err error) {
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ev struct {
		Type    string
		Message struct{ Subject string }
	}
	err = ws.ReadJSON(&ev)
	return ev.Type, ev.Message.Subject, err
}

// redisURL is the test Redis, or a skip without one.
func redisURL(t *testing.T) string {
	t.Helper()
	url := testlib.RedisURL(t)
	if url == "" {
		t.Skip("set MAYFLY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run it (make test does)")
	}
	return url
}

// redisFlags are the flags of a node on the test Redis, or a skip without one.
func redisFlags(t *testing.T) []string {
	t.Helper()
	return []string{"-redis-url", redisURL(t)}
}

// twoNodes are two nodes on one Redis, or a skip without one.
func twoNodes(t *testing.T) (a, b *node) {
	t.Helper()
	redis := redisFlags(t)
	return startNode(t, redis...), startNode(t, redis...)
}

func TestServe(t *testing.T) {
	for name, extra := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, extra...)
			rcpt := "e2e-" + name + "@serve.test"
			n.send(t, rcpt, "Subject: hi\r\n\r\nhello\r\n")
			if !strings.Contains(n.log.String(), "msg=received proto=smtp remote=127.0.0.1 inbox="+rcpt) {
				t.Errorf("no received line for %s; log:\n%s", rcpt, n.log.String())
			}
			resp, err := http.Get("http://" + n.http + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{
				`mayfly_smtp_messages_total{result="stored"} 1`,
				`mayfly_smtp_deliveries_total 1`,
				`mayfly_store_operation_duration_seconds_count{op="put",result="ok"} 1`,
				`mayfly_http_waiters 0`,
				`go_goroutines`,
			} {
				if !strings.Contains(string(metrics), want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			if name == "memory" && !strings.Contains(string(metrics), "mayfly_store_memory_limit_bytes 5.36870912e+08") {
				t.Errorf("/metrics lacks the memory store's limit")
			}
			if name == "memory" && (!strings.Contains(string(metrics), "\nmayfly_store_metadata_bytes ") || !strings.Contains(string(metrics), "\nmayfly_store_inboxes ")) {
				t.Errorf("/metrics lacks the memory store's metadata and inbox counts")
			}
			n.stop(t)
			for _, addr := range []string{n.smtp, n.http} {
				if _, err := net.Dial("tcp", addr); err == nil {
					t.Errorf("%s still listening after shutdown", addr)
				}
			}
		})
	}
}

type inboxJSON struct {
	Address, Token string
	ExpiresIn      int `json:"expires_in"`
}

func createInbox(t *testing.T, httpAddr, body string) inboxJSON {
	t.Helper()
	resp, err := http.Post("http://"+httpAddr+"/api/v1/inboxes", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var in inboxJSON
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create inbox: %d %v", resp.StatusCode, err)
	}
	return in
}

type waitResult struct {
	status   int
	messages []struct {
		ID      string
		Subject string
		Codes   []string
		Links   []string
	}
	err error
}

// startWait opens a long-poll wait and reports its outcome on the channel.
func startWait(httpAddr string, in inboxJSON, query string) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		var r waitResult
		defer func() { ch <- r }()
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/v1/inboxes/"+in.Address+"/wait?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+in.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			r.err = err
			return
		}
		defer resp.Body.Close()
		r.status = resp.StatusCode
		var body struct {
			Messages []struct {
				ID      string
				Subject string
				Codes   []string
				Links   []string
			}
		}
		r.err = json.NewDecoder(resp.Body).Decode(&body)
		r.messages = body.Messages
	}()
	return ch
}

// waitMetric polls a node's /metrics until a line reads want, e.g. "mayfly_http_waiters 1":
// the event a test needs before it acts on what is open there.
func waitMetric(t *testing.T, httpAddr, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !metricsHave(httpAddr, want) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not in /metrics within 10s", want)
		}
		time.Sleep(10 * time.Millisecond) // polling the gauge, with a deadline
	}
}

const signupMail = "From: Example <noreply@example.test>\r\nSubject: Confirm your account\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
	"Your verification code is 731904.\r\nOr open https://example.test/confirm?token=abc123 to confirm.\r\n"

// TestQAInThreeCalls is the QA engineer's flow over real sockets: create an inbox, wait
// while an SMTP client sends the sign-up mail, read the code and the link.
func TestQAInThreeCalls(t *testing.T) {
	for name, extra := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, extra...)
			in := createInbox(t, n.http, "")
			waited := startWait(n.http, in, "timeout=20s&subject=confirm")
			waitMetric(t, n.http, "mayfly_http_waiters 1")
			n.send(t, in.Address, signupMail)
			r := <-waited
			if r.err != nil || r.status != 200 || len(r.messages) != 1 {
				t.Fatalf("wait = %d %+v %v", r.status, r.messages, r.err)
			}
			m := r.messages[0]
			if len(m.Codes) != 1 || m.Codes[0] != "731904" || len(m.Links) != 1 || m.Links[0] != "https://example.test/confirm?token=abc123" {
				t.Errorf("codes %q, links %q", m.Codes, m.Links)
			}
			req, _ := http.NewRequest("GET", "http://"+n.http+"/api/v1/inboxes/"+in.Address+"/messages/"+m.ID+"/raw", nil)
			req.Header.Set("Authorization", "Bearer "+in.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(raw), "Authentication-Results: mx.serve.test;") || !strings.Contains(string(raw), "spf=temperror") {
				t.Errorf("stored message does not start with our Authentication-Results (DNS unreachable: temperror):\n%.400s", raw)
			}
		})
	}
}

// TestWaitWakesAcrossNodes: two nodes on one Redis; the wait is on one, the mail
// arrives at the other.
func TestWaitWakesAcrossNodes(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testWaitWakesAcrossNodes(t) })
}

func testWaitWakesAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	in := createInbox(t, b.http, "")
	waited := startWait(b.http, in, "timeout=20s")
	waitMetric(t, b.http, "mayfly_http_waiters 1")
	a.send(t, in.Address, signupMail)
	if r := <-waited; r.err != nil || r.status != 200 || len(r.messages) != 1 || r.messages[0].Subject != "Confirm your account" {
		t.Fatalf("wait on node B for mail received by node A = %d %+v %v", r.status, r.messages, r.err)
	}
}

func TestTokenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := command(context.Background(), []string{"token", "Box+Tag@Mayfly.Test", "-secret", "0123456789abcdef"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	want := storage.NewTokens([]byte("0123456789abcdef")).Token("box@mayfly.test")
	if got := strings.TrimSpace(out.String()); got != want || len(got) != 22 {
		t.Errorf("token = %q, want %q (22 URL-safe characters, of the normalized address)", got, want)
	}
	if err := command(context.Background(), []string{"token", "not-an-address", "-secret", "0123456789abcdef"}, &out, &errOut); err == nil {
		t.Error("token of a non-address succeeded")
	}
}

// TestTokenFromServer: without MAYFLY_SECRET or MAYFLY_REDIS_URL, mayfly token asks the
// running server at MAYFLY_URL, whose memory store's secret never leaves its process.
func TestTokenFromServer(t *testing.T) {
	t.Setenv("MAYFLY_SECRET", "")
	t.Setenv("MAYFLY_REDIS_URL", "")
	n := startNode(t)
	want := createInbox(t, n.http, `{"local":"box"}`).Token
	t.Setenv("MAYFLY_URL", "http://"+n.http)
	var out, errOut bytes.Buffer
	if err := command(context.Background(), []string{"token", "Box+Tag@Serve.Test"}, &out, &errOut); err != nil {
		t.Fatalf("token from the server: %v", err)
	}
	if got := strings.TrimSpace(out.String()); got != want {
		t.Errorf("token = %q, want %q, the one the server gives box@serve.test", got, want)
	}
	resp, err := http.Get("http://" + n.http + "/api/v1/inboxes/box@serve.test/messages?token=" + strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the printed token opens the inbox with %s, want 200", resp.Status)
	}

	// The server keeps random-shaped addresses' tokens to itself; its reason is shown.
	err = command(context.Background(), []string{"token", "calm-otter-abcd234567@serve.test"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "reserved") || !strings.Contains(err.Error(), "MAYFLY_SECRET") {
		t.Errorf("token of a random-shaped address = %v, want the server's refusal and MAYFLY_SECRET named", err)
	}

	t.Setenv("MAYFLY_URL", "http://"+testlib.FreePort(t))
	err = command(context.Background(), []string{"token", "box@serve.test"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "MAYFLY_URL") || !strings.Contains(err.Error(), "MAYFLY_SECRET") {
		t.Errorf("token with no server listening = %v, want an error naming MAYFLY_URL and MAYFLY_SECRET", err)
	}
}

func TestVersionAndUnknown(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := command(context.Background(), []string{"version"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "mayfly ") {
		t.Errorf("version = %q, %v", out.String(), err)
	}
	if err := command(context.Background(), []string{"frobnicate"}, &out, &errOut); err == nil {
		t.Error("an unknown command succeeded")
	}
}

func TestTopLevelHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	err := command(context.Background(), []string{"--help"}, &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v, want flag.ErrHelp (exit 0)", err)
	}
	for _, want := range []string{"mayfly token ADDRESS", "mayfly version", "-smtp-addr  (MAYFLY_SMTP_ADDR, default 127.0.0.1:2525)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not show %q:\n%s", want, out.String())
		}
	}
}

// TestWebSocketAcrossNodes: two nodes on one Redis; a WebSocket client on node B sees
// the mail node A received, and is told "going away" when B shuts down.
func TestWebSocketAcrossNodes(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testWebSocketAcrossNodes(t) })
}

func testWebSocketAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	in := createInbox(t, b.http, "")
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.http+"/api/v1/inboxes/"+in.Address+"/ws?token="+in.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	waitMetric(t, b.http, "mayfly_http_websockets 1")
	a.send(t, in.Address, signupMail)
	if typ, subject, err := nextEvent(ws); err != nil || typ != "message" || subject != "Confirm your account" {
		t.Fatalf("event on node B = %s %q, %v; want the mail node A received", typ, subject, err)
	}
	b.stop(t)
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after node B stopped: %v, want close 1001 (going away)", err)
	}
}

func metricsHave(httpAddr, want string) bool {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), want)
}

// TestMetricsAddr: with -metrics-addr the metrics move to their own listener, whole
// (the store's series too), and the API's listener has none.
func TestMetricsAddr(t *testing.T) {
	metricsAddr := testlib.FreePort(t)
	n := startNode(t, "-metrics-addr", metricsAddr)
	deadline := time.Now().Add(10 * time.Second)
	for !metricsHave(metricsAddr, "mayfly_store_memory_limit_bytes") {
		if time.Now().After(deadline) {
			t.Fatalf("no store metrics on %s within 10s; log:\n%s", metricsAddr, n.log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a listener that is starting, with a deadline
	}
	resp, err := http.Get("http://" + n.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the HTTP listener = %d, want 404 when they have a listener of their own", resp.StatusCode)
	}
}

// TestFavicon: browsers ask every site for /favicon.ico; a 404 there is noise in every
// proxy's log and a broken icon in the tab.
func TestFavicon(t *testing.T) {
	n := startNode(t)
	resp, err := http.Get("http://" + n.http + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") || len(body) == 0 {
		t.Errorf("/favicon.ico = %d %q, %d bytes; want an image", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
}

// TestSubcommandUsage: a mistake on the command line of a subcommand that lives in its
// own package is still a usage error, exit status 2, as it was when main held it.
func TestSubcommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"dns", "-ip", "203.0.113.25"},
		{"token", "not-an-address", "-secret", "0123456789abcdef"},
	} {
		var out, errOut bytes.Buffer
		err := command(context.Background(), args, &out, &errOut)
		if !errors.As(err, new(usageError)) {
			t.Errorf("command(%q) = %v, want a usage error", args, err)
		}
	}
}

// TestPprofAddr: -pprof-addr serves the runtime profiles on their own listener, and
// the API's listener never does.
func TestPprofAddr(t *testing.T) {
	pprofAddr := testlib.FreePort(t)
	n := startNode(t, "-pprof-addr", pprofAddr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/cmdline")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /debug/pprof/cmdline = %d, want 200", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pprof on %s within 10s: %v; log:\n%s", pprofAddr, err, n.log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a listener that is starting, with a deadline
	}
	resp, err := http.Get("http://" + n.http + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("/debug/pprof/ on the HTTP listener = 200, want it only on -pprof-addr")
	}
}
