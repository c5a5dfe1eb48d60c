package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/limit"
)

// Defaults of the per-client limits. A browser opens up to six connections to a host
// per page and keeps one WebSocket per open tab, and a CI runner's suite holds one per
// test in flight, each wait for its whole length: 200 parallel tests hold 200 at once,
// and connections the client has just closed are counted until the server reads their
// end. 512 leaves that suite room twice over (and several users behind one NAT), while
// one address still cannot hold thousands of sockets.
const (
	defaultMaxConnections    = 512
	defaultReadTimeout       = 30 * time.Second // a request's headers and body, at most 64 KiB
	defaultReadHeaderTimeout = 10 * time.Second
)

var defaultRequestRate = limit.Rate{N: 100, Per: time.Second}

// defaultCreateRate lets a CI host's test suite create an inbox per test, thousands of
// them in a burst, while one client can no longer make inboxes (each kept a day or
// more) at the full request rate: 3000 an hour is 72,000 a day, not 8.6 million.
var defaultCreateRate = limit.Rate{N: 3000, Per: time.Hour}

// allowCreate refuses a client's inbox creations past Options.CreateRate with 429,
// telling it when one will be allowed.
func (s *Server) allowCreate(c echo.Context) error {
	if s.creates == nil || s.creates.Allow(s.clientKey(c)) {
		return nil
	}
	s.metrics.refused.WithLabelValues("create_rate").Inc()
	per := s.opts.CreateRate.Per / time.Duration(s.opts.CreateRate.N)
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(per.Seconds())))))
	return errorf(http.StatusTooManyRequests, "create_rate_limited", "too many inboxes created from your address: %d per %s (MAYFLY_INBOX_CREATE_RATE); slow down", s.opts.CreateRate.N, s.opts.CreateRate.Per)
}

// defaultMaxReads is Options.MaxReadsPerIP's default: a page shows a message with its
// JSON, its HTML and its images over the six connections a browser opens to a host.
const defaultMaxReads = 8

// defaultReadWait is how long a read past the limit waits for a slot before it is
// refused: far longer than reads take, so parallel test workers queue, never fail.
const defaultReadWait = 10 * time.Second

// limitReads holds a client to Options.MaxReadsPerIP reads of messages at once: each
// costs memory near the message's size while it is parsed or sent, so a client's
// parallel reads, not only its rate, must have a bound. A read past it waits its turn
// (a test suite's parallel workers, a frame asking for all its images at once) and is
// refused only when no slot frees within readWait.
func (s *Server) limitReads(next echo.HandlerFunc) echo.HandlerFunc {
	if s.reads == nil {
		return next
	}
	return func(c echo.Context) error {
		release, err := s.awaitRead(c)
		if err != nil {
			return err
		}
		defer release()
		return next(c)
	}
}

// connRefusal answers a client over MaxConnectionsPerIP, written before its request is
// read: whatever it asked, the answer is the same, and the connection closes.
var connRefusal = func() string {
	body := `{"error":{"code":"too_many_connections","message":"too many connections from your address at once, event streams, WebSockets and waits included (MAYFLY_HTTP_MAX_CONNECTIONS_PER_IP)"}}`
	return "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// peerIP is the address of the TCP peer of a connection or request.
func peerIP(addr string) netip.Addr {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (s *Server) trusted(ip netip.Addr) bool {
	return slices.ContainsFunc(s.opts.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// clientIP is who sent a request: its TCP peer, unless the peer is a trusted proxy.
// Then it is the right-most address of X-Forwarded-For that is not a trusted proxy:
// each proxy appends the address it was reached from, and whatever is left of the
// first untrusted one was written by the client, who may write anything.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	ip := peerIP(r.RemoteAddr)
	if !s.trusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		a, err := netip.ParseAddr(hop)
		if err != nil {
			ap, perr := netip.ParseAddrPort(hop) // some proxies add the port
			if perr != nil {
				return ip // an address we cannot read: the last hop we can vouch for
			}
			a = ap.Addr()
		}
		if ip = a.Unmap(); !s.trusted(ip) {
			return ip
		}
	}
	return ip
}

// bodyError answers a failed read of a request body: 408 when the client did not send
// it within the read timeout (the server then closes the connection), else the error
// as it is (the body limit's 413).
func (s *Server) bodyError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errorf(http.StatusRequestTimeout, "timeout", "the request body did not arrive within %s", s.readTimeout)
	}
	return err
}

