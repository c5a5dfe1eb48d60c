package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/server/webhook"
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
