package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// quietStore hides a store's events while quiet is set, so a test can change the
// store behind a session's back, as when mail expires between the sweep and its event.
type quietStore struct {
	storage.Store
	quiet atomic.Bool
}

func (q *quietStore) Subscribe(ctx context.Context, inbox string) (<-chan storage.Event, error) {
	in, err := q.Store.Subscribe(ctx, inbox)
	if err != nil {
		return nil, err
	}
	out := make(chan storage.Event, 64)
	go func() {
		defer close(out)
		for e := range in {
			if !q.quiet.Load() {
				out <- e
			}
		}
	}()
	return out, nil
}

// Mail that expires while a session shows it is left out of a FETCH, never a failure
// of the command, and its EXPUNGE comes at the next point that allows one.
func TestExpiredWhileShown(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		q := &quietStore{Store: st}
		srv := startServer(t, q, false)
		inbox, _ := newInbox()
		var msgs []*storage.Message
		for _, s := range []string{"a", "b", "c"} {
			msgs = append(msgs, put(t, st, inbox, s, nil))
		}
		u := newUpdates()
		c, _ := open(t, srv.addr, inbox, u)

		q.quiet.Store(true)
		if err := st.Delete(ctxFor(t), inbox, msgs[1].ID); err != nil {
			t.Fatal(err)
		}
		got, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatalf("FETCH 1:* BODY.PEEK[] with an expired message = %v, want OK", err)
		}
		var seqs []uint32
		for _, m := range got {
			seqs = append(seqs, m.SeqNum)
			if len(m.BodySection) != 1 || len(m.BodySection[0].Bytes) == 0 {
				t.Errorf("FETCH %d: no body", m.SeqNum)
			}
		}
		if !slices.Equal(seqs, []uint32{1, 3}) {
			t.Errorf("FETCH 1:* answered %v, want [1 3]", seqs)
		}
		select {
		case seq := <-u.expunge:
			t.Fatalf("EXPUNGE %d during FETCH; RFC 9051 section 7.5.1 forbids it", seq)
		default:
		}
		// The same goes for STORE and SEARCH on it.
		if _, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
			t.Errorf("STORE on the expired message = %v, want OK", err)
		}
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, u.expunge, 2, time.Second, "EXPUNGE at NOOP")
		got, err = c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
		if err != nil || len(got) != 2 || got[1].UID != imap.UID(msgs[2].UID) {
			t.Errorf("FETCH 1:* after the EXPUNGE = %d messages, %v; want a and c", len(got), err)
		}

		// And with the event on its way, as it usually is.
		q.quiet.Store(false)
		if err := st.Delete(ctxFor(t), inbox, msgs[0].ID); err != nil {
			t.Fatal(err)
		}
		got, err = c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
		if err != nil || len(got) == 0 || got[len(got)-1].UID != imap.UID(msgs[2].UID) {
			t.Errorf("FETCH 1:* ENVELOPE after a delete = %v; want c at least", err)
		}
		data, err := c.UIDSearch(&imap.SearchCriteria{Body: []string{"body"}}, nil).Wait()
		if err != nil || !slices.Equal(data.AllUIDs(), []imap.UID{imap.UID(msgs[2].UID)}) {
			t.Errorf("UID SEARCH BODY after a delete = %v, %v", data, err)
		}
	})
}

// failingStore fails or hangs every call while told to.
type failingStore struct {
	storage.Store
	fail atomic.Bool
	hang atomic.Bool
}

func (f *failingStore) check(ctx context.Context) error {
	if f.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.fail.Load() {
		return fmt.Errorf("redis: connection refused: %w", storage.ErrUnavailable)
	}
	return nil
}

func (f *failingStore) List(ctx context.Context, inbox string, p storage.Page) ([]storage.Message, error) {
	if err := f.check(ctx); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, inbox, p)
}

func (f *failingStore) Get(ctx context.Context, inbox, id string) (*storage.Message, error) {
	if err := f.check(ctx); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, inbox, id)
}

func (f *failingStore) Raw(ctx context.Context, inbox, id string) ([]byte, error) {
	if err := f.check(ctx); err != nil {
		return nil, err
	}
	return f.Store.Raw(ctx, inbox, id)
}

