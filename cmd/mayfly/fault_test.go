package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	"github.com/gorilla/websocket"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// TestRedisOutage kills the node's Redis (SIGKILL) while SMTP senders are sending, and
// starts it again on the same port and data directory. While it is down SMTP answers
// 451 4.3.0, /readyz and the API answer 503, IMAP and POP3 answer NO/-ERR, and
// WebSocket clients are told to reconnect; once it is back everything resumes without
// a restart of the node, and every message that got 250 is there.
func TestRedisOutage(t *testing.T) {
	bin := redisServerBinary(t)
	rs := startRedis(t, bin)
	sink := newRelaySink(t)
	// Every client here is 127.0.0.1, and the load is above what one client may send
	// or one inbox receive: the rate limits are off.
	n := startNode(t, "-redis-url", "redis://"+rs.addr+"/0", "-relay", "smtp://"+sink.addr, "-max-messages", "100000",
		"-recipient-rate", "off", "-receive-rate", "off", "-http-rate", "off", "-command-rate", "off", "-verify", "false")
	defer func() {
		if t.Failed() {
			t.Logf("node log (tail):\n%s", logTail(n.log.String(), 12<<10))
			t.Logf("redis log:\n%s", rs.log.String())
		}
	}()

	// The watched inbox: one message before the outage, for the IMAP and POP3 sessions
	// to read, and one after it, for the reconnected WebSocket. Its clients are all
	// open when Redis goes: a WebSocket, an IMAP session with INBOX selected, a POP3
	// session in the transaction state and a long-poll wait.
	watch := createInbox(t, n.http, "")
	n.sendAs(t, "s@sender.test", watch.Address, "From: <s@sender.test>\r\nSubject: before the outage\r\n\r\nfirst\r\n")
	ws := dialWS(t, n.http, watch)
	waitMetric(t, n.http, "mayfly_http_websockets 1")
	imapOld := dialIMAP(t, n.imap)
	if err := imapOld.Login(watch.Address, watch.Token).Wait(); err != nil {
		t.Fatalf("IMAP Login = %v", err)
	}
	if sel, err := imapOld.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("IMAP Select(INBOX) = %+v, %v; want 1 message", sel, err)
	}
	popOld := dialPOP3(t, n.pop3)
	popOld.login(t, watch)
	waited := startWait(n.http, watch, "timeout=20s&subject=never+sent")
	waitMetric(t, n.http, "mayfly_http_waiters 1")

	ld := startLoad(t, n.smtp, n.http, 4)
	ld.waitFor(t, "three 250s per sender before the outage", func(s *senderStats) bool { return s.ok >= 3 })

	rs.kill(t)
	ld.setPhase(phaseDown)
	ld.waitFor(t, "a 451 per sender while Redis is down", func(s *senderStats) bool { return s.refused >= 1 })

	t.Run("down", func(t *testing.T) {
		status, code := pollHTTP(t, n.http, "/readyz", "", func(s int) bool { return s != http.StatusOK })
		if status != http.StatusServiceUnavailable || code != "unavailable" {
			t.Errorf("GET /readyz = %d %q, want 503 unavailable", status, code)
		}
		status, code = pollHTTP(t, n.http, "/api/v1/inboxes/"+watch.Address+"/messages", watch.Token, func(s int) bool { return s != http.StatusOK })
		if status != http.StatusServiceUnavailable || code != "unavailable" {
			t.Errorf("GET .../messages = %d %q, want 503 unavailable", status, code)
		}

		// A long-poll open when Redis went has lost its events and cannot list again.
		select {
		case r := <-waited:
			if r.status != http.StatusServiceUnavailable {
				t.Errorf("wait open when Redis went = %d %v, want 503", r.status, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("wait open when Redis went: no answer within 10s, want 503")
		}

		// The store's event feed is gone, so the socket is closed with "try again
		// later"; a new one is refused before the upgrade, with 503, while Redis is down.
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, _, err := ws.ReadMessage()
			if err == nil {
				continue // an event from before the outage
			}
			if !websocket.IsCloseError(err, websocket.CloseTryAgainLater) {
				t.Errorf("WebSocket during the outage: %v, want close 1013 (try again later)", err)
			}
			break
		}
		if c, resp, err := websocket.DefaultDialer.Dial(wsURL(n.http, watch), nil); err == nil {
			c.Close()
			t.Errorf("a WebSocket opened while Redis is down")
		} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("WebSocket dial while Redis is down = %v, %v; want a 503 answer", resp, err)
		}

		// A session opened before the outage gets NO [UNAVAILABLE] for what needs the
		// store, and a new one too; neither hangs.
		_, err := within(t, 10*time.Second, "IMAP FETCH during the outage", func() ([]*imapclient.FetchMessageBuffer, error) {
			return imapOld.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
		})
		checkUnavailable(t, "IMAP FETCH BODY[] in a session from before the outage", err)
		imapNew := dialIMAP(t, n.imap)
		if err := imapNew.Login(watch.Address, watch.Token).Wait(); err != nil {
			t.Errorf("IMAP Login during the outage = %v; it needs no store", err)
		}
		_, err = within(t, 10*time.Second, "IMAP SELECT during the outage", func() (*imap.SelectData, error) {
			return imapNew.Select("INBOX", nil).Wait()
		})
		checkUnavailable(t, "IMAP SELECT during the outage", err)

		if line := popOld.cmd(t, "RETR 1"); !strings.HasPrefix(line, "-ERR [SYS/TEMP]") {
			t.Errorf("POP3 RETR during the outage = %q, want -ERR [SYS/TEMP]", line)
		}
		popNew := dialPOP3(t, n.pop3)
		popNew.cmd(t, "USER "+watch.Address)
		if line := popNew.cmd(t, "PASS "+watch.Token); !strings.HasPrefix(line, "-ERR [SYS/TEMP]") {
			t.Errorf("POP3 login during the outage = %q, want -ERR [SYS/TEMP]", line)
		}
	})

	// An outage of some seconds: senders keep being refused, and the store's event
	// connection backs off a few times, before Redis comes back.
	ld.waitFor(t, "sixty 451s per sender", func(s *senderStats) bool { return s.refused >= 60 })
	rs.start(t)
	restarted := time.Now()
	pollHTTP(t, n.http, "/readyz", "", func(s int) bool { return s == http.StatusOK })
	t.Logf("ready %v after Redis answered again", time.Since(restarted).Round(time.Millisecond))
	ld.setPhase(phaseBack)
	ld.waitFor(t, "three 250s per sender after Redis came back", func(s *senderStats) bool { return s.okBack >= 3 })

	t.Run("back", func(t *testing.T) {
		// The client reconnects as it was told to. A ready node takes it at once: ready
		// means the store hears events again, not only that Redis answers commands.
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL(n.http, watch), nil)
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("WebSocket dial once /readyz is 200 = %d, %v; want it open", status, err)
		}
		defer ws.Close()
		n.sendAs(t, "s@sender.test", watch.Address, "Subject: after the outage\r\n\r\nsecond\r\n")
		if typ, subject, err := nextEvent(ws); err != nil || typ != "message" || subject != "after the outage" {
			t.Errorf("reconnected WebSocket got %s %q, %v; want the new message", typ, subject, err)
		}

		// The IMAP session from before the outage hears of the new message (its view
		// subscribed again by itself) and reads mail again.
		deadline := time.Now().Add(15 * time.Second)
		for imapOld.Mailbox() == nil || imapOld.Mailbox().NumMessages < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("IMAP session from before the outage: %+v within 15s, want 2 messages", imapOld.Mailbox())
			}
			if _, err := within(t, 10*time.Second, "IMAP NOOP", func() (struct{}, error) { return struct{}{}, imapOld.Noop().Wait() }); err != nil {
				t.Fatalf("IMAP NOOP after Redis came back = %v", err)
			}
			time.Sleep(20 * time.Millisecond) // polling with NOOP, as a client without IDLE does, with a deadline
		}
		msgs, err := within(t, 10*time.Second, "IMAP FETCH after the outage", func() ([]*imapclient.FetchMessageBuffer, error) {
			return imapOld.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
		})
		if err != nil || len(msgs) != 2 {
			t.Errorf("IMAP FETCH 1:2 BODY[] after the outage = %d messages, %v; want 2", len(msgs), err)
		}

		// The POP3 session from before reads its maildrop again; a new one logs in.
		if line := popOld.cmd(t, "RETR 1"); !strings.HasPrefix(line, "+OK") {
			t.Errorf("POP3 RETR after the outage = %q, want +OK", line)
		} else if body := popOld.multiline(t); !strings.Contains(body, "Subject: before the outage") {
			t.Errorf("POP3 RETR 1 after the outage:\n%s", body)
		}
		popNew := dialPOP3(t, n.pop3)
		popNew.cmd(t, "USER "+watch.Address)
		if line := popNew.cmd(t, "PASS "+watch.Token); line != "+OK 2 messages" {
			t.Errorf("POP3 login after the outage = %q, want +OK 2 messages", line)
		}

		// The outgoing queue's workers, which kept failing to take jobs, take them again.
		var list struct {
			Messages []struct{ ID, Subject string }
		}
		getJSON(t, n.http, "/api/v1/inboxes/"+watch.Address+"/messages", watch.Token, &list)
		if len(list.Messages) != 2 {
			t.Fatalf("%d messages listed in the watched inbox, want 2", len(list.Messages))
		}
		if status, body := postReply(t, n.http, watch, list.Messages[1].ID, `{"text":"after the outage"}`); status != http.StatusAccepted {
			t.Fatalf("reply after the outage: %d %v", status, body)
		}
		if m := sink.next(t); len(m.to) != 1 || m.to[0] != "s@sender.test" {
			t.Errorf("relayed to %q, want s@sender.test", m.to)
		}
	})

	results := ld.stop()
	checkNoMailLost(t, n.http, results, len(ld.senders))
}

