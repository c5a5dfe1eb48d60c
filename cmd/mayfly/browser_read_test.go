package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPageShowsInlineImages opens a mail whose HTML shows a cid: image many times and
// looks at the frame as drawn: the image must be there, loaded from the attachment
// route by the sandboxed frame (an opaque origin, no cookies, no header: the URL's
// key is all it has), under the frame's Content-Security-Policy.
func TestPageShowsInlineImages(t *testing.T) {
	n := startNode(t)
	ctx := browser(t)
	address := firstScreen(t, ctx, n)
	var ok bool
	red := image.NewRGBA(image.Rect(0, 0, 60, 60))
	for i := range red.Pix {
		if i%4 == 0 || i%4 == 3 {
			red.Pix[i] = 0xff
		}
	}
	var img bytes.Buffer
	if err := png.Encode(&img, red); err != nil {
		t.Fatal(err)
	}
	n.send(t, strings.TrimSpace(address), "From: Shop <shop@sender.test>\r\nSubject: Logo\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/related; boundary=r\r\n\r\n"+
		"--r\r\nContent-Type: text/html\r\n\r\n<p>Our logo:</p>"+strings.Repeat(`<img src="cid:logo@shop.test" width="60" height="60">`, 50)+"\r\n"+
		"--r\r\nContent-Type: image/png\r\nContent-ID: <logo@shop.test>\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		base64.StdEncoding.EncodeToString(img.Bytes())+"\r\n--r--\r\n")
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(watchFrames, nil),
		chromedp.Poll(`[...document.querySelectorAll("#messages [data-id]")].some(e => e.textContent.includes("Logo"))`, &ok),
		chromedp.Evaluate(`[...document.querySelectorAll("#messages [data-id]")].find(e => e.textContent.includes("Logo")).click()`, nil),
		chromedp.Poll(`window.mayflyTest.loads >= 1`, &ok), // after its images
	); err != nil {
		t.Fatalf("message view: %v", err)
	}
	var shot []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		attempt, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := chromedp.Run(attempt, chromedp.Screenshot("iframe#body", &shot, chromedp.ByQuery))
		cancel()
		if err == nil && redPixels(t, shot) >= 60*60 {
			break
		}
		if time.Now().After(deadline) {
			artifact(t, "inline-images.png", shot)
			t.Fatalf("the frame shows %d red pixels of its cid: image, want at least one whole image (screenshot inline-images.png)", redPixels(t, shot))
		}
		time.Sleep(50 * time.Millisecond) // polling what is drawn, with a deadline
	}
}

func redPixels(t *testing.T, shot []byte) int {
	m, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return 0
	}
	n := 0
	b := m.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if c := color.RGBAModel.Convert(m.At(x, y)).(color.RGBA); c.R > 0xf0 && c.G < 0x10 && c.B < 0x10 {
				n++
			}
		}
	}
	return n
}
