package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// inFrame evaluates expr in the document of the page's child frame whose URL has part
// in it, in a world of its own: the page cannot reach the sandboxed message frame, the
// browser's debugger can. The frame must be in the page's process: see inProcessFrames.
func inFrame(part, expr string, res any) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		tree, err := page.GetFrameTree().Do(ctx)
		if err != nil {
			return err
		}
		var find func(*page.FrameTree) *cdp.Frame
		find = func(t *page.FrameTree) *cdp.Frame {
			if t.Frame.ParentID != "" && strings.Contains(t.Frame.URL+t.Frame.URLFragment, part) {
				return t.Frame
			}
			for _, c := range t.ChildFrames {
				if f := find(c); f != nil {
					return f
				}
			}
			return nil
		}
		if f := find(tree); f != nil {
			world, err := page.CreateIsolatedWorld(f.ID).WithWorldName("mayfly-test").Do(ctx)
			if err != nil {
				return err
			}
			return evaluateIn(ctx, world, expr, res)
		}
		return fmt.Errorf("no frame with %q in its URL", part)
	})
}

func evaluateIn(ctx context.Context, world runtime.ExecutionContextID, expr string, res any) error {
	v, exc, err := runtime.Evaluate(expr).WithContextID(world).WithReturnByValue(true).WithAwaitPromise(true).Do(ctx)
	if err != nil {
		return err
	}
	if exc != nil {
		return fmt.Errorf("in the frame: %s", exc.Error())
	}
	if res == nil {
		return nil
	}
	return json.Unmarshal(v.Value, res)
}

// inProcessFrames keeps sandboxed frames in their page's process, where inFrame can
// reach them; where a frame runs does not change what its sandbox and policy allow.
var inProcessFrames = chromedp.Flag("disable-features", "site-per-process,Translate,BlinkGenPropertyTrees,IsolateSandboxedIframes")

// longNewsletter is a 600 px table newsletter 3000 px tall.
var longNewsletter = "From: News <news@sender.test>\r\nSubject: Long newsletter\r\nContent-Type: text/html\r\n\r\n" +
	`<table width="600" style="width:600px" cellpadding="0" cellspacing="0"><tr><td style="height:3000px;vertical-align:top">Long newsletter top line ` +
	strings.Repeat("word ", 50) + `</td></tr></table>` + "\r\n"

// frameBox is what TestPageFrameFits measures, in the page and in the frame.
type frameBox struct {
	Height, Width       float64 // the frame's box as laid out on screen
	PaneScrolls         bool
	PaneScrollsSideways bool
	PageScrolls         bool
	PageScrollsSideways bool
	InnerWidth          float64
}

const measureFrame = `(() => {
	const f = document.querySelector("iframe#body").getBoundingClientRect();
	const pane = document.querySelector(".view-pane"), se = document.scrollingElement;
	return {
		height: f.height, width: f.right,
		paneScrolls: pane.scrollHeight > pane.clientHeight + 1,
		paneScrollsSideways: pane.scrollWidth > pane.clientWidth,
		pageScrolls: se.scrollHeight > innerHeight + 1,
		pageScrollsSideways: se.scrollWidth > innerWidth,
		innerWidth: innerWidth,
	};
})()`

// inside is what the frame's own document says of its scrolling.
type inside struct {
	ScrollHeight, ClientHeight, ScrollWidth, ClientWidth float64
	Title                                                string
}

const measureInside = `(() => {
	const se = document.scrollingElement;
	return {scrollHeight: se.scrollHeight, clientHeight: se.clientHeight, scrollWidth: se.scrollWidth, clientWidth: se.clientWidth, title: document.title};
})()`