// redisServerBinary returns the path of redis-server, or skips the test (fails it when
// CI or MAYFLY_REQUIRE_REDIS say the Redis tests must run).
func redisServerBinary(t *testing.T) string {
	t.Helper()
	if storetest.RedisURL(t) == "" {
		t.Skip("starts a redis-server of its own, and runs with the Redis tests: set MAYFLY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 with redis-server on PATH (make test does both)")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("MAYFLY_REQUIRE_REDIS") != "" {
			t.Fatalf("redis-server is not on PATH, and CI or MAYFLY_REQUIRE_REDIS says the Redis tests must run: %v", err)
		}
		t.Skipf("needs redis-server on PATH to kill and restart it (make test installs it): %v", err)
	}
	return bin
}

// redisServer is a redis-server this test owns: it can kill it and start it again on
// the same port and directory.
type redisServer struct {
	bin, addr, dir string
	log            *testlib.SyncBuffer
	cmd            *exec.Cmd
	exited         chan error
}

func startRedis(t *testing.T, bin string) *redisServer {
	t.Helper()
	r := &redisServer{bin: bin, addr: testlib.FreePort(t), dir: t.TempDir(), log: &testlib.SyncBuffer{}}
	r.start(t)
	t.Cleanup(func() { r.kill(t) }) // after the node's cleanup, which stops it first
	return r
}

