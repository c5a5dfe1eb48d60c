package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// reportFetches counts the page's requests of a deliverability report.
const reportFetches = `performance.getEntriesByType("resource").filter(e => /\/messages\/[^/]+\/report$/.test(new URL(e.name).pathname)).length`

// axeClean runs axe-core (testdata/axe, already loaded in the page) and fails the test
// on any WCAG 2.1 A or AA violation.
func axeClean(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var violations []struct {
		ID    string
		Help  string
		Nodes []struct{ Target []any }
	}
	if err := chromedp.Run(ctx, chromedp.Evaluate(
		`axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }).then(r => r.violations)`,
		&violations, awaitPromise)); err != nil {
		t.Fatalf("%s: axe: %v", name, err)
	}
	for _, v := range violations {
		var where []string
		for _, node := range v.Nodes {
			where = append(where, fmt.Sprint(node.Target...))
		}
		t.Errorf("%s: %s (%s) at %s", name, v.ID, v.Help, strings.Join(where, ", "))
	}
}

// TestPageReportCard opens a message whose sender forgot Message-ID and Date, then its
// Deliverability tab from the keyboard: the report is fetched only then (once, however
// often the card is drawn), the card shows the score out of 10, the failing check's
// status in words and its fix, and says rspamd was not run; axe finds nothing with the
// card open, light, dark and at phone width, where the page does not scroll sideways.
func TestPageReportCard(t *testing.T) {
	axe, err := os.ReadFile("testdata/axe/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t)
	ctx := browser(t)
	var ok bool
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	n.send(t, address, signupMail)
	var fetched int
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(string(axe), nil),
		chromedp.Poll(`document.querySelector("#messages [data-id]") !== null`, &ok),
		chromedp.Click("#messages [data-id]", chromedp.ByQuery),
		chromedp.Poll(`!document.querySelector("#message").hidden && !document.querySelector("#tab-report").hidden`, &ok),
		chromedp.Evaluate(reportFetches, &fetched),
	); err != nil {
		t.Fatal(err)
	}
	if fetched != 0 {
		t.Errorf("opening the message fetched the report %d times, want none until the card is opened", fetched)
	}
	var card struct {
		Score, Message, Spam, Focus, Selected string
	}
	if err := chromedp.Run(ctx,
		chromedp.Focus("#tab-text", chromedp.ByID),
		chromedp.KeyEvent(kb.End),
		chromedp.Poll(`document.querySelector(".report-score") !== null`, &ok),
		chromedp.Evaluate(`({score: document.querySelector(".report-score").textContent,
			message: [...document.querySelectorAll(".report-check")].find(li => li.querySelector(".report-id").textContent === "message-id").textContent,
			spam: document.querySelector(".report-rspamd").textContent,
			focus: document.activeElement.id, selected: document.querySelector("#tab-report").getAttribute("aria-selected")})`, &card),
	); err != nil {
		var panel string
		chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector("#panel-report").outerHTML + " | " + document.querySelector("#error").textContent`, &panel))
		t.Fatalf("open the card: %v; panel: %s", err, panel)
	}
	if !strings.HasPrefix(card.Score, "Deliverability score") || !strings.HasSuffix(card.Score, "/ 10") {
		t.Errorf("score line %q, want the score out of 10", card.Score)
	}
	if card.Focus != "tab-report" || card.Selected != "true" {
		t.Errorf("End on the tabs focuses %q (selected %s), want the Deliverability tab", card.Focus, card.Selected)
	}
	for _, want := range []string{"✗ Fail", "−0.3 points", "no Message-ID", "Fix: add a Message-ID field"} {
		if !strings.Contains(card.Message, want) {
			t.Errorf("the message-id check reads %q, want %q in it", card.Message, want)
		}
	}
	if !strings.Contains(card.Spam, "not run") {
		t.Errorf("without rspamd the spam section reads %q", card.Spam)
	}
	var shot []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&shot)); err != nil {
		t.Fatal(err)
	}
	artifact(t, "report-card.png", shot)
	axeClean(t, ctx, "report card")
	if err := chromedp.Run(ctx, emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}})); err != nil {
		t.Fatal(err)
	}
	axeClean(t, ctx, "report card, dark")
	var scrollWidth, innerWidth int
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(375, 740),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &scrollWidth),
		chromedp.Evaluate(`innerWidth`, &innerWidth),
	); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&shot)); err != nil {
		t.Fatal(err)
	}
	artifact(t, "report-card-phone.png", shot)
	axeClean(t, ctx, "report card, phone width, dark")
	if scrollWidth > innerWidth {
		t.Errorf("at phone width the card scrolls sideways: %d px wide in a %d px window", scrollWidth, innerWidth)
	}
	// Away and back, and a language change, redraw the card from the report already read.
	if err := chromedp.Run(ctx,
		chromedp.Click("#tab-headers", chromedp.ByID),
		chromedp.Click("#tab-report", chromedp.ByID),
		chromedp.Poll(`document.querySelector(".report-score") !== null`, &ok),
		chromedp.Evaluate(reportFetches, &fetched),
	); err != nil {
		t.Fatal(err)
	}
	if fetched != 1 {
		t.Errorf("the report was fetched %d times, want once", fetched)
	}

	// While the report is computed the card says so (aria-busy); one that cannot be had
	// says why, in an alert, with a button that asks again.
	n.send(t, address, "From: b@sender.test\r\nSubject: Second\r\nMessage-ID: <2@sender.test>\r\n\r\nhello\r\n")
	var state struct{ Alert, Button string }
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(1280, 800),
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 2`, &ok),
		openBySubject("Second"),
		chromedp.Poll(`document.querySelector("#msg-subject").textContent === "Second" && document.querySelector("#panel-report").hidden`, &ok),
		chromedp.Evaluate(`window.realFetch = window.fetch;
			window.fetch = (u, o) => /\/report$/.test(new URL(u, location).pathname)
				? new Promise((done) => { window.answerReport = () => done(new Response('{"error":{"message":"boom"}}', { status: 500, headers: { "Content-Type": "application/json" } })); })
				: window.realFetch(u, o)`, nil),
		chromedp.Click("#tab-report", chromedp.ByID),
		chromedp.Poll(`document.querySelector("#panel-report").getAttribute("aria-busy") === "true" &&
			document.querySelector("#panel-report [role=status]").textContent === "Computing the deliverability report…"`, &ok),
		chromedp.Evaluate(`window.answerReport()`, nil),
		chromedp.Poll(`document.querySelector("#panel-report [role=alert]") !== null && !document.querySelector("#panel-report").hasAttribute("aria-busy")`, &ok),
		chromedp.Evaluate(`({alert: document.querySelector("#panel-report [role=alert]").textContent, button: document.querySelector("#panel-report button").textContent})`, &state),
	); err != nil {
		t.Fatalf("error state: %v", err)
	}
	if state.Alert != "Could not get the report: boom" || state.Button != "Try again" {
		t.Errorf("a failed report shows %+v", state)
	}
	axeClean(t, ctx, "report card, error")
	var score string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`window.fetch = window.realFetch`, nil),
		chromedp.Click("#panel-report button", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector(".report-score") !== null`, &ok),
		chromedp.Text(".report-score", &score),
	); err != nil {
		t.Fatalf("try again: %v", err)
	}
	if !strings.HasSuffix(score, "/ 10") {
		t.Errorf("after Try again the card reads %q", score)
	}
}

// TestPageReportCardChinese shows the card to a Simplified Chinese browser, with an rspamd
// configured: its labels, categories and statuses are Chinese (a check's detail and fix
// are the server's English), rspamd's verdict and symbols are in a table, and axe finds
// nothing.
func TestPageReportCardChinese(t *testing.T) {
	axe, err := os.ReadFile("testdata/axe/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	// A stand-in for rspamd's /checkv2 (the real one is server/report's test): the card's
	// drawing of a verdict is what is tested here.
	rspamd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"is_skipped":false,"score":3.5,"required_score":15,"action":"no action","symbols":{`+
			`"MISSING_MID":{"name":"MISSING_MID","score":2.5,"description":"Message id is missing"},`+
			`"MISSING_DATE":{"name":"MISSING_DATE","score":1,"description":"Date header is missing"}}}`)
	}))
	t.Cleanup(rspamd.Close)
	n := startNode(t, "-rspamd-url", rspamd.URL)
	ctx := browser(t, chromedp.Flag("lang", "zh-CN"), chromedp.Flag("accept-lang", "zh-CN,zh"))
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	n.send(t, address, signupMail)
	var ok bool
	var card struct{ Tab, Score, Cats, Message, Spam, Symbols string }
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(string(axe), nil),
		chromedp.Poll(`document.querySelector("#messages [data-id]") !== null`, &ok),
		chromedp.Click("#messages [data-id]", chromedp.ByQuery),
		chromedp.Poll(`!document.querySelector("#message").hidden`, &ok),
		chromedp.Click("#tab-report", chromedp.ByID),
		chromedp.Poll(`document.querySelector(".report-score") !== null`, &ok),
		chromedp.Evaluate(`({tab: document.querySelector("#tab-report").textContent,
			score: document.querySelector(".report-score").textContent,
			cats: [...document.querySelectorAll(".report-cat h3")].map(h => h.textContent).join(","),
			message: [...document.querySelectorAll(".report-check")].find(li => li.querySelector(".report-id").textContent === "message-id").textContent,
			spam: document.querySelector(".report-rspamd").textContent,
			symbols: [...document.querySelectorAll(".report-symbols tbody tr")].map(r => r.textContent).join("|")})`, &card),
	); err != nil {
		t.Fatal(err)
	}
	if card.Tab != "送达检测" || !strings.HasPrefix(card.Score, "送达评分") || !strings.Contains(card.Cats, "内容") ||
		!strings.Contains(card.Message, "未通过") || !strings.Contains(card.Message, "修复：") || !strings.Contains(card.Message, "扣 0.3 分") ||
		!strings.Contains(card.Spam, "rspamd：得分 3.5") || !strings.Contains(card.Spam, "说明") ||
		card.Symbols != "MISSING_MID2.5Message id is missing|MISSING_DATE1Date header is missing" {
		t.Errorf("the Chinese card reads %+v", card)
	}
	axeClean(t, ctx, "Chinese report card")
}

