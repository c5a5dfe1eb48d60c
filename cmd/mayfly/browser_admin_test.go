package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/emersion/go-smtp"
)

const adminPageKey = "admin-page-key-0123456789"

// TestAdminPage drives /admin in Chromium against a whole node, on each store: a wrong
// key is refused in words; the admin key signs in from the keyboard, kept in the tab's
// session storage only (and across a reload); a namespace made on the page shows its
// key once (copied by the button, gone from the page when dismissed), which cannot sign
// in to the page; that key creates an inbox over the API, and mail sent by SMTP to it
// and to an address of the namespace never created shows in the namespace's usage and
// the activity table, as does mail a full namespace refused, with the limit; limits
// edited on the page reach the API; a key rotated on the page is refused by the API at
// once while the new one works, and a revoked key is refused too; deleting the
// namespace (after Esc cancels once) removes it. The page breaks no rule of its
// Content-Security-Policy, throws nothing, passes axe (light, dark, phone width) and
// does not scroll sideways on a phone. With MAYFLY_SCREENSHOTS set it draws
// docs/teams.md's screenshots:
//
//	MAYFLY_SCREENSHOTS=$PWD/docs/screenshots go test -count=1 -run TestAdminPage/memory ./cmd/mayfly/
func TestAdminPage(t *testing.T) {
	axe, err := os.ReadFile("testdata/axe/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	for name, flags := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, append([]string{"-api-key", adminPageKey}, flags...)...)
			testAdminPage(t, n, string(axe), name == "memory")
		})
	}
}

