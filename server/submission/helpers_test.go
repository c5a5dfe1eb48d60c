package submission

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
)

const (
	secret   = "0123456789abcdef0123456789abcdef"
	adminKey = "admin-key"
	box      = "box@mayfly.test"
	// ann wrote to box; sender.test's MX is mx.sender.test, 127.0.0.1 in the zone.
	ann = "ann@sender.test"
	// eve never wrote to anyone.
	eve = "eve@elsewhere.test"
)

// testClient is the client the tests' Reply calls come from.
var testClient = netip.MustParseAddr("192.0.2.7")

var keys = storage.Keys{Tokens: storage.NewTokens([]byte(secret)), APIKey: adminKey}

func token(inbox string) string { return keys.Tokens.Token(inbox) }

// fullStore is what the tests need: a store with its queue.
type fullStore interface {
	store
	storage.Queue
	DeleteInbox(ctx context.Context, inbox string) (int, error)
}

// stores lists the stores the tests run on: memory always, Redis when
// MAYFLY_TEST_REDIS_URL is set (its absence fails under MAYFLY_REQUIRE_REDIS or CI).
func stores(t testing.TB) map[string]func(t testing.TB) fullStore {
	return testlib.Stores[fullStore](t, testlib.StoreOptions{Name: "submission", Clean: []string{box}})
}

// eachStore runs fn as a subtest on every store of stores.
func eachStore(t *testing.T, fn func(t *testing.T, st fullStore)) {
	testlib.EachStore(t, stores(t), fn)
}

func memory(t testing.TB) fullStore { return testlib.Memory(t, memstore.Options{}) }

func redisPrefix() string {
	return fmt.Sprintf("mayflytest:submission:%d:", time.Now().UnixNano())
}

// redisStore is one node on the Redis data under prefix, for the tests of two nodes.
func redisStore(t testing.TB, url, prefix string) fullStore {
	st, err := redisstore.New(context.Background(), redisstore.Options{URL: url, Prefix: prefix})
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

var testLogger = testlib.Logger

func ctxFor(t testing.TB) context.Context { return testlib.Ctx(t, 30*time.Second) }

func serverTLS() *tls.Config { return testlib.ServerTLS() }

func clientTLS() *tls.Config { return testlib.ClientTLS("127.0.0.1") }

// DKIM keys, made once: RSA keys take a while.
var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	edKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// dkimRecord is the TXT record that publishes key's public half (RFC 6376 section
// 3.6.1, RFC 8463).
func dkimRecord(key crypto.Signer) string {
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			panic(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	panic(fmt.Sprintf("key %T", key))
}

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("dns.NewRR(%q): %v", s, err)
	}
	return r
}

func txt(name, value string) dns.RR {
	var chunks []string
	for len(value) > 255 {
		chunks, value = append(chunks, value[:255]), value[255:]
	}
	return &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: append(chunks, value)}
}

// testZone serves the tests' DNS on loopback: sender.test's MX is 127.0.0.1,
// amx.test has an address and no MX, nullmx.test takes no mail (RFC 7505), and the
// DKIM keys of mayfly.test are published under the selectors "mayfly" (RSA) and "ed".
// Every name is under .test, so nothing leaves the machine.
func testZone(t testing.TB) string {
	t.Helper()
	return dnstest.ZoneServer(t, []dns.RR{
		rr(t, "test. 60 IN SOA ns.test. admin.test. 1 60 60 60 60"),
		rr(t, "sender.test. 60 IN MX 10 mx.sender.test."),
		rr(t, "mx.sender.test. 60 IN A 127.0.0.1"),
		rr(t, "other.test. 60 IN MX 10 mx.sender.test."),
		rr(t, "amx.test. 60 IN A 127.0.0.1"),
		rr(t, "nullmx.test. 60 IN MX 0 ."),
		txt("mayfly._domainkey.mayfly.test", dkimRecord(rsaKey())),
		txt("ed._domainkey.mayfly.test", dkimRecord(edKey())),
	})
}

