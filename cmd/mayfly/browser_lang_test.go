package main

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestPageChinese opens the page in a Chromium whose language is Simplified Chinese: the
// page speaks Chinese, dates and relative times included, until the switcher says
// English, which it then remembers.
func TestPageChinese(t *testing.T) {
	n := startNode(t)
	ctx := browser(t, chromedp.Flag("lang", "zh-CN"), chromedp.Flag("accept-lang", "zh-CN,zh"))
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	var ok bool
	var page struct {
		Lang, Copy, Welcome, TTL, Placeholder string
	}
	if err := chromedp.Run(ctx,
		chromedp.Poll(`document.querySelector("#ttl").textContent !== ""`, &ok),
		chromedp.Evaluate(`({lang: document.documentElement.lang, copy: document.querySelector("#copy").textContent,
			welcome: document.querySelector("#welcome-h").textContent, ttl: document.querySelector("#ttl").textContent,
			placeholder: document.querySelector("#search").placeholder})`, &page),
	); err != nil {
		t.Fatal(err)
	}
	if page.Lang != "zh-CN" || page.Copy != "复制" || page.Welcome != "收件箱已就绪" || !strings.Contains(page.TTL, "小时") || !strings.Contains(page.Placeholder, "搜索") {
		t.Errorf("a zh-CN browser gets %+v, want the Chinese page", page)
	}
	n.send(t, address, "From: =?GB2312?B?1cXI/Q==?= <zhang@sender.test>\r\nSubject: =?GB2312?B?xOO6ww==?=\r\nContent-Type: text/plain; charset=GB2312\r\n\r\n"+
		"\xc4\xe3\xba\xc3\r\n")
	var item, tab, date string
	var shot []byte
	if err := chromedp.Run(ctx,
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 1`, &ok),
		chromedp.Text("#messages [data-id]", &item),
		chromedp.Click("#messages [data-id]", chromedp.ByQuery),
		chromedp.Poll(`!document.querySelector("#message").hidden`, &ok),
		chromedp.Text("#tab-text", &tab),
		chromedp.Text("#msg-date", &date),
		chromedp.CaptureScreenshot(&shot),
	); err != nil {
		t.Fatal(err)
	}
	artifact(t, "chinese.png", shot)
	if !strings.Contains(item, "刚刚") || !strings.Contains(item, "你好") || tab != "纯文本" || !strings.Contains(date, "/") {
		t.Errorf("list item %q, tab %q, date %q: want Chinese words and a Chinese date", item, tab, date)
	}
	var copyText string
	if err := chromedp.Run(ctx,
		chromedp.SetValue("#lang", "en", chromedp.ByID),
		chromedp.Evaluate(`document.querySelector("#lang").dispatchEvent(new Event("change"))`, nil),
		chromedp.Poll(`document.querySelector("#tab-text").textContent === "Text" && document.documentElement.lang === "en"`, &ok),
		chromedp.Reload(),
		chromedp.Poll(`document.querySelector("#address").textContent.includes("@")`, &ok),
		chromedp.Text("#copy", &copyText),
	); err != nil {
		t.Fatalf("switch to English: %v", err)
	}
	if copyText != "Copy" {
		t.Errorf("after choosing English and a reload the page says %q", copyText)
	}
}