func testAdminPage(t *testing.T, n *node, axe string, screenshots bool) {
	base := "http://" + n.http

	// The page's own headers: the main page's policy, and no copy kept.
	resp, err := http.Get(base + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /admin = %d, CSP %q, Cache-Control %q; want 200 under the page's policy, no-store", resp.StatusCode, csp, resp.Header.Get("Cache-Control"))
	}

	// On Redis the namespaces outlive the node: another run of the test (-count) makes them again.
	t.Cleanup(func() {
		for _, name := range []string{"qa", "web"} {
			adminCall(t, "DELETE", base+"/api/v1/namespaces/"+name, adminPageKey, "")
		}
	})
	ctx := browser(t)
	watch := watchPage(t, ctx)
	var ok bool
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var shot []byte
			if chromedp.Run(ctx, chromedp.FullScreenshot(&shot, 100)) == nil {
				artifact(t, "admin-failed.png", shot)
			}
			var errText string
			chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector("#error").textContent`, &errText))
			log := n.log.String()
			t.Fatalf("%s: %v (page error: %q); the node's log ends:\n%s", what, err, errText, log[max(0, len(log)-4000):])
		}
	}
	shoot := func(name string) {
		t.Helper()
		dir := os.Getenv("MAYFLY_SCREENSHOTS")
		if dir == "" || !screenshots {
			return
		}
		var shot []byte
		run("screenshot "+name, chromedp.Evaluate(`document.activeElement.blur(); window.scrollTo(0, 0)`, nil), chromedp.FullScreenshot(&shot, 100))
		if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		var s string
		run("read "+sel, chromedp.Evaluate(`(document.querySelector(`+jsString(sel)+`) || {}).textContent || ""`, &s))
		return strings.TrimSpace(s)
	}
	signIn := func(key string) {
		t.Helper()
		run("sign in",
			chromedp.SetValue("#key", key, chromedp.ByID),
			jsClick(`#login-form button[type="submit"]`),
		)
	}
	const card = `article.ns[data-name="qa"]`

	run("open", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/admin"), chromedp.WaitVisible("#key", chromedp.ByID), chromedp.Evaluate(axe, nil))
	var focused string
	run("focus", chromedp.Evaluate(`document.activeElement.id`, &focused))
	if focused != "key" {
		t.Errorf("on load the focus is on %q, want the key field", focused)
	}
	axeClean(t, ctx, "sign-in")

	// A wrong key: refused, said so, not kept.
	signIn("not-the-admin-key")
	run("wrong key", chromedp.Poll(`!document.querySelector("#error").hidden`, &ok))
	if msg := text("#error"); !strings.Contains(msg, "key was refused") || !strings.Contains(msg, "admin key") {
		t.Errorf("a wrong key shows %q, want it to say the key was refused and the admin key is needed", msg)
	}
	var kept string
	run("storage", chromedp.Evaluate(`String(sessionStorage.getItem("mayfly-admin-key")) + (document.querySelector("#admin").hidden ? "" : " shown")`, &kept))
	if kept != "null" {
		t.Errorf("after a wrong key: stored %q, want nothing kept and nothing shown", kept)
	}

	// The admin key, typed and sent with Enter: kept in this tab's session storage only.
	run("sign in from the keyboard",
		chromedp.Focus("#key", chromedp.ByID),
		chromedp.SendKeys("#key", adminPageKey+kb.Enter, chromedp.ByID),
		chromedp.Poll(`!document.querySelector("#admin").hidden && document.querySelector("#error").hidden`, &ok),
		chromedp.Evaluate(`[sessionStorage.getItem("mayfly-admin-key"), localStorage.length, document.cookie].join("|")`, &kept),
	)
	if kept != adminPageKey+"|0|" {
		t.Errorf("signed in, the page keeps %q (session storage | local storage entries | cookies), want the key in session storage only", kept)
	}
	watch.collect(t)
	run("reload", chromedp.Reload(), chromedp.Poll(`!document.querySelector("#admin").hidden && document.querySelector("#error").hidden`, &ok), chromedp.Evaluate(axe, nil))

	// A namespace made on the page: its key shown once, copied by the button.
	run("clipboard", cdpbrowser.GrantPermissions([]cdpbrowser.PermissionType{cdpbrowser.PermissionTypeClipboardReadWrite, cdpbrowser.PermissionTypeClipboardSanitizedWrite}).WithOrigin(base))
	var key, copied string
	run("create",
		chromedp.SendKeys("#c-name", "qa", chromedp.ByID),
		chromedp.SendKeys("#c-ttl", "2h", chromedp.ByID),
		chromedp.SendKeys("#c-inboxes", "5", chromedp.ByID),
		chromedp.SendKeys("#c-send", "10/h", chromedp.ByID),
		jsClick(`#create-form button[type="submit"]`),
		chromedp.Poll(`!document.querySelector("#secret").hidden && document.querySelector(`+jsString(card)+`) !== null`, &ok),
		chromedp.Value("#secret-key", &key, chromedp.ByID),
		chromedp.Evaluate(`document.activeElement.id`, &focused),
		chromedp.Click("#secret-copy", chromedp.ByID), // a real click: the clipboard wants a user's gesture
		chromedp.Poll(`document.querySelector("#secret-copy").textContent !== "Copy key"`, &ok),
		chromedp.Evaluate(`navigator.clipboard.readText()`, &copied, awaitPromise),
	)
	if !strings.HasPrefix(key, "mfk_") {
		t.Fatalf("the new namespace's key shown is %q, want mfk_...", key)
	}
	if focused != "secret" {
		t.Errorf("with the new key shown the focus is on %q, want the key's box", focused)
	}
	if copied != key {
		t.Errorf("Copy key put %q on the clipboard, want the key", copied)
	}
	if w := text("#secret"); !strings.Contains(w, "shown only once") {
		t.Errorf("the new key's box says %q, want the warning that it is shown once", w)
	}
	shoot("admin-new-key.png")
	axeClean(t, ctx, "new key shown")
	var html string
	run("dismiss", jsClick("#secret-done"), chromedp.OuterHTML("html", &html, chromedp.ByQuery))
	if strings.Contains(html, key) {
		t.Error("after I have stored it, the key is still in the page")
	}

	// A namespace key cannot sign in to the admin page.
	run("sign out", jsClick("#signout"), chromedp.WaitVisible("#key", chromedp.ByID))
	signIn(key)
	run("namespace key", chromedp.Poll(`!document.querySelector("#error").hidden`, &ok))
	if msg := text("#error"); !strings.Contains(msg, "not the admin key") {
		t.Errorf("a namespace key signing in shows %q, want it to say it is not the admin key", msg)
	}
	signIn(adminPageKey)
	run("signed in again", chromedp.Poll(`!document.querySelector("#admin").hidden && document.querySelector("#error").hidden`, &ok))

	// The key at work: an inbox of the namespace, mail to it and to an address never
	// created (the namespace catches it), both seen in its usage and the activity.
	status, body := adminCall(t, "POST", base+"/api/v1/inboxes", key, `{"local": "signup"}`)
	var in inboxJSON
	json.Unmarshal(body, &in)
	if status != http.StatusCreated || in.Address != "qa.signup@serve.test" {
		t.Fatalf("POST /api/v1/inboxes with the namespace key = %d %s, want 201 qa.signup@serve.test", status, body)
	}
	n.send(t, in.Address, "From: Acme Shop <noreply@shop.test>\r\nSubject: Welcome\r\n\r\nYour code is 482917.\r\n")
	n.send(t, "qa.fresh-42@serve.test", "From: Acme Shop <noreply@shop.test>\r\nSubject: Reset\r\n\r\nReset your password.\r\n")
	run("usage moves",
		chromedp.Poll(`(() => {
			document.querySelector("#refresh").click();
			const c = document.querySelector(`+jsString(card)+`);
			return c !== null && c.querySelector(".u-messages").textContent === "2";
		})()`, &ok, chromedp.WithPollingInterval(300*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)),
	)
	run("activity shows the deliveries",
		chromedp.Poll(`(() => {
			document.querySelector("#refresh").click();
			return [...document.querySelectorAll("#activity tbody tr")].filter(r => r.textContent.includes("received") && r.textContent.includes("qa.")).length >= 2;
		})()`, &ok, chromedp.WithPollingInterval(300*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)),
	)
	if got := text(card + " .u-inboxes"); !strings.HasSuffix(got, "of 5") || strings.HasPrefix(got, "0 ") {
		t.Errorf("the namespace's inboxes read %q, want at least the one made, of 5", got)
	}
	if got := text(card + " .u-bytes"); strings.HasPrefix(got, "0 B") {
		t.Errorf("the namespace's stored bytes read %q after two messages", got)
	}
	if got := text(card + " .u-ttl"); got != "2h" {
		t.Errorf("the namespace's default ttl reads %q, want 2h", got)
	}
	if got := text(card + " .u-sends"); got != "0 of 10/h" {
		t.Errorf("the namespace's sends read %q, want 0 of 10/h", got)
	}
	if got := text(card + " .keys-table tbody tr td:nth-child(3)"); got == "never" {
		t.Errorf("the key that just made an inbox was last used %q", got)
	}
	if activity := text("#activity tbody"); !strings.Contains(activity, "qa.signup@serve.test") || !strings.Contains(activity, "qa.fresh-42@serve.test") {
		t.Errorf("the activity table reads %q, want both deliveries", activity)
	}
	// A refusal: a second namespace, full at one inbox, refuses mail to a second address
	// at RCPT, and the activity says which limit.
	if status, body := adminCall(t, "POST", base+"/api/v1/namespaces", adminPageKey, `{"name": "web", "max_inboxes": 1, "max_bytes": 10485760}`); status != http.StatusCreated {
		t.Fatalf("POST /api/v1/namespaces web = %d %s", status, body)
	}
	n.send(t, "web.first@serve.test", "From: Acme Shop <noreply@shop.test>\r\nSubject: Hello\r\n\r\nHi.\r\n")
	if err := smtpSend(n.smtp, "web.second@serve.test", "Subject: Refused\r\n\r\nNo room.\r\n"); err == nil {
		t.Fatal("mail to a second address of a namespace with max_inboxes 1 was accepted")
	}
	run("activity shows the refusal",
		chromedp.Poll(`(() => {
			document.querySelector("#refresh").click();
			const web = document.querySelector('article.ns[data-name="web"] .u-inboxes');
			return web !== null && web.textContent.startsWith("1 of 1") &&
				[...document.querySelectorAll("#activity tbody tr")].some(r => r.textContent.includes("refused") && r.textContent.includes("web.second@serve.test") && r.textContent.includes("max_inboxes"));
		})()`, &ok, chromedp.WithPollingInterval(300*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)),
	)
	if got := text(`article.ns[data-name="web"] .u-inboxes`); got != "1 of 1 (full)" && got != "1 of 1" {
		t.Errorf("the full namespace's inboxes read %q, want 1 of 1", got)
	}
	var full bool
	run("full", chromedp.Evaluate(`document.querySelector('article.ns[data-name="web"] .u-inboxes').classList.contains("full")`, &full))
	if !full {
		t.Error("a namespace at its max_inboxes is not marked full")
	}
	shoot("admin.png")

	// Phone width and the dark theme: axe, and no sideways scrolling.
	var wide bool
	run("phone", chromedp.EmulateViewport(390, 844, func(p *emulation.SetDeviceMetricsOverrideParams, s *emulation.SetTouchEmulationEnabledParams) {
		p.Mobile = true
		s.Enabled = true
	}), chromedp.Evaluate(`document.documentElement.scrollWidth > innerWidth`, &wide))
	if wide {
		t.Error("at phone width the admin page scrolls sideways")
	}
	axeClean(t, ctx, "phone")
	shoot("admin-phone.png")
	run("dark", chromedp.EmulateViewport(1280, 900), emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}))
	axeClean(t, ctx, "dark")
	run("light", emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}))

	// Limits edited on the page reach the API.
	run("edit limits",
		jsClick(card+" .edit"),
		chromedp.Poll(`!document.querySelector(`+jsString(card+" .edit-form")+`).hidden`, &ok),
		chromedp.Evaluate(`document.querySelector(`+jsString(card+" .f-inboxes")+`).value = "7"`, nil),
		chromedp.Evaluate(`document.querySelector(`+jsString(card+" .f-bytes")+`).value = "2"`, nil),
	)
	axeClean(t, ctx, "limits open")
	run("save limits",
		jsClick(card+" .edit-form button[type=submit]"),
		chromedp.Poll(`(document.querySelector(`+jsString(card+" .u-inboxes")+`) || {}).textContent.endsWith("of 7")`, &ok),
	)
	var ns struct {
		MaxInboxes int   `json:"max_inboxes"`
		MaxBytes   int64 `json:"max_bytes"`
	}
	status, body = adminCall(t, "GET", base+"/api/v1/namespaces/qa", adminPageKey, "")
	json.Unmarshal(body, &ns)
	if status != 200 || ns.MaxInboxes != 7 || ns.MaxBytes != 2<<20 {
		t.Errorf("after saving the limits, GET the namespace = %d %s, want max_inboxes 7, max_bytes 2 MiB", status, body)
	}

	// Rotate: the old key refused at once, the new one works.
	var rotated string
	run("rotate",
		jsClick(card+` .keys-table tbody button:not(.danger)`),
		chromedp.Poll(`document.querySelector("#confirm").open`, &ok),
		jsClick("#confirm-yes"),
		chromedp.Poll(`!document.querySelector("#secret").hidden && document.querySelector("#secret-key").value !== `+jsString(key), &ok),
		chromedp.Value("#secret-key", &rotated, chromedp.ByID),
		jsClick("#secret-done"),
	)
	if status, body := adminCall(t, "GET", base+"/api/v1/namespaces/qa", key, ""); status != http.StatusUnauthorized && status != http.StatusForbidden {
		t.Errorf("the rotated-out key still answers %d %s, want refused", status, body)
	}
	if status, body := adminCall(t, "GET", base+"/api/v1/namespaces/qa", rotated, ""); status != 200 {
		t.Errorf("the key made by rotation answers %d %s, want 200", status, body)
	}
	run("one key left", chromedp.Poll(`document.querySelectorAll(`+jsString(card+" .keys-table tbody tr")+`).length === 1`, &ok))

	// Revoke: the key refused, the namespace left with none.
	run("revoke",
		jsClick(card+` .keys-table tbody button.danger`),
		chromedp.Poll(`document.querySelector("#confirm").open`, &ok),
		jsClick("#confirm-yes"),
		chromedp.Poll(`!document.querySelector(`+jsString(card+" .no-keys")+`).hidden`, &ok),
	)
	if status, body := adminCall(t, "GET", base+"/api/v1/namespaces/qa", rotated, ""); status != http.StatusUnauthorized && status != http.StatusForbidden {
		t.Errorf("the revoked key still answers %d %s, want refused", status, body)
	}

	// Delete: Esc cancels the confirmation, Delete namespace confirms it.
	run("delete cancelled",
		jsClick(card+" .delete"),
		chromedp.Poll(`document.querySelector("#confirm").open`, &ok),
		chromedp.KeyEvent(kb.Escape),
		chromedp.Poll(`!document.querySelector("#confirm").open`, &ok),
		chromedp.Evaluate(`document.activeElement.classList.contains("delete")`, &ok),
	)
	if !ok {
		t.Error("after Esc on the confirmation, the focus is not back on Delete namespace")
	}
	if status, _ := adminCall(t, "GET", base+"/api/v1/namespaces/qa", adminPageKey, ""); status != 200 {
		t.Fatalf("after Esc the namespace answers %d, want it kept", status)
	}
	run("delete",
		jsClick(card+" .delete"),
		chromedp.Poll(`document.querySelector("#confirm").open`, &ok),
		jsClick("#confirm-yes"),
		chromedp.Poll(`document.querySelector(`+jsString(card)+`) === null`, &ok),
	)
	if status, body := adminCall(t, "GET", base+"/api/v1/namespaces/qa", adminPageKey, ""); status != http.StatusNotFound {
		t.Errorf("after Delete namespace, GET it = %d %s, want 404", status, body)
	}
	if e := text("#error"); e != "" {
		t.Errorf("the page shows an error at the end: %q", e)
	}

	// Sign out forgets the key.
	signOutKey := ""
	run("sign out", jsClick("#signout"), chromedp.Evaluate(`String(sessionStorage.getItem("mayfly-admin-key"))`, &signOutKey))
	if signOutKey != "null" {
		t.Errorf("after Sign out the tab still keeps %q", signOutKey)
	}
	watch.check(t)
}

