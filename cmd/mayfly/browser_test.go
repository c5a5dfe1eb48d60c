package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browser starts a headless Chromium for the test, with the flags that keep it off
// the network: it must talk to the loopback server only.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := cmpOr(os.Getenv("MAYFLY_CHROMIUM"), "/usr/bin/chromium")
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("MAYFLY_REQUIRE_BROWSER") != "" {
			t.Fatalf("no Chromium at %s, and CI or MAYFLY_REQUIRE_BROWSER says the browser tests must run", path)
		}
		t.Skipf("needs Chromium at %s: apt-get install chromium, or run make test, which does (MAYFLY_CHROMIUM names another)", path)
	}
	// Not t.TempDir: Chromium's helpers may still be writing there as the test ends.
	profile, err := os.MkdirTemp("", "mayfly-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1200, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// Chromium speaks a newer protocol than cdproto knows; its unknown enum values are noise.
	ctx, cancelCtx := chromedp.NewContext(alloc, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Logf("chromedp: %s", msg)
		}
	}))
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		os.RemoveAll(profile)
	})
	return ctx
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// artifact writes a test artifact (a screenshot) to $MAYFLY_ARTIFACTS, or the test's
// temporary directory.
func artifact(t *testing.T, name string, data []byte) {
	dir := os.Getenv("MAYFLY_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Errorf("artifact %s: %v", name, err)
	}
}

// TestPageShowsMailLive opens the page, reads the address it made, sends mail to it
// over SMTP and watches it appear without a reload; then opens a mail full of script
// payloads and checks that none ran.
func TestPageShowsMailLive(t *testing.T) {
	n := startNode(t)
	ctx := browser(t)
	var address string
	var shot []byte
	var ok bool
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+n.http+"/"),
		chromedp.Poll(`document.querySelector("#address") && document.querySelector("#address").textContent.includes("@")`, &ok),
		chromedp.Text("#address", &address),
		chromedp.FullScreenshot(&shot, 100),
	); err != nil {
		t.Fatalf("first screen: %v", err)
	}
	artifact(t, "first-screen.png", shot)
	address = strings.TrimSpace(address)
	if !strings.HasSuffix(address, "@serve.test") {
		t.Fatalf("address shown = %q, want one on serve.test", address)
	}

	n.send(t, address, "From: Shop <shop@sender.test>\r\nSubject: Live one\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b></p>\r\n")
	if err := chromedp.Run(ctx,
		chromedp.Poll(`[...document.querySelectorAll("#messages [data-id]")].some(e => e.textContent.includes("Live one"))`, &ok),
	); err != nil {
		t.Fatalf("the mail did not appear without a reload: %v", err)
	}

	// Every payload, if it ran, would post a message to the page: that works across
	// origins, so even a script confined to an opaque origin would be seen.
	pixel := newPixelServer(t)
	const payload = `<a id="js" target="_self" style="display:block" href="javascript:parent.postMessage('pwned-link','*')">click me</a>` +
		`<p>Payloads</p><script>parent.postMessage("pwned-script", "*")</script>` +
		`<img src="x" onerror="parent.postMessage('pwned-onerror','*')">` +
		`<svg onload="parent.postMessage('pwned-svg','*')"></svg>` +
		`<iframe src="javascript:parent.parent.postMessage('pwned-jsframe','*')"></iframe>`
	n.send(t, address, "From: Evil <evil@sender.test>\r\nSubject: Payloads\r\nContent-Type: text/html\r\n\r\n"+
		payload+`<img src="`+pixel.url+`" width="1" height="1">`+"\r\n")
	var posted []string
	var sandbox, src string
	var remoteNote string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(watchFrames, nil),
		chromedp.Poll(`[...document.querySelectorAll("#messages [data-id]")].some(e => e.textContent.includes("Payloads"))`, &ok),
		chromedp.Evaluate(`[...document.querySelectorAll("#messages [data-id]")].find(e => e.textContent.includes("Payloads")).click()`, nil),
		// Inline scripts and onerror handlers would have run by the frame's load event.
		chromedp.Poll(`window.mayflyTest.loads >= 1`, &ok),
		chromedp.AttributeValue("iframe#body", "sandbox", &sandbox, nil),
		chromedp.AttributeValue("iframe#body", "src", &src, nil),
		chromedp.Text("#images-note", &remoteNote),
		chromedp.FullScreenshot(&shot, 100),
	); err != nil {
		t.Fatalf("message view: %v", err)
	}
	artifact(t, "message-view.png", shot)
	// javascript: URLs that run without a click (a frame's src) would post as the frame
	// loads. (A CDP click does not reach into the sandboxed frame in headless Chromium,
	// so the link form is left to the policy: no allow-scripts, no script-src.)
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.mayflyTest.posted`, &posted)); err != nil {
		t.Fatal(err)
	}
	if len(posted) > 0 {
		t.Errorf("payloads ran in the message frame: %q", posted)
	}
	if strings.Contains(sandbox, "allow-scripts") || strings.Contains(sandbox, "allow-same-origin") {
		t.Errorf("iframe sandbox = %q, want neither allow-scripts nor allow-same-origin", sandbox)
	}
	if !strings.Contains(src, "/html?token=") {
		t.Errorf("iframe src = %q, want the html route", src)
	}
	if hits := pixel.hits.Load(); hits != 0 || !strings.Contains(remoteNote, "1 remote image") {
		t.Errorf("before asking: the tracking pixel was fetched %d times; note %q", hits, remoteNote)
	}
	// Show images: the frame reloads with remote images allowed, and the pixel loads.
	if err := chromedp.Run(ctx,
		chromedp.Click("#images", chromedp.ByID),
		chromedp.Poll(`window.mayflyTest.loads >= 2`, &ok),
	); err != nil {
		t.Fatalf("show images: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pixel.hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("after Show remote images, the remote image was never fetched")
		}
		time.Sleep(10 * time.Millisecond) // polling a counter, with a deadline
	}
}

// watchFrames records, in the page, every message posted to it and every load of the
// message frame, so a test can wait on the load and see what a payload would post.
const watchFrames = `(() => {
	const w = window.mayflyTest = { posted: [], loads: 0 };
	addEventListener("message", e => w.posted.push(String(e.data)));
	const seen = new WeakSet();
	new MutationObserver(() => {
		const f = document.querySelector("iframe#body");
		if (f && !seen.has(f)) { seen.add(f); f.addEventListener("load", () => w.loads++); }
	}).observe(document.body, { subtree: true, childList: true });
})()`

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// pixelServer stands for a sender's tracking server, on loopback.
type pixelServer struct {
	url  string
	hits atomic.Int64
}

func newPixelServer(t *testing.T) *pixelServer {
	p := &pixelServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		w.Header().Set("Content-Type", "image/gif")
		w.Write([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL + "/pixel.gif"
	return p
}
