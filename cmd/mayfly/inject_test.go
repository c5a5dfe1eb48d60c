package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/gorilla/websocket"

	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
)

// inject posts raw to the inbox's POST .../messages as contentType.
func inject(t *testing.T, httpAddr string, in inboxJSON, contentType string, raw []byte) (int, []byte) {
	t.Helper()
	status, body, _ := injectHeader(t, httpAddr, in, contentType, raw)
	return status, body
}

// injectHeader is inject with the answer's header.
func injectHeader(t *testing.T, httpAddr string, in inboxJSON, contentType string, raw []byte) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/api/v1/inboxes/"+in.Address+"/messages", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+in.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// TestInjectThroughReceiver: a message POSTed to .../messages, on both stores, reaches
// a wait that started before it, a WebSocket's events, the listing, the raw source with our trace and
// Authentication-Results fields saying it came over HTTP, and IMAP.
func TestInjectThroughReceiver(t *testing.T) {
	for name, flags := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, flags...)
			in := createInbox(t, n.http, "")
			type waited struct {
				status int
				body   []byte
			}
			done := make(chan waited, 1)
			go func() {
				req, _ := http.NewRequest("GET", "http://"+n.http+"/api/v1/inboxes/"+in.Address+"/wait?subject=injected&timeout=20s", nil)
				req.Header.Set("Authorization", "Bearer "+in.Token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- waited{0, []byte(err.Error())}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				done <- waited{resp.StatusCode, b}
			}()
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+n.http+"/api/v1/inboxes/"+in.Address+"/ws?token="+in.Token, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			waitMetric(t, n.http, "mayfly_http_waiters 1")
			waitMetric(t, n.http, "mayfly_http_websockets 1")

			raw := "From: App <app@shop.test>\nTo: " + in.Address + "\nSubject: Injected code\n\nYour code is 482917\n"
			status, body := inject(t, n.http, in, "message/rfc822", []byte(raw))
			if status != http.StatusCreated {
				t.Fatalf("inject = %d %s, want 201", status, body)
			}
			var sum struct {
				ID, From, Subject string
				UID               uint32
				Auth              struct{ SPF, DKIM, DMARC string }
				Envelope          struct {
					RemoteIP string `json:"remote_ip"`
				}
			}
			if err := json.Unmarshal(body, &sum); err != nil || sum.ID == "" || sum.UID != 1 || sum.Subject != "Injected code" ||
				sum.From != "App <app@shop.test>" || sum.Auth.SPF != "none" || sum.Auth.DMARC != "none" || sum.Envelope.RemoteIP != "127.0.0.1" {
				t.Errorf("inject answer = %+v (%v), want the summary of the message", sum, err)
			}

			if typ, subject, err := nextEvent(ws); err != nil || typ != "message" || subject != "Injected code" {
				t.Errorf("WebSocket event = %s %q, %v; want the injected message", typ, subject, err)
			}
			w := <-done
			var got struct {
				Messages []struct {
					ID    string
					Codes []string
				}
			}
			if json.Unmarshal(w.body, &got); w.status != 200 || len(got.Messages) != 1 || got.Messages[0].ID != sum.ID || got.Messages[0].Codes[0] != "482917" {
				t.Errorf("wait started before the inject = %d %s, want the message with its code", w.status, w.body)
			}

			src := get(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages/"+sum.ID+"/raw", in.Token)
			if !strings.HasPrefix(src, "Authentication-Results: mx.serve.test;") || !strings.Contains(src, "spf=none (injected over HTTP)") ||
				!strings.Contains(src, "dmarc=none header.from=shop.test (injected over HTTP)") ||
				!strings.Contains(src, "Received: from HTTP client ([127.0.0.1])\r\n\tby mx.serve.test (Mayfly) with HTTP id ") ||
				!strings.Contains(src, "\nSubject: Injected code\n") {
				t.Errorf("raw source:\n%s\nwant our Authentication-Results and Received saying HTTP, then the message as posted", src)
			}

			v := readIMAP(t, n.imap, in)
			if v.subject != "Injected code" {
				t.Errorf("IMAP subject = %q, want the injected message's", v.subject)
			}

			// A message may be as large as the receiver takes, past the 64 KiB of every
			// other request body.
			big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 20000)
			if status, body := inject(t, n.http, in, "message/rfc822", []byte(big)); status != http.StatusCreated {
				t.Errorf("inject of %d bytes = %d %.300s, want 201", len(big), status, body)
			}
		})
	}
}

