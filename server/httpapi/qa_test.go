package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// TestParallelQASuite is a CI runner's black-box suite on default settings: 200 tests
// at once from one address, each creating an inbox, waiting for its mail (all 200 waits
// open together, each holding a connection), reading it and deleting the inbox. Every
// request must succeed the first time: no 429, no retries.
func TestParallelQASuite(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, newStore(t), Options{})
			const tests = 200
			// A client of its own, as a suite's would be: a connection per request in
			// flight, none shared with other tests of this package.
			tr := http.DefaultTransport.(*http.Transport).Clone()
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			do := func(method, path, token string, body io.Reader) (int, []byte, error) {
				req, err := http.NewRequest(method, e.base+path, body)
				if err != nil {
					return 0, nil, err
				}
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := client.Do(req)
				if err != nil {
					return 0, nil, err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return resp.StatusCode, b, err
			}

			var (
				mu       sync.Mutex
				failures []string
			)
			fail := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, fmt.Sprintf(format, args...))
			}
			created := make(chan string, tests) // an address, or "" for a test that failed to create one
			var wg sync.WaitGroup
			for i := range tests {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, body, err := do("POST", "/api/v1/inboxes", "", nil)
					if err != nil || status != http.StatusCreated {
						fail("test %d: create = %d %s %v", i, status, body, err)
						created <- ""
						return
					}
					var in createResponse
					if err := json.Unmarshal(body, &in); err != nil {
						fail("test %d: create answer %s: %v", i, body, err)
						created <- ""
						return
					}
					created <- in.Address
					base := "/api/v1/inboxes/" + in.Address
					status, body, err = do("GET", base+"/wait?timeout=60s", in.Token, nil)
					if err != nil || status != http.StatusOK {
						fail("test %d: wait = %d %s %v", i, status, body, err)
						return
					}
					var waited struct {
						Messages []struct {
							ID string `json:"id"`
						} `json:"messages"`
					}
					if err := json.Unmarshal(body, &waited); err != nil || len(waited.Messages) != 1 {
						fail("test %d: wait answer %s: %v", i, body, err)
						return
					}
					status, body, err = do("GET", base+"/messages/"+waited.Messages[0].ID, in.Token, nil)
					var m struct {
						Subject string   `json:"subject"`
						Codes   []string `json:"codes"`
					}
					if err != nil || status != http.StatusOK || json.Unmarshal(body, &m) != nil || m.Subject != "Code for "+in.Address {
						fail("test %d: read = %d %s %v", i, status, body, err)
						return
					}
					if status, body, err = do("DELETE", base, in.Token, nil); err != nil || status != http.StatusOK {
						fail("test %d: delete = %d %s %v", i, status, body, err)
					}
				}()
			}

			var inboxes []string
			for range tests {
				if in := <-created; in != "" {
					inboxes = append(inboxes, in)
				}
			}
			if len(inboxes) == tests {
				// The mail comes while every test waits, as it does when the application
				// under test sends it.
				waitForWaiters(t, e.srv, tests)
			}
			now := time.Now()
			for _, in := range inboxes {
				m := &storage.Message{
					Inbox: in, Subject: "Code for " + in, From: "noreply@shop.test",
					Received: now, Expires: now.Add(time.Hour),
					Raw: []byte("From: noreply@shop.test\r\nSubject: Code for " + in + "\r\n\r\nYour code is 482913\r\n"),
				}
				if err := e.store.Put(context.Background(), m); err != nil {
					t.Errorf("deliver to %s: %v", in, err)
				}
			}
			wg.Wait()
			if len(failures) > 0 {
				t.Errorf("%d failures of %d tests, such as:\n%s", len(failures), tests, strings.Join(failures[:min(5, len(failures))], "\n"))
			}
			for _, reason := range []string{"connections", "rate", "create_rate", "reads"} {
				if n := refused(e.srv, reason); n != 0 {
					t.Errorf("refused{reason=%s} = %d, want 0", reason, n)
				}
			}
		})
	}
}