// start runs redis-server and waits until it answers PING. The append-only file,
// fsynced before every reply, is what a 250 rests on: whatever Redis acknowledged
// survives the SIGKILL and is loaded again at the restart.
func (r *redisServer) start(t *testing.T) {
	t.Helper()
	host, port, _ := net.SplitHostPort(r.addr)
	cmd := exec.Command(r.bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "yes",
		"--appendfsync", "always", "--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	r.cmd, r.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for redisPing(r.addr) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING within 10s; log:\n%s", r.addr, r.log.String())
		}
		select {
		case err := <-exited:
			r.cmd = nil
			t.Fatalf("redis-server on %s exited: %v; log:\n%s", r.addr, err, r.log.String())
		case <-time.After(20 * time.Millisecond): // polling with a deadline
		}
	}
}

// kill ends redis-server with SIGKILL, as a crash or the OOM killer would, and waits
// until it is gone.
func (r *redisServer) kill(t *testing.T) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("redis-server did not exit within 10s of SIGKILL")
	}
	r.cmd = nil
}

// redisPing reports whether the Redis at addr answers PING with PONG (not LOADING).
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING: %q", line)
	}
	return nil
}

// Phases of the load, by when a send began.
const (
	phaseUp = iota
	phaseDown
	phaseBack
)

// sendResult is one message a sender tried to deliver, and the answer to its DATA.
type sendResult struct {
	inbox   inboxJSON
	subject string
	code    int // 250, 451, or 0 when the exchange failed before an SMTP reply
	err     error
	phase   int
}

type senderStats struct {
	ok, refused, okBack int
}

// smtpLoad is a few SMTP senders, each delivering one message per connection to an inbox
// of its own, with a subject no other message has.
type smtpLoad struct {
	smtp    string
	senders []inboxJSON
	stopc   chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	phase   int
	results []sendResult
	stats   []senderStats
}

func startLoad(t *testing.T, smtpAddr, httpAddr string, senders int) *smtpLoad {
	t.Helper()
	ld := &smtpLoad{smtp: smtpAddr, stopc: make(chan struct{}), stats: make([]senderStats, senders)}
	for range senders {
		ld.senders = append(ld.senders, createInbox(t, httpAddr, ""))
	}
	for i := range senders {
		ld.wg.Add(1)
		go ld.send(i)
	}
	t.Cleanup(func() { ld.stop() })
	return ld
}

