package httpapi

import (
	"fmt"
	"slices"
	"testing"
)

// readerMail is the kind of message on which the API disagreed with the other views
// before they shared server/mailparse (issue 15): a header block that starts with a
// folded line, a nested multipart that reuses its parent's boundary, a part header
// that starts with a folded line, and a list footer after the text.
const readerMail = "  continued from nothing\r\n" +
	"Subject: Your code\r\n" +
	"From: shop@example.com\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain\r\n\r\nYour code is 482917.\r\n" +
	"--b\r\nContent-Type: text/html\r\n\r\n<p>Your code is <b>482917</b>.</p>\r\n--b--\r\n" +
	"--b\r\n stray\r\nContent-Type: application/pdf; name=receipt.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
	"--b\r\nContent-Type: text/plain\r\n\r\nUnsubscribe: https://lists.example.com/u\r\n--b--\r\n"

func TestMessageReadThroughMailparse(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		path, msg := e.readDelivered(t, box, readerMail)
		var subject string
		for _, h := range msg.Headers {
			if h.Name == "Subject" {
				subject = h.Value
			}
		}
		if subject != "Your code" {
			t.Errorf("headers: Subject = %q, want %q (%+v)", subject, "Your code", msg.Headers)
		}
		if want := "Your code is 482917.\nUnsubscribe: https://lists.example.com/u"; msg.Text != want {
			t.Errorf("text = %q, want %q", msg.Text, want)
		}
		if want := "<p>Your code is <b>482917</b>.</p>"; msg.HTML != want {
			t.Errorf("html = %q, want %q", msg.HTML, want)
		}
		var names []string
		for _, a := range msg.Attachments {
			names = append(names, a.Filename)
		}
		if !slices.Equal(names, []string{"receipt.pdf"}) {
			t.Fatalf("attachments = %+v, want receipt.pdf alone", msg.Attachments)
		}
		r := e.do("GET", fmt.Sprintf("%s/attachments/0", path), box.Token, nil)
		if r.status != 200 || string(r.body) != "%PDF-1.4\n" {
			t.Errorf("attachment 0: %d %q, want %q", r.status, r.body, "%PDF-1.4\n")
		}
		if !slices.Contains(msg.Links, "https://lists.example.com/u") {
			t.Errorf("links = %q, want the footer's", msg.Links)
		}
	})
}