// TestPageFrameFits: the message frame is as tall as its mail, with no scroller of its
// own, the message pane scrolling once, as a whole; on a phone a 600 px newsletter is
// scaled to the screen's width, scrolled sideways nowhere.
func TestPageFrameFits(t *testing.T) {
	n := startNode(t)
	ctx := browser(t, inProcessFrames)
	var ok bool
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	n.send(t, address, longNewsletter)
	// The frame is sized once its document reported, and again as it settles: wait
	// until its box is as tall as the document inside says it is.
	settled := func(name string) (frameBox, inside) {
		t.Helper()
		var out frameBox
		var in inside
		var last string
		for i := 0; ; i++ {
			if err := chromedp.Run(ctx,
				chromedp.Poll(`(() => { const f = document.querySelector("iframe#body"); return f && f.style.height !== "" })()`, &ok),
				inFrame("/html", measureInside, &in),
				chromedp.Evaluate(measureFrame, &out),
			); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			now := fmt.Sprintf("%+v %+v", out, in)
			if in.ScrollHeight == in.ClientHeight && now == last {
				return out, in
			}
			if i == 600 {
				t.Fatalf("%s: the frame never settled to its document's height: %s", name, now)
			}
			last = now
			chromedp.Run(ctx, chromedp.Evaluate(`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, nil, awaitPromise))
		}
	}
	if err := chromedp.Run(ctx,
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 1`, &ok),
		openBySubject("Long newsletter"),
		chromedp.Poll(`document.querySelector("#msg-subject").textContent === "Long newsletter" && document.querySelector("iframe#body") !== null`, &ok),
	); err != nil {
		t.Fatalf("open the newsletter: %v", err)
	}
	out, in := settled("desktop")
	if out.Height < 3000 || out.Height > 3100 || in.ScrollHeight != in.ClientHeight {
		t.Errorf("desktop: frame %.0f px tall, its document %v px scrolled in %v; want the frame about 3000 px and no scroller inside", out.Height, in.ScrollHeight, in.ClientHeight)
	}
	if !out.PaneScrolls || out.PageScrolls || out.PaneScrollsSideways || out.PageScrollsSideways {
		t.Errorf("desktop: want the message pane, and it alone, to scroll, and nothing sideways: %+v", out)
	}
	var shot []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&shot)); err == nil {
		artifact(t, "frame-desktop.png", shot)
	}

	if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	out, in = settled("phone")
	if out.Width > out.InnerWidth || out.PaneScrollsSideways || out.PageScrollsSideways || in.ScrollWidth > in.ClientWidth || in.ScrollHeight != in.ClientHeight {
		t.Errorf("phone: the 600 px newsletter does not fit a %v px screen: frame to %.0f px, inside %v of %v wide, %v of %v tall; %+v",
			out.InnerWidth, out.Width, in.ScrollWidth, in.ClientWidth, in.ScrollHeight, in.ClientHeight, out)
	}
	if out.Height < 3000*340/608 || out.Height > 3100*390/600 {
		t.Errorf("phone: the frame is %.0f px tall, want the 3000 px mail scaled by the width", out.Height)
	}
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&shot)); err == nil {
		artifact(t, "frame-phone.png", shot)
	}
}

// scriptMail has a script and an event handler that, if either ran, would change the
// frame's title and post a size report to the page of 47777 px.
const scriptMail = "From: Evil <evil@sender.test>\r\nSubject: Scripted\r\nContent-Type: text/html\r\n\r\n" +
	`<p>Scripted</p><a id="self" href="/" target="_self">here</a><script>document.title = "pwned-script"; parent.postMessage({type: "mayfly-frame-height", height: 47777, width: 100, key: location.hash.slice(1)}, "*")</script>` +
	`<img alt="" src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7" onload="document.title = 'pwned-onload'; parent.postMessage({type: 'mayfly-frame-height', height: 47777, width: 100, key: location.hash.slice(1)}, '*')">` + "\r\n"

