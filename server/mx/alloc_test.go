package mx

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// TestReceiveAllocations sends 10 KiB messages over one session and bounds what the
// server allocates for each: the stored copy (with our trace header) and the parse,
// not also the chunks DATA was read into and an exact-size copy of them, which made
// every message cost the collector three times its size. Each stored message must
// still be its own: the buffer DATA is read into is reused for the next message.
func TestReceiveAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are those of a normal build: go test -run TestReceiveAllocations ./server/mx runs it (make test runs -race)")
	}
	st := testlib.Memory(t, memstore.Options{MemoryLimit: 256 << 20})
	addr := start(t, Options{RecipientRate: limit.Rate{N: -1}, ReceiveRate: limit.Rate{N: -1}}, st)
	conn, r, _ := rawDial(t, addr, "", 220)
	command(t, conn, r, "EHLO client.test", 250)
	const n, size = 200, 10 << 10
	line := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\r\n", size/74)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "From: a@sender.test\r\nTo: box@mayfly.test\r\nSubject: %d\r\n\r\nmessage %d\r\n%s.\r\n", i, i, line)
	}
	transaction := func(body []byte) {
		command(t, conn, r, "MAIL FROM:<a@sender.test>", 250)
		command(t, conn, r, "RCPT TO:<box@mayfly.test>", 250)
		command(t, conn, r, "DATA", 354)
		if _, err := conn.Write(body); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := r.ReadResponse(250); err != nil {
			t.Fatalf("end of DATA: %q, %v", msg, err)
		}
	}
	transaction(bodies[0]) // warm up the session and the store's inbox
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, b := range bodies[1:] {
		transaction(b)
	}
	runtime.ReadMemStats(&after)
	perMsg := (after.TotalAlloc - before.TotalAlloc) / (n - 1)
	t.Logf("%d bytes allocated per %d-byte message", perMsg, len(bodies[1]))
	if limit := uint64(2 * len(bodies[1])); perMsg > limit {
		t.Errorf("%d bytes allocated per %d-byte message, want at most %d (twice its size)", perMsg, len(bodies[1]), limit)
	}
	io.WriteString(conn, "QUIT\r\n")

	msgs, err := st.List(context.Background(), "box@mayfly.test", storage.Page{})
	if err != nil || len(msgs) != n {
		t.Fatalf("List = %d messages, %v; want %d", len(msgs), err, n)
	}
	for _, m := range msgs {
		i, err := strconv.Atoi(m.Subject)
		if err != nil || i < 0 || i >= n {
			t.Fatalf("stored a message with Subject %q", m.Subject)
		}
		raw, err := st.Raw(context.Background(), m.Inbox, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := bodies[i][:len(bodies[i])-len(".\r\n")]
		if !bytes.HasSuffix(raw, want) {
			t.Fatalf("message %d stored as %.300q..., want it to end with its own %.80q...", i, raw, want)
		}
	}
}
