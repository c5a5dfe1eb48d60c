package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// TestFailover kills the Redis primary under SMTP load, with Sentinel (its one primary)
// and with a Cluster (the primary of the slot of the watched inbox, and of some of the
// senders' inboxes), each on a rig of its own, both at once. Two nodes share the Redis:
// A takes the mail and sends the replies, B serves the readers. It checks what
// docs/operations.md ("Failover") promises:
//   - every message answered 250 is there afterwards, once, although replication lags at
//     the kill (the replica is stopped just before): a Put waits for the replica that
//     the failover promotes (-redis-replica-wait) and fails with 451 when it cannot;
//   - every other answer is 451 4.3.0, within the sender's timeout: no 5xx, no hang;
//   - a WebSocket, a long-poll wait and an IMAP IDLE session on B, open before the kill,
//     see the mail that arrives after the switch, by themselves or after the reconnect
//     the server asked for (close 1013, 503, BYE), as their clients do;
//   - a reply whose delivery was in progress at the kill completes after it, and one
//     queued after the switch is delivered;
//   - a webhook made before the kill is POSTed the mail after the switch (the event
//     feed and its consumer group are on the promoted replica).
func TestFailover(t *testing.T) {
	storetest.RequireRig(t)
	t.Run("sentinel", func(t *testing.T) {
		t.Parallel()
		rig := storetest.StartSentinel(t)
		replica := rig.Nodes()[1] // as started: no failover yet
		checkFailover(t, topology{
			url:     rig.URL(),
			replica: func(context.Context, string) storetest.RedisNode { return replica },
			kill: func(ctx context.Context, _ string) (string, func(context.Context) error, error) {
				old, err := rig.KillPrimary(ctx)
				return old.Addr, func(ctx context.Context) error {
					_, err := rig.WaitPrimaryChange(ctx, old.Addr)
					return err
				}, err
			},
			logs: rig.Logs,
		})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		rig := storetest.StartCluster(t)
		masterOf := func(ctx context.Context, inbox string) string {
			m, err := rig.MasterOf(ctx, storetest.KeySlot("{"+inbox+"}"))
			if err != nil {
				t.Fatal(err)
			}
			return m.Addr
		}
		checkFailover(t, topology{
			url:      rig.URL(),
			masterOf: masterOf,
			replica: func(ctx context.Context, inbox string) storetest.RedisNode {
				primary := masterOf(ctx, inbox)
				for _, r := range rig.Replicas(ctx) {
					if replicaOf(ctx, r.Addr) == primary {
						return r
					}
				}
				t.Fatalf("no replica of %s", primary)
				return storetest.RedisNode{}
			},
			kill: func(ctx context.Context, inbox string) (string, func(context.Context) error, error) {
				old, err := rig.KillPrimary(ctx, storetest.KeySlot("{"+inbox+"}"))
				return old.Addr, rig.WaitHealthy, err
			},
			logs: rig.Logs,
		})
	})
}

// topology is one Redis setup of TestFailover.
type topology struct {
	url string
	// masterOf, on a Cluster, says which primary holds an inbox; nil: one holds all.
	masterOf func(ctx context.Context, inbox string) string
	// replica is the replica of the primary that holds inbox.
	replica func(ctx context.Context, inbox string) storetest.RedisNode
	// kill kills the primary that holds inbox, and returns its address and a wait for
	// the switch to its replica.
	kill func(ctx context.Context, inbox string) (string, func(context.Context) error, error)
	logs func() string
}

// replicaOf is the address of the primary of the replica at addr, "" if it is none.
func replicaOf(ctx context.Context, addr string) string {
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	v, err := c.Do(ctx, "role").Slice()
	if err != nil || len(v) < 3 || v[0] != "slave" {
		return ""
	}
	return fmt.Sprint(v[1], ":", v[2])
}

// phaseLag: the send began while the replica was stopped, just before the kill.
const phaseLag = phaseBack + 1

// failoverReplicaWait is the nodes' -redis-replica-wait: shorter than the default so the
// replica's lag stays under what Sentinel and the Cluster take for a failure.
const failoverReplicaWait = 300 * time.Millisecond

