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

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// browser starts a headless Chromium for the test, with the flags that keep it off
// the network: it must talk to the loopback server only.
// firstScreen opens n's page and returns the address it shows once it has one.
func firstScreen(t *testing.T, ctx context.Context, n *node) string {
	t.Helper()
	var ok bool
	var address string
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+n.http+"/"),
		chromedp.Poll(`document.querySelector("#address") && document.querySelector("#address").textContent.includes("@")`, &ok),
		chromedp.Text("#address", &address),
	); err != nil {
		t.Fatalf("first screen: %v", err)
	}
	return address
}

func browser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
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
	opts = append(opts, extra...)
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
func artifact(t testing.TB, name string, data []byte) {
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
	// The two links come first, 40 px each below the body's 8 px margin, where the test
	// clicks: the probe, an ordinary link, shows that clicks reach into the frame.
	probe := newPixelServer(t)
	const payload = `<a id="js" target="_self" style="display:block;height:40px" href="javascript:parent.postMessage('pwned-link','*')">click me</a>` +
		`<a id="probe" style="display:block;height:40px" href="PROBE">probe</a>` +
		`<p>Payloads</p><script>parent.postMessage("pwned-script", "*")</script>` +
		`<img src="x" onerror="parent.postMessage('pwned-onerror','*')">` +
		`<svg onload="parent.postMessage('pwned-svg','*')"></svg>` +
		`<iframe src="javascript:parent.parent.postMessage('pwned-jsframe','*')"></iframe>`
	n.send(t, address, "From: Evil <evil@sender.test>\r\nSubject: Payloads\r\nContent-Type: text/html\r\n\r\n"+
		strings.Replace(payload, "PROBE", probe.url, 1)+`<img src="`+pixel.url+`" width="1" height="1">`+"\r\n")
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
	// A javascript: URL that runs without a click (a frame's src) would have posted as
	// the frame loaded; the link's needs a click, made at the end.
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.mayflyTest.posted`, &posted)); err != nil {
		t.Fatal(err)
	}
	if len(posted) > 0 {
		t.Errorf("payloads ran in the message frame: %q", posted)
	}
	if strings.Contains(sandbox, "allow-same-origin") || strings.Contains(sandbox, "allow-top-navigation") {
		t.Errorf("iframe sandbox = %q, want neither allow-same-origin nor allow-top-navigation", sandbox)
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
	// The javascript: link, clicked. The probe's click then opens the probe in a new
	// tab (links leave the sandbox in one), which its server sees: by then the click on
	// the javascript: link, made before it, has been handled. Last, as the page is then
	// in the background, where Chromium acknowledges no more input.
	// Under load the compositor may not hit-test the frame where it now is by the
	// time the clicks come, so they are tried again, a few seconds each, until the
	// probe opens: an attempt whose clicks went nowhere clicked nothing.
	const locate = `(async () => {
		const f = document.querySelector("iframe#body");
		f.scrollIntoView({block: "start"});
		// Two frames, so the compositor hit-tests the frame where it now is.
		await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
		const r = f.getBoundingClientRect();
		return {x: r.left, y: r.top};
	})()`
	for deadline := time.Now().Add(30 * time.Second); probe.hits.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("a click on the frame's ordinary link opened nothing: clicks do not reach the frame, so the javascript: link is not tested")
		}
		attempt, cancel := context.WithTimeout(ctx, 3*time.Second)
		var frame struct{ X, Y float64 }
		if err := chromedp.Run(attempt, chromedp.Evaluate(locate, &frame, awaitPromise)); err == nil {
			chromedp.Run(attempt, chromedp.MouseClickXY(frame.X+20, frame.Y+28))
			chromedp.Run(attempt, chromedp.MouseClickXY(frame.X+20, frame.Y+68))
		}
		for probe.hits.Load() == 0 && attempt.Err() == nil {
			time.Sleep(10 * time.Millisecond) // polling a counter, within the attempt
		}
		cancel()
	}
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.mayflyTest.posted`, &posted)); err != nil {
		t.Fatal(err)
	}
	if len(posted) > 0 {
		t.Errorf("a click on the javascript: link ran it: %q", posted)
	}
}

