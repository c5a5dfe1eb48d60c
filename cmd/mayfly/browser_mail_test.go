package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// listing is what the API lists of an inbox, as the page's token reads it.
func listing(t *testing.T, httpAddr, address, token string) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/v1/inboxes/"+address+"/messages", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Messages []struct {
			Subject string
			Seen    bool
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range r.Messages {
		seen[m.Subject] = m.Seen
	}
	return seen
}

// pageInbox is the inbox the page is showing, from its localStorage.
func pageInbox(t *testing.T, ctx context.Context) inboxJSON {
	t.Helper()
	var in inboxJSON
	if err := chromedp.Run(ctx, chromedp.Evaluate(`(() => {
		const cur = localStorage.getItem("mayfly.current");
		return JSON.parse(localStorage.getItem("mayfly.inboxes")).find(i => i.address === cur);
	})()`, &in)); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestPageMailHandling reads mail as a user of the page would: the unread badge counts,
// opening marks the message seen on the server (so a reload and IMAP agree), search
// narrows the list (by sender, subject and body), j/k/o/Delete/?// work, and Delete all empties the inbox.
func TestPageMailHandling(t *testing.T) {
	n := startNode(t)
	ctx := browser(t)
	var ok bool
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	in := pageInbox(t, ctx)
	for _, s := range []string{"Alpha", "Bravo", "Charlie"} {
		n.send(t, address, "From: Shop <shop@sender.test>\r\nSubject: "+s+"\r\nContent-Type: text/html\r\n\r\n<p>Body of "+s+"</p>\r\n")
	}
	var unread string
	if err := chromedp.Run(ctx,
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 3`, &ok),
		chromedp.Text("#unread", &unread),
	); err != nil {
		t.Fatal(err)
	}
	if unread != "3" {
		t.Errorf("unread badge = %q, want 3", unread)
	}

	// Keyboard: j selects the newest, o opens it, j opens the next older, Delete deletes
	// it and opens the one after; / goes to the search, ? shows the help.
	var source string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.activeElement.blur()`, nil),
		chromedp.KeyEvent("j"),
		chromedp.KeyEvent("o"),
		chromedp.Poll(`!document.querySelector("#message").hidden && document.querySelector("#msg-subject").textContent === "Charlie"`, &ok),
		chromedp.Poll(`document.querySelector("#unread").textContent === "2"`, &ok),
		chromedp.Evaluate(`document.activeElement.blur()`, nil),
		chromedp.KeyEvent("j"),
		chromedp.Poll(`document.querySelector("#msg-subject").textContent === "Bravo"`, &ok),
		chromedp.Click("#tab-source", chromedp.ByID),
		chromedp.Text("#source", &source),
		chromedp.Evaluate(`document.activeElement.blur()`, nil),
		chromedp.KeyEvent(kb.Delete),
		chromedp.Poll(`document.querySelector("#msg-subject").textContent === "Alpha" && document.querySelectorAll("#messages [data-id]").length === 2`, &ok),
		chromedp.KeyEvent("?"),
		chromedp.Poll(`document.querySelector("#help").open`, &ok),
		chromedp.KeyEvent(kb.Escape),
		chromedp.Poll(`!document.querySelector("#help").open`, &ok),
		chromedp.KeyEvent("/"),
		chromedp.Poll(`document.activeElement === document.querySelector("#search")`, &ok),
	); err != nil {
		var state string
		chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector("#msg-subject").textContent + " | " + document.querySelector("#messages").textContent + " | " + (document.activeElement && document.activeElement.id)`, &state))
		t.Fatalf("keyboard: %v; page: %s", err, state)
	}
	if !strings.Contains(source, "<p>Body of Bravo</p>") {
		t.Errorf("HTML source tab shows %q", source)
	}
	// Seen on the server, not only in this page: the reload keeps it, IMAP would see it.
	seen := listing(t, n.http, address, in.Token)
	if !seen["Charlie"] || !seen["Alpha"] {
		t.Errorf("the server's seen flags after opening Charlie and Alpha: %v", seen)
	}
	var unreadItems []string
	if err := chromedp.Run(ctx,
		chromedp.Reload(),
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 2`, &ok),
		chromedp.Evaluate(`[...document.querySelectorAll("#messages li.unread")].map(li => li.textContent)`, &unreadItems),
		chromedp.Evaluate(`document.querySelector("#unread").hidden`, &ok),
	); err != nil {
		t.Fatal(err)
	}
	if len(unreadItems) != 0 || !ok {
		t.Errorf("after a reload, messages read before show unread: %q (badge hidden: %v)", unreadItems, ok)
	}

	// Search narrows the list to what matches, by subject or sender.
	n.send(t, address, "From: Newsletter <news@other.test>\r\nSubject: Weekly\r\n\r\nhello\r\n")
	var shown []string
	if err := chromedp.Run(ctx,
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 3`, &ok),
		chromedp.SendKeys("#search", "other.test", chromedp.ByID),
		chromedp.Poll(`document.querySelectorAll("#messages li:not([hidden])").length === 1`, &ok),
		chromedp.Evaluate(`[...document.querySelectorAll("#messages li:not([hidden]) .subject")].map(e => e.textContent)`, &shown),
	); err != nil {
		t.Fatalf("search: %v", err)
	}
	if len(shown) != 1 || shown[0] != "Weekly" {
		t.Errorf("search for other.test shows %q", shown)
	}
	// And by words of the body, of messages not opened in this page too.
	if err := chromedp.Run(ctx,
		chromedp.SetValue("#search", "", chromedp.ByID),
		chromedp.SendKeys("#search", "body of alpha", chromedp.ByID),
		chromedp.Poll(`document.querySelectorAll("#messages li:not([hidden])").length === 1`, &ok),
		chromedp.Evaluate(`[...document.querySelectorAll("#messages li:not([hidden]) .subject")].map(e => e.textContent)`, &shown),
	); err != nil {
		t.Fatalf("search in bodies: %v", err)
	}
	if len(shown) != 1 || shown[0] != "Alpha" {
		t.Errorf("search for words of Alpha's body shows %q", shown)
	}

	// Delete all, once confirmed.
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`window.confirm = () => true`, nil),
		chromedp.Click("#delete-all", chromedp.ByID),
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 0`, &ok),
	); err != nil {
		t.Fatalf("delete all: %v", err)
	}
	if left := listing(t, n.http, address, in.Token); len(left) != 0 {
		t.Errorf("after Delete all the server still lists %v", left)
	}
}