func (f *failingStore) SetFlags(ctx context.Context, inbox, id string, add, remove storage.Flags) (storage.Flags, error) {
	if err := f.check(ctx); err != nil {
		return 0, err
	}
	return f.Store.SetFlags(ctx, inbox, id, add, remove)
}

func (f *failingStore) Delete(ctx context.Context, inbox, id string) error {
	if err := f.check(ctx); err != nil {
		return err
	}
	return f.Store.Delete(ctx, inbox, id)
}

func (f *failingStore) Mailbox(ctx context.Context, inbox string) (storage.Mailbox, error) {
	if err := f.check(ctx); err != nil {
		return storage.Mailbox{}, err
	}
	return f.Store.Mailbox(ctx, inbox)
}

func (f *failingStore) Subscribe(ctx context.Context, inbox string) (<-chan storage.Event, error) {
	if err := f.check(ctx); err != nil {
		return nil, err
	}
	return f.Store.Subscribe(ctx, inbox)
}

// A store that is down gives NO [UNAVAILABLE] and leaves the session usable.
func TestStoreUnavailable(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	f := &failingStore{Store: st}
	srv := startServer(t, f, false, func(_ *Options, s *Server) { s.opTimeout = 200 * time.Millisecond })
	inbox, token := newInbox()
	put(t, st, inbox, "a", nil)
	put(t, st, inbox, "b", nil)

	c := dial(t, srv.addr, nil)
	if err := c.Login(inbox, token).Wait(); err != nil {
		t.Fatal(err)
	}
	f.fail.Store(true)
	_, err := c.Select("INBOX", nil).Wait()
	wantCode(t, "SELECT", err, imap.ResponseCodeUnavailable)
	_, err = c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	wantCode(t, "STATUS", err, imap.ResponseCodeUnavailable)
	f.fail.Store(false)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT once the store is back = %v", err)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}

	for _, mode := range []string{"down", "hanging"} {
		if mode == "down" {
			f.fail.Store(true)
		} else {
			f.hang.Store(true)
		}
		_, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
		wantCode(t, mode+": FETCH BODY[]", err, imap.ResponseCodeUnavailable)
		_, err = c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
		wantCode(t, mode+": STORE", err, imap.ResponseCodeUnavailable)
		_, err = c.Search(&imap.SearchCriteria{Body: []string{"x"}}, nil).Wait()
		wantCode(t, mode+": SEARCH BODY", err, imap.ResponseCodeUnavailable)
		_, err = c.Expunge().Collect()
		wantCode(t, mode+": EXPUNGE", err, imap.ResponseCodeUnavailable)
		// What the session holds needs no store.
		if msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, RFC822Size: true}).Collect(); err != nil || len(msgs) != 2 {
			t.Errorf("%s: FETCH 1:* FAST = %d messages, %v; want 2", mode, len(msgs), err)
		}
		f.fail.Store(false)
		f.hang.Store(false)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP = %v", err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH once the store is back = %v", err)
	}
}

// rawConn speaks IMAP by hand, for what imapclient will not send or will not show.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
	n  int
}

// loginRaw dials addr and logs in as inbox.
func loginRaw(t *testing.T, addr, inbox, token string) *rawConn {
	t.Helper()
	r := dialRaw(t, addr)
	r.ok(fmt.Sprintf("LOGIN %s %s", inbox, token))
	return r
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	r.line() // greeting
	return r
}

var literal = regexp.MustCompile(`\{(\d+)\}\r\n$`)

// line reads one response line, literals included.
func (r *rawConn) line() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for {
		l, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read: %v (after %q)", err, b.String())
		}
		b.WriteString(l)
		m := literal.FindStringSubmatch(l)
		if m == nil {
			return b.String()
		}
		var n int
		fmt.Sscan(m[1], &n)
		buf := make([]byte, n)
		if _, err := ioReadFull(r.br, buf); err != nil {
			r.t.Fatal(err)
		}
		b.Write(buf)
	}
}

// cmd sends a command and returns the untagged responses and the tagged one.
func (r *rawConn) cmd(command string) (untagged []string, status string) {
	r.t.Helper()
	r.n++
	tag := fmt.Sprintf("r%d", r.n)
	fmt.Fprintf(r.c, "%s %s\r\n", tag, command)
	for {
		l := r.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimSpace(strings.TrimPrefix(l, tag+" "))
		}
		untagged = append(untagged, strings.TrimSpace(l))
	}
}

