package imapd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

const (
	testDomain = "mayfly.test"
	adminKey   = "admin-key-for-tests"
)

var testTokens = storage.NewTokens([]byte("imapd test secret"))

// eachBackend runs fn as a subtest on every store an end-to-end test runs on: always
// memory, and Redis when MAYFLY_TEST_REDIS_URL is set (make test sets it; under CI its
// absence fails). node opens another Mayfly node on the same data (for memory, the
// same store).
func eachBackend(t *testing.T, fn func(t *testing.T, st storage.Store, node func() storage.Store)) {
	for _, b := range testlib.Backends(t, testlib.StoreOptions{Name: "imap", SweepEvery: 20 * time.Millisecond}) {
		t.Run(b.Name, func(t *testing.T) {
			st, node := b.Open(t)
			fn(t, st, func() storage.Store { return node() })
		})
	}
}

// eachServer runs fn as a subtest on every backend, with a server on the store and a
// fresh inbox.
func eachServer(t *testing.T, fn func(t *testing.T, st storage.Store, srv *testServer, inbox string)) {
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		srv := startServer(t, st, false)
		inbox, _ := newInbox()
		fn(t, st, srv, inbox)
	})
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

var inboxSeq atomic.Int64

// newInbox returns a fresh address and its token.
func newInbox() (string, string) {
	inbox := fmt.Sprintf("box%d-%d@%s", time.Now().UnixNano()%1e9, inboxSeq.Add(1), testDomain)
	return inbox, testTokens.Token(inbox)
}

type testServer struct {
	*Server
	addr string
	reg  *prometheus.Registry
	stop func() // ends Serve and waits for it
}

type serverOption func(*Options, *Server)

// startServer serves st on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, st store, implicitTLS bool, mods ...serverOption) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{
		Hostname: "imap.mayfly.test",
		Domains:  []string{testDomain},
		Keys:     storage.Keys{Tokens: testTokens, APIKey: adminKey},
		TLS:      serverTLS(t),
		Options:  limit.Options{ShutdownTimeout: 5 * time.Second, Metrics: reg},
	}
	srv := New(opts, st, testLogger(t))
	srv.authFailDelay = 0
	for _, m := range mods {
		m(&srv.opts, srv)
	}
	addr, stop := testlib.Serve(t, func(ctx context.Context, ln net.Listener) error {
		return srv.Serve(ctx, ln, implicitTLS)
	})
	return &testServer{Server: srv, addr: addr, reg: reg, stop: stop}
}

func serverTLS(t testing.TB) *tls.Config { return testlib.ServerTLS() }

func clientTLS() *tls.Config { return testlib.ClientTLS("127.0.0.1") }

// updates collects what a server says unprompted, for tests that wait for it.
type updates struct {
	exists  chan uint32
	expunge chan uint32
	flags   chan *imapclient.FetchMessageBuffer
}

func newUpdates() *updates {
	return &updates{
		exists:  make(chan uint32, 256),
		expunge: make(chan uint32, 256),
		flags:   make(chan *imapclient.FetchMessageBuffer, 256),
	}
}

func (u *updates) handler() *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				u.exists <- *d.NumMessages
			}
		},
		Expunge: func(seq uint32) { u.expunge <- seq },
		Fetch: func(msg *imapclient.FetchMessageData) {
			if buf, err := msg.Collect(); err == nil {
				u.flags <- buf
			}
		},
	}
}

// next waits for a value on ch for at most d.
func next[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	return testlib.Next(t, ch, d, what)
}

// dial connects without TLS (the test server counts 127.0.0.1 as loopback).
func dial(t testing.TB, addr string, u *updates) *imapclient.Client {
	t.Helper()
	opts := &imapclient.Options{}
	if u != nil {
		opts.UnilateralDataHandler = u.handler()
	}
	if testing.Verbose() && os.Getenv("IMAP_DEBUG") != "" {
		opts.DebugWriter = os.Stderr
	}
	c, err := imapclient.DialInsecure(addr, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// open dials, logs in as inbox and selects INBOX.
func open(t testing.TB, addr, inbox string, u *updates) (*imapclient.Client, *imap.SelectData) {
	t.Helper()
	c := dial(t, addr, u)
	if err := c.Login(inbox, testTokens.Token(inbox)).Wait(); err != nil {
		t.Fatalf("Login(%q) = %v", inbox, err)
	}
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("Select(INBOX) = %v", err)
	}
	return c, data
}

func ctxFor(t testing.TB) context.Context { return testlib.Ctx(t, 20*time.Second) }

// put stores a message with raw as its bytes.
func put(t testing.TB, st storage.Store, inbox, subject string, raw []byte) *storage.Message {
	t.Helper()
	m := storetest.NewMessage(inbox, subject)
	if raw != nil {
		m.Raw = raw
		m.Size = int64(len(raw))
	}
	if err := st.Put(ctxFor(t), m); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return m
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imapErr returns the IMAP status of a failed command, or nil.
func imapErr(err error) *imap.Error {
	e, _ := err.(*imap.Error)
	return e
}

// wantCode checks that err is a NO with code.
func wantCode(t testing.TB, what string, err error, code imap.ResponseCode) {
	t.Helper()
	e := imapErr(err)
	if e == nil || e.Type != imap.StatusResponseTypeNo || e.Code != code {
		t.Errorf("%s = %v, want NO [%s]", what, err, code)
	}
}
