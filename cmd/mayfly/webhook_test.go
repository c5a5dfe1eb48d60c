package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/server/webhook"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// hookRequest is a webhook delivery a test receiver got.
type hookRequest struct {
	id, timestamp, signature string
	body                     []byte
}

// hookReceiver is a webhook endpoint on loopback that answers 200 and hands each
// request to the test.
func hookReceiver(t *testing.T) (url string, got <-chan hookRequest) {
	ch := make(chan hookRequest, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- hookRequest{r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/hook", ch
}

// apiDo makes an API request with a bearer token and decodes the JSON answer into v.
func apiDo(t *testing.T, method, url, token, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s %s = %d %s: %v", method, url, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// TestWebhooks runs the whole service (issue 18): mail received over SMTP is POSTed to
// an inbox's webhook, signed, with its code; the API shows the delivery log, sends a
// test event and replays a delivery; a node without -outbound-allow-private refuses a
// loopback URL, naming the setting.
func TestWebhooks(t *testing.T) {
	for name, flags := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, append([]string{"-outbound-allow-private", "true"}, flags...)...)
			api := "http://" + n.http + "/api/v1/webhooks"
			in := createInbox(t, n.http, "")
			url, got := hookReceiver(t)
			var hook struct {
				ID, Secret string
				Inbox      *string
			}
			body := `{"url": "` + url + `", "events": ["message.received"], "inbox": "` + in.Address + `", "filters": {"subject": "verification"}}`
			if code := apiDo(t, "POST", api, in.Token, body, &hook); code != http.StatusCreated || !strings.HasPrefix(hook.Secret, "whsec_") || hook.Inbox == nil || *hook.Inbox != in.Address {
				t.Fatalf("POST /api/v1/webhooks = %d %+v", code, hook)
			}

			n.send(t, in.Address, "Subject: Hello\r\n\r\nnot this one\r\n")
			n.send(t, in.Address, "Subject: Your verification code\r\n\r\nYour verification code is 482917.\r\n")
			r := testlib.Next(t, got, 30*time.Second, "the webhook's delivery")
			if err := webhook.Verify(hook.Secret, r.id, r.timestamp, r.signature, r.body, time.Now(), 5*time.Minute); err != nil {
				t.Errorf("Verify = %v", err)
			}
			var p struct {
				Type string
				Data struct {
					Inbox   string
					Message struct {
						Subject string
						Codes   []string
						Auth    map[string]string
					}
				}
			}
			if err := json.Unmarshal(r.body, &p); err != nil || p.Type != "message.received" || p.Data.Inbox != in.Address ||
				p.Data.Message.Subject != "Your verification code" || !slices.Contains(p.Data.Message.Codes, "482917") || p.Data.Message.Auth["spf"] == "" {
				t.Errorf("payload = %s (%v)", r.body, err)
			}

			var log struct {
				Deliveries []struct {
					ID, State string
					Attempts  []struct{ Status int }
				}
			}
			testlib.WaitFor(t, "the delivery logged", func() bool {
				apiDo(t, "GET", api+"/"+hook.ID+"/deliveries", in.Token, "", &log)
				return len(log.Deliveries) == 1 && log.Deliveries[0].State == "delivered"
			})
			if d := log.Deliveries[0]; d.ID != r.id || len(d.Attempts) != 1 || d.Attempts[0].Status != 200 {
				t.Errorf("delivery log = %+v, want %s delivered at the first attempt", d, r.id)
			}

			if code := apiDo(t, "POST", api+"/"+hook.ID+"/test", in.Token, "", nil); code != http.StatusAccepted {
				t.Errorf("POST .../test = %d, want 202", code)
			}
			if r := testlib.Next(t, got, 30*time.Second, "the test event"); !strings.Contains(string(r.body), `"type":"webhook.test"`) {
				t.Errorf("test event = %s", r.body)
			}
			if code := apiDo(t, "POST", api+"/"+hook.ID+"/deliveries/"+r.id+"/retry", in.Token, "", nil); code != http.StatusAccepted {
				t.Errorf("POST .../retry = %d, want 202", code)
			}
			if again := testlib.Next(t, got, 30*time.Second, "the replay"); again.id != r.id || string(again.body) != string(r.body) {
				t.Errorf("replay = %s %s, want %s and the same body", again.id, again.body, r.id)
			}
			if code := apiDo(t, "GET", api+"/"+hook.ID, createInbox(t, n.http, "").Token, "", nil); code != http.StatusForbidden {
				t.Errorf("GET a webhook with another inbox's token = %d, want 403", code)
			}
			waitMetric(t, n.http, `mayfly_webhook_attempts_total{result="delivered"} 3`)
			if code := apiDo(t, "DELETE", api+"/"+hook.ID, in.Token, "", nil); code != http.StatusNoContent {
				t.Errorf("DELETE = %d, want 204", code)
			}
		})
	}
}

