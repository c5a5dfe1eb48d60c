package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
)

// bigMail is a message whose text body is n bytes of x.
func bigMail(subject string, n int) string {
	return "Subject: " + subject + "\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("x", n) + "\r\n"
}

// TestParseCacheBounded: the cache holds at most MAYFLY_PARSE_CACHE bytes however
// many messages are read (it held 512 messages of any size), and a message deleted
// through the API, its inbox deleted, or expired leaves it at once (it stayed).
func TestParseCacheBounded(t *testing.T) {
	const max = 1 << 20
	eachEnv(t, Options{ParseCache: max, RequestRate: limit.Rate{N: -1}}, func(t *testing.T, e *env, box createResponse) {
		var ids []string
		for i := range 20 {
			m := e.deliver(box.Address, bigMail(fmt.Sprint(i), 200<<10))
			ids = append(ids, m.ID)
			if r := e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+m.ID, box.Token, nil); r.status != 200 {
				t.Fatalf("read %d: %d %s", i, r.status, r.body)
			}
			if n := e.srv.cache.bytes(); n > max {
				t.Fatalf("after %d reads the cache holds %d bytes, want at most %d", i+1, n, max)
			}
		}
		if n := e.srv.cache.bytes(); n < max/2 {
			t.Errorf("the cache holds %d bytes, want it used", n)
		}
		last := ids[len(ids)-1]
		if _, ok := e.srv.cache.get(box.Address, last); !ok {
			t.Fatalf("the last message read is not cached")
		}
		if r := e.do("DELETE", "/api/v1/inboxes/"+box.Address+"/messages/"+last, box.Token, nil); r.status != 204 {
			t.Fatalf("delete: %d", r.status)
		}
		if _, ok := e.srv.cache.get(box.Address, last); ok {
			t.Errorf("a message deleted through the API is still cached")
		}

		// Deleted behind the API's back (IMAP, another node): the store is asked
		// first, so the cached parse is never answered.
		prev := ids[len(ids)-2]
		if _, ok := e.srv.cache.get(box.Address, prev); !ok {
			t.Fatalf("message %s not cached", prev)
		}
		if err := e.store.Delete(context.Background(), box.Address, prev); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+prev, box.Token, nil), 404)
		wantError(t, e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+prev+"/html", box.Token, nil), 404)

		// An expired entry is not served and goes.
		m := e.deliver(box.Address, bigMail("soon gone", 10))
		e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+m.ID, box.Token, nil)
		e.srv.cache.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		if _, ok := e.srv.cache.get(box.Address, m.ID); ok {
			t.Errorf("an expired message is still cached")
		}
		e.srv.cache.now = time.Now

		e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+ids[len(ids)-3], box.Token, nil)
		if r := e.do("DELETE", "/api/v1/inboxes/"+box.Address, box.Token, nil); r.status != 200 {
			t.Fatalf("delete inbox: %d", r.status)
		}
		if n := e.srv.cache.bytes(); n != 0 {
			t.Errorf("the cache holds %d bytes after its only inbox was deleted", n)
		}
	})
}

// TestJSONCapped: a 10 MiB HTML body of "<" was a 114 MiB answer (the HTML and its
// rendering as text, each escaped six-fold); now text and html stop at 1 MiB each,
// unescaped, with truncated set, and the html route still has it all.
func TestJSONCapped(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		body := strings.Repeat("<", 10<<20)
		m := e.deliver(box.Address, "Subject: lt\r\nContent-Type: text/html\r\n\r\n"+body)
		path := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID
		r := e.do("GET", path, box.Token, nil)
		if r.status != 200 {
			t.Fatalf("GET: %d", r.status)
		}
		if len(r.body) > 2<<20+64<<10 {
			t.Errorf("answer of %d bytes, want about 2 MiB", len(r.body))
		}
		var got messageJSON
		r.json(t, &got)
		if !got.Truncated || len(got.HTML) != 1<<20 || len(got.Text) != 1<<20 {
			t.Errorf("truncated = %v, html %d bytes, text %d bytes; want true, 1 MiB, 1 MiB", got.Truncated, len(got.HTML), len(got.Text))
		}
		if h := e.do("GET", path+"/html", box.Token, nil); len(h.body) != len(fmt.Sprintf(htmlPrologue, newNonce()))+len(body) {
			t.Errorf("html route: %d bytes, want the whole body", len(h.body))
		}

		small := e.deliver(box.Address, signup)
		e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+small.ID, box.Token, nil).json(t, &got)
		if got.Truncated || !strings.Contains(got.HTML, "<p>Your verification code") {
			t.Errorf("a small message: truncated = %v, html %q", got.Truncated, got.HTML)
		}
	})
}