// TestPageFrameScripts: with scripts allowed in the frame for its size report, the
// mail's own script and event handler still run nothing, and a size report from
// anything but the frame's document — the page itself, another frame, or the frame's
// window without the key of the document the page loaded — is ignored.
func TestPageFrameScripts(t *testing.T) {
	n := startNode(t)
	ctx := browser(t, inProcessFrames)
	var ok bool
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	n.send(t, address, scriptMail)
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(watchFrames, nil),
		// Every height the page gives the frame, to see that no forged one was taken.
		chromedp.Evaluate(`(() => {
			const heights = window.mayflyTest.heights = [];
			new MutationObserver(() => { const f = document.querySelector("iframe#body"); if (f && f.style.height) heights.push(f.style.height); })
				.observe(document.body, { subtree: true, attributes: true, attributeFilter: ["style"], childList: true });
		})()`, nil),
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 1`, &ok),
		openBySubject("Scripted"),
		chromedp.Poll(`window.mayflyTest.loads >= 1 && window.mayflyTest.reports.length > 0 && window.mayflyTest.heights.length > 0`, &ok, chromedp.WithPollingTimeout(10*time.Second)),
	); err != nil {
		var state string
		chromedp.Run(ctx, chromedp.Evaluate(`JSON.stringify(window.mayflyTest) + " " + document.querySelector("#panel-html").innerHTML`, &state))
		var inner string
		chromedp.Run(ctx, inFrame("/html", `document.documentElement.outerHTML.slice(0, 2000)`, &inner))
		t.Fatalf("open the mail: %v\n%s\n%s", err, state, inner)
	}
	var in inside
	var imgDone bool
	if err := chromedp.Run(ctx,
		inFrame("/html", `document.images[0].complete && document.images[0].naturalWidth === 1`, &imgDone),
		inFrame("/html", measureInside, &in),
	); err != nil {
		t.Fatal(err)
	}
	if !imgDone {
		t.Fatal("the image whose onload is the payload never loaded: the handler is not tested")
	}

	// Forgeries, each followed by a message from the same window that the page sees
	// after it: by then the forgery was handled.
	var key string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`new URL(document.querySelector("iframe#body").src).hash.slice(1)`, &key)); err != nil || len(key) < 32 {
		t.Fatalf("the frame's key %q: %v", key, err)
	}
	forge := func(height int, withKey bool) string {
		k := "wrong"
		if withKey {
			k = key
		}
		return fmt.Sprintf(`(() => {
			parent.postMessage({type: "mayfly-frame-height", height: %d, width: 100, key: %q}, "*");
			parent.postMessage("sync-%d", "*");
			return true;
		})()`, height, k, height)
	}
	synced := func(height int) chromedp.Action {
		// Polled in the page's main world by itself: chromedp.Poll may pick the world of
		// a frame inFrame used.
		return chromedp.Evaluate(fmt.Sprintf(`new Promise(r => {
			const check = () => window.mayflyTest.posted.includes("sync-%d") ? r(true) : setTimeout(check, 10);
			check();
		})`, height), &ok, awaitPromise)
	}
	var done bool
	for i, step := range []chromedp.Action{
		// The page itself, with the right key.
		chromedp.Evaluate(forge(33333, true), &done),
		synced(33333),
		// Another frame of the page, with the right key.
		chromedp.Evaluate(`(() => { const f = document.createElement("iframe"); f.id = "other"; f.src = "about:blank#other"; document.body.append(f); return true })()`, &done),
		chromedp.Evaluate(`new Promise(r => {
			const check = () => { const d = document.querySelector("#other").contentDocument; d && d.readyState === "complete" && d.URL.endsWith("#other") ? r(true) : setTimeout(check, 10) };
			check();
		})`, &ok, awaitPromise),
		inFrame("#other", forge(44444, true), &done),
		synced(44444),
		// The frame's window, but not the document the page loaded: no key.
		inFrame("/html", forge(45555, false), &done),
		synced(45555),
	} {
		if err := chromedp.Run(ctx, step); err != nil {
			t.Fatalf("forge, step %d: %v", i, err)
		}
	}
	var heights []string
	var reports []float64
	var posted []string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`window.mayflyTest.heights`, &heights),
		chromedp.Evaluate(`window.mayflyTest.reports`, &reports),
		chromedp.Evaluate(`window.mayflyTest.posted`, &posted),
		inFrame("/html", `document.title`, &in.Title),
	); err != nil {
		t.Fatal(err)
	}
	if in.Title != "" {
		t.Errorf("the frame's title is %q: a script of the mail ran", in.Title)
	}
	// A link that names the frame itself as its target still opens in a new tab, so no
	// site loads in the frame, where scripts may run. (The test cancels the click at the
	// link, after the frame's own capturing listener, so nothing is opened.)
	var target string
	if err := chromedp.Run(ctx, inFrame("/html", `(() => {
		const a = document.querySelector("#self");
		let seen = "";
		a.addEventListener("click", e => { seen = a.target; e.preventDefault(); });
		a.click();
		return seen;
	})()`, &target)); err != nil {
		t.Fatal(err)
	}
	if target != "_blank" {
		t.Errorf("a link with target=_self was followed with target %q, want _blank", target)
	}
	for _, h := range heights {
		switch h {
		case "47777px":
			t.Errorf("the frame was made %s tall by the mail's script or handler", h)
		case "33333px", "44444px", "45555px":
			t.Errorf("the frame was made %s tall by a forged report", h)
		}
	}
	for _, r := range reports {
		if r == 47777 {
			t.Errorf("the mail's script or handler posted a report: %v", reports)
		}
	}
	for _, p := range posted {
		if !strings.HasPrefix(p, "sync-") {
			t.Errorf("something else was posted to the page: %q", p)
		}
	}
}