// watchFrames records, in the page, every message posted to it and every load of the
// message frame, so a test can wait on the load and see what a payload would post. The
// frame's own size reports are counted apart, with the heights they gave.
const watchFrames = `(() => {
	const w = window.mayflyTest = { posted: [], loads: 0, reports: [] };
	addEventListener("message", e => {
		if (e.data && e.data.type === "mayfly-frame-height") w.reports.push(e.data.height);
		else w.posted.push(String(e.data));
	});
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

// TestPageReconnectsAfterRestart stops the node that served the page, delivers mail
// through another node on the same Redis meanwhile, starts the first again where it
// was, and expects the page to reconnect and show the mail by itself.
func TestPageReconnectsAfterRestart(t *testing.T) {
	redis := redisFlags(t)
	a := startNode(t, redis...)
	b := startNode(t, redis...)
	ctx := browser(t)
	var ok bool
	var address, conn string
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+a.http+"/"),
		chromedp.Poll(`document.querySelector("#address").textContent.includes("@") && document.querySelector("#conn").textContent === "live"`, &ok),
		chromedp.Text("#address", &address),
	); err != nil {
		t.Fatalf("first screen: %v", err)
	}
	address = strings.TrimSpace(address)
	a.stop(t)
	if err := chromedp.Run(ctx, chromedp.Poll(`document.querySelector("#conn").textContent !== "live"`, &ok)); err != nil {
		t.Fatalf("the page did not notice its server stopping: %v", err)
	}
	b.send(t, address, "From: Shop <shop@sender.test>\r\nSubject: Sent while you were away\r\n\r\nhello\r\n")
	startNodeOn(t, a.smtp, a.http, redis...)
	if err := chromedp.Run(ctx,
		chromedp.Poll(`[...document.querySelectorAll("#messages [data-id]")].some(e => e.textContent.includes("Sent while you were away"))`, &ok, chromedp.WithPollingTimeout(30*time.Second)),
		chromedp.Text("#conn", &conn),
	); err != nil {
		t.Fatalf("after the restart the page did not show the mail sent meanwhile: %v", err)
	}
	if conn != "live" {
		t.Errorf("connection state after the restart = %q, want live", conn)
	}
}

// TestPageChoicesAndMailClient picks the second domain, chooses an own name, reads the
// mail-client panel, and forgets an inbox once that is confirmed.
func TestPageChoicesAndMailClient(t *testing.T) {
	n := startNode(t, "-domains", "serve.test,other.test")
	ctx := browser(t)
	var ok bool
	var address, user, pass, imap string
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+n.http+"/"),
		chromedp.Poll(`document.querySelector("#address").textContent.includes("@serve.test") && !document.querySelector("#domain-box").hidden`, &ok),
		chromedp.SetValue("#domain", "other.test", chromedp.ByID),
		chromedp.Evaluate(`document.querySelector("#domain").dispatchEvent(new Event("change"))`, nil),
		chromedp.Click("#own summary", chromedp.ByQuery),
		chromedp.SendKeys("#local", "qa-team-7", chromedp.ByID),
		chromedp.SendKeys("#local", kb.Enter, chromedp.ByID),
		chromedp.Poll(`document.querySelector("#address").textContent.trim() === "qa-team-7@other.test"`, &ok),
		chromedp.Click("#client-box summary", chromedp.ByQuery),
		chromedp.Text("#client-user", &user),
		chromedp.Text("#client-pass", &pass),
		chromedp.Text("#clients tbody", &imap),
		chromedp.Text("#address", &address),
	); err != nil {
		var state string
		chromedp.Run(ctx, chromedp.Evaluate(`[document.querySelector("#address").textContent, document.querySelector("#error").textContent, document.querySelector("#domain-box").hidden, document.querySelector("#domain").value].join(" | ")`, &state))
		t.Fatalf("choose my own: %v; page: %s", err, state)
	}
	in := createInbox(t, n.http, `{"local": "qa-team-7", "domain": "other.test"}`)
	if user != in.Address || pass != in.Token {
		t.Errorf("mail-client panel: user %q password %q, want %q %q", user, pass, in.Address, in.Token)
	}
	if !strings.Contains(imap, "IMAP") || !strings.Contains(imap, "POP3") || !strings.Contains(imap, "SMTP submission") || !strings.Contains(imap, "STARTTLS") {
		t.Errorf("mail-client panel lists %q, want IMAP, POP3 and SMTP submission with STARTTLS", imap)
	}
	// Two inboxes now; forgetting the current one, confirmed, switches to the other.
	var count int
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`window.confirm = () => true`, nil),
		chromedp.Click("#others summary", chromedp.ByQuery), // the other inboxes are folded
		chromedp.Click(`#inboxes li.current button.small`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelectorAll("#inboxes li").length === 1 && !document.querySelector("#address").textContent.includes("qa-team-7")`, &ok),
		chromedp.Evaluate(`JSON.parse(localStorage.getItem("mayfly.inboxes")).length`, &count),
	); err != nil {
		t.Fatalf("forget: %v", err)
	}
	if count != 1 {
		t.Errorf("localStorage keeps %d inboxes after Forget, want 1", count)
	}
}