// TestRatePerCredential: requests that a credential opened count under their inbox, one
// bucket per inbox, and leave the address's bucket alone; creations count only in
// their own bucket; requests with no credential or a wrong one count by address.
func TestRatePerCredential(t *testing.T) {
	st := stores(t)["memory"](t)
	const admin = "admin-key-123456"
	e := newEnv(t, st, Options{
		RequestRate: limit.Rate{N: 5, Per: time.Hour}, CreateRate: limit.Rate{N: 8, Per: time.Hour}, APIKey: admin,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	create := func(ip string) (response, createResponse) {
		req, err := http.NewRequest("POST", e.base+"/api/v1/inboxes", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = from(ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var in createResponse
		if resp.StatusCode == http.StatusCreated {
			if err := json.Unmarshal(b, &in); err != nil {
				t.Fatal(err)
			}
		}
		return response{resp.StatusCode, resp.Header, b}, in
	}

	// Eight creations from one address, past its five requests: creations are counted
	// in their own bucket instead of the request rate, not on top of it.
	const runner = "198.51.100.7"
	var inboxes []createResponse
	for i := range 8 {
		r, in := create(runner)
		if r.status != http.StatusCreated {
			t.Fatalf("creation %d of 8 with a request rate of 5 = %d %s, want 201", i+1, r.status, r.body)
		}
		inboxes = append(inboxes, in)
	}
	if r, _ := create(runner); r.status != http.StatusTooManyRequests || errorCode(r.body) != "create_rate_limited" {
		t.Errorf("ninth creation = %d %s, want 429 create_rate_limited", r.status, r.body)
	}
	// Each inbox has five requests of its own, from the same address.
	for _, in := range inboxes[:3] {
		messages := "/api/v1/inboxes/" + in.Address + "/messages"
		for i := range 5 {
			if r := e.getWith(messages, in.Token, from(runner)); r.status != 200 {
				t.Fatalf("request %d of 5 at %s = %d %s, want 200", i+1, in.Address, r.status, r.body)
			}
		}
		r := e.getWith(messages, in.Token, from(runner))
		if r.status != http.StatusTooManyRequests || errorCode(r.body) != "rate_limited" || r.header.Get("Retry-After") != "720" || !strings.Contains(string(r.body), "MAYFLY_HTTP_RATE") {
			t.Errorf("sixth request at %s = %d %v %s, want 429 rate_limited, Retry-After: 720, naming MAYFLY_HTTP_RATE", in.Address, r.status, r.header, r.body)
		}
		// An inbox's bucket is the inbox's, whoever asks with its token.
		if r := e.getWith(messages, in.Token, from("198.51.100.8")); r.status != http.StatusTooManyRequests {
			t.Errorf("the same inbox from another address = %d, want 429", r.status)
		}
	}
	// The admin key counts under the inbox it opens, too.
	other := "/api/v1/inboxes/" + inboxes[3].Address + "/messages"
	for i := range 5 {
		if r := e.getWith(other, admin, from(runner)); r.status != 200 {
			t.Fatalf("admin request %d of 5 = %d %s", i+1, r.status, r.body)
		}
	}
	if r := e.getWith(other, inboxes[3].Token, from(runner)); r.status != http.StatusTooManyRequests {
		t.Errorf("the inbox's token after five admin requests at it = %d, want 429", r.status)
	}
	// None of that was the address's: it still has its five requests without credentials.
	for i := range 5 {
		if r := e.getWith("/api/v1/service", "", from(runner)); r.status != 200 {
			t.Fatalf("request %d of 5 without credentials, after the inboxes' = %d %s", i+1, r.status, r.body)
		}
	}
	r := e.getWith("/api/v1/inboxes/"+inboxes[4].Address+"/messages", "", from(runner))
	if r.status != http.StatusTooManyRequests || errorCode(r.body) != "rate_limited" || !strings.Contains(string(r.body), "your address") {
		t.Errorf("a sixth request without credentials = %d %s, want 429 rate_limited for the address", r.status, r.body)
	}
	if r := e.getWith("/api/v1/inboxes/"+inboxes[4].Address+"/messages", inboxes[4].Token, from(runner)); r.status != 200 {
		t.Errorf("an inbox's token from the throttled address = %d %s, want 200", r.status, r.body)
	}

	// Wrong tokens count by address (no failure throttle here, to see the rate alone).
	const guesser = "203.0.113.9"
	target := "/api/v1/inboxes/" + inboxes[5].Address + "/messages"
	for i := range 5 {
		if r := e.getWith(target, inboxes[6].Token, from(guesser)); r.status != http.StatusForbidden {
			t.Fatalf("wrong token %d of 5 = %d %s, want 403", i+1, r.status, r.body)
		}
	}
	if r := e.getWith(target, "nonsense", from(guesser)); r.status != http.StatusTooManyRequests || errorCode(r.body) != "rate_limited" {
		t.Errorf("sixth wrong token = %d %s, want 429 rate_limited", r.status, r.body)
	}
	if r := e.getWith("/api/v1/inboxes/nobody@elsewhere.test/messages", "nonsense", from(guesser)); r.status != http.StatusTooManyRequests {
		t.Errorf("an address not ours from the guesser = %d %s, want 429", r.status, r.body)
	}
	if r := e.getWith(target, inboxes[5].Token, from(guesser)); r.status != 200 {
		t.Errorf("the right token from the guesser's address = %d %s, want 200: it opens the inbox, counted there", r.status, r.body)
	}
}

// TestUnauthenticatedFloodDefaults: on default settings one address without credentials
// still gets 429 rate_limited once it outruns the rate.
func TestUnauthenticatedFloodDefaults(t *testing.T) {
	e := newEnv(t, stores(t)["memory"](t), Options{})
	in := e.create("")
	paths := []string{"/api/v1/service", "/api/v1/inboxes/" + in.Address + "/messages", "/api/v1/inboxes/" + in.Address + "/wait"}
	// A few workers, so that the flood outruns the refill even on a loaded machine.
	var (
		wg      sync.WaitGroup
		limited atomic.Bool
		mu      sync.Mutex
		other   []string
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500 && !limited.Load(); i++ {
				resp, err := http.Get(e.base + paths[(w+i)%len(paths)])
				if err != nil {
					mu.Lock()
					other = append(other, err.Error())
					mu.Unlock()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					if errorCode(b) == "rate_limited" {
						limited.Store(true)
						return
					}
					mu.Lock()
					other = append(other, string(b))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(other) > 0 {
		t.Errorf("unexpected answers to the flood: %q", other[:min(3, len(other))])
	}
	if !limited.Load() {
		t.Errorf("4000 requests without credentials from one address, none refused: want 429 rate_limited (MAYFLY_HTTP_RATE %d/%s)", defaultRequestRate.N, defaultRequestRate.Per)
	}
}

// TestRateCountsEveryRequestOnce: whatever the method and route, a request without
// credentials is counted once by address (creation aside, in its own bucket): a CORS
// preflight, answered before any route, and a method no inbox route takes, which passes
// authorize on its way to a 404, included.
func TestRateCountsEveryRequestOnce(t *testing.T) {
	st := stores(t)["memory"](t)
	paths := []string{
		"/api/v1/inboxes/a@mayfly.test/messages", "/api/v1/inboxes/a@mayfly.test", "/api/v1/inboxes/a@mayfly.test/nothing",
		"/api/v1/inboxes/a@mayfly.test/wait", "/api/v1/inboxes/nobody@elsewhere.test/messages", "/api/v1/nothing", "/nothing",
	}
	for _, method := range []string{"GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS"} {
		for _, path := range paths {
			e := newEnv(t, st, Options{RequestRate: limit.Rate{N: 2, Per: time.Hour}, CORSOrigins: []string{"https://app.test"}})
			var got []int
			for range 3 {
				got = append(got, fromOrigin(t, method, e.base+path, "https://app.test", "GET").StatusCode)
			}
			if got[0] == http.StatusTooManyRequests || got[1] == http.StatusTooManyRequests || got[2] != http.StatusTooManyRequests {
				t.Errorf("%s %s three times with a rate of 2 = %v, want the third alone refused with 429", method, path, got)
			}
			e.stop()
		}
	}
}

// TestRatePublicMode: in public mode every inbox opens without credentials; a request
// that carries the inbox's token still counts under the inbox, one without under the
// address.
func TestRatePublicMode(t *testing.T) {
	e := newEnv(t, stores(t)["memory"](t), Options{Public: true, RequestRate: limit.Rate{N: 2, Per: time.Hour}})
	in := e.create("")
	messages := "/api/v1/inboxes/" + in.Address + "/messages"
	for i := range 2 {
		if r := e.do("GET", messages, in.Token, nil); r.status != 200 {
			t.Fatalf("public request %d with the token = %d %s, want 200", i+1, r.status, r.body)
		}
	}
	if r := e.do("GET", messages, in.Token, nil); r.status != http.StatusTooManyRequests {
		t.Errorf("third public request with the token = %d, want 429: counted under the inbox", r.status)
	}
	for i := range 2 {
		if r := e.do("GET", messages, "", nil); r.status != 200 {
			t.Fatalf("public request %d without a token = %d %s, want 200: the address's bucket is its own", i+1, r.status, r.body)
		}
	}
	if r := e.do("GET", messages, "", nil); r.status != http.StatusTooManyRequests {
		t.Errorf("third public request without a token = %d, want 429", r.status)
	}
}
