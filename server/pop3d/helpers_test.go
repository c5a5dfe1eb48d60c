package pop3d

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

const (
	secret = "0123456789abcdef0123456789abcdef"
	// adminKey has spaces: PASS takes the rest of the line.
	adminKey = "admin key with spaces"
	box      = "box@mayfly.test"
)

var keys = storage.Keys{Tokens: storage.NewTokens([]byte(secret)), APIKey: adminKey}

func token(inbox string) string { return keys.Tokens.Token(inbox) }

// fullStore is what the tests need: the server's view plus Put to deliver mail.
type fullStore interface {
	store
	Put(ctx context.Context, msgs ...*storage.Message) error
}

// stores lists the stores the tests run on: memory always, Redis when
// MAYFLY_TEST_REDIS_URL is set (make test sets it; under CI its absence fails).
func stores(t testing.TB) map[string]func(t testing.TB) fullStore {
	return testlib.Stores[fullStore](t, testlib.StoreOptions{Name: "pop3", Clean: []string{box}})
}

// eachStore runs fn as a subtest on every store of stores.
func eachStore(t *testing.T, fn func(t *testing.T, st fullStore)) {
	testlib.EachStore(t, stores(t), fn)
}

// memory returns a memory store for the tests that are about the protocol, not the store.
func memory(t testing.TB) fullStore { return testlib.Memory(t, memstore.Options{}) }

// put stores raw in inbox and returns the stored message.
func put(t testing.TB, st fullStore, inbox string, raw []byte) *storage.Message {
	t.Helper()
	m := storetest.NewMessage(inbox, "test")
	m.Raw, m.Size = raw, int64(len(raw))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Put(ctx, m); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return m
}

// ids returns the IDs of inbox's messages in the store, oldest first.
func ids(t testing.TB, st fullStore, inbox string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := st.List(ctx, inbox, storage.Page{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for i := len(list) - 1; i >= 0; i-- {
		out = append(out, list[i].ID)
	}
	return out
}

var testLogger = testlib.Logger

// wantIDs requires box to hold exactly the messages want, oldest first; when says at
// which point of the test, for the failure.
func wantIDs(t testing.TB, st fullStore, when string, want ...string) {
	t.Helper()
	if got := ids(t, st, box); !slices.Equal(got, want) {
		t.Errorf("%s: the store has %q, want %q", when, got, want)
	}
}

// testCert is the test certificate and the pool that trusts it.
var testCert = testlib.Cert

// setup says how newEnv starts the server.
type setup struct {
	opts   Options
	noTLS  bool // no certificate: no STLS, no POP3S listener
	remote bool // every client counts as remote, as if not on loopback
	// loginTimeout replaces the minute a client has for each line before login.
	loginTimeout time.Duration
}

// env is a server on loopback ports: addr offers STLS, tlsAddr is POP3S.
type env struct {
	t       testing.TB
	st      fullStore
	srv     *Server
	reg     *prometheus.Registry
	addr    string
	tlsAddr string
	pool    *x509.CertPool
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func newEnv(t testing.TB, st fullStore, su setup) *env {
	t.Helper()
	o := su.opts
	if o.Domains == nil {
		o.Domains = []string{"mayfly.test", "Other.Test"}
	}
	o.Hostname = "pop3.mayfly.test"
	if o.Keys.Tokens == nil {
		o.Keys = keys
	}
	e := &env{t: t, st: st, reg: prometheus.NewRegistry(), done: make(chan error, 2)}
	o.Metrics = e.reg
	if !su.noTLS {
		cert, pool := testCert()
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		e.pool = pool
	}
	e.srv = New(o, st, testLogger(t))
	if su.remote {
		e.srv.isLoopback = func(net.Addr) bool { return false }
	}
	if su.loginTimeout > 0 {
		e.srv.loginTimeout = su.loginTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	serve := func(implicit bool) string {
		ln := testlib.Listen(t)
		go func() { e.done <- e.srv.Serve(ctx, ln, implicit) }()
		return ln.Addr().String()
	}
	e.addr = serve(false)
	n := 1
	if !su.noTLS {
		e.tlsAddr = serve(true)
		n++
	}
	t.Cleanup(func() {
		if !e.stopped {
			e.stop(n)
		}
	})
	return e
}

// stop ends the server and waits for Serve to return on each of its n listeners.
func (e *env) stop(n int) {
	e.t.Helper()
	e.stopped = true
	e.cancel()
	for range n {
		if err := <-e.done; err != nil {
			e.t.Errorf("Serve: %v", err)
		}
	}
}

// client is a POP3 client that reads the protocol byte by byte as a strict client would.
type client struct {
	*testlib.Client
	t testing.TB
}

// dial connects to addr and reads the greeting.
// loggedIn is a client of e's plain listener, logged in to box.
func (e *env) loggedIn(t testing.TB) *client {
	t.Helper()
	c := dial(t, e.addr)
	c.login(box, token(box))
	return c
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	return greeted(t, testlib.Dial(t, addr))
}

// dialTLS connects to a POP3S listener and reads the greeting.
func dialTLS(t testing.TB, addr string, pool *x509.CertPool) *client {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return start(t, conn)
}

func start(t testing.TB, conn net.Conn) *client {
	t.Helper()
	return greeted(t, testlib.NewClient(t, conn))
}

func greeted(t testing.TB, conn *testlib.Client) *client {
	t.Helper()
	c := &client{Client: conn, t: t}
	if g := c.line(); !strings.HasPrefix(g, "+OK ") {
		t.Fatalf("greeting = %q, want +OK", g)
	}
	return c
}

func (c *client) send(line string)       { c.t.Helper(); c.Send(line) }
func (c *client) line() string           { c.t.Helper(); return c.Line() }
func (c *client) cmd(line string) string { c.t.Helper(); return c.Cmd(line) }
func (c *client) multi() []byte          { c.t.Helper(); return c.Multi() }
func (c *client) lines() []string        { c.t.Helper(); return c.Lines() }
func (c *client) closed()                { c.t.Helper(); c.Closed() }

// ok sends line and requires +OK.
func (c *client) ok(line string) string {
	c.t.Helper()
	r := c.cmd(line)
	if r != "+OK" && !strings.HasPrefix(r, "+OK ") {
		c.t.Fatalf("%s = %q, want +OK", line, r)
	}
	return r
}

// fail sends line and requires -ERR starting with want.
func (c *client) fail(line, want string) string {
	c.t.Helper()
	r := c.cmd(line)
	if !strings.HasPrefix(r, "-ERR "+want) {
		c.t.Fatalf("%s = %q, want -ERR %s...", line, r, want)
	}
	return r
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	c.ok("USER " + user)
	c.ok("PASS " + pass)
}

// starttls runs STLS and the client side of the handshake.
func (c *client) starttls(pool *x509.CertPool) {
	c.t.Helper()
	c.ok("STLS")
	c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
}

// retrOverTLS logs in on a session already in TLS, which refuses STLS, reads message
// 1, which must be plainMsg, and quits.
func (c *client) retrOverTLS() {
	c.t.Helper()
	c.fail("STLS", "already using TLS")
	c.login(box, token(box))
	c.ok("RETR 1")
	if got := c.multi(); !bytes.Equal(got, plainMsg) {
		c.t.Errorf("RETR over TLS = %q", got)
	}
	c.ok("QUIT")
	c.closed()
}

// capa returns the CAPA list.
func (c *client) capa() []string {
	c.t.Helper()
	c.ok("CAPA")
	return c.lines()
}

func plain(authz, authc, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + pass))
}