// TestPageBurnAfterRead opens a message of a burn-after-read inbox: reading burns it, yet
// the page shows its HTML body in full (the frame is loaded before the read, as the html
// route answers 404 after it), and the server no longer has it.
func TestPageBurnAfterRead(t *testing.T) {
	n := startNode(t)
	ctx := browser(t)
	firstScreen(t, ctx, n)
	in := createInbox(t, n.http, `{"burn_after_read": true}`)
	var ok bool
	if err := chromedp.Run(ctx, showInbox(in, &ok)); err != nil {
		t.Fatal(err)
	}
	n.send(t, in.Address, "From: Shop <shop@sender.test>\r\nSubject: Burn me\r\nContent-Type: text/html\r\n\r\n"+
		`<div style="background:#ff0000;width:120px;height:120px"></div>`+"\r\n")
	if err := chromedp.Run(ctx,
		chromedp.Poll(`document.querySelectorAll("#messages [data-id]").length === 1`, &ok),
		openBySubject("Burn me"),
		chromedp.Poll(`!document.querySelector("#message").hidden && document.querySelector("#msg-subject").textContent === "Burn me"`, &ok),
	); err != nil {
		t.Fatalf("open: %v", err)
	}
	var shot []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		attempt, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := chromedp.Run(attempt, chromedp.Screenshot("iframe#body", &shot, chromedp.ByQuery))
		cancel()
		if err == nil && redPixels(t, shot) >= 100*100 {
			break
		}
		if time.Now().After(deadline) {
			artifact(t, "burn.png", shot)
			t.Fatalf("the burned message's HTML body shows %d red pixels, want its 120×120 block (screenshot burn.png)", redPixels(t, shot))
		}
		time.Sleep(50 * time.Millisecond) // polling what is drawn, with a deadline
	}
	if left := listing(t, n.http, in.Address, in.Token); len(left) != 0 {
		t.Errorf("after reading, a burn-after-read inbox still lists %v", left)
	}
}

// showInbox makes the page show in, as if the reader had opened it before: it is the
// browser's only inbox, and the current one.
func showInbox(in inboxJSON, ok *bool) chromedp.Action {
	return chromedp.Tasks{
		chromedp.Evaluate(`localStorage.setItem("mayfly.inboxes", JSON.stringify([{address: `+jsString(in.Address)+`, token: `+jsString(in.Token)+`}])); localStorage.setItem("mayfly.current", `+jsString(in.Address)+`)`, nil),
		chromedp.Reload(),
		chromedp.Poll(`document.querySelector("#address").textContent.trim() === `+jsString(in.Address), ok),
	}
}
