package httpapi

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
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
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		path, parsed := e.readDelivered(t, box, newsletter)
		if parsed.RemoteContent != 2 {
			t.Errorf("remote_content = %d, want 2 (the pixel and the stylesheet)", parsed.RemoteContent)
		}

		r := e.do("GET", path+"/html?token="+box.Token, "", nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("html: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox;", "default-src 'none'", "img-src 'self' data:;"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		for _, never := range []string{"allow-same-origin", "unsafe-eval", "strict-dynamic", "http:"} {
			if strings.Contains(csp, never) {
				t.Errorf("CSP %q has %q", csp, never)
			}
		}
		// The one script allowed is the frame's own, by a nonce of this response only.
		nonce := checkFrameNonce(t, csp, string(r.body))
		if again := e.do("GET", path+"/html?token="+box.Token, "", nil); checkFrameNonce(t, again.header.Get("Content-Security-Policy"), string(again.body)) == nonce {
			t.Errorf("two responses share the nonce %q", nonce)
		}
		// The cid: image is a URL relative to the document's, carrying the frame's
		// key and not the inbox token; the key fetches the image, as an image.
		img := regexp.MustCompile(`src="(attachments/0\?k=[A-Za-z0-9_-]{22})"`).FindSubmatch(r.body)
		if img == nil || strings.Contains(string(r.body), "cid:") || strings.Contains(string(r.body), box.Token) {
			t.Fatalf("cid: image not referred to by a keyed URL, or the token in the document:\n%s", r.body)
		}
		imgURL := path + "/" + string(img[1])
		ir := e.do("GET", imgURL, "", nil)
		if ir.status != 200 || string(ir.body) != "\x89PNG\r\n\x1a\nlogo" || ir.header.Get("Content-Type") != "image/png" || ir.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s = %d %q %q %q, want the PNG, image/png, nosniff", imgURL, ir.status, ir.header.Get("Content-Type"), ir.header.Get("X-Content-Type-Options"), ir.body)
		}
		wantError(t, e.do("GET", path+"/attachments/0?k=AAAAAAAAAAAAAAAAAAAAAA", "", nil), 403)
		// The key opens this message's images only: not another message's, not the
		// inbox, not the raw message.
		other := e.deliver(box.Address, newsletter)
		wantError(t, e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+other.ID+"/"+string(img[1]), "", nil), 403)
		wantError(t, e.do("GET", path+"/raw?"+strings.SplitN(string(img[1]), "?", 2)[1], "", nil), 401)
		wantError(t, e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages?"+strings.SplitN(string(img[1]), "?", 2)[1], "", nil), 401)
		if !strings.HasPrefix(string(r.body), fmt.Sprintf(htmlPrologue, nonce)) {
			t.Errorf("body does not start with the no-referrer, new-tab prologue:\n%s", r.body)
		}

		r = e.do("GET", path+"/html?images=1", box.Token, nil)
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data: http: https:") || strings.Contains(csp, "allow-same-origin") || !strings.HasPrefix(csp, "sandbox ") {
			t.Errorf("images=1: CSP %q, want remote images allowed and the sandbox kept", csp)
		} else {
			checkFrameNonce(t, csp, string(r.body))
		}

		wantError(t, e.do("GET", path+"/html", "", nil), 401)
		plain := e.deliver(box.Address, "Subject: plain\r\n\r\nno html here\r\n")
		wantError(t, e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+plain.ID+"/html", box.Token, nil), 404)
	})
}

// checkFrameNonce checks that the policy csp allows scripts by one nonce only, of 128
// bits or more, that the document starts with the frame's script carrying it, and that
// nothing else in the document does; it returns the nonce.
func checkFrameNonce(t *testing.T, csp, doc string) string {
	t.Helper()
	m := regexp.MustCompile(`(?:^|; )script-src 'nonce-([A-Za-z0-9_-]+)';`).FindStringSubmatch(csp)
	if m == nil || len(m[1]) < 22 || strings.Count(csp, "script-src") != 1 || strings.Count(csp, "nonce-") != 1 {
		t.Fatalf("CSP %q: want script-src with one nonce of at least 128 bits and nothing else", csp)
	}
	if !strings.HasPrefix(doc, fmt.Sprintf(htmlPrologue, m[1])) || strings.Count(doc, m[1]) != 1 {
		t.Errorf("the document does not start with the frame's script under nonce %s, or has it again:\n%.300s", m[1], doc)
	}
	return m[1]
}

// TestHTMLKeyOpensInlineImagesOnly: a non-image part, or an image without a
// Content-ID, is not served by the frame's key, and a framed image declared with
// another type cannot come back as HTML.
func TestHTMLKeyOpensInlineImagesOnly(t *testing.T) {
	e := newEnv(t, stores(t)["memory"](t), Options{})
	box := e.create("")
	m := e.deliver(box.Address, "Subject: parts\r\nContent-Type: multipart/related; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/html\r\n\r\n<img src=cid:a><img src=cid:h>\r\n"+
		"--b\r\nContent-Type: image/gif\r\nContent-ID: <a>\r\n\r\nGIF89a\r\n"+
		"--b\r\nContent-Type: text/html\r\nContent-ID: <h>\r\n\r\n<script>alert(1)</script>\r\n"+
		"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\n\r\n%PDF\r\n--b--\r\n")
	path := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID
	doc := string(e.do("GET", path+"/html", box.Token, nil).body)
	if !strings.Contains(doc, "<img src=attachments/0?k=") || !strings.Contains(doc, "<img src=cid:h>") {
		t.Fatalf("document:\n%s", doc)
	}
	key := doc[strings.Index(doc, "?k=")+1 : strings.Index(doc, "><img src=cid:h")]
	if r := e.do("GET", path+"/attachments/0?"+key, "", nil); r.status != 200 || r.header.Get("Content-Type") != "image/gif" {
		t.Errorf("the inline image: %d %q", r.status, r.header.Get("Content-Type"))
	}
	for i := 1; i <= 2; i++ {
		wantError(t, e.do("GET", fmt.Sprintf("%s/attachments/%d?%s", path, i, key), "", nil), 404)
		if r := e.do("GET", fmt.Sprintf("%s/attachments/%d", path, i), box.Token, nil); r.status != 200 {
			t.Errorf("attachment %d with the token: %d", i, r.status)
		}
	}
}

