package imapd

import (
	"bytes"
	"fmt"
	"github.com/emersion/go-imap/v2/imapclient"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// benchStores opens the stores a benchmark runs on, each with a second node on the
// same data (for memory, the same store), and a cap above what the benchmark puts.
func benchStores(b *testing.B) map[string]func(b *testing.B) (storage.Store, storage.Store) {
	m := map[string]func(b *testing.B) (storage.Store, storage.Store){
		"memory": func(b *testing.B) (storage.Store, storage.Store) {
			st := memstore.New(memstore.Options{MaxMessages: 1 << 20})
			b.Cleanup(func() { st.Close() })
			return st, st
		},
	}
	url := storetest.RedisURL(b)
	if url == "" {
		return m
	}
	m["redis"] = func(b *testing.B) (storage.Store, storage.Store) {
		prefix := fmt.Sprintf("mayflybench:imap:%d:", time.Now().UnixNano())
		open := func() storage.Store {
			st, err := redisstore.New(b.Context(), redisstore.Options{URL: url, Prefix: prefix, MaxMessages: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}
		return open(), open()
	}
	return m
}

// BenchmarkFetchEnvelope200 is a mail client opening an inbox: FETCH 1:* ENVELOPE of
// 200 messages over loopback, through imapclient. Warm: the envelopes are in the
// server's cache, as when a client reconnects; cold: every one is read and parsed.
func BenchmarkFetchEnvelope200(b *testing.B) {
	raw := readFile(b, "testdata/invoice.eml")
	for name, mk := range benchStores(b) {
		for _, cold := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/cold=%v", name, cold), func(b *testing.B) {
				benchFetchEnvelope(b, mk, raw, cold)
			})
		}
	}
}

// inbox200 starts a server on a store of mk, puts 200 copies of raw into an inbox and
// returns a client that has it selected, with the benchmark's timer reset.
func inbox200(b *testing.B, mk func(*testing.B) (storage.Store, storage.Store), raw []byte) (*testServer, *imapclient.Client) {
	st, _ := mk(b)
	srv := startServer(b, st, false, noCommandRate)
	inbox, _ := newInbox()
	for i := range 200 {
		put(b, st, inbox, fmt.Sprintf("m%d", i), raw)
	}
	c, _ := open(b, srv.addr, inbox, nil)
	b.ResetTimer()
	return srv, c
}

func benchFetchEnvelope(b *testing.B, mk func(*testing.B) (storage.Store, storage.Store), raw []byte, cold bool) {
	srv, c := inbox200(b, mk, raw)
	for b.Loop() {
		if cold {
			srv.envelopes.reset()
			srv.parsed.reset()
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true}).Collect()
		if err != nil || len(msgs) != 200 {
			b.Fatalf("FETCH 1:* ENVELOPE = %d messages, %v", len(msgs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
}

// BenchmarkFetchStructure200 is a mail client reading an inbox: FETCH 1:*
// (BODYSTRUCTURE), or FETCH 1:* (BODY.PEEK[1]), of 200 messages over loopback, through
// imapclient; every message is read from the store. Warm: the parsed messages are in
// the server's cache, as after a first look; cold: every one is parsed.
func BenchmarkFetchStructure200(b *testing.B) {
	raw := readFile(b, "testdata/invoice.eml")
	items := map[string]*imap.FetchOptions{
		"bodystructure": {BodyStructure: &imap.FetchItemBodyStructure{Extended: true}},
		"body1":         {BodySection: []*imap.FetchItemBodySection{{Part: []int{1}, Peek: true}}},
	}
	for name, mk := range benchStores(b) {
		for item, options := range items {
			for _, cold := range []bool{false, true} {
				b.Run(fmt.Sprintf("%s/%s/cold=%v", name, item, cold), func(b *testing.B) {
					srv, c := inbox200(b, mk, raw)
					for b.Loop() {
						if cold {
							srv.parsed.reset()
						}
						msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, options).Collect()
						if err != nil || len(msgs) != 200 {
							b.Fatalf("FETCH 1:* %s = %d messages, %v", item, len(msgs), err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
				})
			}
		}
	}
}

// BenchmarkIdlePush measures how long new mail takes to reach an IDLE client: from
// Put (on Redis, on another node) to the EXISTS read by imapclient.
func BenchmarkIdlePush(b *testing.B) {
	for name, mk := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			st, node := mk(b)
			srv := startServer(b, st, false)
			inbox, _ := newInbox()
			u := newUpdates()
			c, _ := open(b, srv.addr, inbox, u)
			done := idle(b, c)
			defer done()
			var lat []time.Duration
			b.ResetTimer()
			for b.Loop() {
				m := storetest.NewMessage(inbox, "push")
				start := time.Now()
				if err := node.Put(b.Context(), m); err != nil {
					b.Fatal(err)
				}
				next(b, u.exists, 5*time.Second, "EXISTS")
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1e3, "p99-ms")
		})
	}
}

// largeMail is a newsletter-sized worst case for SEARCH TEXT: about 2 MiB of
// quoted-printable text/plain and text/html, with mixed case for the search to fold.
func largeMail() []byte {
	var b bytes.Buffer
	b.WriteString("From: News <news@shop.test>\r\nTo: box@mayfly.test\r\nSubject: Weekly Digest\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n")
	line := "Caf=C3=A9 Offers And Deals For You, Every Week, Read Them All Now Please =\r\n"
	for _, typ := range []string{"plain", "html"} {
		b.WriteString("--b\r\nContent-Type: text/" + typ + "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		for b.Len() < 1<<20*map[string]int{"plain": 1, "html": 2}[typ] {
			b.WriteString(line)
		}
		b.WriteString("end\r\n")
	}
	b.WriteString("--b--\r\n")
	return b.Bytes()
}

// BenchmarkSearchText200 is SEARCH TEXT of a word no message holds, so every message
// is searched to its end, over a full inbox (200 messages) of 2 MiB newsletters.
// Warm: their text is in the server's cache, as for a client's second search; cold:
// every message is read for its text.
func BenchmarkSearchText200(b *testing.B) {
	raw := largeMail()
	for name, mk := range benchStores(b) {
		for _, cold := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/cold=%v", name, cold), func(b *testing.B) {
				st, _ := mk(b)
				srv := startServer(b, st, false, noCommandRate, func(o *Options, _ *Server) { o.SearchTimeout = time.Minute })
				inbox, _ := newInbox()
				for i := range 200 {
					put(b, st, inbox, fmt.Sprintf("m%d", i), raw)
				}
				c, _ := open(b, srv.addr, inbox, nil)
				search := func() {
					data, err := c.Search(&imap.SearchCriteria{Text: []string{"unsubscribe"}}, nil).Wait()
					if err != nil || len(data.AllSeqNums()) != 0 {
						b.Fatalf("SEARCH TEXT = %v, %v", data, err)
					}
				}
				search()
				b.ResetTimer()
				for b.Loop() {
					if cold {
						srv.texts.reset()
					}
					search()
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
			})
		}
	}
}