func (ld *smtpLoad) send(i int) {
	defer ld.wg.Done()
	// A steady rate rather than as fast as possible: enough sends in each phase,
	// and few enough that listing them all afterwards is quick.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ld.stopc:
			return
		case <-tick.C:
		}
		ld.mu.Lock()
		phase := ld.phase
		ld.mu.Unlock()
		s := sendResult{inbox: ld.senders[i], subject: fmt.Sprintf("outage load s%d #%d", i, seq), phase: phase}
		s.code, s.err = sendOne(ld.smtp, s.inbox.Address, s.subject)
		ld.mu.Lock()
		ld.results = append(ld.results, s)
		switch {
		case s.code == 250:
			ld.stats[i].ok++
			if phase == phaseBack {
				ld.stats[i].okBack++
			}
		case s.code == 451:
			ld.stats[i].refused++
		}
		ld.mu.Unlock()
	}
}

func (ld *smtpLoad) setPhase(p int) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.phase = p
}

// waitFor polls until every sender's counts satisfy cond.
func (ld *smtpLoad) waitFor(t *testing.T, what string, cond func(*senderStats) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ld.mu.Lock()
		all := true
		for i := range ld.stats {
			all = all && cond(&ld.stats[i])
		}
		stats := fmt.Sprintf("%+v", ld.stats)
		ld.mu.Unlock()
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 15s: %s", what, stats)
		}
		time.Sleep(10 * time.Millisecond) // polling the senders' counts, with a deadline
	}
}

// stop ends the senders and returns what they sent.
func (ld *smtpLoad) stop() []sendResult {
	select {
	case <-ld.stopc:
	default:
		close(ld.stopc)
	}
	ld.wg.Wait()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.results
}

// sendOne delivers one message on a connection of its own and returns the SMTP code of
// the answer to its DATA (250 when accepted).
func sendOne(addr, to, subject string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	// A node whose store hangs answers 451 after its store timeout (15s); more than
	// that is a hang.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	msg := "From: <s@sender.test>\r\nTo: <" + to + ">\r\nSubject: " + subject + "\r\n" +
		"Message-ID: <" + strings.NewReplacer(" ", ".", "#", "").Replace(subject) + "@sender.test>\r\n\r\nload\r\n"
	err = c.SendMail("s@sender.test", []string{to}, strings.NewReader(msg))
	if err == nil {
		c.Quit()
		return 250, nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, err
	}
	return 0, err
}

// metricValue reads one series of a node's /metrics, 0 when it is not there.
func metricValue(t *testing.T, httpAddr, series string) int {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	return 0
}

// storedSubjects counts the messages of the senders' inboxes by subject, as the API
// lists them, page by page (a listing holds at most 1000 messages).
func storedSubjects(t *testing.T, httpAddr string, results []sendResult) map[string]int {
	t.Helper()
	stored := map[string]int{}
	for _, in := range uniqueInboxes(results) {
		for before := uint32(0); ; {
			var list struct {
				Messages []struct{ Subject string }
				Next     *uint32
			}
			getJSON(t, httpAddr, fmt.Sprintf("/api/v1/inboxes/%s/messages?before=%d", in.Address, before), in.Token, &list)
			for _, m := range list.Messages {
				stored[m.Subject]++
			}
			if list.Next == nil {
				break
			}
			before = *list.Next
		}
	}
	return stored
}

// checkNoMailLost lists every sender's inbox and checks that each message that got 250
// is there exactly once, and that every other send got 451 4.3.0.
func checkNoMailLost(t *testing.T, httpAddr string, results []sendResult, senders int) {
	t.Helper()
	stored := storedSubjects(t, httpAddr, results)
	var accepted, refused, storedRefused int
	for _, s := range results {
		switch s.code {
		case 250:
			accepted++
			if stored[s.subject] != 1 {
				t.Errorf("%q got 250 (phase %d) and is stored %d times, want once", s.subject, s.phase, stored[s.subject])
			}
		case 451:
			refused++
			var se *smtp.SMTPError
			if !errors.As(s.err, &se) || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
				t.Errorf("%q refused with %v, want 451 4.3.0", s.subject, s.err)
			}
			if stored[s.subject] > 0 {
				// Redis ran the write and died before it could reply: the sender was told
				// to retry, and will deliver the message a second time.
				storedRefused++
				t.Logf("finding: %q got 451 but is stored (%d times): the write landed, the reply did not", s.subject, stored[s.subject])
			}
		default:
			t.Errorf("%q: %v, want 250 or 451 4.3.0", s.subject, s.err)
		}
	}
	// Only a write in flight at the moment of the kill can land without its reply.
	if storedRefused > senders {
		t.Errorf("%d messages refused with 451 are stored, more than the %d sends that can have been in flight at the kill", storedRefused, senders)
	}
	t.Logf("%d sends: %d accepted (all stored), %d refused with 451 4.3.0 (%d of them stored anyway)", len(results), accepted, refused, storedRefused)
	// The node counts the same: the load's answers plus the watched inbox's two 250s. A
	// 451 4.3.0 comes at RCPT (the inbox's settings, read there for its faults) or at
	// the end of DATA (the write).
	if want := fmt.Sprintf("mayfly_smtp_messages_total{result=\"stored\"} %d\n", accepted+2); !metricsHave(httpAddr, want) {
		t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
	}
	failed := metricValue(t, httpAddr, `mayfly_smtp_messages_total{result="failed"}`)
	atRcpt := metricValue(t, httpAddr, `mayfly_smtp_rejected_total{reason="store"}`)
	if failed+atRcpt != refused {
		t.Errorf("/metrics: %d messages failed and %d recipients refused for the store, want %d in all", failed, atRcpt, refused)
	}
}

