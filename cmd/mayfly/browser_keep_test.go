package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// inboxSettings is what GET /api/v1/inboxes/{address} says of an inbox.
func inboxSettings(t *testing.T, httpAddr, address, token string) (ttl string, burn bool) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/v1/inboxes/"+address, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		TTL  string `json:"ttl"`
		Burn bool   `json:"burn_after_read"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.TTL, r.Burn
}

// TestPageShareLink keeps an inbox: the token is masked until shown, the lifetime and
// burn-after-read change on the server from the page, and the share link, whose token
// is in the fragment only, opens the inbox with its mail in a fresh browser profile,
// which then forgets it only when that is confirmed; the first browser's list of inboxes
// shows each one's unread count.
func TestPageShareLink(t *testing.T) {
	n := startNode(t)
	ctx := browser(t)
	address := strings.TrimSpace(firstScreen(t, ctx, n))
	in := pageInbox(t, ctx)
	n.send(t, address, "From: Shop <shop@sender.test>\r\nSubject: Kept\r\n\r\nhello\r\n")
	var ok bool
	var masked, shown, link, exampleBefore, exampleAfter string
	var qrWidth int
	if err := chromedp.Run(ctx,
		chromedp.Click("#keep summary", chromedp.ByQuery),
		chromedp.Text("#token", &masked),
		chromedp.Text("#api-example", &exampleBefore),
		chromedp.Click("#token-show", chromedp.ByID),
		chromedp.Text("#token", &shown),
		chromedp.Text("#api-example", &exampleAfter),
		chromedp.Value("#share-link", &link),
		chromedp.Poll(`!document.querySelector("#qr").hidden && document.querySelector("#qr").complete && document.querySelector("#qr").naturalWidth > 0`, &ok),
		chromedp.Evaluate(`document.querySelector("#qr").naturalWidth`, &qrWidth),
	); err != nil {
		t.Fatalf("keep panel: %v", err)
	}
	if strings.Contains(masked, in.Token) || shown != in.Token {
		t.Errorf("token before Show %q, after %q; want it masked, then %q", masked, shown, in.Token)
	}
	if strings.Contains(exampleBefore, in.Token) || !strings.Contains(exampleAfter, in.Token) {
		t.Errorf("the API example before Show:\n%s\nafter:\n%s\nwant the token in the second only", exampleBefore, exampleAfter)
	}
	before, fragment, _ := strings.Cut(link, "#")
	if strings.Contains(before, in.Token) || !strings.Contains(fragment, "token="+in.Token) || !strings.HasPrefix(link, "http://"+n.http+"/") {
		t.Errorf("share link %q: want the token in its fragment only", link)
	}
	if qrWidth < 21 {
		t.Errorf("QR code image %d px wide", qrWidth)
	}

	if err := chromedp.Run(ctx,
		chromedp.SetValue("#ttl-pick", "21600", chromedp.ByID),
		chromedp.Click("#ttl-form button", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#ttl").textContent.includes("6 hours")`, &ok),
		chromedp.Click("#burn", chromedp.ByID),
		chromedp.Poll(`JSON.parse(localStorage.getItem("mayfly.inboxes"))[0].burn === true`, &ok),
	); err != nil {
		t.Fatalf("lifetime and burn-after-read: %v", err)
	}
	if ttl, burn := inboxSettings(t, n.http, address, in.Token); ttl != "6h0m0s" || !burn {
		t.Errorf("after the page's changes the server says ttl %q, burn after read %v; want 6h0m0s, true", ttl, burn)
	}

	// Another browser, a profile of its own: the link is all it has.
	other := browser(t)
	var hash string
	if err := chromedp.Run(other,
		chromedp.Navigate(link),
		chromedp.Poll(`document.querySelector("#address").textContent.trim() === `+jsString(address), &ok),
		chromedp.Poll(`[...document.querySelectorAll("#messages [data-id]")].some(e => e.textContent.includes("Kept"))`, &ok),
		chromedp.Evaluate(`location.hash`, &hash),
	); err != nil {
		t.Fatalf("the share link in a fresh profile: %v", err)
	}
	if hash != "" {
		t.Errorf("after opening, the address bar still holds the fragment %q", hash)
	}
	var asked bool
	var kept int
	if err := chromedp.Run(other,
		chromedp.Evaluate(`window.asked = false; window.confirm = () => { window.asked = true; return false; }`, nil),
		chromedp.Click("#keep summary", chromedp.ByQuery),
		// The QR code, drawn as the panel opens, moves the button down: click after.
		chromedp.Poll(`!document.querySelector("#qr").hidden && document.querySelector("#qr").complete`, &ok),
		chromedp.Click("#forget-current", chromedp.ByID),
		chromedp.Poll(`window.asked`, &asked),
		chromedp.Evaluate(`JSON.parse(localStorage.getItem("mayfly.inboxes")).length`, &kept),
	); err != nil {
		t.Fatal(err)
	}
	if !asked || kept != 1 {
		t.Errorf("Forget, refused: asked %v, inboxes kept %d; want asked, 1", asked, kept)
	}

	// Open an inbox by address and token: a wrong token is refused, the right one opens it.
	made := createInbox(t, n.http, `{}`)
	var refused string
	if err := chromedp.Run(other,
		chromedp.Click("#others summary", chromedp.ByQuery),
		chromedp.SendKeys("#open-address", made.Address, chromedp.ByID),
		chromedp.SendKeys("#open-token", "not-"+made.Token, chromedp.ByID),
		chromedp.Click("#open-form button", chromedp.ByQuery),
		chromedp.Poll(`!document.querySelector("#error").hidden`, &ok),
		chromedp.Text("#error", &refused),
		chromedp.SetValue("#open-token", made.Token, chromedp.ByID),
		chromedp.Click("#open-form button", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#address").textContent.trim() === `+jsString(made.Address)+` && document.querySelectorAll("#inboxes li").length === 2`, &ok),
	); err != nil {
		t.Fatalf("open an inbox by address and token: %v", err)
	}
	if refused == "" {
		t.Error("a wrong token was not refused")
	}

	// Back in the first browser, on a new address: the list of its inboxes shows the
	// first one's unread mail.
	if err := chromedp.Run(ctx,
		chromedp.Click("#new", chromedp.ByID),
		chromedp.Poll(`document.querySelector("#address").textContent.includes("@") && !document.querySelector("#address").textContent.includes(`+jsString(address)+`)`, &ok),
		chromedp.Click("#others summary", chromedp.ByQuery),
		chromedp.Poll(`[...document.querySelectorAll("#inboxes li")].some(li => li.textContent.includes(`+jsString(address)+`) && li.querySelector(".count") && li.querySelector(".count").textContent === "1")`, &ok),
	); err != nil {
		var state string
		chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector("#inboxes").textContent`, &state))
		t.Fatalf("unread badge of another inbox: %v; list: %s", err, state)
	}
}
