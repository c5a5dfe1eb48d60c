package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// subjectsOf reads a wait's answer as the subjects of its messages, oldest first.
func subjectsOf(t *testing.T, r response) []string {
	t.Helper()
	var got struct{ Messages []messageJSON }
	r.json(t, &got)
	var out []string
	for _, m := range got.Messages {
		out = append(out, m.Subject)
	}
	return out
}

func TestWaitExpectNone(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, in createResponse) {
		wait := "/api/v1/inboxes/" + in.Address + "/wait?expect=none&"
		if r := e.do("GET", wait+"timeout=300ms&subject=refund", in.Token, nil); r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Errorf("nothing arrived: %d %q, want 204 and no body", r.status, r.body)
		}

		// One arrives while the test waits: the answer comes at once, not at the timeout.
		done := make(chan response, 1)
		go func() { done <- e.do("GET", wait+"timeout=60s&subject=refund", in.Token, nil) }()
		waitForWaiters(t, e.srv, 1)
		e.deliver(in.Address, "Subject: Other\r\n\r\nhi\r\n")
		e.deliver(in.Address, "Subject: Your refund\r\n\r\nhi\r\n")
		r := <-done
		if got := subjectsOf(t, r); r.status != http.StatusConflict || fmt.Sprint(got) != "[Your refund]" {
			t.Errorf("one arrived during the wait: %d %q, want 409 with [Your refund]", r.status, got)
		}

		// Already there: 409 at once, with every match.
		e.deliver(in.Address, "Subject: Second refund\r\n\r\nhi\r\n")
		r = e.do("GET", wait+"timeout=60s&subject=refund", in.Token, nil)
		if got := subjectsOf(t, r); r.status != http.StatusConflict || fmt.Sprint(got) != "[Your refund Second refund]" {
			t.Errorf("two already there: %d %q, want 409 with both", r.status, got)
		}
		if r := e.do("GET", wait+"timeout=300ms&subject=other&from=nobody", in.Token, nil); r.status != http.StatusNoContent {
			t.Errorf("filters that match nothing: %d %s, want 204", r.status, r.body)
		}

		r = e.do("GET", "/api/v1/inboxes/"+in.Address+"/wait?expect=some&timeout=1s", in.Token, nil)
		wantError(t, r, http.StatusBadRequest)
		if !strings.Contains(string(r.body), "expect") {
			t.Errorf("expect=some: %s, want the parameter named", r.body)
		}
	})
}

func TestWaitContentFilters(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, in createResponse) {
		e.deliver(in.Address, "Subject: Plain\r\n\r\nHello World, see https://plain.test/page\r\n")
		e.deliver(in.Address, signup) // HTML: code 482917, link to shop.test/confirm, a PDF
		e.deliver(in.Address, "Subject: Both\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"+
			"--b\r\nContent-Type: text/plain\r\n\r\nSee the web version.\r\n"+
			"--b\r\nContent-Type: text/html\r\n\r\n<p>The <b>Secret</b>   phrase</p>\r\n--b--\r\n")
		tests := []struct {
			query string
			want  []string // nil: none match, 408
		}{
			{"body=HELLO%20world", []string{"Plain"}},
			{"body=verification%20code%20is", []string{"Your verification code"}},
			{"body=secret%20phrase", []string{"Both"}}, // only in the HTML, beside a text part
			{"body=goodbye", nil},
			{"has=code", []string{"Your verification code"}},
			{"has=link&count=2", []string{"Plain", "Your verification code"}},
			{"has=attachment", []string{"Your verification code"}},
			{"has=code,attachment&has=link", []string{"Your verification code"}},
			{"has=attachment&body=hello", nil},
			{"link=plain.test/PAGE", []string{"Plain"}},
			{"link=confirm%3Fu=1", []string{"Your verification code"}},
			{"link=elsewhere.test", nil},
		}
		for _, tt := range tests {
			r := e.do("GET", "/api/v1/inboxes/"+in.Address+"/wait?timeout=300ms&"+tt.query, in.Token, nil)
			if tt.want == nil {
				if r.status != http.StatusRequestTimeout {
					t.Errorf("wait?%s = %d %s, want 408", tt.query, r.status, r.body)
				}
				continue
			}
			if got := subjectsOf(t, r); r.status != 200 || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("wait?%s = %d %q, want %q", tt.query, r.status, got, tt.want)
			}
		}
		r := e.do("GET", "/api/v1/inboxes/"+in.Address+"/wait?timeout=1s&has=codes", in.Token, nil)
		wantError(t, r, http.StatusBadRequest)
		if !strings.Contains(string(r.body), "has=") {
			t.Errorf("has=codes: %s, want the parameter named", r.body)
		}
	})
}

func TestLinkDetails(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, in createResponse) {
		read := func(raw string) (links []string, details string) {
			t.Helper()
			m := e.deliver(in.Address, raw)
			var got struct {
				Links       []string
				LinkDetails []struct{ URL, Text string } `json:"link_details"`
			}
			e.do("GET", "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID, in.Token, nil).json(t, &got)
			return got.Links, fmt.Sprint(got.LinkDetails)
		}
		if links, details := read(signup); fmt.Sprint(links) != "[https://shop.test/confirm?u=1&t=abc]" ||
			details != "[{https://shop.test/confirm?u=1&t=abc Confirm}]" {
			t.Errorf("signup: links %q, details %s, want the confirm link with its text", links, details)
		}
		if links, details := read("Subject: Plain\r\n\r\nGo to https://plain.test/page.\r\n"); fmt.Sprint(links) != "[https://plain.test/page]" ||
			details != "[{https://plain.test/page }]" {
			t.Errorf("plain: links %q, details %s, want the URL with no text", links, details)
		}
	})
}
