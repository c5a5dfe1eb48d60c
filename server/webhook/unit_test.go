package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// TestSignVector checks Sign against the example of the Standard Webhooks
// specification (and Svix's documentation), computed by an implementation not ours.
func TestSignVector(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	ts := time.Unix(1614265330, 0)
	got, err := Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
	if err := Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,bogus "+got, []byte(`{"test": 2432232314}`), ts.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("Verify = %v, want nil", err)
	}
	for _, tc := range []struct {
		name, id, ts, body string
		now                time.Time
	}{
		{"other body", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", `{"test": 2432232315}`, ts},
		{"other id", "msg_x", "1614265330", `{"test": 2432232314}`, ts},
		{"replayed late", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", `{"test": 2432232314}`, ts.Add(time.Hour)},
		{"bad timestamp", "msg_p5jXN8AQM9LWM0D4loKWxJek", "x", `{"test": 2432232314}`, ts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(secret, tc.id, tc.ts, got, []byte(tc.body), tc.now, 5*time.Minute); !errors.Is(err, ErrSignature) {
				t.Errorf("Verify = %v, want ErrSignature", err)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	s := newSecret()
	key, err := secretKey(s)
	if !strings.HasPrefix(s, "whsec_") || err != nil || len(key) != 24 {
		t.Errorf("newSecret() = %q (key %d bytes, %v), want whsec_ and 24 bytes", s, len(key), err)
	}
	if newSecret() == s {
		t.Error("newSecret gave the same secret twice")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Unix(1e9, 0)
	var total time.Duration
	for n := 1; n <= len(DefaultSchedule); n++ {
		for range 200 {
			next, ok := retryAfter(DefaultSchedule, n, now)
			base := DefaultSchedule[n-1]
			if d := next.Sub(now); !ok || d < base/2 || d >= base*3/2 {
				t.Fatalf("retryAfter(%d) = %v, %v, want within [%v, %v)", n, d, ok, base/2, base*3/2)
			}
		}
		total += DefaultSchedule[n-1]
	}
	if _, ok := retryAfter(DefaultSchedule, len(DefaultSchedule)+1, now); ok {
		t.Error("retryAfter past the schedule = true, want the delivery failed")
	}
	if total < 20*time.Hour || total > 30*time.Hour {
		t.Errorf("the schedule spans %v, want about a day", total)
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://hooks.example.com/in", false, true},
		{"http://93.184.215.14:8080/x?y=1", false, true},
		{"http://[2606:4700::1]/", false, true},
		{"http://127.0.0.1:9/", false, false},
		{"http://127.0.0.1:9/", true, true},
		{"http://10.1.2.3/", false, false},
		{"http://192.168.0.1/", false, false},
		{"http://169.254.169.254/latest/meta-data", false, false},
		{"http://100.64.0.1/", false, false},
		{"http://[::1]/", false, false},
		{"http://[::ffff:127.0.0.1]/", false, false},
		{"http://[fd00::1]/", false, false},
		{"http://0.0.0.0/", false, false},
		{"http://localhost:8080/", false, false},
		{"http://api.localhost./", false, false},
		{"ftp://example.com/", false, false},
		{"javascript:alert(1)", false, false},
		{"example.com/hook", false, false},
		{"https:///path", false, false},
		{"https://example.com/#frag", false, false},
		{"https://example.com/" + strings.Repeat("a", maxURL), false, false},
	} {
		err := CheckURL(tc.url, tc.allowPrivate)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, %v) = %v, want ok %v", tc.url, tc.allowPrivate, err, tc.ok)
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Status != 400) {
			t.Errorf("CheckURL(%q) = %#v, want a 400 *Error", tc.url, err)
		}
		if err != nil && strings.Contains(tc.url, "127.0.0.1") && !strings.Contains(err.Error(), "MAYFLY_OUTBOUND_ALLOW_PRIVATE") {
			t.Errorf("CheckURL(%q) = %v, want the setting named", tc.url, err)
		}
	}
}

func TestCheck(t *testing.T) {
	s := New(Options{}, nil, discard())
	for _, tc := range []struct {
		name string
		w    storage.Webhook
		ok   bool
	}{
		{"received", storage.Webhook{URL: "https://x.example/", Events: []string{"message.received"}}, true},
		{"all, twice", storage.Webhook{URL: "https://x.example/", Events: []string{"message.received", "message.deleted", "message.expired", "message.deleted"}}, true},
		{"filters", storage.Webhook{URL: "https://x.example/", Events: []string{"message.received"}, Filters: map[string]string{"from": "Shop", "dkim": "pass"}}, true},
		{"no events", storage.Webhook{URL: "https://x.example/"}, false},
		{"unknown event", storage.Webhook{URL: "https://x.example/", Events: []string{"message.read"}}, false},
		{"test event", storage.Webhook{URL: "https://x.example/", Events: []string{"webhook.test"}}, false},
		{"unknown filter", storage.Webhook{URL: "https://x.example/", Events: []string{"message.received"}, Filters: map[string]string{"body": "x"}}, false},
		{"long filter", storage.Webhook{URL: "https://x.example/", Events: []string{"message.received"}, Filters: map[string]string{"subject": strings.Repeat("x", 300)}}, false},
		{"filters without received", storage.Webhook{URL: "https://x.example/", Events: []string{"message.deleted"}, Filters: map[string]string{"tag": "x"}}, false},
		{"bad url", storage.Webhook{URL: "file:///etc/passwd", Events: []string{"message.received"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w
			err := s.check(&w)
			if (err == nil) != tc.ok {
				t.Fatalf("check(%+v) = %v, want ok %v", tc.w, err, tc.ok)
			}
			if err == nil && len(w.Events) > 3 {
				t.Errorf("check kept events %v, want each once", w.Events)
			}
		})
	}
}

func TestEventType(t *testing.T) {
	m := &storage.Message{ID: "1"}
	for _, tc := range []struct {
		name string
		e    storage.Event
		want string
	}{
		{"received", storage.Event{Type: storage.EventAdded, Message: m}, EventReceived},
		{"sent copy", storage.Event{Type: storage.EventAdded, Message: &storage.Message{Sent: true}}, ""},
		{"deleted", storage.Event{Type: storage.EventDeleted}, EventDeleted},
		{"expired", storage.Event{Type: storage.EventExpired}, EventExpired},
		{"flags", storage.Event{Type: storage.EventFlags}, ""},
	} {
		if got := eventType(&tc.e); got != tc.want {
			t.Errorf("%s: eventType = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestDeliveryID(t *testing.T) {
	a := deliveryID(EventReceived, "a@x.test", "m1")
	if a != deliveryID(EventReceived, "a@x.test", "m1") || !strings.HasPrefix(a, "msg_") {
		t.Errorf("deliveryID = %q, want msg_ and the same for the same event", a)
	}
	for _, other := range []string{deliveryID(EventDeleted, "a@x.test", "m1"), deliveryID(EventReceived, "b@x.test", "m1"), deliveryID(EventReceived, "a@x.test", "m2")} {
		if other == a {
			t.Errorf("deliveryID gave %q to two events", a)
		}
	}
}

func TestMatches(t *testing.T) {
	m := &storage.Message{From: "Shop <no-reply@shop.test>", Subject: "Your code", Tag: "signup", Auth: storage.AuthResults{DKIM: "pass"}}
	for _, tc := range []struct {
		name  string
		w     storage.Webhook
		typ   string
		inbox string
		want  bool
	}{
		{"global", storage.Webhook{Events: Events}, EventReceived, "a@x.test", true},
		{"its inbox", storage.Webhook{Events: Events, Inbox: "a@x.test"}, EventReceived, "a@x.test", true},
		{"other inbox", storage.Webhook{Events: Events, Inbox: "b@x.test"}, EventReceived, "a@x.test", false},
		{"not subscribed", storage.Webhook{Events: []string{EventDeleted}}, EventReceived, "a@x.test", false},
		{"disabled", storage.Webhook{Events: Events, Disabled: "failing"}, EventReceived, "a@x.test", false},
		{"filters match", storage.Webhook{Events: Events, Filters: map[string]string{"from": "SHOP.test", "subject": "code", "tag": "SignUp", "dkim": "pass"}}, EventReceived, "a@x.test", true},
		{"subject differs", storage.Webhook{Events: Events, Filters: map[string]string{"subject": "invoice"}}, EventReceived, "a@x.test", false},
		{"before its creation", storage.Webhook{Events: Events, Created: time.Now().Add(time.Hour)}, EventReceived, "a@x.test", false},
		{"verdict differs", storage.Webhook{Events: Events, Filters: map[string]string{"spf": "pass"}}, EventReceived, "a@x.test", false},
	} {
		h := hook{Webhook: tc.w, filter: filterOf(tc.w.Filters)}
		if got := h.matches(tc.typ, tc.inbox, m, time.Now()); got != tc.want {
			t.Errorf("%s: matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}