// jsClick clicks what sel finds once it is shown, finding and clicking in one step:
// the page redraws its namespaces when they change, and a node found by one step of
// chromedp may be gone by the next.
func jsClick(sel string) chromedp.Action {
	var ok bool
	return chromedp.Poll(`(() => {
		const e = document.querySelector(`+jsString(sel)+`);
		if (!e || e.offsetParent === null) return false;
		e.focus(); // as a click with the mouse would
		e.click();
		return true;
	})()`, &ok)
}

// smtpSend sends one message to the node's SMTP listener and returns its refusal, if any.
func smtpSend(addr, to, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SendMail("s@sender.test", []string{to}, strings.NewReader(body))
}

// adminCall makes one API request with key as Bearer and returns the status and body.
func adminCall(t *testing.T, method, url, key, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, bytes.TrimSpace(b)
}

// pageWatch collects what a page must never do: break its Content-Security-Policy
// (seen by the page's securitypolicyviolation events and by the console, where
// Chromium also reports it), throw, or log an error with console.error.
type pageWatch struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func watchPage(t *testing.T, ctx context.Context) *pageWatch {
	t.Helper()
	w := &pageWatch{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		var p string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			p = "exception: " + e.ExceptionDetails.Error()
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p = "console." + string(e.Type) + ": " + strings.Join(args, " ")
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Source == cdplog.SourceSecurity || strings.Contains(e.Entry.Text, "Content Security Policy") {
				p = "console: " + e.Entry.Text
			}
		}
		if p != "" {
			w.mu.Lock()
			w.problems = append(w.problems, p)
			w.mu.Unlock()
		}
	})
	if err := chromedp.Run(ctx, cdplog.Enable(), chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(`window.cspViolations = [];
			document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));`).Do(ctx)
		return err
	})); err != nil {
		t.Fatal(err)
	}
	return w
}

// collect takes the violations the page has seen so far: call it before the page is
// left or reloaded, which starts a new list.
func (w *pageWatch) collect(t *testing.T) {
	t.Helper()
	var violations []string
	if err := chromedp.Run(w.ctx, chromedp.Evaluate(`window.cspViolations || ["no watcher in the page"]`, &violations)); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range violations {
		w.problems = append(w.problems, "Content-Security-Policy violation: "+v)
	}
}

func (w *pageWatch) check(t *testing.T) {
	t.Helper()
	w.collect(t)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Errorf("page: %s", p)
	}
}