func (r *rawConn) ok(command string) []string {
	r.t.Helper()
	untagged, status := r.cmd(command)
	if !strings.HasPrefix(status, "OK") {
		r.t.Fatalf("%s = %s, want OK", command, status)
	}
	return untagged
}

func ioReadFull(br *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := br.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestRawProtocol covers what imapclient cannot send or drops from its answers, and
// requests that have crashed IMAP servers.
func TestRawProtocol(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, false)
	inbox, token := newInbox()
	a := put(t, st, inbox, "alpha", nil)
	b := put(t, st, inbox, "beta", readFile(t, "testdata/invoice.eml"))
	r := loginRaw(t, srv.addr, inbox, token)
	r.ok("SELECT INBOX")

	tests := []struct {
		command string
		want    []string // regexps, one per untagged line; nil = any
		status  string   // prefix
	}{
		{"FETCH * (UID)", []string{fmt.Sprintf(`^\* 2 FETCH \(UID %d\)$`, b.UID)}, "OK"},
		{"FETCH 2:1 (UID)", []string{`^\* 1 FETCH`, `^\* 2 FETCH`}, "OK"},
		{fmt.Sprintf("UID FETCH %d:* (UID)", b.UID+50), []string{fmt.Sprintf(`^\* 2 FETCH \(UID %d\)$`, b.UID)}, "OK"},
		{"FETCH 3 (UID)", nil, "OK"},
		{"FETCH 1 (BODY.PEEK[]<10.5>)", []string{`BODY\[\]<10> \{5\}\r\nfrom `}, "OK"},
		{"FETCH 1 (BODY.PEEK[]<100000.5>)", []string{`BODY\[\]<100000> \{0\}`}, "OK"},
		{"FETCH 2 (BODY.PEEK[" + strings.Repeat("1.", 80) + "1])", []string{`\{0\}`}, "OK"},
		{"FETCH 2 (BODY.PEEK[9])", []string{`BODY\[9\] \{0\}`}, "OK"},
		{"STATUS INBOX (MESSAGES DELETED-STORAGE APPENDLIMIT RECENT)", []string{`^\* STATUS INBOX \(MESSAGES 2 APPENDLIMIT NIL DELETED-STORAGE 0 RECENT 0\)$`}, "OK"},
		{"SEARCH RETURN (SAVE) SUBJECT invoice", nil, "OK"},
		{"FETCH $ (UID)", []string{fmt.Sprintf(`^\* 2 FETCH \(UID %d\)$`, b.UID)}, "OK"},
		{"UID SEARCH RETURN (COUNT) UID 1:*", []string{`^\* ESEARCH \(TAG "r\d+"\) UID COUNT 2$`}, "OK"},
		{"SEARCH CHARSET KOI8-R BODY x", nil, "NO [BADCHARSET]"},
		{`STORE 1 +FLAGS (\Recent $Label \draft)`, []string{fmt.Sprintf(`^\* 1 FETCH \(UID %d FLAGS \(\$Label \\Draft\)\)$`, a.UID)}, "OK"},
		{"SEARCH KEYWORD $label", []string{`^\* SEARCH 1$`}, "OK"},
		{"SEARCH NEW", []string{`^\* SEARCH$`}, "OK"},
		{`LIST "" ""`, []string{`^\* LIST \(\\Noselect\) "/" ""$`}, "OK"},
		{`LSUB "" *`, []string{`^\* LSUB \(.*\) "/" INBOX$`}, "OK"},
		{`LIST "" (INBOX Sent) RETURN (CHILDREN SPECIAL-USE)`, []string{`^\* LIST \(\\HasNoChildren\) "/" INBOX$`, `^\* LIST \(\\HasNoChildren \\Sent\) "/" (Sent|"Sent")$`}, "OK"},
		{`LIST (SPECIAL-USE) "" *`, []string{`^\* LIST \(\\HasNoChildren \\Sent\) "/" (Sent|"Sent")$`}, "OK"},
		{"ID NIL", []string{`^\* ID \("name" "Mayfly"\)$`}, "OK"},
		{"EXAMINE inbox", nil, "OK [READ-ONLY]"},
		{"UNSELECT", nil, "OK"},
		{"IDLE", nil, ""}, // answered below
	}
	for _, tt := range tests {
		if tt.command == "IDLE" {
			break
		}
		untagged, status := r.cmd(tt.command)
		if !strings.HasPrefix(status, tt.status) {
			t.Errorf("%s = %s, want %s", tt.command, status, tt.status)
		}
		if tt.want == nil {
			continue
		}
		if len(untagged) < len(tt.want) {
			t.Errorf("%s answered %q, want %d lines like %q", tt.command, untagged, len(tt.want), tt.want)
			continue
		}
		for i, re := range tt.want {
			if !regexp.MustCompile(re).MatchString(untagged[i]) {
				t.Errorf("%s line %d = %q, want %s", tt.command, i, untagged[i], re)
			}
		}
	}
	// IDLE with nothing selected waits for DONE like any other.
	fmt.Fprintf(r.c, "i1 IDLE\r\n")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE = %q, want a continuation", l)
	}
	fmt.Fprintf(r.c, "DONE\r\n")
	if l := r.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Errorf("DONE = %q, want i1 OK", l)
	}
	r.ok("NOOP")
}