// checkFailover is TestFailover on one Redis setup.
func checkFailover(t *testing.T, topo topology) {
	ctx := context.Background()
	sink := newHeldSink(t)
	flags := []string{"-redis-url", topo.url, "-redis-replica-wait", failoverReplicaWait.String(), "-relay", "smtp://" + sink.addr, "-max-messages", "100000", "-outbound-allow-private", "true",
		"-recipient-rate", "off", "-receive-rate", "off", "-http-rate", "off", "-command-rate", "off", "-verify", "false"}
	a, b := startNode(t, flags...), startNode(t, flags...)
	defer func() {
		if t.Failed() {
			t.Logf("node A log (tail):\n%s", logTail(a.log.String(), 8<<10))
			t.Logf("node B log (tail):\n%s", logTail(b.log.String(), 8<<10))
			t.Logf("redis:\n%s", topo.logs())
		}
	}()

	// The watched inbox decides which primary dies; on a Cluster, half the senders write
	// to that primary and half elsewhere.
	watch := createInbox(t, a.http, "")
	senders, onVictim := pickInboxes(t, ctx, a.http, topo.masterOf, watch.Address, 6)

	// A webhook for the mail after the switch: the event feed's consumer group, read by
	// the dispatchers, must work on the promoted replica.
	hooks := make(chan string, 16)
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case hooks <- string(body):
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hookSrv.Close)
	hook := `{"url": "` + hookSrv.URL + `/hook", "events": ["message.received"], "inbox": "` + watch.Address + `", "filters": {"subject": "after the switch"}}`
	if code := apiDo(t, "POST", "http://"+a.http+"/api/v1/webhooks", watch.Token, hook, nil); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/webhooks = %d", code)
	}

	sendRetrying(t, a.smtp, watch.Address, "From: <s@sender.test>\r\nSubject: before the switch\r\n\r\nfirst\r\n")
	ws := startWSClient(t, b.http, watch)
	idle := startIMAPIdler(t, b.imap, watch)
	waited := startWaitClient(t, b.http, watch, "subject=after+the+switch&timeout=60s")
	waitMetric(t, b.http, "mayfly_http_waiters 1")

	// A reply whose delivery is in progress at the kill: the sink holds its answer to
	// DATA until the switch is over.
	var list struct {
		Messages []struct{ ID, Subject string }
	}
	getJSON(t, a.http, "/api/v1/inboxes/"+watch.Address+"/messages", watch.Token, &list)
	if status, body := postReply(t, a.http, watch, list.Messages[0].ID, `{"text":"queued before the kill"}`); status != http.StatusAccepted {
		t.Fatalf("reply before the kill: %d %v", status, body)
	}
	held := sink.nextData(t)

	ld := &smtpLoad{smtp: a.smtp, senders: senders, stopc: make(chan struct{}), stats: make([]senderStats, len(senders))}
	for i := range senders {
		ld.wg.Add(1)
		go ld.send(i)
	}
	t.Cleanup(func() { ld.stop() })
	ld.waitFor(t, "three 250s per sender before the kill", func(s *senderStats) bool { return s.ok >= 3 })

	// Replication lags: the replica is stopped (SIGSTOP: its connection stays up, it
	// answers nothing) until every sender has had an answer to a message sent
	// meanwhile. Those to the stopped replica's primary must be 451: were the primary
	// to die now, the replica that takes over would not have the mail.
	replica := topo.replica(ctx, watch.Address)
	if err := syscall.Kill(replica.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(replica.PID, syscall.SIGCONT) })
	ld.setPhase(phaseLag)
	stopped := time.Now()
	for _, r := range waitLagAnswered(t, ld) {
		if onVictim[r.inbox.Address] && r.code != 451 {
			t.Errorf("%q, sent and answered while the replica was stopped: %d %v, want 451", r.subject, r.code, r.err)
		}
	}
	t.Logf("the replica %s was stopped for %v", replica.Addr, time.Since(stopped).Round(time.Millisecond))
	// Resumed before the kill: a replica silent for the node timeout would be marked
	// failed itself, and the failover would wait for it.
	syscall.Kill(replica.PID, syscall.SIGCONT)

	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ld.setPhase(phaseDown)
	killed := time.Now()
	old, switched, err := topo.kill(kctx, watch.Address)
	if err != nil {
		t.Fatalf("kill the primary: %v", err)
	}
	t.Logf("primary %s killed in %v", old, time.Since(killed).Round(time.Millisecond))
	if err := switched(kctx); err != nil {
		t.Fatalf("no failover after the kill of %s: %v", old, err)
	}
	t.Logf("the switch took %v after the kill", time.Since(killed).Round(time.Millisecond))
	ld.setPhase(phaseBack)
	ld.waitFor(t, "three 250s per sender after the switch", func(s *senderStats) bool { return s.okBack >= 3 })
	t.Logf("every sender had three 250s %v after the kill", time.Since(killed).Round(time.Millisecond))

	close(held)
	if m := sink.next(t); !strings.Contains(m.data, "queued before the kill") {
		t.Errorf("the sink's first message is not the reply from before the kill:\n%s", m.data)
	}

	sendRetrying(t, a.smtp, watch.Address, "From: <s@sender.test>\r\nSubject: after the switch\r\n\r\nsecond\r\n")
	ws.expect(t, "after the switch")
	if r := testlib.Next(t, waited.done, 30*time.Second, "the wait"); r.err != nil || len(r.messages) != 1 || r.messages[0].Subject != "after the switch" {
		t.Errorf("wait = %+v, want the message after the switch", r)
	}
	idle.expect(t, 2)
	if body := testlib.Next(t, hooks, 30*time.Second, "the webhook of the message after the switch"); !strings.Contains(body, "after the switch") {
		t.Errorf("webhook POST: %s, want the message after the switch", body)
	}

	if status, body := postReply(t, a.http, watch, list.Messages[0].ID, `{"text":"queued after the switch"}`); status != http.StatusAccepted {
		t.Fatalf("reply after the switch: %d %v", status, body)
	}
	if m := sink.next(t); !strings.Contains(m.data, "queued after the switch") {
		t.Errorf("the sink's second message is not the reply from after the switch:\n%s", m.data)
	}

	results := ld.stop()
	checkFailoverLoad(t, b.http, results, len(senders))
	ws.mu.Lock()
	t.Logf("WebSocket: %d reconnects; wait: %d retries after %v; IMAP: %d reconnects", ws.reconnects, waitRetries(waited), waitStatuses(waited), idle.reconnects.Load())
	ws.mu.Unlock()
}