// TestInjectRefusals: what the route refuses, and a table of bad bodies that are stored
// or refused, never a panic, the server answering after each.
func TestInjectRefusals(t *testing.T) {
	n := startNode(t, "-max-message-size", "4096", "-receive-rate", "12/h")
	in := createInbox(t, n.http, "")
	for _, tt := range []struct {
		name, contentType string
		body              []byte
		want              int
		say               string
	}{
		{"json", "application/json", []byte(`{"raw": "x"}`), 415, "message/rfc822"},
		{"form", "application/x-www-form-urlencoded", []byte("a=b"), 415, "message/rfc822"},
		{"bad media type", "message/", []byte("Subject: x\r\n\r\nx\r\n"), 415, "message/rfc822"},
		{"empty", "message/rfc822", nil, 400, "empty body"},
		{"too large", "message/rfc822", append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("x"), 5000)...), 413, "MAYFLY_MAX_MESSAGE_SIZE"},
		{"no header", "text/plain", []byte("just a line of text\n"), 201, ""},
		{"binary", "application/octet-stream", []byte("\x00\xff\xfe\x01\r\n\r\n\x00\x00\x80"), 201, ""},
		{"huge header line", "message/rfc822", []byte("Subject: " + strings.Repeat("a", 4000) + "\r\n\r\nx\r\n"), 201, ""},
		{"indented start", "", []byte(" folded\r\n\tmore\r\n\r\nbody\r\n"), 201, ""},
		{"no content type", "", []byte("Subject: plain\r\n\r\nbody\r\n"), 201, ""},
		{"bare CRs", "message/rfc822", []byte("Subject: a\rb\r\r\rbody\r"), 201, ""},
		{"header only", "message/rfc822", []byte("Subject: only a header"), 201, ""},
		{"boundary soup", "message/rfc822", []byte("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n--\r\n"), 201, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := inject(t, n.http, in, tt.contentType, tt.body)
			if status != tt.want || !strings.Contains(string(body), tt.say) {
				t.Errorf("inject %s = %d %s, want %d saying %q", tt.name, status, body, tt.want, tt.say)
			}
		})
	}
	// The inbox has had 8 of its 12; the receive rate is shared with SMTP.
	for i := range 4 {
		if status, body := inject(t, n.http, in, "message/rfc822", []byte("Subject: more\r\n\r\nx\r\n")); status != 201 {
			t.Fatalf("inject %d = %d %s", i, status, body)
		}
	}
	status, body, header := injectHeader(t, n.http, in, "message/rfc822", []byte("Subject: one too many\r\n\r\nx\r\n"))
	if status != http.StatusTooManyRequests || !strings.Contains(string(body), "MAYFLY_RECEIVE_RATE") || !strings.Contains(string(body), "receive_rate_limited") {
		t.Errorf("inject past the receive rate = %d %s, want 429 naming MAYFLY_RECEIVE_RATE", status, body)
	}
	if after, err := strconv.Atoi(header.Get("Retry-After")); err != nil || after < 1 {
		t.Errorf("inject past the receive rate: Retry-After %q, want seconds until the rate lets one more in", header.Get("Retry-After"))
	}
	// Another token's inbox is not opened by this one.
	other := createInbox(t, n.http, "")
	other.Token = in.Token
	if status, body := inject(t, n.http, other, "message/rfc822", []byte("Subject: x\r\n\r\nx\r\n")); status != http.StatusForbidden {
		t.Errorf("inject with another inbox's token = %d %s, want 403", status, body)
	}
}

// TestInjectVerifiesDKIM: an application's signed mail, injected, reads dkim=pass from
// its content alone, and the same mail changed reads dkim=fail.
func TestInjectVerifiesDKIM(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := dnstest.TXTServer(t, map[string]string{
		"ed._domainkey.shop.test.": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub),
		"_dmarc.shop.test.":        "v=DMARC1; p=reject",
	})
	n := startNode(t, "-dns", dnsAddr)
	var signed bytes.Buffer
	mail := "From: Shop <noreply@shop.test>\r\nSubject: Welcome\r\n\r\nWelcome aboard.\r\n"
	if err := dkim.Sign(&signed, strings.NewReader(mail), &dkim.SignOptions{Domain: "shop.test", Selector: "ed", Signer: key}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, body, dkim string }{
		{"signed", signed.String(), "pass"},
		{"changed", strings.Replace(signed.String(), "aboard", "abroad", 1), "fail"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := createInbox(t, n.http, "")
			status, body := inject(t, n.http, in, "message/rfc822", []byte(tt.body))
			var sum struct {
				Auth struct{ SPF, DKIM, DMARC string }
			}
			if json.Unmarshal(body, &sum); status != 201 || sum.Auth.DKIM != tt.dkim || sum.Auth.SPF != "none" || sum.Auth.DMARC != "none" {
				t.Errorf("inject = %d %s, want dkim=%s, spf and dmarc none", status, body, tt.dkim)
			}
		})
	}
}