// TestHTMLBounded: an image referred to 1000 times made a document of 1000 copies of
// it as data: URLs; now each reference is a short URL, and the document stays within
// a small multiple of the message however many references there are.
func TestHTMLBounded(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		image := base64.StdEncoding.EncodeToString(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 20<<10)...))
		raw := "Subject: logos\r\nContent-Type: multipart/related; boundary=r\r\n\r\n" +
			"--r\r\nContent-Type: text/html\r\n\r\n" + strings.Repeat(`<img src="cid:l">`, 1000) + "\r\n" +
			"--r\r\nContent-Type: image/png\r\nContent-ID: <l>\r\nContent-Transfer-Encoding: base64\r\n\r\n" + image + "\r\n--r--\r\n"
		m := e.deliver(box.Address, raw)
		r := e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+m.ID+"/html", box.Token, nil)
		if r.status != 200 {
			t.Fatalf("html: %d %s", r.status, r.body)
		}
		if n := strings.Count(string(r.body), `<img src="attachments/0?k=`); n != 1000 {
			t.Errorf("%d references by URL, want 1000", n)
		}
		if len(r.body) > 3*len(raw) {
			t.Errorf("document of %d bytes for a message of %d, want at most 3 times", len(r.body), len(raw))
		}
	})
}

// TestHTMLReferencesBounded: a body that is nothing but short references ("cid:a",
// 5 bytes, each made a URL of about 40) made a document eight times the message (a
// 9.7 MiB mail, a 74 MiB document, built and held by every read: 16 reads from one
// client took the process to 770 MiB). Now such a body keeps its references, the
// document stays within twice the body, and no document is held in the cache.
func TestHTMLReferencesBounded(t *testing.T) {
	e := newEnv(t, stores(t)["memory"](t), Options{})
	box := e.create("")
	body := strings.Repeat("cid:a", 200<<10) // 1 MiB
	m := e.deliver(box.Address, "Subject: refs\r\nContent-Type: multipart/related; boundary=r\r\n\r\n"+
		"--r\r\nContent-Type: text/html\r\n\r\n"+body+"\r\n"+
		"--r\r\nContent-Type: image/png\r\nContent-ID: <a>\r\n\r\n\x89PNG\r\n--r--\r\n")
	r := e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+m.ID+"/html", box.Token, nil)
	if r.status != 200 {
		t.Fatalf("html: %d %s", r.status, r.body)
	}
	if max := 2*len(body) + 64<<10 + len(fmt.Sprintf(htmlPrologue, newNonce())); len(r.body) > max {
		t.Errorf("document of %d bytes for a body of %d, want at most %d", len(r.body), len(body), max)
	}
	if got := r.header.Get("Content-Length"); got != fmt.Sprint(len(r.body)) {
		t.Errorf("Content-Length %s for a document of %d bytes", got, len(r.body))
	}
	if n := e.srv.cache.bytes(); n > 4*int64(len(body)) {
		t.Errorf("the cache holds %d bytes for a body of %d", n, len(body))
	}
}

// TestHTMLNotCopiedPerRead: the document was written with io.WriteString, which copies
// the whole cached body into a new byte slice for echo's Response, so each reader of a
// 10 MiB HTML mail cost 10 MiB more, kept by a slow one until it had read it all (32
// slow readers from four addresses: 460 MiB). Now a read of a cached document
// allocates far less than the document.
func TestHTMLNotCopiedPerRead(t *testing.T) {
	e := newEnv(t, stores(t)["memory"](t), Options{})
	box := e.create("")
	for name, html := range map[string]string{
		"plain":     strings.Repeat("<", 4<<20),
		"with cids": "<img src=cid:a>" + strings.Repeat("<", 4<<20) + "<img src=cid:a>",
	} {
		t.Run(name, func(t *testing.T) {
			m := e.deliver(box.Address, "Subject: big\r\nContent-Type: multipart/related; boundary=r\r\n\r\n"+
				"--r\r\nContent-Type: text/html\r\n\r\n"+html+"\r\n"+
				"--r\r\nContent-Type: image/png\r\nContent-ID: <a>\r\n\r\n\x89PNG\r\n--r--\r\n")
			path := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID + "/html"
			if n, _ := discardRead(t, e, path, box.Token); n < 4<<20 { // parses and caches
				t.Fatalf("read %d bytes, want the document", n)
			}
			if _, alloc := discardRead(t, e, path, box.Token); alloc > 1<<20 {
				t.Errorf("a read of a cached 4 MiB document allocated %d bytes, want under 1 MiB", alloc)
			}
		})
	}
}

// discardRead GETs path over a connection of its own and reads the answer into
// nothing, so that what the process allocates meanwhile is the server's: it returns the
// bytes read and the bytes allocated.
func discardRead(t *testing.T, e *env, path, token string) (n int64, alloc uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: mayfly.test\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", path, token)
	if n, err = io.Copy(io.Discard, conn); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return n, after.TotalAlloc - before.TotalAlloc
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
