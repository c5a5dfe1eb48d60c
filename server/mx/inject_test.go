package mx

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// TestInject: without a verifier an injected message still says how it came, takes
// the tag of its address, counts against the inbox's ReceiveRate (shared with SMTP)
// and MaxMessageSize, each refusal naming its setting.
func TestInject(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		srv := New(Options{Hostname: "mx.mayfly.test", Domains: []string{"mayfly.test"}, MaxMessageSize: 1000,
			ReceiveRate: limit.Rate{N: 2, Per: time.Hour}}, st, testLogger(t))
		ctx := context.Background()
		m, err := srv.Inject(ctx, "box+signup@mayfly.test", "192.0.2.1", []byte("Subject: hello\n\nbody\n"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, "box@mayfly.test", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Raw(ctx, "box@mayfly.test", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw := string(b)
		if !strings.HasPrefix(raw, "Authentication-Results: mx.mayfly.test;\r\n\tspf=none (injected over HTTP);\r\n\tdkim=none;\r\n\tdmarc=none (injected over HTTP)\r\n"+
			"Received: from HTTP client ([192.0.2.1])\r\n\tby mx.mayfly.test (Mayfly) with HTTP id ") || !strings.HasSuffix(raw, "\r\nSubject: hello\n\nbody\n") {
			t.Errorf("stored:\n%s\nwant our two fields, then the message as posted", raw)
		}
		if got.Tag != "signup" || got.Subject != "hello" || got.Auth.SPF != "none" || got.Envelope.RemoteIP != "192.0.2.1" || got.Size != int64(len(raw)) {
			t.Errorf("stored %+v", got)
		}

		var r *InjectRefusal
		if _, err := srv.Inject(ctx, "box@mayfly.test", "192.0.2.1", make([]byte, 1001)); !errors.As(err, &r) || !r.TooLarge() || !strings.Contains(err.Error(), "MAYFLY_MAX_MESSAGE_SIZE") {
			t.Errorf("inject of 1001 bytes = %v, want too large naming MAYFLY_MAX_MESSAGE_SIZE", err)
		}
		if _, err := srv.Inject(ctx, "box@mayfly.test", "192.0.2.1", []byte("Subject: 2\n\n2\n")); err != nil {
			t.Fatal(err)
		}
		_, err = srv.Inject(ctx, "box@mayfly.test", "192.0.2.1", []byte("Subject: 3\n\n3\n"))
		if !errors.As(err, &r) || r.TooLarge() || r.RetryAfter() != 30*time.Minute || !strings.Contains(err.Error(), "MAYFLY_RECEIVE_RATE") {
			t.Errorf("third inject at 2 an hour = %v, want a refusal naming MAYFLY_RECEIVE_RATE, retry in 30m", err)
		}
		if _, err := srv.Inject(ctx, "other@mayfly.test", "192.0.2.1", []byte("Subject: x\n\nx\n")); err != nil {
			t.Errorf("another inbox = %v, want it stored: the rate is per inbox", err)
		}
	})
}

// FuzzInject: whatever bytes are posted, Inject stores them after our two fields or
// refuses them, and never panics.
func FuzzInject(f *testing.F) {
	testlib.AddMailSeeds(f)
	for _, s := range []string{"", " indented\r\n\r\nbody", "\x00\xff", "Subject: x", "\r\n\r\n", "From: <\r\n\t>\r\n\r\n"} {
		f.Add([]byte(s))
	}
	st := testlib.Memory(f, memstore.Options{})
	srv := New(Options{Hostname: "mx.mayfly.test", Domains: []string{"mayfly.test"}, ReceiveRate: limit.Rate{N: -1}}, st, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := srv.Inject(context.Background(), "fuzz@mayfly.test", "192.0.2.1", raw)
		if err != nil {
			return
		}
		got, err := st.Raw(context.Background(), "fuzz@mayfly.test", m.ID)
		if err != nil || !strings.HasPrefix(string(got), "Authentication-Results: mx.mayfly.test;") || !strings.Contains(string(got), "with HTTP id ") {
			t.Errorf("stored %q, %v", got, err)
		}
		st.Delete(context.Background(), "fuzz@mayfly.test", m.ID)
	})
}
