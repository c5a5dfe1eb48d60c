package submission

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// BenchmarkSubmit measures a 10 KiB reply end to end: submitted over one SMTP session
// on loopback (policy, the three send-limit counts, DKIM with Ed25519, sent copy,
// queue), then delivered by the workers to a sink by MX (on loopback: AllowPrivate).
// msgs/s counts messages the sink has taken. The inbox keeps its default cap of 200
// messages, so the correspondents are read from a full inbox, as they would be in a
// busy one.
func BenchmarkSubmit(b *testing.B) {
	unreachable := SendLimit{N: 1 << 40, Per: time.Hour}
	st := memstore.New(memstore.Options{})
	b.Cleanup(func() { st.Close() })
	received(b, st, box, "", "Ann <"+ann+">")
	k := newSink(b, sinkOptions{})
	e := newEnv(b, st, setup{
		// The send limits count every reply (per inbox, client and service) but are
		// never reached.
		opts: Options{OutboundPort: k.port, DKIM: edKey(), DKIMSelector: "ed", Options: limit.Options{CommandRate: limit.Rate{N: -1}},
			SendLimit: unreachable, ClientSendLimit: unreachable, OutboundRate: unreachable},
		logger: slog.New(slog.DiscardHandler),
	})
	e.startWorkers()
	c := login(b, e.addr, box, token(box))
	line := strings.Repeat("0123456789", 9) + "\r\n" // 92 bytes
	msg := letter(box, ann, "Re: Welcome aboard", strings.Repeat(line, 10<<10/len(line)))

	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i%100 == 99 {
			// Sent copies count against the inbox cap too: ann writes again before
			// her message is the oldest of 200.
			received(b, st, box, "", "Ann <"+ann+">")
		}
		if err := send(c, box, []string{ann}, msg); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		k.next(b)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
