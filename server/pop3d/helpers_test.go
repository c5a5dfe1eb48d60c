package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
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
	m := map[string]func(t testing.TB) fullStore{
		"memory": func(t testing.TB) fullStore {
			st := memstore.New(memstore.Options{})
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	url := storetest.RedisURL(t)
	if url == "" {
		return m
	}
	m["redis"] = func(t testing.TB) fullStore {
		prefix := fmt.Sprintf("mayflytest:pop3:%d:", time.Now().UnixNano())
		st, err := redisstore.New(t.Context(), redisstore.Options{URL: url, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st.DeleteInbox(ctx, box)
			st.Close()
		})
		return st
	}
	return m
}

// memory returns a memory store for the tests that are about the protocol, not the store.
func memory(t testing.TB) fullStore {
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	return st
}

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

// testLogger writes to the test's output, shown with -v or on failure.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testCert is a self-signed certificate for 127.0.0.1 and the pool that trusts it.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pop3.mayfly.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
})

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
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
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
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dial connects to addr and reads the greeting.
func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, conn)
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
	t.Cleanup(func() { conn.Close() })
	// A safety net against a hung server, not a synchronisation.
	conn.SetDeadline(time.Now().Add(time.Minute))
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := c.line(); !strings.HasPrefix(g, "+OK ") {
		t.Fatalf("greeting = %q, want +OK", g)
	}
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one response line, which must end in CRLF, and returns it without.
func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.line()
}

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

// multi reads the rest of a multi-line response and undoes the byte-stuffing: what it
// returns, CRLFs included, is what the server meant to send.
func (c *client) multi() []byte {
	c.t.Helper()
	var out bytes.Buffer
	for {
		l := c.line()
		if l == "." {
			return out.Bytes()
		}
		out.WriteString(strings.TrimPrefix(l, "."))
		out.WriteString("\r\n")
	}
}

// lines reads the rest of a multi-line response as lines.
func (c *client) lines() []string {
	c.t.Helper()
	b := c.multi()
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
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
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

// closed requires the server to have closed the connection.
func (c *client) closed() {
	c.t.Helper()
	if l, err := c.r.ReadString('\n'); err == nil {
		c.t.Fatalf("read %q, want the connection closed", l)
	}
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
