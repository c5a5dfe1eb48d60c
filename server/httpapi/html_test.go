package httpapi

import (
	"encoding/base64"
	"strings"
	"testing"
)

// newsletter has an inline cid: logo, a tracking pixel and a remote stylesheet.
var newsletter = "From: News <news@shop.test>\r\nTo: x@mayfly.test\r\nSubject: Our news\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=r\r\n\r\n" +
	"--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
	`<link rel="stylesheet" href="https://track.example/s.css"><p><img src="cid:logo@shop.test" alt="logo"></p>` +
	`<img src="https://track.example/pixel.gif?u=1" width="1" height="1">` + "\r\n" +
	"--r\r\nContent-Type: image/png\r\nContent-ID: <logo@shop.test>\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
	base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\nlogo")) + "\r\n--r--\r\n"

func TestHTMLBody(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, newStore(t), Options{})
			box := e.create("")
			m := e.deliver(box.Address, newsletter)
			path := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID

			var parsed messageJSON
			e.do("GET", path, box.Token, nil).json(t, &parsed)
			if parsed.RemoteContent != 2 {
				t.Errorf("remote_content = %d, want 2 (the pixel and the stylesheet)", parsed.RemoteContent)
			}

			r := e.do("GET", path+"/html?token="+box.Token, "", nil)
			if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Fatalf("html: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			csp := r.header.Get("Content-Security-Policy")
			for _, want := range []string{"sandbox allow-popups allow-popups-to-escape-sandbox;", "default-src 'none'", "img-src data:;"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			for _, never := range []string{"allow-scripts", "allow-same-origin", "script-src", "http:"} {
				if strings.Contains(csp, never) {
					t.Errorf("CSP %q has %q", csp, never)
				}
			}
			logo := "data:image/png;base64," + base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\nlogo"))
			if !strings.Contains(string(r.body), `src="`+logo+`"`) || strings.Contains(string(r.body), "cid:") {
				t.Errorf("cid: image not inlined as a data: URL:\n%s", r.body)
			}
			if !strings.HasPrefix(string(r.body), htmlPrologue) {
				t.Errorf("body does not start with the no-referrer, new-tab prologue:\n%s", r.body)
			}

			r = e.do("GET", path+"/html?images=1", box.Token, nil)
			if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src data: http: https:") || strings.Contains(csp, "allow-scripts") || !strings.HasPrefix(csp, "sandbox ") {
				t.Errorf("images=1: CSP %q, want remote images allowed and the sandbox kept", csp)
			}

			wantError(t, e.do("GET", path+"/html", "", nil), 401)
			plain := e.deliver(box.Address, "Subject: plain\r\n\r\nno html here\r\n")
			wantError(t, e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+plain.ID+"/html", box.Token, nil), 404)
		})
	}
}

func TestService(t *testing.T) {
	clients := []Endpoint{{Protocol: "IMAP", Host: "127.0.0.1", Port: 1143, Security: "STARTTLS"}}
	e := newEnv(t, stores(t)["memory"](t), Options{MailClients: clients})
	var got serviceJSON
	e.do("GET", "/api/v1/service", "", nil).json(t, &got)
	if strings.Join(got.Domains, ",") != "mayfly.test,other.test" || got.TTL != 3600 || got.MaxTTL != 86400 || len(got.MailClients) != 1 || got.MailClients[0] != clients[0] {
		t.Errorf("service = %+v", got)
	}
}