// TestWebhookPrivateRefused: without -outbound-allow-private, a webhook to a loopback
// address is refused at creation with a 400 that names the setting.
func TestWebhookPrivateRefused(t *testing.T) {
	n := startNode(t)
	in := createInbox(t, n.http, "")
	var e struct {
		Error struct{ Code, Message string }
	}
	body := `{"url": "http://127.0.0.1:9/hook", "events": ["message.received"], "inbox": "` + in.Address + `"}`
	code := apiDo(t, "POST", "http://"+n.http+"/api/v1/webhooks", in.Token, body, &e)
	if code != http.StatusBadRequest || e.Error.Code != "bad_webhook" || !strings.Contains(e.Error.Message, "MAYFLY_OUTBOUND_ALLOW_PRIVATE") {
		t.Errorf("POST /api/v1/webhooks to 127.0.0.1 = %d %+v, want 400 bad_webhook naming MAYFLY_OUTBOUND_ALLOW_PRIVATE", code, e)
	}
}

// TestWebhookNodeKilledMidDelivery runs two real mayfly processes on one Redis (issue
// 18): node A claims a delivery and POSTs it to a receiver that holds the request open,
// A is killed with SIGKILL mid-delivery, and node B, up all along, makes the delivery
// once A's lease has run out (2 × -webhook-timeout + 10s), with the same webhook-id,
// and its delivery log shows it delivered.
func TestWebhookNodeKilledMidDelivery(t *testing.T) {
	// Not on Sentinel, one Redis to the store: the lease makes the test 15s long.
	storetest.ForRedis(t, []string{"single", "cluster"}, func(t *testing.T, _ string) { testWebhookNodeKilledMidDelivery(t) })
}

func testWebhookNodeKilledMidDelivery(t *testing.T) {
	redis := redisFlags(t)
	const timeout = 2 * time.Second
	const lease = 2*timeout + 10*time.Second // server/webhook's, from -webhook-timeout
	flags := append([]string{"-outbound-allow-private", "true", "-webhook-timeout", timeout.String()}, redis...)

	type request struct {
		id string
		at time.Time
	}
	got := make(chan request, 16)
	release := make(chan struct{})
	var first sync.Once
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		got <- request{r.Header.Get("webhook-id"), time.Now()}
		hold := false
		first.Do(func() { hold = true })
		if hold {
			// Node A is mid-delivery until it dies (its connection closes) or the test ends.
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { close(release); srv.Close() })

	a := startProcess(t, flags...)
	in := createInbox(t, a.http, "")
	var hook struct{ ID string }
	body := `{"url": "http://` + ln.Addr().String() + `/hook", "events": ["message.received"], "inbox": "` + in.Address + `"}`
	if code := apiDo(t, "POST", "http://"+a.http+"/api/v1/webhooks", in.Token, body, &hook); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/webhooks = %d", code)
	}
	(&node{smtp: a.smtp}).send(t, in.Address, signupMail)
	held := testlib.Next(t, got, 30*time.Second, "node A's POST")

	// B is up while A holds the lease: it must not take the delivery before the lease ends.
	b := startProcess(t, flags...)
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.stopOnce.Do(func() {}) // killed, not to be stopped
	if err := <-a.exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("node A after SIGKILL: %v, want killed", err)
	}

	// Within the lease -webhook-timeout gives, with room for B's poll of the queue.
	again := testlib.Next(t, got, lease+10*time.Second, "node B's POST after node A's lease")
	if again.id != held.id {
		t.Errorf("node B POSTed webhook-id %s, want node A's %s", again.id, held.id)
	}
	if d := again.at.Sub(held.at); d < lease-time.Second {
		t.Errorf("node B POSTed %v after node A's claim, within its lease of %v", d, lease)
	}
	var log struct {
		Deliveries []struct {
			ID, State string
			Attempts  []struct{ Status int }
		}
	}
	testlib.WaitFor(t, "the delivery logged by node B", func() bool {
		apiDo(t, "GET", "http://"+b.http+"/api/v1/webhooks/"+hook.ID+"/deliveries", in.Token, "", &log)
		return len(log.Deliveries) == 1 && log.Deliveries[0].State == "delivered"
	})
	// Node A died before it recorded its attempt: the log has B's alone.
	if d := log.Deliveries[0]; d.ID != held.id || len(d.Attempts) != 1 || d.Attempts[0].Status != http.StatusNoContent {
		t.Errorf("delivery log = %+v, want %s delivered by node B's attempt (204)", d, held.id)
	}
	select {
	case r := <-got:
		t.Errorf("a third POST (%s): want node A's, held, and node B's alone", r.id)
	default:
	}
}