// decodeBody reads the request's JSON object into v, refusing unknown fields, with want
// (the fields it takes) in the refusal. An empty body leaves v as it is when optional.
// The body's size and time are bounded before (bodyError says how it ended).
func (s *Server) decodeBody(c echo.Context, v any, optional bool, want string) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return s.bodyError(err)
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "bad_request", "body: want %s: %v", want, err)
	}
	return nil
}

// clientKey is what a request counts under in the per-client buckets.
func (s *Server) clientKey(c echo.Context) netip.Addr {
	return limit.KeyIP(s.clientIP(c.Request()))
}

// unmetered are the routes of load balancers' probes and Prometheus scrapers, which poll
// on their own schedule from few addresses and must never be refused.
var unmetered = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// rateKey is what a request counts under in Options.RequestRate's buckets: the inbox
// its credential opened, else the client's address.
type rateKey struct {
	client netip.Addr
	inbox  string
}

// limitRate holds each client's requests to Options.RequestRate, except those counted
// elsewhere: inbox creations count only in Options.CreateRate's bucket, and requests at
// an inbox are counted by authorize, which knows whether a credential opened it. A CI
// runner's parallel tests all come from one address; what each of them does to its own
// inbox must not be refused for what the others do.
func (s *Server) limitRate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		path := c.Path()
		switch {
		case unmetered[path] || atInbox(c):
			return next(c)
		case path == "/api/v1/inboxes" && c.Request().Method == http.MethodPost:
			if err := s.allowCreate(c); err != nil {
				return err
			}
			return next(c)
		}
		if err := s.allowRequest(c, rateKey{client: s.clientKey(c)}); err != nil {
			return err
		}
		// A method no inbox route takes still passes authorize, on its way to a 404.
		c.Set(countedKey, true)
		return next(c)
	}
}

// countedKey marks a request limitRate has counted already.
const countedKey = "rate-counted"

// atInbox reports whether authorize will count c: a request at an inbox with a method
// the inbox routes take. A CORS preflight is answered by its middleware before any
// route, so it is counted here, by address.
func atInbox(c echo.Context) bool {
	switch c.Request().Method {
	case http.MethodGet, http.MethodPost, http.MethodDelete:
		return strings.HasPrefix(c.Path(), inboxRoute)
	}
	return false
}

// allowRequest takes a token from key's bucket of Options.RequestRate, or answers 429
// telling the client when one will be back.
func (s *Server) allowRequest(c echo.Context, key rateKey) error {
	if s.requests == nil || c.Get(countedKey) != nil || s.requests.Allow(key) {
		return nil
	}
	s.metrics.refused.WithLabelValues("rate").Inc()
	per := s.opts.RequestRate.Per / time.Duration(s.opts.RequestRate.N)
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(per.Seconds())))))
	if key.inbox != "" {
		return errorf(http.StatusTooManyRequests, "rate_limited", "too many requests for this inbox (MAYFLY_HTTP_RATE); slow down")
	}
	return errorf(http.StatusTooManyRequests, "rate_limited", "too many requests from your address (MAYFLY_HTTP_RATE); slow down")
}

// readsKey is the client of c as limit.Conns counts it.
func (s *Server) readsKey(c echo.Context) net.Addr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(s.clientKey(c), 0))
}

// awaitRead takes one of the client's read slots, waiting up to readWait for one to
// free: 429 too_many_reads past it.
func (s *Server) awaitRead(c echo.Context) (release func(), err error) {
	if s.reads == nil {
		return func() {}, nil
	}
	key := s.readsKey(c)
	if release, ok := s.reads.Acquire(key); ok {
		return release, nil
	}
	s.awaiting.Add(1)
	defer s.awaiting.Add(-1)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(s.readWait)
	defer deadline.Stop()
	for {
		select {
		case <-c.Request().Context().Done():
			return nil, c.Request().Context().Err()
		case <-deadline.C:
			s.metrics.refused.WithLabelValues("reads").Inc()
			c.Response().Header().Set("Retry-After", "1")
			return nil, errorf(http.StatusTooManyRequests, "too_many_reads",
				"more than %d message reads at once from your address for %s (MAYFLY_HTTP_MAX_READS_PER_IP); wait for one to finish", s.opts.MaxReadsPerIP, s.readWait)
		case <-tick.C:
		}
		if release, ok := s.reads.Acquire(key); ok {
			return release, nil
		}
	}
}