func TestShutdown(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, false)
	inbox, token := newInbox()
	put(t, st, inbox, "a", nil)

	idler := loginRaw(t, srv.addr, inbox, token)
	idler.ok("SELECT INBOX")
	fmt.Fprintf(idler.c, "i1 IDLE\r\n")
	idler.line()
	loggedOut := dialRaw(t, srv.addr)
	c, _ := open(t, srv.addr, inbox, nil)

	srv.stop()
	for _, r := range []*rawConn{idler, loggedOut} {
		if l := r.line(); !strings.HasPrefix(l, "* BYE imap.mayfly.test IMAP shutting down") {
			t.Errorf("at shutdown the client read %q, want a BYE", l)
		}
	}
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Errorf("imapclient's connection still open after shutdown")
	}
	if got := testutil.ToFloat64(srv.metrics.sessions); got != 0 {
		t.Errorf("sessions open after shutdown = %v, want 0", got)
	}
	if _, err := net.Dial("tcp", srv.addr); err == nil {
		t.Errorf("still accepting connections after shutdown")
	}
}

// A client that never finishes its TLS handshake cannot hold up shutdown past
// ShutdownTimeout.
func TestShutdownTimeout(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, true, func(o *Options, _ *Server) { o.ShutdownTimeout = 100 * time.Millisecond })
	silent, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A TLS client that works, so that we know the silent one has been accepted too.
	ok, err := tls.Dial("tcp", srv.addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	bufio.NewReader(ok).ReadString('\n')
	start := time.Now()
	srv.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v with ShutdownTimeout 100ms", d)
	}
}

func TestMaxConnections(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, false, func(o *Options, _ *Server) { o.MaxConnections = 1 })
	first := dialRaw(t, srv.addr)
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(l, "* BYE Too many connections") {
		t.Errorf("greeting over the limit = %q, want a BYE", l)
	}
	first.ok("NOOP")
	if got := testutil.ToFloat64(srv.metrics.rejected); got != 1 {
		t.Errorf("rejected connections = %v, want 1", got)
	}
}

func TestCommandMetrics(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, false)
	inbox, _ := newInbox()
	put(t, st, inbox, "a", nil)
	c, _ := open(t, srv.addr, inbox, nil)
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{Flags: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"login": 1, "select": 1, "fetch": 1, "uid fetch": 1, "search": 0} {
		if got := testutil.ToFloat64(srv.metrics.commands.WithLabelValues(name)); got != want {
			t.Errorf("commands{command=%q} = %v, want %v", name, got, want)
		}
	}
	if got := testutil.ToFloat64(srv.metrics.sessions); got != 1 {
		t.Errorf("sessions = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(srv.reg, "mayfly_imap_sessions", "mayfly_imap_logins_total", "mayfly_imap_commands_total", "mayfly_imap_rejected_connections_total", "mayfly_imap_refused_total"); err != nil || n != 2+1+len(commandNames)+1+4 {
		t.Errorf("series exported = %d, %v", n, err)
	}
}
