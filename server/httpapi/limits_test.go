package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// rawConn is one client connection speaking HTTP/1.1 by hand, so that a test knows
// which connection each request travels on.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func (e *env) dialRaw(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// get sends GET path on the connection and reads the answer.
func (c *rawConn) get(path string) (*http.Response, []byte, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: mayfly.test\r\n\r\n", path); err != nil {
		return nil, nil, err
	}
	return c.read()
}

func (c *rawConn) read() (*http.Response, []byte, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// closed reports whether the server closes the connection within 10s, whatever it
// writes before.
func (c *rawConn) closed() bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func errorCode(body []byte) string {
	var v struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(body, &v)
	return v.Error.Code
}

func refused(s *Server, reason string) int {
	return int(testutil.ToFloat64(s.metrics.refused.WithLabelValues(reason)))
}

func TestTooManyConnections(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, st, Options{MaxConnectionsPerIP: 2})
	first, second := e.dialRaw(t), e.dialRaw(t)
	for i, c := range []*rawConn{first, second} {
		if resp, body, err := c.get("/api/v1/service"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v %s %v, want 200", i+1, resp, body, err)
		}
	}

	// The third is answered before it asks anything, and closed.
	extra := e.dialRaw(t)
	resp, body, err := extra.read()
	if err != nil {
		t.Fatalf("the connection over the limit: %v, want the 429 refusal (a wrong Content-Length fails here too)", err)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Content-Type") != "application/json" || !resp.Close ||
		string(body) != `{"error":{"code":"too_many_connections","message":"too many connections from your address at once, event streams, WebSockets and waits included (MAYFLY_HTTP_MAX_CONNECTIONS_PER_IP)"}}` {
		t.Errorf("refusal = %d %v %s, want 429 too_many_connections, Connection: close", resp.StatusCode, resp.Header, body)
	}
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := extra.r.ReadByte(); err != io.EOF {
		t.Errorf("after the refusal's body: %q, %v; want the end of the connection", b, err)
	}
	if n := refused(e.srv, "connections"); n != 1 {
		t.Errorf("refused{reason=connections} = %d, want 1", n)
	}

	// The established connections keep working.
	if resp, body, err := first.get("/api/v1/service"); err != nil || resp.StatusCode != 200 {
		t.Errorf("keep-alive connection after the refusal: %v %s %v, want 200", resp, body, err)
	}

	// A connection closed gives its slot back.
	second.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _, err := e.dialRaw(t).get("/api/v1/service")
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a new connection after one closed: %v %v, want 200", resp, err)
		}
		time.Sleep(10 * time.Millisecond) // polling for the server to see the close, with a deadline
	}
}

// TestTrustedProxyConnectionsUncounted: behind a load balancer every client arrives from
// its address, so the balancer must not count as one client.
func TestTrustedProxyConnectionsUncounted(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, st, Options{MaxConnectionsPerIP: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	for i := range 3 {
		if resp, body, err := e.dialRaw(t).get("/api/v1/service"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d from the proxy: %v %s %v, want 200", i+1, resp, body, err)
		}
	}
}

// getWith is env.do for a GET with extra headers.
func (e *env) getWith(path, token string, h http.Header) response {
	e.t.Helper()
	return e.doWith("GET", path, token, h, nil)
}

func TestRequestFlood(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	// The test's clients are told apart by the X-Forwarded-For of a trusted proxy.
	e := newEnv(t, st, Options{RequestRate: limit.Rate{N: 5, Per: time.Hour}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, APIKey: "admin-key-123456"})
	in := e.create("")
	messages := "/api/v1/inboxes/" + in.Address + "/messages"
	flooder := http.Header{"X-Forwarded-For": {"198.51.100.7"}}
	for i := range 5 {
		if r := e.getWith("/api/v1/service", "", flooder); r.status != 200 {
			t.Fatalf("request %d of 5 allowed: %d %s", i+1, r.status, r.body)
		}
	}
	// Without credentials a request at an inbox counts by address too.
	r := e.getWith(messages, "", flooder)
	if r.status != http.StatusTooManyRequests || errorCode(r.body) != "rate_limited" || r.header.Get("Retry-After") != "720" ||
		!strings.Contains(string(r.body), "MAYFLY_HTTP_RATE") {
		t.Errorf("request past the rate = %d %v %s, want 429 rate_limited with Retry-After: 720 (an hour / 5), naming MAYFLY_HTTP_RATE", r.status, r.header, r.body)
	}
	// What the client writes left of the proxy's entry changes nothing.
	spoofed := http.Header{"X-Forwarded-For": {"192.0.2.99, 198.51.100.7"}}
	if r := e.getWith("/api/v1/service", "", spoofed); r.status != http.StatusTooManyRequests {
		t.Errorf("flooder with a forged X-Forwarded-For entry = %d, want 429", r.status)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for range 10 {
			// /metrics answers a client that is not on loopback with the admin key only.
			if r := e.getWith(path, "admin-key-123456", flooder); r.status != 200 {
				t.Fatalf("%s from the flooder = %d %s, want 200: probes and scrapers are not metered", path, r.status, r.body)
			}
		}
	}
	if r := e.getWith("/api/v1/service", "", http.Header{"X-Forwarded-For": {"198.51.100.8"}}); r.status != 200 {
		t.Errorf("another client during the flood = %d %s, want 200", r.status, r.body)
	}
	if r := e.getWith(messages, in.Token, flooder); r.status != 200 {
		t.Errorf("the flooder's own inbox with its token = %d %s, want 200: counted under the inbox", r.status, r.body)
	}
	if n := refused(e.srv, "rate"); n != 2 {
		t.Errorf("refused{reason=rate} = %d, want 2", n)
	}

	// Without a trusted proxy, X-Forwarded-For is anyone's to write, and ignored.
	direct := newEnv(t, st, Options{RequestRate: limit.Rate{N: 2, Per: time.Hour}})
	var last response
	for i := range 3 {
		last = direct.getWith("/api/v1/service", "", http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i)}})
	}
	if last.status != http.StatusTooManyRequests {
		t.Errorf("third request with a new X-Forwarded-For each time = %d, want 429: the header is not ours to trust", last.status)
	}
}