// TestPageReportCardBurned opens the card of a message its own reading burned (a
// burn-after-read inbox): the card says the message and its report are gone and how to
// get a report there, rather than an error to retry.
func TestPageReportCardBurned(t *testing.T) {
	n := startNode(t)
	ctx := browser(t)
	firstScreen(t, ctx, n)
	in := createInbox(t, n.http, `{"burn_after_read": true}`)
	var ok bool
	if err := chromedp.Run(ctx, showInbox(in, &ok)); err != nil {
		t.Fatal(err)
	}
	n.send(t, in.Address, "From: Shop <shop@sender.test>\r\nSubject: Burn me\r\n\r\nonce\r\n")
	var text string
	if err := chromedp.Run(ctx,
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 1`, &ok),
		openBySubject("Burn me"),
		chromedp.Poll(`!document.querySelector("#message").hidden && document.querySelector("#msg-subject").textContent === "Burn me"`, &ok),
		chromedp.Click("#tab-report", chromedp.ByID),
		chromedp.Poll(`document.querySelector("#panel-report [role=status]") !== null && !document.querySelector("#panel-report").hasAttribute("aria-busy")`, &ok),
		chromedp.Text("#panel-report", &text),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "The message is gone") || !strings.Contains(text, "GET …/messages/{id}/report") {
		t.Errorf("the burned message's card reads %q", text)
	}
}
