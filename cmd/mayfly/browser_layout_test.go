package main

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// newsletter is an HTML mail laid out as most are: a 600 px table, taller than a window.
const newsletter = "From: News <news@sender.test>\r\nSubject: Weekly newsletter\r\nContent-Type: text/html\r\n\r\n" +
	`<table width="600" style="width:600px"><tr><td style="height:2000px;vertical-align:top">Newsletter top line</td></tr></table>` + "\r\n"

// textMail is a plain-text mail with a code and a link, which the page shows in its strip.
var textMail = "From: Shop <shop@sender.test>\r\nSubject: Your code\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
	"FIRSTLINE your verification code is 482917.\r\nConfirm at https://shop.test/confirm?k=1\r\n" +
	strings.Repeat("more text\r\n", 200)

// firstLineVisible is a script that answers whether the open message's body starts
// within the window as it is, unscrolled and uncovered: for a text body, its first
// line; for an HTML body, the frame's top 40 px.
const firstLineVisible = `(() => {
	const frame = document.querySelector("#panel-html:not([hidden]) iframe#body");
	let r;
	if (frame) {
		const f = frame.getBoundingClientRect();
		r = {left: f.left + 4, top: f.top + 4, bottom: f.top + 40, right: f.right - 4, width: f.width};
	} else {
		const pre = document.querySelector("#text");
		const range = document.createRange();
		range.setStart(pre.firstChild, 0);
		range.setEnd(pre.firstChild, 9);
		r = range.getBoundingClientRect();
	}
	const hit = document.elementFromPoint(r.left + 2, r.top + 2);
	return {
		top: r.top, bottom: r.bottom, width: r.width || 0,
		visible: r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && scrollY === 0,
		uncovered: !!hit && (hit === frame || (!frame && document.querySelector("#text").contains(hit))),
		pageScrolls: document.scrollingElement.scrollHeight > innerHeight + 1,
		paneScrolls: (p => p.scrollHeight > p.clientHeight + 1)(document.querySelector(".view-pane")),
		frameWidth: frame ? frame.clientWidth : 0,
		listShown: document.querySelector("#messages").offsetParent !== null,
	};
})()`

type bodyPlace struct {
	Top, Bottom, Width float64
	Visible, Uncovered bool
	PageScrolls        bool
	PaneScrolls        bool
	FrameWidth         float64
	ListShown          bool
}