// waitLagAnswered polls until every sender has an answer to a send begun in phaseLag,
// and returns those answers.
func waitLagAnswered(t *testing.T, ld *smtpLoad) []sendResult {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ld.mu.Lock()
		answered := map[string]bool{}
		var lag []sendResult
		for _, r := range ld.results {
			if r.phase == phaseLag {
				answered[r.inbox.Address] = true
				lag = append(lag, r)
			}
		}
		ld.mu.Unlock()
		if len(answered) == len(ld.senders) {
			return lag
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d senders answered within 10s of the replica's stop", len(answered), len(ld.senders))
		}
		time.Sleep(10 * time.Millisecond) // polling the senders' results, with a deadline
	}
}

// sendRetrying sends one message as a mail server does: again after a 451 (a replica
// slow to confirm on a busy machine), for up to 30s.
func sendRetrying(t *testing.T, smtpAddr, to, body string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := gosmtp.Dial(smtpAddr)
		if err == nil {
			err = c.SendMail("s@sender.test", []string{to}, strings.NewReader(body))
			c.Close()
		}
		var se *gosmtp.SMTPError
		if err == nil {
			return
		}
		if !errors.As(err, &se) || se.Code != 451 || time.Now().After(deadline) {
			t.Fatalf("send to %s: %v", to, err)
		}
		t.Logf("send to %s: %v; again", to, err)
		time.Sleep(100 * time.Millisecond) // a sender's retry after 451, with a deadline
	}
}

// pickInboxes creates n inboxes for the senders, and says which are on the primary of
// watch's slot: all of them with one primary, half of them on a Cluster.
func pickInboxes(t *testing.T, ctx context.Context, httpAddr string, masterOf func(context.Context, string) string, watch string, n int) ([]inboxJSON, map[string]bool) {
	t.Helper()
	onVictim := map[string]bool{}
	if masterOf == nil {
		var out []inboxJSON
		for range n {
			in := createInbox(t, httpAddr, "")
			out = append(out, in)
			onVictim[in.Address] = true
		}
		return out, onVictim
	}
	victim := masterOf(ctx, watch)
	var on, off []inboxJSON
	for tries := 0; len(on) < n/2 || len(off) < n-n/2; tries++ {
		if tries > 200 {
			t.Fatalf("200 inboxes and not %d on %s and %d elsewhere", n/2, victim, n-n/2)
		}
		in := createInbox(t, httpAddr, "")
		if masterOf(ctx, in.Address) == victim {
			if len(on) < n/2 {
				on = append(on, in)
				onVictim[in.Address] = true
			}
		} else if len(off) < n-n/2 {
			off = append(off, in)
		}
	}
	return append(on, off...), onVictim
}

