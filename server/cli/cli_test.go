package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/httpapi"
	"github.com/mayfly-mail/mayfly/server/mx"
	"github.com/mayfly-mail/mayfly/server/testlib"
)

// server is the API and the receiver behind it (for POST .../messages) on a store, on
// a loopback port; waits counts the wait requests it was sent.
type server struct {
	url   string
	waits atomic.Int64
	// onWait, when set, runs as the n-th wait request arrives.
	onWait func(n int64)
}

func eachServer(t *testing.T, fn func(t *testing.T, s *server)) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "cli"}) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.New(t)
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			domains := []string{"mayfly.test", "other.test"}
			rx := mx.New(mx.Options{Hostname: "mx.mayfly.test", Domains: domains}, st, logger)
			api := httpapi.New(httpapi.Options{Domains: domains, Hostname: "mx.mayfly.test", Secret: []byte("0123456789abcdef0123456789abcdef"), Injector: rx}, st, logger)
			s := &server{}
			h := api.Handler()
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/wait") {
					if n := s.waits.Add(1); s.onWait != nil {
						s.onWait(n)
					}
				}
				h.ServeHTTP(w, r)
			}))
			t.Cleanup(hs.Close)
			s.url = hs.URL
			fn(t, s)
		})
	}
}

// run runs a command with env as its whole environment (plus MAYFLY_URL), and returns
// what it printed and its exit status.
func (s *server) run(t *testing.T, ctx context.Context, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	lookup := func(k string) (string, bool) {
		if k == "MAYFLY_URL" && env[k] == "" {
			return s.url, true
		}
		v, ok := env[k]
		return v, ok
	}
	var out, errOut bytes.Buffer
	cmd := map[string]func(context.Context, []string, Env, io.Writer, io.Writer) error{"inbox": Inbox, "wait": Wait, "report": Report}[args[0]]
	err := cmd(ctx, args[1:], lookup, &out, &errOut)
	var exit *Exit
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.Code
		errOut.WriteString(exit.Message)
	default:
		t.Fatalf("%q returned %v, not an *Exit", args, err)
	}
	return out.String(), errOut.String(), code
}

// inbox creates an inbox with the CLI's default output.
func (s *server) inbox(t *testing.T, args ...string) (address, token string) {
	t.Helper()
	out, errOut, code := s.run(t, context.Background(), nil, append([]string{"inbox"}, args...)...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(lines[0], "@") || lines[1] == "" {
		t.Fatalf("mayfly inbox = %q, %q, %d; want the address and the token, one a line", out, errOut, code)
	}
	return lines[0], lines[1]
}

// inject posts raw to address (a tag included) and returns the stored message's id.
func (s *server) inject(t *testing.T, address, token, raw string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/api/v1/inboxes/"+address+"/messages", strings.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "message/rfc822")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	var sum struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil || resp.StatusCode != 201 {
		t.Errorf("inject = %d %v", resp.StatusCode, err)
	}
	return sum.ID
}

func TestInboxOutputs(t *testing.T) {
	eachServer(t, func(t *testing.T, s *server) {
		addr, token := s.inbox(t)
		if !strings.HasSuffix(addr, "@mayfly.test") {
			t.Errorf("address %q, want one on the first domain", addr)
		}
		s.inject(t, addr, token, "Subject: hi\r\n\r\nhi\r\n")
		if out, errOut, code := s.run(t, context.Background(), map[string]string{"MAYFLY_INBOX": addr, "MAYFLY_TOKEN": token}, "wait", "--subject", "hi"); code != 0 {
			t.Errorf("wait with the printed address and token = %q %q %d", out, errOut, code)
		}

		out, _, code := s.run(t, context.Background(), nil, "inbox", "--env", "--local", "o'brien", "--domain", "other.test")
		if code != 0 || !strings.HasPrefix(out, "MAYFLY_INBOX='o'\\''brien@other.test'\nMAYFLY_TOKEN='") || !strings.HasSuffix(out, "'\n") || strings.Count(out, "\n") != 2 {
			t.Errorf("inbox --env = %q, want two shell assignments, the quote quoted", out)
		}

		out, _, code = s.run(t, context.Background(), nil, "inbox", "--json", "--ttl", "30m")
		var created struct{ Address, Token, TTL string }
		if err := json.Unmarshal([]byte(out), &created); code != 0 || err != nil || created.Address == "" || created.Token == "" || created.TTL != "30m0s" {
			t.Errorf("inbox --json --ttl 30m = %q, %d; want the API's answer with ttl 30m0s", out, code)
		}

		for _, args := range [][]string{
			{"inbox", "--json", "--env"},
			{"inbox", "--ttl", "soon"},
			{"inbox", "--nope"},
			{"inbox", "extra"},
			{"inbox", "--domain", "elsewhere.test"}, // the server's 400
			{"inbox", "--url", "ftp://x"},
		} {
			if out, errOut, code := s.run(t, context.Background(), nil, args...); code != ExitError || errOut == "" {
				t.Errorf("%q = %q %q %d, want status 2 and why on stderr", args, out, errOut, code)
			}
		}
		if _, errOut, _ := s.run(t, context.Background(), nil, "inbox", "--domain", "elsewhere.test"); !strings.Contains(errOut, "not one of this service's domains") {
			t.Errorf("an API error prints %q, want the API's message", errOut)
		}
	})
}

