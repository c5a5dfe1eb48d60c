package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestPageScreenshots draws the README's screenshots into $MAYFLY_SCREENSHOTS (skipped
// without it): desktop, phone, the Chinese page and the dark theme, each with mail open.
//
//	MAYFLY_SCREENSHOTS=$PWD/docs/screenshots bash .ci/with-services go test -count=1 -run TestPageScreenshots ./cmd/mayfly/
func TestPageScreenshots(t *testing.T) {
	dir := os.Getenv("MAYFLY_SCREENSHOTS")
	if dir == "" {
		t.Skip("MAYFLY_SCREENSHOTS names the folder to draw the screenshots in")
	}
	n := startNode(t)
	shoot := func(name, lang string, width, height int64, dark bool) {
		t.Helper()
		var opts []chromedp.ExecAllocatorOption
		if lang != "" {
			opts = append(opts, chromedp.Flag("lang", lang), chromedp.Flag("accept-lang", lang))
		}
		ctx := browser(t, opts...)
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(width, height, func(p *emulation.SetDeviceMetricsOverrideParams, s *emulation.SetTouchEmulationEnabledParams) {
			p.Mobile = width < 700
			s.Enabled = width < 700
		})); err != nil {
			t.Fatal(err)
		}
		if dark {
			if err := chromedp.Run(ctx, emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}})); err != nil {
				t.Fatal(err)
			}
		}
		address := strings.TrimSpace(firstScreen(t, ctx, n))
		n.send(t, address, "From: Acme Shop <noreply@shop.test>\r\nSubject: Welcome to Acme\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThanks for signing up!\r\n")
		n.send(t, address, "From: =?UTF-8?B?5pif5bqX?= <hello@shop.test>\r\nSubject: =?UTF-8?B?5oKo55qE6aqM6K+B56CB?=\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"+
			`<table width="600" style="font-family:sans-serif"><tr><td style="background:#0b5cad;color:#fff;padding:24px;font-size:22px">Acme</td></tr>`+
			`<tr><td style="padding:24px">Your verification code is <b style="font-size:28px">482917</b>.<p>Or confirm here: <a href="https://shop.test/confirm?k=8f2a">https://shop.test/confirm?k=8f2a</a></p></td></tr></table>`+"\r\n")
		var ok bool
		var shot []byte
		if err := chromedp.Run(ctx,
			chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 2`, &ok),
			chromedp.Evaluate(watchFrames, nil),
			chromedp.Click("#messages li:first-child [data-id]", chromedp.ByQuery),
			chromedp.Poll(`!document.querySelector("#message").hidden && window.mayflyTest.loads >= 1`, &ok),
			chromedp.Evaluate(`document.activeElement.blur()`, nil),
			chromedp.CaptureScreenshot(&shot),
		); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shoot("desktop.png", "", 1280, 800, false)
	shoot("phone.png", "", 390, 844, false)
	shoot("chinese.png", "zh-CN", 1280, 800, false)
	shoot("dark.png", "", 1280, 800, true)
}