// checkFailoverLoad checks the senders' answers against what B lists: every 250 stored
// once, everything else 451 4.3.0 (a refused message may be stored: its write reached
// the replica, the confirmation did not reach the node).
func checkFailoverLoad(t *testing.T, httpAddr string, results []sendResult, senders int) {
	t.Helper()
	stored := storedSubjects(t, httpAddr, results)
	var accepted, refused, storedRefused, lost int
	for _, s := range results {
		switch s.code {
		case 250:
			accepted++
			if stored[s.subject] != 1 {
				lost++
				t.Errorf("%q got 250 (phase %d) and is stored %d times, want once", s.subject, s.phase, stored[s.subject])
			}
		case 451:
			refused++
			var se *gosmtp.SMTPError
			if !errors.As(s.err, &se) || se.EnhancedCode != (gosmtp.EnhancedCode{4, 3, 0}) {
				t.Errorf("%q refused with %v, want 451 4.3.0", s.subject, s.err)
			}
			if stored[s.subject] > 0 {
				storedRefused++
			}
		default:
			t.Errorf("%q (phase %d): %v, want 250 or 451 4.3.0 within the sender's timeout", s.subject, s.phase, s.err)
		}
	}
	// Only a write in flight at the kill can land without its 250: the primary died
	// before the replica confirmed it, and before it could undo it.
	if storedRefused > senders {
		t.Errorf("%d messages refused with 451 are stored, more than the %d sends that can have been in flight at the kill", storedRefused, senders)
	}
	t.Logf("%d sends: %d accepted (%d lost), %d refused with 451 4.3.0 (%d of them stored anyway)", len(results), accepted, lost, refused, storedRefused)
}

// heldSink is a relay that holds its answer to each DATA until the test releases it:
// a delivery in progress for as long as the test wants.
type heldSink struct {
	addr string
	data chan chan struct{} // a DATA read, waiting for its release
	msgs chan relayed
}

func newHeldSink(t *testing.T) *heldSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &heldSink{addr: ln.Addr().String(), data: make(chan chan struct{}, 16), msgs: make(chan relayed, 16)}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &heldSession{sink: k}, nil
	}))
	srv.Domain = "relay.test"
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return k
}

// nextData waits for the next DATA and returns the channel that releases its answer.
func (k *heldSink) nextData(t *testing.T) chan struct{} {
	t.Helper()
	return testlib.Next(t, k.data, 30*time.Second, "a delivery at the relay")
}

// next returns the next message the sink answered 250, after its release.
func (k *heldSink) next(t *testing.T) relayed {
	t.Helper()
	return testlib.Next(t, k.msgs, 30*time.Second, "a message delivered to the relay")
}

type heldSession struct {
	sink *heldSink
	msg  relayed
}

func (s *heldSession) Mail(from string, _ *gosmtp.MailOptions) error { s.msg.from = from; return nil }
func (s *heldSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *heldSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = string(b)
	if strings.Contains(s.msg.data, "queued before the kill") {
		release := make(chan struct{})
		s.sink.data <- release
		<-release
	}
	s.sink.msgs <- s.msg
	return nil
}
func (s *heldSession) Reset()        { s.msg = relayed{} }
func (s *heldSession) Logout() error { return nil }

// wsClient is a WebSocket client as the web UI is: it reconnects when the server closes
// the socket, and lists the inbox after each reconnect for what it missed.
type wsClient struct {
	subjects   chan string
	mu         sync.Mutex
	conn       *websocket.Conn // the socket now, closed at the test's end
	reconnects int
}