// lookupTXT asks the zone at dnsAddr, for dkim.Verify.
func lookupTXT(dnsAddr string) func(string) ([]string, error) {
	r, err := dnsclient.New(dnsclient.Options{Server: dnsAddr})
	if err != nil {
		panic(err) // a loopback host:port always parses
	}
	return func(name string) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return r.LookupTXT(ctx, name)
	}
}

// sunk is a message a sink took.
type sunk struct {
	from string
	to   []string
	data []byte
	tls  bool
	user string // who logged in, if anyone
}

// sinkOptions shape a sink.
type sinkOptions struct {
	user, pass string      // AUTH PLAIN required with these when set
	tls        *tls.Config // STARTTLS offered when set
	implicit   bool        // the listener is implicit TLS (with tls)
	// dataReplies are the answers to DATA, one per message in order; nil or past the
	// end is 250.
	dataReplies []*smtp.SMTPError
	rcptReply   map[string]*smtp.SMTPError // by recipient
	// hold makes the first session wait at EHLO until the channel closes; held is
	// closed when it starts waiting.
	hold chan struct{}
}

// sink is an SMTP server on loopback that stands for the world's MX hosts and relays.
type sink struct {
	addr string
	port int
	msgs chan sunk
	held chan struct{}
	done chan struct{}

	mu       sync.Mutex
	opts     sinkOptions
	sessions int
	datas    int
}

func newSink(t testing.TB, o sinkOptions) *sink {
	t.Helper()
	ln := testlib.Listen(t)
	k := &sink{
		addr: ln.Addr().String(),
		port: ln.Addr().(*net.TCPAddr).Port,
		msgs: make(chan sunk, 100000),
		held: make(chan struct{}),
		done: make(chan struct{}),
		opts: o,
	}
	if o.implicit {
		ln = tls.NewListener(ln, o.tls)
	}
	srv := smtp.NewServer(smtp.BackendFunc(k.newSession))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	srv.TLSConfig = o.tls
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = slog.NewLogLogger(testLogger(t).Handler(), slog.LevelDebug)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		close(k.done)
		srv.Close()
		<-served
	})
	return k
}

func (k *sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	k.mu.Lock()
	k.sessions++
	first := k.sessions == 1
	k.mu.Unlock()
	if first && k.opts.hold != nil {
		close(k.held)
		select {
		case <-k.opts.hold:
		case <-k.done:
		}
	}
	_, isTLS := c.TLSConnectionState()
	return &sinkSession{k: k, tls: isTLS}, nil
}

// next returns the next message the sink took; the deadline is a safety net.
func (k *sink) next(t testing.TB) sunk {
	t.Helper()
	return testlib.Next(t, k.msgs, 30*time.Second, "message at the sink")
}

// none requires the sink to have taken nothing more.
func (k *sink) none(t testing.TB) {
	t.Helper()
	select {
	case m := <-k.msgs:
		t.Fatalf("the sink got another message, from %s to %q", m.from, m.to)
	default:
	}
}

type sinkSession struct {
	k    *sink
	tls  bool
	user string
	from string
	to   []string
}