func uniqueInboxes(results []sendResult) []inboxJSON {
	seen := map[string]bool{}
	var out []inboxJSON
	for _, s := range results {
		if !seen[s.inbox.Address] {
			seen[s.inbox.Address] = true
			out = append(out, s.inbox)
		}
	}
	return out
}

// pollHTTP GETs path until done(status) or 10s have passed, and returns the last status
// and the code of its JSON error, if it has one.
func pollHTTP(t *testing.T, httpAddr, path, token string, done func(int) bool) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		var body struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if done(resp.StatusCode) {
			return resp.StatusCode, body.Error.Code
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d for 10s", path, resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

func wsURL(httpAddr string, in inboxJSON) string {
	return "ws://" + httpAddr + "/api/v1/inboxes/" + in.Address + "/ws?token=" + in.Token
}

func dialWS(t *testing.T, httpAddr string, in inboxJSON) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(wsURL(httpAddr, in), nil)
	if err != nil {
		t.Fatalf("WebSocket dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialIMAP connects without TLS (the node lets loopback clients log in so), waiting
// for the listener, which startNode does not.
func dialIMAP(t *testing.T, addr string) *imapclient.Client {
	t.Helper()
	c := dialRetry(t, addr)
	ic := imapclient.New(c, nil)
	t.Cleanup(func() { ic.Close() })
	if err := ic.WaitGreeting(); err != nil {
		t.Fatalf("IMAP greeting: %v", err)
	}
	return ic
}

func dialRetry(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // waiting for the listener, with a deadline
	}
}

// checkUnavailable wants err to be the IMAP answer NO [UNAVAILABLE].
func checkUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Code != imap.ResponseCodeUnavailable {
		t.Errorf("%s = %v, want NO [UNAVAILABLE]", what, err)
	}
}

// within runs f and fails the test if it has not returned after d: a session that hangs
// is what this test looks for. The connection's cleanup ends f's goroutine then.
func within[T any](t *testing.T, d time.Duration, what string, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(d):
		t.Fatalf("%s: no answer within %v", what, d)
		panic("unreachable")
	}
}

// pop3Conn is a POP3 client on textproto lines, each exchange bounded by a deadline.
type pop3Conn struct {
	c net.Conn
	r *bufio.Reader
}

func dialPOP3(t *testing.T, addr string) *pop3Conn {
	t.Helper()
	p := &pop3Conn{c: dialRetry(t, addr)}
	p.r = bufio.NewReader(p.c)
	t.Cleanup(func() { p.c.Close() })
	if line := p.line(t); !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 greeting %q", line)
	}
	return p
}

func (p *pop3Conn) login(t *testing.T, in inboxJSON) {
	t.Helper()
	if line := p.cmd(t, "USER "+in.Address); !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 USER = %q", line)
	}
	if line := p.cmd(t, "PASS "+in.Token); !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 PASS = %q", line)
	}
}

// cmd sends one command and returns the first line of the answer.
func (p *pop3Conn) cmd(t *testing.T, command string) string {
	t.Helper()
	p.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(p.c, command+"\r\n"); err != nil {
		t.Fatalf("POP3 %s: %v", strings.Fields(command)[0], err)
	}
	return p.line(t)
}

func (p *pop3Conn) line(t *testing.T) string {
	t.Helper()
	p.c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := p.r.ReadString('\n')
	if err != nil {
		t.Fatalf("POP3 read: %v (so far %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

// multiline reads the rest of a multi-line answer, up to the lone ".".
func (p *pop3Conn) multiline(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for {
		line := p.line(t)
		if line == "." {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(line, ".") + "\n")
	}
}

// logTail returns the last n bytes of s.
func logTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
