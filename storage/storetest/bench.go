package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// Bench measures the store operations on the receive and read paths. Run it with
// go test -bench . -benchmem ./storage/...
func Bench(b *testing.B, newStore NewStore) {
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("Put/%dKiB", size>>10), func(b *testing.B) {
			st := newStore(b, Options{MaxMessages: 200})
			defer st.Close()
			raw := make([]byte, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m := NewMessage(fmt.Sprintf("bench%d@mayfly.test", i%100), "bench")
				m.Raw, m.Size = raw, int64(size)
				if err := st.Put(ctx, m); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	// Mail for inboxes with their own TTL (SetInbox), which the store applies.
	b.Run("Put/10KiB-inbox-TTL", func(b *testing.B) {
		st := newStore(b, Options{MaxMessages: 200})
		defer st.Close()
		raw := make([]byte, 10<<10)
		ctx := context.Background()
		for i := range 100 {
			if err := st.SetInbox(ctx, fmt.Sprintf("bench-ttl%d@mayfly.test", i), storage.InboxSettings{TTL: 10 * time.Minute}); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := NewMessage(fmt.Sprintf("bench-ttl%d@mayfly.test", i%100), "bench")
			m.Raw, m.Size = raw, int64(len(raw))
			if err := st.Put(ctx, m); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Put/10KiB-to-3-inboxes", func(b *testing.B) {
		st := newStore(b, Options{MaxMessages: 200})
		defer st.Close()
		raw := make([]byte, 10<<10)
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			var msgs []*storage.Message
			for r := range 3 {
				m := NewMessage(fmt.Sprintf("bench%d-%d@mayfly.test", i%100, r), "bench")
				m.Raw, m.Size = raw, int64(len(raw))
				msgs = append(msgs, m)
			}
			if err := st.Put(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	// A Put and what the webhook dispatcher does with its event, a webhook existing: read
	// it from the feed and acknowledge it.
	b.Run("Put/10KiB-ReadFeed-AckFeed", func(b *testing.B) {
		st := newStore(b, Options{MaxMessages: 200})
		defer st.Close()
		if err := st.PutWebhook(context.Background(), NewWebhook("wh_bench", time.Now())); err != nil {
			b.Fatal(err)
		}
		raw := make([]byte, 10<<10)
		ctx := context.Background()
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := NewMessage(fmt.Sprintf("bench-feed%d@mayfly.test", i%100), "bench")
			m.Raw, m.Size = raw, int64(len(raw))
			if err := st.Put(ctx, m); err != nil {
				b.Fatal(err)
			}
			// Over the cap, a Put makes two events.
			for got := 0; got == 0; {
				list, err := st.ReadFeed(ctx, "bench", "c", 10, time.Second, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				seqs := make([]string, len(list))
				for j, e := range list {
					seqs[j] = e.Seq
				}
				if err := st.AckFeed(ctx, "bench", seqs...); err != nil {
					b.Fatal(err)
				}
				got = len(list)
			}
			i++
		}
	})

	st := newStore(b, Options{MaxMessages: 200})
	defer st.Close()
	ctx := context.Background()
	inbox := "bench-read@mayfly.test"
	var last *storage.Message
	for range 50 {
		last = NewMessage(inbox, "bench")
		last.Raw = make([]byte, 10<<10)
		if err := st.Put(ctx, last); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("List/50", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if list, err := st.List(ctx, inbox, storage.Page{}); err != nil || len(list) != 50 {
				b.Fatal(len(list), err)
			}
		}
	})
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Get(ctx, inbox, last.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Raw/10KiB", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Raw(ctx, inbox, last.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What an SSE client that reconnects reads: the inbox's last 50 events.
	b.Run("InboxEvents/50", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if list, err := st.InboxEvents(ctx, inbox, "", 50); err != nil || len(list) != 50 {
				b.Fatal(len(list), err)
			}
		}
	})
	b.Run("SetFlags", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.SetFlags(ctx, inbox, last.ID, storage.FlagSeen, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
