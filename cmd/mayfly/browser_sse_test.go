package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// TestEventSourceResumes follows an inbox with Chromium's own EventSource: it gets a
// message live; its server stops, mail arrives through another node meanwhile, and the
// server comes back; EventSource reconnects by itself with the last id it got, and
// gets the mail it missed, once, and no earlier one again.
func TestEventSourceResumes(t *testing.T) {
	storetest.ForEachRedis(t, func(t *testing.T, _ string) { testEventSourceResumes(t) })
}

func testEventSourceResumes(t *testing.T) {
	redis := redisFlags(t)
	a := startNode(t, redis...)
	b := startNode(t, redis...)
	ctx := browser(t)
	// The page of node a, so the stream is of its origin; the script is the test's.
	const follow = `(async () => {
	const inbox = await fetch("/api/v1/inboxes", {method: "POST"}).then((r) => r.json());
	window.got = [];
	window.opened = 0;
	const es = new EventSource("/api/v1/inboxes/" + inbox.address + "/events?token=" + inbox.token);
	es.onopen = () => window.opened++;
	es.addEventListener("message.received", (e) => window.got.push({id: e.lastEventId, subject: JSON.parse(e.data).subject}));
	await new Promise((resolve) => { const wait = () => window.opened ? resolve() : setTimeout(wait, 10); wait(); });
	return inbox.address;
})()`
	var address string
	var ok bool
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+a.http+"/"),
		chromedp.Evaluate(follow, &address, awaitPromise),
	); err != nil {
		t.Fatalf("open the event stream: %v", err)
	}
	a.send(t, address, "From: Shop <shop@sender.test>\r\nSubject: Live one\r\n\r\nhello\r\n")
	if err := chromedp.Run(ctx, chromedp.Poll(`window.got.some((e) => e.subject === "Live one")`, &ok)); err != nil {
		t.Fatalf("EventSource got no message.received: %v", err)
	}

	a.stop(t)
	b.send(t, address, "From: Shop <shop@sender.test>\r\nSubject: Sent while away\r\n\r\nhello\r\n")
	startNodeOn(t, a.smtp, a.http, redis...)
	if err := chromedp.Run(ctx,
		chromedp.Poll(`window.got.some((e) => e.subject === "Sent while away")`, &ok, chromedp.WithPollingTimeout(30*time.Second)),
	); err != nil {
		t.Fatalf("after the restart EventSource did not get the mail sent meanwhile: %v", err)
	}
	var gotJSON string
	var opened int
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`JSON.stringify(window.got)`, &gotJSON),
		chromedp.Evaluate(`window.opened`, &opened),
	); err != nil {
		t.Fatal(err)
	}
	var got []struct{ ID, Subject string }
	if err := json.Unmarshal([]byte(gotJSON), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Subject != "Live one" || got[1].Subject != "Sent while away" ||
		got[0].ID == "" || got[1].ID == got[0].ID || opened < 2 {
		t.Errorf("EventSource got %+v over %d connections; want Live one, then Sent while away, each once with its id, over two", got, opened)
	}
}