func startWSClient(t *testing.T, httpAddr string, in inboxJSON) *wsClient {
	t.Helper()
	w := &wsClient{subjects: make(chan string, 64)}
	c := dialWS(t, httpAddr, in)
	w.conn = c
	waitMetric(t, httpAddr, "mayfly_http_websockets 1")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		w.mu.Lock()
		w.conn.Close()
		w.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c.SetReadDeadline(time.Now().Add(time.Minute))
			var ev struct {
				Type    string
				Message struct{ Subject string }
			}
			if err := c.ReadJSON(&ev); err == nil {
				if ev.Type == "message" {
					select {
					case w.subjects <- ev.Message.Subject:
					default: // the test reads only the one it waits for
					}
				}
				continue
			}
			c.Close()
			// Reconnect every 100ms until the node takes it, as the UI does (with more
			// patience), then list what came meanwhile.
			for {
				if ctx.Err() != nil {
					return
				}
				nc, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL(httpAddr, in), nil)
				if err == nil {
					c = nc
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond): // retrying a refused reconnect, as a client does
				}
			}
			w.mu.Lock()
			w.conn = c
			w.reconnects++
			w.mu.Unlock()
			if ctx.Err() != nil {
				c.Close()
				return
			}
			for _, s := range listSubjects(httpAddr, in) {
				select {
				case w.subjects <- s:
				default:
				}
			}
		}
	})
	return w
}

func (w *wsClient) expect(t *testing.T, subject string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-w.subjects:
			if s == subject {
				return
			}
		case <-deadline:
			t.Errorf("WebSocket client: no %q within 30s", subject)
			return
		}
	}
}

// listSubjects lists an inbox's subjects; nil when the node cannot answer.
func listSubjects(httpAddr string, in inboxJSON) []string {
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/v1/inboxes/"+in.Address+"/messages", nil)
	req.Header.Set("Authorization", "Bearer "+in.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var list struct {
		Messages []struct{ Subject string }
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil {
		return nil
	}
	var out []string
	for _, m := range list.Messages {
		out = append(out, m.Subject)
	}
	return out
}

// waitClient is a long-poll client: it opens the wait again when the node answers 503
// (its events were lost in the switch), until it has its message or an answer that is
// not "try again".
type waitClient struct {
	done     chan waitResult
	mu       sync.Mutex
	statuses []int
}

func startWaitClient(t *testing.T, httpAddr string, in inboxJSON, query string) *waitClient {
	t.Helper()
	w := &waitClient{done: make(chan waitResult, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			r := <-startWait(httpAddr, in, query)
			if r.status != http.StatusServiceUnavailable || ctx.Err() != nil {
				w.done <- r
				return
			}
			w.mu.Lock()
			w.statuses = append(w.statuses, r.status)
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				w.done <- r
				return
			case <-time.After(100 * time.Millisecond): // retrying a 503, as a client does
			}
		}
	}()
	return w
}

func waitRetries(w *waitClient) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.statuses)
}

func waitStatuses(w *waitClient) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.statuses...)
}

// imapIdler is an IMAP client in IDLE on INBOX that logs in again when the server ends
// its session, and reports every message count it learns.
type imapIdler struct {
	counts     chan uint32
	reconnects atomic.Int32
}

func startIMAPIdler(t *testing.T, addr string, in inboxJSON) *imapIdler {
	t.Helper()
	d := &imapIdler{counts: make(chan uint32, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	session := func() (*imapclient.Client, error) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, err
		}
		c := imapclient.New(conn, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(m *imapclient.UnilateralDataMailbox) {
				if m.NumMessages != nil {
					select {
					case d.counts <- *m.NumMessages:
					default:
					}
				}
			},
		}})
		if err := c.Login(in.Address, in.Token).Wait(); err != nil {
			c.Close()
			return nil, err
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			c.Close()
			return nil, err
		}
		d.counts <- sel.NumMessages
		return c, nil
	}
	c, err := session()
	if err != nil {
		t.Fatalf("IMAP session: %v", err)
	}
	if n := <-d.counts; n != 1 {
		t.Fatalf("IMAP SELECT: %d messages, want 1", n)
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			idle, err := c.Idle()
			if err == nil {
				// In IDLE until the server ends the session, or the test ends.
				done := make(chan error, 1)
				go func() { done <- idle.Wait() }()
				select {
				case <-ctx.Done():
					idle.Close()
					c.Close()
					return
				case <-done:
				}
			}
			c.Close()
			for ctx.Err() == nil {
				if c, err = session(); err == nil {
					d.reconnects.Add(1)
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond): // retrying a refused login, as a client does
				}
			}
		}
		if c != nil {
			c.Close()
		}
	})
	return d
}

// expect waits until the session has seen n messages in INBOX.
func (d *imapIdler) expect(t *testing.T, n uint32) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case got := <-d.counts:
			if got >= n {
				return
			}
		case <-deadline:
			t.Errorf("IMAP IDLE client: not %d messages within 30s", n)
			return
		}
	}
}
