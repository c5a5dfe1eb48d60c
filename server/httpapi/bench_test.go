package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mayfly-mail/mayfly/server/limit"
)

// BenchmarkReads measures requests per second against an inbox of 200 messages over
// real loopback HTTP with keep-alive, from as many goroutines as GOMAXPROCS:
// req/s = 1e9 / ns/op.
func BenchmarkReads(b *testing.B) {
	for name, open := range stores(b) {
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, open(b), Options{RequestRate: limit.Rate{N: -1}}) // one client, as fast as it can
			in := e.create("")
			body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit https://example.test/x\r\n", 120)
			var last string
			for i := range 200 {
				last = e.deliver(in.Address, fmt.Sprintf("From: a@x.test\r\nSubject: message %d, code 4821%02d\r\n\r\n%s", i, i%100, body)).ID
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			get := func(path string) {
				req, _ := http.NewRequest("GET", e.base+path, nil)
				req.Header.Set("Authorization", "Bearer "+in.Token)
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
			for _, r := range []struct{ name, path string }{
				{"List200", "/api/v1/inboxes/" + in.Address + "/messages"},
				{"List20", "/api/v1/inboxes/" + in.Address + "/messages?limit=20"},
				{"GetParsed", "/api/v1/inboxes/" + in.Address + "/messages/" + last},
				{"Raw", "/api/v1/inboxes/" + in.Address + "/messages/" + last + "/raw"},
			} {
				b.Run(r.name, func(b *testing.B) {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							get(r.path)
						}
					})
				})
			}
		})
	}
}