// TestWaitAndListBounded: a wait for many large messages shares one budget, so its
// answer is not count times a message's; a listing's summaries cut their subject.
func TestWaitAndListBounded(t *testing.T) {
	e := newEnv(t, stores(t)["memory"](t), Options{MaxTextJSON: 64 << 10, RequestRate: limit.Rate{N: -1}})
	box := e.create("")
	for i := range 20 {
		e.deliver(box.Address, bigMail(fmt.Sprint(i)+strings.Repeat("s", 100<<10), 200<<10))
	}
	r := e.do("GET", "/api/v1/inboxes/"+box.Address+"/wait?count=20&timeout=5s", box.Token, nil)
	var w struct{ Messages []messageJSON }
	r.json(t, &w)
	if len(w.Messages) != 20 || !w.Messages[19].Truncated {
		t.Fatalf("wait: %d messages", len(w.Messages))
	}
	// 4 × 64 KiB of text, headers and links in all, plus 20 summaries of 2 KiB subjects.
	if len(r.body) > 4*64<<10+20*4<<10 {
		t.Errorf("wait answer of %d bytes for 20 messages, want one message's budget", len(r.body))
	}
	r = e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages", box.Token, nil)
	var l struct{ Messages []summaryJSON }
	r.json(t, &l)
	if len(l.Messages) != 20 || !l.Messages[0].Truncated || len(l.Messages[0].Subject) != maxSummaryField {
		t.Errorf("listing: %d messages, first truncated %v with a subject of %d bytes", len(l.Messages), l.Messages[0].Truncated, len(l.Messages[0].Subject))
	}
	if len(r.body) > 20*4<<10 {
		t.Errorf("listing of %d bytes for 20 messages", len(r.body))
	}
}

// TestParsedOnce: a message of 1000 parts was walked again for each inline image of
// its HTML, on every request; now one parse serves the JSON, the document and its
// images, and readers arriving together share it.
func TestParsedOnce(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := &countingStore{fullStore: newStore(t)}
			e := newEnv(t, st, Options{MaxReadsPerIP: -1, RequestRate: limit.Rate{N: -1}})
			box := e.create("")
			var raw strings.Builder
			raw.WriteString("Subject: parts\r\nContent-Type: multipart/related; boundary=p\r\n\r\n--p\r\nContent-Type: text/html\r\n\r\n")
			for i := range 999 {
				fmt.Fprintf(&raw, `<img src="cid:i%d">`, i)
			}
			for i := range 999 {
				fmt.Fprintf(&raw, "\r\n--p\r\nContent-Type: image/gif\r\nContent-ID: <i%d>\r\n\r\nGIF89a%d", i, i)
			}
			raw.WriteString("\r\n--p--\r\n")
			m := e.deliver(box.Address, raw.String())
			path := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID

			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					if r := e.do("GET", path, box.Token, nil); r.status != 200 {
						t.Errorf("GET: %d", r.status)
					}
				})
			}
			wg.Wait()
			doc := e.do("GET", path+"/html", box.Token, nil).body
			key := string(doc[strings.Index(string(doc), "?k=")+1:][:24])
			// parse's maxParts: the container and the HTML are 2 of the 1000 parts.
			for _, i := range []int{0, 500, 997} {
				r := e.do("GET", fmt.Sprintf("%s/attachments/%d?%s", path, i, key), "", nil)
				if r.status != 200 || string(r.body) != fmt.Sprintf("GIF89a%d", i) {
					t.Errorf("image %d: %d %q", i, r.status, r.body)
				}
			}
			if n := e.srv.parses.Load(); n != 1 {
				t.Errorf("parsed %d times for 8 reads, the document and 3 images; want once", n)
			}
			if n := st.raws.Load(); n != 1 {
				t.Errorf("the message was read from the store %d times; want once, for its parse", n)
			}
		})
	}
}

// countingStore counts reads of messages' bytes.
type countingStore struct {
	fullStore
	raws atomic.Int64
}

func (c *countingStore) Raw(ctx context.Context, inbox, id string) ([]byte, error) {
	c.raws.Add(1)
	return c.fullStore.Raw(ctx, inbox, id)
}

// gatedStore holds every Raw until the gate opens, so that reads are in flight together.
type gatedStore struct {
	fullStore
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) Raw(ctx context.Context, inbox, id string) ([]byte, error) {
	g.entered <- struct{}{}
	<-g.gate
	return g.fullStore.Raw(ctx, inbox, id)
}

