package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mayfly-mail/mayfly/server/limit"
)

// BenchmarkList100KiB is the listing of issue 23's read side: GET of an inbox of 200
// messages of 100 KiB each (the summaries, as List200 of BenchmarkReads, whose mail
// is 10 KiB), one client, keep-alive.
func BenchmarkList100KiB(b *testing.B) {
	for name, open := range stores(b) {
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, open(b), Options{RequestRate: limit.Rate{N: -1}})
			in := e.create("")
			body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit https://example.test/x\r\n", 1260)
			for i := range 200 {
				e.deliver(in.Address, fmt.Sprintf("From: a@x.test\r\nSubject: message %d, code 4821%02d\r\n\r\n%s", i, i%100, body))
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			req, _ := http.NewRequest("GET", e.base+"/api/v1/inboxes/"+in.Address+"/messages", nil)
			req.Header.Set("Authorization", "Bearer "+in.Token)
			b.ResetTimer()
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
		})
	}
}