const (
	mailA = "From: Ann <a@shop.test>\r\nTo: friend@x.test\r\nSubject: Welcome\r\n\r\nhello world, see https://shop.test/welcome\r\n"
	mailB = "From: Bank <b@bank.test>\r\nSubject: Your code\r\n\r\nYour code is 123456\r\n"
	mailC = "From: Cat <c@shop.test>\r\nSubject: Reset\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n<p>Reset <a href=\"https://shop.test/reset?t=abc\">here</a></p>\r\n" +
		"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=r.pdf\r\n\r\nPDF\r\n--b--\r\n"
)

func TestWaitFlags(t *testing.T) {
	eachServer(t, func(t *testing.T, s *server) {
		addr, token := s.inbox(t)
		local, domain, _ := strings.Cut(addr, "@")
		a := s.inject(t, addr, token, mailA)
		b := s.inject(t, local+"+signup@"+domain, token, mailB)
		c := s.inject(t, addr, token, mailC)
		env := map[string]string{"MAYFLY_INBOX": addr, "MAYFLY_TOKEN": token}
		ids := func(out string) string {
			var ans struct{ Messages []struct{ ID string } }
			json.Unmarshal([]byte(out), &ans)
			var got []string
			for _, m := range ans.Messages {
				got = append(got, m.ID)
			}
			return strings.Join(got, ",")
		}
		for _, tt := range []struct {
			name string
			args []string
			want string // ids with --json, else the output
		}{
			{"from", []string{"--from", "BANK.test", "--json"}, b},
			{"subject", []string{"--subject", "reset", "--json"}, c},
			{"body", []string{"--body", "hello WORLD", "--json"}, a},
			{"body in html", []string{"--body", "reset here", "--json"}, c},
			{"to", []string{"--to", "friend@", "--json"}, a},
			{"tag", []string{"--tag", "signup", "--json"}, b},
			{"has code", []string{"--has", "code", "--json"}, b},
			{"has attachment", []string{"--has", "attachment", "--json"}, c},
			{"has twice", []string{"--has", "link", "--has", "attachment", "--json"}, c},
			{"link filter", []string{"--link=reset", "--json"}, c},
			{"spf", []string{"--spf", "none", "--from", "shop", "--json"}, a},
			{"dkim", []string{"--dkim", "none", "--subject", "code", "--json"}, b},
			{"dmarc", []string{"--dmarc", "none", "--subject", "welcome", "--json"}, a},
			{"since id", []string{"--since", a, "--from", "shop", "--json"}, c},
			{"count", []string{"--count", "3", "--json"}, a + "," + b + "," + c},
			{"address operand first", []string{addr, "--subject", "reset", "--json"}, c},
			{"address operand last", []string{"--subject", "reset", "--json", addr}, c},
			{"code", []string{"--code"}, "123456\n"},
			{"link", []string{"--link"}, "https://shop.test/welcome\n"},
			{"link=substring", []string{"--link=RESET"}, "https://shop.test/reset?t=abc\n"},
			{"link with from", []string{"--from", "c@", "--link"}, "https://shop.test/reset?t=abc\n"},
			{"default output", []string{"--subject", "code"}, "id: " + b + "\nfrom: Bank <b@bank.test>\nsubject: Your code\n\nYour code is 123456\n"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				out, errOut, code := s.run(t, context.Background(), env, append([]string{"wait", "--timeout", "5s"}, tt.args...)...)
				got := out
				if strings.Contains(strings.Join(tt.args, " "), "--json") {
					got = ids(out)
				}
				if code != 0 || got != tt.want {
					t.Errorf("wait %q = %q (stderr %q, status %d), want %q", tt.args, got, errOut, code, tt.want)
				}
			})
		}
	})
}

