package pop3d

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
)

// benchMessage is about 100 KiB of mail: a header and 76-octet lines, every tenth of
// them starting with a dot.
func benchMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: Ann <ann@sender.test>\r\nTo: box@mayfly.test\r\nSubject: benchmark\r\n\r\n")
	for i := 0; b.Len() < 100<<10; i++ {
		if i%10 == 0 {
			b.WriteString(".")
		}
		fmt.Fprintf(&b, "%06d The quick brown fox jumps over the lazy dog, again and again and again.\r\n", i)
	}
	return b.Bytes()
}

// BenchmarkRETR measures RETR of a 100 KiB message over loopback, the client reading
// the response line by line as mail clients do.
func BenchmarkRETR(b *testing.B) {
	raw := benchMessage()
	for name, open := range stores(b) {
		b.Run(name, func(b *testing.B) {
			st := open(b)
			put(b, st, box, raw)
			// RETR as fast as the benchmark can, past any CommandRate.
			e := newEnv(b, st, setup{noTLS: true, opts: Options{Options: limit.Options{CommandRate: limit.Rate{N: -1}}}})
			conn, err := net.Dial("tcp", e.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Minute))
			r := bufio.NewReaderSize(conn, 64<<10)
			expect := func(prefix string) {
				l, err := r.ReadString('\n')
				if err != nil || len(l) < len(prefix) || l[:len(prefix)] != prefix {
					b.Fatalf("got %q, %v, want %s...", l, err, prefix)
				}
			}
			expect("+OK")
			io.WriteString(conn, "USER "+box+"\r\nPASS "+token(box)+"\r\n")
			expect("+OK")
			expect("+OK")
			cmd := []byte("RETR 1\r\n")
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				conn.Write(cmd)
				expect("+OK")
				n := 0
				for {
					l, err := r.ReadSlice('\n')
					if err != nil {
						b.Fatal(err)
					}
					if len(l) == 3 && l[0] == '.' {
						break
					}
					n += len(l)
				}
				if n < len(raw) {
					b.Fatalf("read %d octets, want %d and the stuffing", n, len(raw))
				}
			}
		})
	}
}