func openBySubject(subject string) chromedp.Action {
	return chromedp.Evaluate(`[...document.querySelectorAll("#messages [data-id]")].find(e => e.textContent.includes(`+jsString(subject)+`)).click()`, nil)
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// TestPageLayout opens mail on a 1280×800 desktop and a 390×844 phone: the body's first
// line must be in view without scrolling, the message must scroll as a whole (one
// scroller), a 600 px newsletter must not be clipped on desktop, the reply stays
// folded, and on the phone the list and the message are two screens with a way back.
func TestPageLayout(t *testing.T) {
	n := startNode(t)
	ctx := browser(t)
	var ok bool
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	var welcome string
	if err := chromedp.Run(ctx,
		chromedp.Poll(`!document.querySelector("#welcome").hidden && document.querySelector("#welcome-address").textContent.includes("@")`, &ok),
		chromedp.Text("#welcome", &welcome),
	); err != nil {
		t.Fatalf("empty state: %v", err)
	}
	if !strings.Contains(welcome, address) || !strings.Contains(welcome, "curl") || !strings.Contains(welcome, "Mail lives") {
		t.Errorf("empty-state panel says %q, want the address, its lifetime and an API example", welcome)
	}
	n.send(t, address, newsletter)
	n.send(t, address, textMail)

	look := func(name string) bodyPlace {
		t.Helper()
		var p bodyPlace
		if err := chromedp.Run(ctx, chromedp.Evaluate(firstLineVisible, &p)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !p.Visible || !p.Uncovered {
			var shot []byte
			chromedp.Run(ctx, chromedp.CaptureScreenshot(&shot))
			artifact(t, strings.ReplaceAll(name, " ", "-")+".png", shot)
			t.Errorf("%s: the body's first line is not in view without scrolling: %+v", name, p)
		}
		// One scroller, the message as a whole: the pane on a desktop, the page on a phone
		// (the frame has none of its own: TestPageFrameFits).
		if p.PageScrolls && p.PaneScrolls {
			t.Errorf("%s: two scrollers, the page and the message pane", name)
		}
		var shot []byte
		if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&shot)); err == nil {
			artifact(t, "layout-"+strings.ReplaceAll(name, " ", "-")+".png", shot)
		}
		return p
	}

	var replyHidden, stripShown bool
	var stripHeight float64
	if err := chromedp.Run(ctx,
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 2`, &ok),
		openBySubject("Your code"),
		chromedp.Poll(`!document.querySelector("#message").hidden && document.querySelector("#msg-subject").textContent === "Your code"`, &ok),
		chromedp.Evaluate(`document.querySelector("#reply-form").hidden`, &replyHidden),
		chromedp.Evaluate(`!document.querySelector("#strip").hidden && document.querySelector("#codes").textContent.includes("482917") && document.querySelector("#links").textContent.includes("shop.test/confirm")`, &stripShown),
		chromedp.Evaluate(`document.querySelector("#strip").getBoundingClientRect().height`, &stripHeight),
	); err != nil {
		t.Fatalf("open the text mail: %v", err)
	}
	look("desktop text")
	if !replyHidden {
		t.Error("the reply form is open before Reply is pressed")
	}
	if !stripShown || stripHeight > 80 {
		t.Errorf("codes and links strip: shown %v, %.0f px high; want it shown, compact", stripShown, stripHeight)
	}

	if err := chromedp.Run(ctx,
		openBySubject("Weekly newsletter"),
		chromedp.Poll(`document.querySelector("#msg-subject").textContent === "Weekly newsletter" && document.querySelector("iframe#body") !== null`, &ok),
	); err != nil {
		t.Fatalf("open the newsletter: %v", err)
	}
	p := look("desktop html")
	if p.FrameWidth < 600 {
		t.Errorf("desktop: the frame is %.0f px wide, clipping a 600 px newsletter", p.FrameWidth)
	}
	if !p.ListShown {
		t.Error("desktop: the list is not beside the open message")
	}

	// Phone: the message is a screen of its own; the browser's Back returns to the list.
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Evaluate(`history.back()`, nil),
		chromedp.Poll(`document.querySelector("#message").hidden && document.querySelector("#messages").offsetParent !== null`, &ok),
		openBySubject("Your code"),
		chromedp.Poll(`!document.querySelector("#message").hidden && document.querySelector("#msg-subject").textContent === "Your code"`, &ok),
	); err != nil {
		t.Fatalf("phone: back to the list and open again: %v", err)
	}
	p = look("phone text")
	if p.ListShown {
		t.Error("phone: the list is shown with the open message; want two screens")
	}
	if err := chromedp.Run(ctx,
		chromedp.Click("#close", chromedp.ByID),
		chromedp.Poll(`document.querySelector("#message").hidden && document.querySelector("#messages").offsetParent !== null`, &ok),
		openBySubject("Weekly newsletter"),
		chromedp.Poll(`document.querySelector("#msg-subject").textContent === "Weekly newsletter" && document.querySelector("iframe#body") !== null`, &ok),
	); err != nil {
		t.Fatalf("phone: the Back button: %v", err)
	}
	look("phone html")
}

// TestPageManifest: Chromium finds the page's web app manifest and parses it without
// error, and the icons it and the page name are served as images.
func TestPageManifest(t *testing.T) {
	n := startNode(t)
	ctx := browser(t)
	firstScreen(t, ctx, n)
	var url, data string
	var errs []*page.AppManifestError
	var icons []string
	if err := chromedp.Run(ctx,
		chromedp.ActionFunc(func(ctx context.Context) error {
			var err error
			url, errs, data, _, err = page.GetAppManifest().Do(ctx)
			return err
		}),
		chromedp.Evaluate(`Promise.all([...document.querySelectorAll("link[rel=icon]")].map(l => fetch(l.href).then(r => r.status + " " + r.headers.get("Content-Type"))))`, &icons, awaitPromise),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(url, "/manifest.json") || len(errs) > 0 || !strings.Contains(data, `"short_name": "Mayfly"`) {
		t.Errorf("manifest %q, errors %v, data %q", url, errs, data)
	}
	if len(icons) != 2 {
		t.Errorf("icons linked: %q, want an SVG and the .ico", icons)
	}
	for _, i := range icons {
		if !strings.HasPrefix(i, "200 image/") {
			t.Errorf("an icon is served as %q", i)
		}
	}
}