// TestPageReplies answers a mail from the message view: the reply reaches the sender
// (here the relay) and its sent copy joins the list, marked Sent, with no reply box.
func TestPageReplies(t *testing.T) {
	sink := newRelaySink(t)
	// Replies go to senders that proved themselves; nothing here is verified.
	n := startNode(t, "-relay", "smtp://"+sink.addr, "-verify", "false")
	ctx := browser(t)
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	var ok bool
	n.sendAs(t, "alice@sender.test", address, "From: Alice <alice@sender.test>\r\nSubject: Question\r\nMessage-ID: <q1@sender.test>\r\n\r\nAre you there?\r\n")
	var status, to string
	if err := chromedp.Run(ctx,
		chromedp.Poll(`[...document.querySelectorAll("#messages [data-id]")].some(e => e.textContent.includes("Question"))`, &ok),
		chromedp.Evaluate(`[...document.querySelectorAll("#messages [data-id]")].find(e => e.textContent.includes("Question")).click()`, nil),
		chromedp.WaitVisible("#reply-open", chromedp.ByID),
		chromedp.Click("#reply-open", chromedp.ByID), // the reply is folded until asked for
		chromedp.WaitVisible("#reply-text", chromedp.ByID),
		chromedp.Text("#reply-to", &to),
		chromedp.SendKeys("#reply-text", "Yes, here.", chromedp.ByID),
		chromedp.Click("#reply-form button[type=submit]", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#reply-status").textContent.includes("queued")`, &ok),
		chromedp.Text("#reply-status", &status),
		chromedp.Poll(`[...document.querySelectorAll("#messages [data-id]")].some(e => e.textContent.includes("Re: Question") && e.textContent.includes("Sent"))`, &ok),
	); err != nil {
		var state string
		chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector("#reply-status").textContent + " | " + document.querySelector("#messages").textContent`, &state))
		t.Fatalf("reply from the page: %v; page: %s", err, state)
	}
	if !strings.Contains(to, "alice@sender.test") {
		t.Errorf("reply box addressed to %q", to)
	}
	m := sink.next(t)
	if len(m.to) != 1 || m.to[0] != "alice@sender.test" || !strings.Contains(m.data, "Yes, here.") || !strings.Contains(m.data, "In-Reply-To: <q1@sender.test>") {
		t.Errorf("relayed to %q:\n%s", m.to, m.data)
	}
	var hidden bool
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`[...document.querySelectorAll("#messages [data-id]")].find(e => e.textContent.includes("Re: Question")).click()`, nil),
		chromedp.Poll(`document.querySelector("#reply-form").hidden`, &hidden),
	); err != nil {
		t.Fatalf("the sent copy offers a reply box: %v", err)
	}
}

// TestPageAccessibility runs axe-core (testdata/axe) on the first screen and on a
// message view, in light and dark themes and at phone width, and fails on any
// violation of WCAG 2.1 A and AA.
func TestPageAccessibility(t *testing.T) {
	axe, err := os.ReadFile("testdata/axe/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t)
	ctx := browser(t)
	var ok bool
	var address string
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+n.http+"/"),
		chromedp.Poll(`document.querySelector("#address").textContent.includes("@")`, &ok),
		chromedp.Text("#address", &address),
		chromedp.Evaluate(string(axe), nil),
	); err != nil {
		t.Fatal(err)
	}
	n.send(t, strings.TrimSpace(address), signupMail)
	check := func(name string) {
		t.Helper()
		axeClean(t, ctx, name)
	}
	check("first screen")
	if err := chromedp.Run(ctx,
		chromedp.Poll(`!document.querySelector("#client-box").hidden`, &ok),
		chromedp.Click("#client-box summary", chromedp.ByQuery),
		chromedp.Click("#own summary", chromedp.ByQuery),
		chromedp.Click("#others summary", chromedp.ByQuery),
		chromedp.Click("#keep summary", chromedp.ByQuery),
		chromedp.Poll(`!document.querySelector("#qr").hidden`, &ok),
	); err != nil {
		t.Fatal(err)
	}
	check("empty state, all open")
	if err := chromedp.Run(ctx,
		chromedp.Click("#help-open", chromedp.ByID),
		chromedp.Poll(`document.querySelector("#help").open`, &ok),
	); err != nil {
		t.Fatal(err)
	}
	check("shortcut help")
	if err := chromedp.Run(ctx,
		chromedp.Click("#help-close", chromedp.ByID),
		chromedp.Poll(`document.querySelector("#messages [data-id]") !== null`, &ok),
		chromedp.Click("#messages [data-id]", chromedp.ByQuery),
		chromedp.Poll(`!document.querySelector("#message").hidden`, &ok),
	); err != nil {
		t.Fatal(err)
	}
	check("message view")
	if err := chromedp.Run(ctx, emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}})); err != nil {
		t.Fatal(err)
	}
	check("message view, dark")
	var scrollWidth, innerWidth int
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(375, 740),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &scrollWidth),
		chromedp.Evaluate(`innerWidth`, &innerWidth),
	); err != nil {
		t.Fatal(err)
	}
	check("phone width, dark")
	if scrollWidth > innerWidth {
		t.Errorf("at phone width the page scrolls sideways: %d px wide in a %d px window", scrollWidth, innerWidth)
	}
	// The phone's other screen, the list, then the whole page in Chinese.
	if err := chromedp.Run(ctx,
		chromedp.Click("#close", chromedp.ByID),
		chromedp.Poll(`document.querySelector("#message").hidden`, &ok),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &scrollWidth),
	); err != nil {
		t.Fatal(err)
	}
	check("phone list, dark")
	if scrollWidth > innerWidth {
		t.Errorf("the phone's list screen scrolls sideways: %d px wide in a %d px window", scrollWidth, innerWidth)
	}
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(1280, 800),
		chromedp.SetValue("#lang", "zh-CN", chromedp.ByID),
		chromedp.Evaluate(`document.querySelector("#lang").dispatchEvent(new Event("change"))`, nil),
		chromedp.Poll(`document.documentElement.lang === "zh-CN"`, &ok),
		chromedp.Click("#messages [data-id]", chromedp.ByQuery),
		chromedp.Poll(`!document.querySelector("#message").hidden`, &ok),
	); err != nil {
		t.Fatal(err)
	}
	check("Chinese, message view")
}

// BenchmarkFirstScreen measures, in a real Chromium, the time from navigation to a
// usable first screen (an address shown, the copy button ready), the first contentful
// paint as the Performance API reports it, and what the page weighs on the wire (gzip)
// and uncompressed.
func BenchmarkFirstScreen(b *testing.B) {
	n := startNode(b)
	ctx := browser(b)
	var ok bool
	var weight struct{ Wire, Decoded float64 }
	var total time.Duration
	var inPage, paint float64
	for b.Loop() {
		start := time.Now()
		if err := chromedp.Run(ctx,
			chromedp.Navigate("http://"+n.http+"/"),
			chromedp.Poll(`document.querySelector("#address").textContent.includes("@")`, &ok, chromedp.WithPollingInterval(time.Millisecond)),
		); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		var mark, fcp float64
		if err := chromedp.Run(ctx,
			chromedp.Evaluate(`performance.getEntriesByName("mayfly:address")[0].startTime`, &mark),
			// Painted by now, as the address is shown; the entry is there unless no frame was.
			chromedp.Poll(`performance.getEntriesByName("first-contentful-paint").length > 0`, nil, chromedp.WithPollingTimeout(5*time.Second)),
			chromedp.Evaluate(`performance.getEntriesByName("first-contentful-paint")[0].startTime`, &fcp),
		); err != nil {
			b.Fatal(err)
		}
		inPage += mark
		paint += fcp
		// Each visit a first one: no inbox remembered.
		if err := chromedp.Run(ctx, chromedp.Evaluate(`localStorage.clear()`, nil)); err != nil {
			b.Fatal(err)
		}
	}
	if err := chromedp.Run(ctx, chromedp.Evaluate(`(() => {
		const all = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource").filter(r => !r.name.includes("/api/"))];
		return { wire: all.reduce((s, r) => s + r.encodedBodySize, 0), decoded: all.reduce((s, r) => s + r.decodedBodySize, 0) };
	})()`, &weight)); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/first-screen")
	b.ReportMetric(inPage/float64(b.N), "ms/in-page")
	b.ReportMetric(paint/float64(b.N), "ms/first-paint")
	b.ReportMetric(weight.Wire, "page-bytes-gzip")
	b.ReportMetric(weight.Decoded, "page-bytes")
}
