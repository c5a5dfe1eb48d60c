package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// BenchmarkRedisBytesPerMessage measures what one stored message costs Redis
// (used_memory before and after), for sizing: docs/operations.md. Ten messages per
// inbox, as a busy service holds. It puts its messages once, whatever b.N; run it
// with -benchtime 1x.
func BenchmarkRedisBytesPerMessage(b *testing.B) {
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			const n = 10000
			st := openStore(b, testPrefix(b), Options{MaxMessages: 200})
			defer st.Close()
			ctx := context.Background()
			before := usedMemory(b, st)
			body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
			for i := range n {
				m := storetest.NewMessage(fmt.Sprintf("box%d@mayfly.test", i/10), "sizing")
				m.Raw = append(m.Raw[:len(m.Raw):len(m.Raw)], body...)
				m.Size = int64(len(m.Raw))
				if err := st.Put(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			after := usedMemory(b, st)
			per := float64(after-before) / n
			b.ReportMetric(per, "bytes/msg")
			b.ReportMetric(per-float64(size), "overhead-bytes/msg")
		})
	}
}

func usedMemory(tb testing.TB, st *Store) int64 {
	tb.Helper()
	info, err := st.client.Info(context.Background(), "memory").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Fatal("no used_memory in INFO memory")
	return 0
}
