package imapd

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// mail100KiB is a 100 KiB newsletter: text and HTML, quoted-printable.
func mail100KiB() []byte {
	var b bytes.Buffer
	b.WriteString("From: News <news@shop.test>\r\nTo: box@mayfly.test\r\nSubject: Weekly Digest\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n")
	line := "Caf=C3=A9 Offers And Deals For You, Every Week, Read Them All Now Please =\r\n"
	for _, typ := range []string{"plain", "html"} {
		b.WriteString("--b\r\nContent-Type: text/" + typ + "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		for b.Len() < 50<<10*map[string]int{"plain": 1, "html": 2}[typ] {
			b.WriteString(line)
		}
		b.WriteString("end\r\n")
	}
	b.WriteString("--b--\r\n")
	return b.Bytes()
}

// BenchmarkRead100KiB is the read side of issue 23 on an inbox of 200 messages of 100
// KiB: FETCH 1:* ENVELOPE and SEARCH TEXT of a word no message holds, each with the
// server's caches emptied first, so that every message is read from the store.
func BenchmarkRead100KiB(b *testing.B) {
	raw := mail100KiB()
	for name, mk := range benchStores(b) {
		b.Run("fetchenvelope/"+name, func(b *testing.B) {
			srv, c := inbox200(b, mk, raw)
			for b.Loop() {
				srv.envelopes.reset()
				srv.parsed.reset()
				msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true}).Collect()
				if err != nil || len(msgs) != 200 {
					b.Fatalf("FETCH 1:* ENVELOPE = %d messages, %v", len(msgs), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
		})
		b.Run("search/"+name, func(b *testing.B) {
			st, _ := mk(b)
			srv := startServer(b, st, false, noCommandRate, func(o *Options, _ *Server) { o.SearchTimeout = time.Minute })
			inbox, _ := newInbox()
			for i := range 200 {
				put(b, st, inbox, fmt.Sprintf("m%d", i), raw)
			}
			c, _ := open(b, srv.addr, inbox, nil)
			b.ResetTimer()
			for b.Loop() {
				srv.texts.reset()
				data, err := c.Search(&imap.SearchCriteria{Text: []string{"unsubscribe"}}, nil).Wait()
				if err != nil || len(data.AllSeqNums()) != 0 {
					b.Fatalf("SEARCH TEXT = %v, %v", data, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
		})
	}
}