func TestWaitExitStatuses(t *testing.T) {
	eachServer(t, func(t *testing.T, s *server) {
		addr, token := s.inbox(t)
		s.inject(t, addr, token, mailB)
		env := map[string]string{"MAYFLY_INBOX": addr, "MAYFLY_TOKEN": token}
		for _, tt := range []struct {
			name       string
			env        map[string]string
			args       []string
			code       int
			out, myErr string
		}{
			{"found", env, []string{"--subject", "code"}, 0, "Your code is 123456", ""},
			{"timeout", env, []string{"--subject", "never", "--timeout", "300ms"}, 1, "", "0 of 1 matching messages"},
			{"timeout in seconds", env, []string{"--subject", "never", "--timeout", "0.3"}, 1, "", "within --timeout 300ms"},
			{"bad timeout", env, []string{"--timeout", "soon"}, 2, "", "want a duration"},
			{"since now", env, []string{"--since", "now", "--subject", "code", "--timeout", "300ms"}, 1, "", "nothing matched within --timeout 300ms"},
			{"expect none, none came", env, []string{"--subject", "never", "--timeout", "300ms", "--expect-none"}, 0, "", ""},
			{"expect none, one came", env, []string{"--subject", "code", "--timeout", "5s", "--none"}, 1, "Your code is 123456", "should not have"},
			{"bad token", map[string]string{"MAYFLY_INBOX": addr, "MAYFLY_TOKEN": "nope"}, nil, 2, "", "that token does not open"},
			{"token flag beats the environment", map[string]string{"MAYFLY_INBOX": addr, "MAYFLY_TOKEN": "nope"}, []string{"--token", token, "--json"}, 0, "123456", ""},
			{"api key variable", map[string]string{"MAYFLY_INBOX": addr, "MAYFLY_API_KEY": "nope"}, nil, 2, "", "that token does not open"},
			{"no token", map[string]string{"MAYFLY_INBOX": addr}, nil, 2, "", "needs its token"},
			{"no address", map[string]string{"MAYFLY_TOKEN": token}, nil, 2, "", "which inbox"},
			{"two addresses", env, []string{addr, addr}, 2, "", "one ADDRESS"},
			{"bad flag", env, []string{"--colour"}, 2, "", "flag provided but not defined"},
			{"bad has", env, []string{"--has", "pony"}, 2, "", "want code, link or attachment"},
			{"bad count", env, []string{"--count", "0"}, 2, "", "--count"},
			{"two outputs", env, []string{"--code", "--json"}, 2, "", "choose one"},
			{"no server", env, []string{"--url", "http://127.0.0.1:1"}, 2, "", "127.0.0.1:1"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				out, errOut, code := s.run(t, context.Background(), tt.env, append([]string{"wait"}, tt.args...)...)
				if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.myErr) {
					t.Errorf("wait %q = %q, stderr %q, status %d; want status %d, %q out, %q on stderr", tt.args, out, errOut, code, tt.code, tt.out, tt.myErr)
				}
			})
		}
	})
}

// TestWaitLongerThanTheServer: a --timeout past the server's longest wait is served
// by waits one after the other, which find mail that arrives during a later one, time
// out in full, and assert that none comes over the whole time.
func TestWaitLongerThanTheServer(t *testing.T) {
	defer func(d time.Duration) { maxServerWait = d }(maxServerWait)
	maxServerWait = 200 * time.Millisecond
	eachServer(t, func(t *testing.T, s *server) {
		addr, token := s.inbox(t)
		env := map[string]string{"MAYFLY_INBOX": addr, "MAYFLY_TOKEN": token}

		s.onWait = func(n int64) {
			if n == 3 {
				go s.inject(t, addr, token, mailB)
			}
		}
		out, errOut, code := s.run(t, context.Background(), env, "wait", "--code", "--timeout", "20s")
		if code != 0 || out != "123456\n" || s.waits.Load() < 3 {
			t.Errorf("wait --code over several server waits = %q %q %d after %d waits, want the code once", out, errOut, code, s.waits.Load())
		}

		s.onWait, s.waits = nil, atomic.Int64{}
		start := time.Now()
		_, errOut, code = s.run(t, context.Background(), env, "wait", "--subject", "never", "--timeout", "900ms")
		if code != 1 || time.Since(start) < 900*time.Millisecond || s.waits.Load() < 5 {
			t.Errorf("wait --timeout 900ms = status %d %q after %s and %d waits, want 1 after 900ms in 5 waits", code, errOut, time.Since(start), s.waits.Load())
		}

		s.waits = atomic.Int64{}
		start = time.Now()
		_, errOut, code = s.run(t, context.Background(), env, "wait", "--subject", "never", "--expect-none", "--timeout", "900ms")
		if code != 0 || time.Since(start) < 900*time.Millisecond || s.waits.Load() < 5 {
			t.Errorf("wait --expect-none --timeout 900ms = status %d %q after %s and %d waits, want 0 after 900ms", code, errOut, time.Since(start), s.waits.Load())
		}

		s.waits = atomic.Int64{}
		s.onWait = func(n int64) {
			if n == 2 {
				go s.inject(t, addr, token, "Subject: late news\r\n\r\nx\r\n")
			}
		}
		out, _, code = s.run(t, context.Background(), env, "wait", "--subject", "late news", "--expect-none", "--timeout", "20s")
		if code != 1 || !strings.Contains(out, "subject: late news") {
			t.Errorf("wait --expect-none while mail comes in a later wait = %q status %d, want it printed and status 1", out, code)
		}
	})
}

// TestWaitInterrupted: Ctrl-C (the context ending) stops a wait at once with status 130.
func TestWaitInterrupted(t *testing.T) {
	eachServer(t, func(t *testing.T, s *server) {
		addr, token := s.inbox(t)
		ctx, cancel := context.WithCancel(context.Background())
		s.onWait = func(int64) { cancel() }
		start := time.Now()
		_, errOut, code := s.run(t, ctx, map[string]string{"MAYFLY_INBOX": addr, "MAYFLY_TOKEN": token}, "wait", "--timeout", "60s")
		if code != ExitStopped || time.Since(start) > 10*time.Second {
			t.Errorf("interrupted wait = status %d %q after %s, want 130 at once", code, errOut, time.Since(start))
		}
	})
}
