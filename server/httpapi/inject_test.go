package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// fakeInjector stores through the test's store, as the receiver would, or refuses.
type fakeInjector struct {
	st                fullStore
	refuse            error
	address, remoteIP string
}

func (f *fakeInjector) Inject(ctx context.Context, address, remoteIP string, raw []byte) (*storage.Message, error) {
	if f.refuse != nil {
		return nil, f.refuse
	}
	f.address, f.remoteIP = address, remoteIP
	inbox, tag, _ := storage.ParseAddress(address)
	now := time.Now()
	m := &storage.Message{Inbox: inbox, Tag: tag, Subject: headerValue(string(raw), "Subject"), Received: now, Expires: now.Add(time.Hour), Raw: raw, Size: int64(len(raw))}
	return m, f.st.Put(ctx, m)
}

// TestInjectRoute: the route's own checks, before and after the injector: media types,
// the body's bounds (past the 64 KiB of other bodies, up to MaxMessageSize, with or
// without a Content-Length), the address as asked, the injector's refusals as they are.
func TestInjectRoute(t *testing.T) {
	st := stores(t)["memory"](t)
	fake := &fakeInjector{st: st}
	e := newEnv(t, st, Options{Injector: fake, MaxMessageSize: 100 << 10})
	box := e.create("")
	local, domain, _ := strings.Cut(box.Address, "@")
	path := "/api/v1/inboxes/" + box.Address + "/messages"
	post := func(contentType string, body io.Reader) response {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		return e.doWith("POST", path, box.Token, h, body)
	}
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", 90<<10)
	for _, tt := range []struct {
		name, contentType string
		body              io.Reader
		want              int
		say               string
	}{
		{"rfc822", "message/rfc822", strings.NewReader("Subject: one\r\n\r\nx\r\n"), 201, `"subject":"one"`},
		{"octet-stream with parameters", "application/octet-stream; charset=binary", strings.NewReader("Subject: two\r\n\r\nx\r\n"), 201, `"subject":"two"`},
		{"text/plain", "text/plain; charset=utf-8", strings.NewReader("Subject: three\r\n\r\nx\r\n"), 201, `"subject":"three"`},
		{"past 64 KiB", "message/rfc822", strings.NewReader(big), 201, `"subject":"big"`},
		{"json", "application/json", strings.NewReader(`{}`), 415, "unsupported_media_type"},
		{"multipart form", "multipart/form-data; boundary=x", strings.NewReader("--x--"), 415, "message/rfc822"},
		{"empty", "message/rfc822", strings.NewReader(""), 400, "empty body"},
		{"over MaxMessageSize", "message/rfc822", strings.NewReader(big + strings.Repeat("y", 20<<10)), 413, "MAYFLY_MAX_MESSAGE_SIZE"},
		// No Content-Length: the limit holds on what is read.
		{"over MaxMessageSize, chunked", "message/rfc822", io.MultiReader(strings.NewReader(big), bytes.NewReader(make([]byte, 20<<10))), 413, "MAYFLY_MAX_MESSAGE_SIZE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.contentType, tt.body)
			if r.status != tt.want || !strings.Contains(string(r.body), tt.say) {
				t.Errorf("POST %s = %d %.300s, want %d with %q", tt.name, r.status, r.body, tt.want, tt.say)
			}
		})
	}
	if fake.remoteIP != "127.0.0.1" {
		t.Errorf("injector told the client %q, want 127.0.0.1", fake.remoteIP)
	}
	// A tag, even %-escaped as browsers do, reaches the injector as asked.
	if r := e.do("POST", "/api/v1/inboxes/"+local+"%2Bsignup%40"+domain+"/messages", box.Token, strings.NewReader("Subject: tagged\r\n\r\nx\r\n")); r.status != 201 || fake.address != local+"+signup@"+domain || !strings.Contains(string(r.body), `"tag":"signup"`) {
		t.Errorf("tagged inject = %d %s, injector got %q", r.status, r.body, fake.address)
	}
	if r := e.do("POST", path, "", strings.NewReader("Subject: x\r\n\r\nx\r\n")); r.status != http.StatusUnauthorized {
		t.Errorf("inject without a token = %d, want 401", r.status)
	}
	fake.refuse = Refusal(http.StatusTooManyRequests, "receive_rate_limited", "box receives too much mail (MAYFLY_RECEIVE_RATE), try later")
	if r := post("message/rfc822", strings.NewReader("Subject: x\r\n\r\nx\r\n")); r.status != 429 || !strings.Contains(string(r.body), "MAYFLY_RECEIVE_RATE") {
		t.Errorf("refused inject = %d %s, want the injector's 429", r.status, r.body)
	}

	none := newEnv(t, st, Options{})
	if r := none.do("POST", path, box.Token, strings.NewReader("Subject: x\r\n\r\nx\r\n")); r.status != http.StatusNotImplemented {
		t.Errorf("inject without an injector = %d %s, want 501", r.status, r.body)
	}
}