// TestReadsPerClient: one client may have MAYFLY_HTTP_MAX_READS_PER_IP reads of
// messages in flight; the next waits for one to end, and is 429 too_many_reads with a
// Retry-After when none does in time, while another client is served.
func TestReadsPerClient(t *testing.T) {
	st := &gatedStore{fullStore: stores(t)["memory"](t), entered: make(chan struct{}, 16), gate: make(chan struct{})}
	e := newEnvWith(t, st, Options{MaxReadsPerIP: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		func(s *Server) { s.readWait = 2 * time.Second })
	box := e.create("")
	m := e.deliver(box.Address, signup)
	raw := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID + "/raw"
	get := func(client string) *http.Response {
		return request(t, "GET", e.base+raw, "Authorization", "Bearer "+box.Token, "X-Forwarded-For", client)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if resp := get("192.0.2.1"); resp.StatusCode != 200 {
				t.Errorf("a read within the limit: %s", resp.Status)
			}
		})
	}
	<-st.entered
	<-st.entered
	wg.Go(func() {
		if resp := get("192.0.2.2"); resp.StatusCode != 200 {
			t.Errorf("another client's read: %s", resp.Status)
		}
	})
	<-st.entered // the other client is let in
	type answer struct {
		status     int
		retryAfter string
		body       string
	}
	third := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", e.base+raw, nil)
		req.Header.Set("Authorization", "Bearer "+box.Token)
		req.Header.Set("X-Forwarded-For", "192.0.2.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			third <- answer{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		third <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
	}()
	select {
	case <-st.entered:
		t.Error("a third read at once from the client was let in")
	case a := <-third:
		if a.status != 429 || a.retryAfter == "" || !strings.Contains(a.body, "too_many_reads") || !strings.Contains(a.body, "MAYFLY_HTTP_MAX_READS_PER_IP") {
			t.Errorf("a third read at once: %d, Retry-After %q, %s", a.status, a.retryAfter, a.body)
		}
	}
	// A read that finds a slot free within the wait goes ahead: here an attachment, as a
	// frame asks for all its images at once.
	wg.Go(func() {
		req, _ := http.NewRequest("GET", e.base+"/api/v1/inboxes/"+box.Address+"/messages/"+m.ID+"/attachments/0", nil)
		req.Header.Set("Authorization", "Bearer "+box.Token)
		req.Header.Set("X-Forwarded-For", "192.0.2.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("an attachment past the limit: %s, want 200 once a read ended", resp.Status)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); e.srv.awaiting.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the attachment request never waited for a slot")
		}
		time.Sleep(time.Millisecond) // polling a counter, with a deadline
	}
	close(st.gate)
	wg.Wait()
	st.entered = make(chan struct{}, 16)
	if resp := get("192.0.2.1"); resp.StatusCode != 200 {
		t.Errorf("a read after the others ended: %s", resp.Status)
	}
}

// TestAttachmentNotCopiedPerRead: an attachment was decoded whole for each read, into
// a clean copy of its base64 and then its bytes (16 MiB for a 7 MiB file), and a slow
// reader kept them until it had read them all (32 slow readers from four addresses:
// 430 MiB). Now it is decoded as it is sent, and arrives whole with its length.
func TestAttachmentNotCopiedPerRead(t *testing.T) {
	e := newEnv(t, stores(t)["memory"](t), Options{})
	box := e.create("")
	data := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 4<<20/18)
	enc := base64.StdEncoding.EncodeToString(data)
	var lines strings.Builder
	for len(enc) > 76 {
		lines.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	lines.WriteString(enc + "\r\n")
	m := e.deliver(box.Address, "Subject: file\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n"+
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=f.bin\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n"+lines.String()+"--b--\r\n")
	path := "/api/v1/inboxes/" + box.Address + "/messages/" + m.ID + "/attachments/0"
	r := e.do("GET", path, box.Token, nil)
	if r.status != 200 || !bytes.Equal(r.body, data) {
		t.Fatalf("GET %s = %d, %d bytes, want the file of %d", path, r.status, len(r.body), len(data))
	}
	if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(data)) {
		t.Errorf("Content-Length %q, want %d", got, len(data))
	}
	if _, alloc := discardRead(t, e, path, box.Token); alloc > 1<<20 {
		t.Errorf("a read of a 4 MiB attachment allocated %d bytes, want under 1 MiB", alloc)
	}
}

// TestWaitContentFilterTakesReadSlot: a wait filtering on the body parses the inbox's
// mail, and each parse is a read under MAYFLY_HTTP_MAX_READS_PER_IP like any other.
func TestWaitContentFilterTakesReadSlot(t *testing.T) {
	st := &gatedStore{fullStore: stores(t)["memory"](t), entered: make(chan struct{}, 16), gate: make(chan struct{})}
	e := newEnv(t, st, Options{MaxReadsPerIP: 1})
	box := e.create("")
	m := e.deliver(box.Address, signup)
	held := make(chan int, 1)
	go func() {
		held <- e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+m.ID+"/raw", box.Token, nil).status
	}()
	<-st.entered // the client's one slot is taken
	waited := make(chan response, 1)
	go func() {
		waited <- e.do("GET", "/api/v1/inboxes/"+box.Address+"/wait?timeout=10s&body=verification", box.Token, nil)
	}()
	for deadline := time.Now().Add(10 * time.Second); e.srv.awaiting.Load() == 0; {
		select {
		case r := <-waited:
			t.Fatalf("the wait parsed past the read limit: %d %s", r.status, r.body)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the wait never waited for a read slot")
		}
		time.Sleep(time.Millisecond) // polling a counter, with a deadline
	}
	close(st.gate)
	if status := <-held; status != 200 {
		t.Errorf("the held read: %d", status)
	}
	if r := <-waited; r.status != 200 {
		t.Errorf("the wait once the slot was free: %d %s", r.status, r.body)
	}
}