func TestClientIP(t *testing.T) {
	s := New(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}, nil, slog.New(slog.DiscardHandler))
	tests := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"direct", "192.0.2.1:5000", nil, "192.0.2.1"},
		{"direct ignores the header", "192.0.2.1:5000", []string{"198.51.100.1"}, "192.0.2.1"},
		{"proxy without header", "10.0.0.2:5000", nil, "10.0.0.2"},
		{"through a proxy", "10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"forged entries left of the client", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"two proxies", "10.0.0.2:5000", []string{"198.51.100.1, 10.0.0.3"}, "198.51.100.1"},
		{"headers joined in order", "10.0.0.2:5000", []string{"1.1.1.1", "198.51.100.1, 10.0.0.3"}, "198.51.100.1"},
		{"entry with a port", "10.0.0.2:5000", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"garbage stops at the last trusted hop", "10.0.0.2:5000", []string{"198.51.100.1, garbage, 10.0.0.3"}, "10.0.0.3"},
		{"IPv6 proxy", "[fd00::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.2]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := s.clientIP(r); got.String() != tt.want {
				t.Errorf("clientIP(%s, %q) = %v, want %s", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}

func TestWrongTokenFlood(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	failures := limit.NewBuckets[netip.Addr](limit.Rate{N: 3, Per: time.Hour})
	e := newEnv(t, st, Options{LoginFailures: failures})
	in, other := e.create(""), e.create("")
	messages := "/api/v1/inboxes/" + in.Address + "/messages"
	ws, _, err := e.dialWS(t, in.Address, in.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForSockets(t, e.srv, 1)

	for i, token := range []string{other.Token, "nonsense", other.Token} {
		if r := e.do("GET", messages, token, nil); r.status != http.StatusForbidden {
			t.Fatalf("wrong token %d = %d %s, want 403", i+1, r.status, r.body)
		}
	}
	r := e.do("GET", messages, in.Token, nil)
	if r.status != http.StatusTooManyRequests || errorCode(r.body) != "too_many_failures" || !strings.Contains(string(r.body), "MAYFLY_LOGIN_FAILURES") {
		t.Errorf("the right token after the flood = %d %s, want 429 too_many_failures naming MAYFLY_LOGIN_FAILURES", r.status, r.body)
	}
	if _, resp, err := e.dialWS(t, in.Address, in.Token, nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a new WebSocket after the flood: %v, %v; want 429", resp, err)
	}
	if !failures.Empty(netip.MustParseAddr("127.0.0.1")) {
		t.Error("the shared failure buckets have tokens left for 127.0.0.1: the mail servers would not see the flood")
	}
	if n := refused(e.srv, "failures"); n != 2 {
		t.Errorf("refused{reason=failures} = %d, want 2", n)
	}

	// The WebSocket opened before the flood keeps receiving.
	m := e.deliver(in.Address, "From: a@x.test\r\nSubject: still here\r\n\r\nhi\r\n")
	if ev := readEvent(t, ws); ev.Type != "message" || ev.Message == nil || ev.Message.ID != m.ID {
		t.Errorf("event on the WebSocket opened before the flood = %+v, want message %s", ev, m.ID)
	}
}

func TestSlowClients(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	const readTimeout = 500 * time.Millisecond
	e := newEnvWith(t, st, Options{}, func(s *Server) { s.readTimeout, s.readHeaderTimeout = readTimeout, readTimeout })
	in := e.create("") // a request sent at once is unaffected

	// trickle writes a byte every 50ms, so a deadline that moved with each byte would
	// never pass; it stops when the server closes the connection.
	trickle := func(c *rawConn, head, drip string) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Go(func() {
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(c, head); err != nil {
				return
			}
			for range 400 {
				if _, err := io.WriteString(c, drip); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond) // the client's pace
			}
		})
		return &wg
	}
	// trickled is a new connection that trickles; at the test's end it is closed and
	// the writer waited for.
	trickled := func(t *testing.T, head, drip string) (*rawConn, time.Time) {
		c := e.dialRaw(t)
		start := time.Now()
		wg := trickle(c, head, drip)
		t.Cleanup(wg.Wait)
		t.Cleanup(func() { c.Close() })
		return c, start
	}

	t.Run("body", func(t *testing.T) {
		c, start := trickled(t, "POST /api/v1/inboxes HTTP/1.1\r\nHost: mayfly.test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", " ")
		resp, body, err := c.read()
		if err != nil || resp.StatusCode != http.StatusRequestTimeout || errorCode(body) != "timeout" {
			t.Fatalf("trickled body = %v %s %v, want 408 timeout", resp, body, err)
		}
		if !c.closed() {
			t.Fatal("the connection of a trickled body is still open")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("cut after %v, want about %v", d, readTimeout)
		}
	})
	t.Run("headers", func(t *testing.T) {
		c, start := trickled(t, "GET /healthz HTTP/1.1\r\nHost: mayfly.test\r\n", "X")
		if !c.closed() {
			t.Fatal("the connection of trickled headers is still open")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("cut after %v, want about %v", d, readTimeout)
		}
	})
	t.Run("wait and WebSocket outlive it", func(t *testing.T) {
		ws, _, err := e.dialWS(t, in.Address, in.Token, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := e.dialRaw(t)
		start := time.Now()
		resp, body, err := c.get("/api/v1/inboxes/" + in.Address + "/wait?timeout=2s&token=" + in.Token)
		if err != nil || resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "within 2s") {
			t.Fatalf("a 2s wait = %v %s %v, want the wait's own 408 after 2s", resp, body, err)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("the wait answered after %v, want 2s", d)
		}
		if resp, _, err := c.get("/healthz"); err != nil || resp.StatusCode != 200 {
			t.Errorf("the same connection after the wait: %v %v, want 200", resp, err)
		}
		m := e.deliver(in.Address, "Subject: late\r\n\r\nhi\r\n")
		if ev := readEvent(t, ws); ev.Type != "message" || ev.Message == nil || ev.Message.ID != m.ID {
			t.Errorf("event on a WebSocket older than the read timeout = %+v, want message %s", ev, m.ID)
		}
	})
}

// TestCreateRate: inbox creation has a per-client bucket of its own: past it 429
// create_rate_limited with a Retry-After, naming the setting, while the same client's
// other requests, and other clients' creations, go on.
func TestCreateRate(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	e := newEnv(t, st, Options{CreateRate: limit.Rate{N: 3, Per: time.Hour}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	create := func(client string) response {
		req, err := http.NewRequest("POST", e.base+"/api/v1/inboxes", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{resp.StatusCode, resp.Header, b}
	}
	for i := range 3 {
		if r := create("198.51.100.7"); r.status != http.StatusCreated {
			t.Fatalf("creation %d of 3: %d %s", i+1, r.status, r.body)
		}
	}
	r := create("198.51.100.7")
	if r.status != http.StatusTooManyRequests || errorCode(r.body) != "create_rate_limited" || r.header.Get("Retry-After") != "1200" || !strings.Contains(string(r.body), "MAYFLY_INBOX_CREATE_RATE") {
		t.Errorf("fourth creation = %d %v %s, want 429 create_rate_limited, Retry-After: 1200, naming the setting", r.status, r.header, r.body)
	}
	// An IPv6 client is counted by its /64.
	for i := range 3 {
		if r := create(fmt.Sprintf("2001:db8:1:2::%d", i+1)); r.status != http.StatusCreated {
			t.Fatalf("IPv6 creation %d: %d %s", i+1, r.status, r.body)
		}
	}
	if r := create("2001:db8:1:2:ffff::1"); r.status != http.StatusTooManyRequests {
		t.Errorf("a fourth creation from the same /64 = %d, want 429", r.status)
	}
	if r := e.getWith("/api/v1/service", "", http.Header{"X-Forwarded-For": {"198.51.100.7"}}); r.status != 200 {
		t.Errorf("another request from the limited client = %d, want 200: only creation is limited", r.status)
	}
	if r := create("198.51.100.8"); r.status != http.StatusCreated {
		t.Errorf("another client's creation = %d %s", r.status, r.body)
	}
	if n := refused(e.srv, "create_rate"); n != 2 {
		t.Errorf("refused{reason=create_rate} = %d, want 2", n)
	}
}