func (s *sinkSession) AuthMechanisms() []string {
	if s.k.opts.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != s.k.opts.user || pass != s.k.opts.pass {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.k.opts.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := s.k.opts.rcptReply[to]; e != nil {
		return e
	}
	s.to = append(s.to, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.k.mu.Lock()
	i := s.k.datas
	s.k.datas++
	var reply *smtp.SMTPError
	if i < len(s.k.opts.dataReplies) {
		reply = s.k.opts.dataReplies[i]
	}
	s.k.mu.Unlock()
	if reply != nil {
		return reply
	}
	s.k.msgs <- sunk{from: s.from, to: append([]string(nil), s.to...), data: data, tls: s.tls, user: s.user}
	return nil
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }

// env is a submission server on loopback ports: addr offers STARTTLS, tlsAddr is
// implicit TLS. Its workers run only when startWorkers says so.
type env struct {
	t       testing.TB
	st      fullStore
	srv     *Server
	reg     *prometheus.Registry
	addr    string
	tlsAddr string
	dns     string
	cancel  context.CancelFunc
	done    chan error

	workersCancel context.CancelFunc
	workersDone   chan error
}

type setup struct {
	opts   Options
	remote bool          // every client counts as remote, as if not on loopback
	logger *slog.Logger  // nil = the test's output
	queue  storage.Queue // nil = the store's own
	// preAuth shortens the deadline per line before AUTH; 0 = the server's minute.
	preAuth time.Duration
	// publicOnly keeps the default of Options.AllowPrivate (false); otherwise the
	// tests' MX hosts, on loopback, are allowed.
	publicOnly bool
}

func newEnv(t testing.TB, st fullStore, su setup) *env {
	t.Helper()
	o := su.opts
	if o.Domains == nil {
		o.Domains = []string{"mayfly.test", "other.mayfly.test"}
	}
	if o.Hostname == "" {
		o.Hostname = "mail.mayfly.test"
	}
	if o.Keys.Tokens == nil {
		o.Keys = keys
	}
	if o.TLS == nil {
		o.TLS = serverTLS()
	}
	if !su.publicOnly {
		o.AllowPrivate = true
	}
	e := &env{t: t, st: st, reg: prometheus.NewRegistry(), done: make(chan error, 2)}
	o.Metrics = e.reg
	// Never the system resolver: every lookup goes to the test zone on loopback.
	if o.DNS == "" {
		o.DNS = testZone(t)
	}
	e.dns = o.DNS
	if o.Backoff == 0 {
		o.Backoff = 10 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Second
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	logger := su.logger
	if logger == nil {
		logger = testLogger(t)
	}
	var q storage.Queue = st
	if su.queue != nil {
		q = su.queue
	}
	srv, err := New(o, st, q, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	if su.remote {
		srv.isLoopback = func(net.Addr) bool { return false }
	}
	if su.preAuth > 0 {
		srv.preAuthTimeout = su.preAuth
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	serve := func(implicit bool) string {
		ln := testlib.Listen(t)
		go func() { e.done <- srv.Serve(ctx, ln, implicit) }()
		return ln.Addr().String()
	}
	e.addr = serve(false)
	e.tlsAddr = serve(true)
	t.Cleanup(e.stop)
	return e
}

// stop ends the listeners and the workers, and waits for them.
func (e *env) stop() {
	e.t.Helper()
	if e.cancel == nil {
		return
	}
	e.stopWorkers()
	e.cancel()
	e.cancel = nil
	for range 2 {
		if err := <-e.done; err != nil {
			e.t.Errorf("Serve: %v", err)
		}
	}
}

func (e *env) startWorkers() {
	ctx, cancel := context.WithCancel(context.Background())
	e.workersCancel = cancel
	e.workersDone = make(chan error, 1)
	go func() { e.workersDone <- e.srv.RunWorkers(ctx) }()
}

func (e *env) stopWorkers() {
	e.t.Helper()
	if e.workersCancel == nil {
		return
	}
	e.workersCancel()
	e.workersCancel = nil
	if err := <-e.workersDone; err != nil {
		e.t.Errorf("RunWorkers: %v", err)
	}
}

// relayURL is the URL of a sink as a relay.
func relayURL(t testing.TB, k *sink, user, pass string) *url.URL {
	u, err := url.Parse("smtp://" + k.addr)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

// verified are the verdicts of mail that proved its senders: SPF and DMARC pass.
var verified = storage.AuthResults{SPF: "pass", DKIM: "none", DMARC: "pass"}

// received puts a message into inbox as the receiver would: from envFrom, with the
// header From and Reply-To given, and verified. Its raw form carries a Message-ID
// and References.
func received(t testing.TB, st fullStore, inbox, envFrom, from string, replyTo ...string) *storage.Message {
	t.Helper()
	return receivedAuth(t, st, inbox, verified, envFrom, from, replyTo...)
}

// receivedAuth is received with the verdicts given.
func receivedAuth(t testing.TB, st fullStore, inbox string, auth storage.AuthResults, envFrom, from string, replyTo ...string) *storage.Message {
	t.Helper()
	now := time.Now()
	var raw bytes.Buffer
	fmt.Fprintf(&raw, "From: %s\r\nTo: %s\r\nSubject: Welcome aboard\r\n", from, inbox)
	if len(replyTo) > 0 {
		fmt.Fprintf(&raw, "Reply-To: %s\r\n", strings.Join(replyTo, ", "))
	}
	raw.WriteString("Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <orig-1@sender.test>\r\nReferences: <root@sender.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello there,\r\nyour code is 123456.\r\n\r\n> an old quote\r\n")
	m := &storage.Message{
		Inbox:    inbox,
		Envelope: storage.Envelope{From: envFrom, Recipients: []string{inbox}, RemoteIP: "192.0.2.1", Helo: "mx.sender.test"},
		From:     from,
		To:       []string{inbox},
		Subject:  "Welcome aboard",
		Date:     time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC),
		ReplyTo:  replyTo,
		Auth:     auth,
		Received: now,
		Expires:  now.Add(time.Hour),
		Raw:      raw.Bytes(),
		Size:     int64(raw.Len()),
	}
	if err := st.Put(ctxFor(t), m); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return m
}

// letter is a reply as a mail client writes it.
func letter(from, to, subject, body string) []byte {
	return fmt.Appendf(nil, "From: Box <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n%s\r\n", from, to, subject, body)
}

// dial connects a client to a plain listener, greeted.
func dial(t testing.TB, addr string) *smtp.Client { return testlib.DialSMTP(t, addr) }

// login dials and authenticates as user with password.
func login(t testing.TB, addr, user, password string) *smtp.Client {
	t.Helper()
	c := dial(t, addr)
	if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
		t.Fatalf("AUTH PLAIN %s: %v", user, err)
	}
	return c
}

// send runs one transaction.
func send(c *smtp.Client, from string, to []string, msg []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

// smtpCode returns err's SMTP code and enhanced code, or fails.
func smtpCode(t testing.TB, err error) (int, smtp.EnhancedCode, string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T), want an SMTP reply", err, err)
	}
	return se.Code, se.EnhancedCode, se.Message
}

// wantCode requires err to be the reply code.code with text containing want.
func wantCode(t testing.TB, what string, err error, code int, enhanced smtp.EnhancedCode, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want %d %v", what, code, enhanced)
	}
	c, ec, msg := smtpCode(t, err)
	if c != code || ec != enhanced || !strings.Contains(msg, want) {
		t.Fatalf("%s = %d %v %q, want %d %v with %q", what, c, ec, msg, code, enhanced, want)
	}
}

// list returns inbox's messages, newest first.
func list(t testing.TB, st fullStore, inbox string) []storage.Message {
	t.Helper()
	l, err := st.List(ctxFor(t), inbox, storage.Page{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return l
}

var waitFor = testlib.WaitFor

// bounces returns inbox's delivery status notifications.
func bounces(t testing.TB, st fullStore, inbox string) []storage.Message {
	t.Helper()
	var out []storage.Message
	for _, m := range list(t, st, inbox) {
		if strings.Contains(m.From, "MAILER-DAEMON@") {
			out = append(out, m)
		}
	}
	return out
}

// queueEmpty requires the queue to hand out no job (the workers must be stopped).
func queueEmpty(t testing.TB, q storage.Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	job, err := q.Next(ctx, "test", time.Minute)
	if err == nil {
		t.Fatalf("the queue still holds job %s to %q (attempts %d)", job.ID, job.To, job.Attempts)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: %v", err)
	}
}
