package imapd

import (
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// TestSentCopySeen: a sent copy stored seen, as submission stores it, has FLAGS
// (\Seen) in Sent, whether it was there at SELECT or arrived while selected
// (issue 14 item 4: both stores reset the flags on Put).
func TestSentCopySeen(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		putSeen := func(subject string) {
			m := storetest.NewMessage(inbox, subject)
			m.Sent, m.Flags = true, storage.FlagSeen
			if err := st.Put(ctxFor(t), m); err != nil {
				t.Fatalf("Put: %v", err)
			}
		}
		putSeen("Re: before")
		c := login(t, srv.addr, inbox, nil)
		if _, err := c.Select("Sent", nil).Wait(); err != nil {
			t.Fatalf("SELECT Sent = %v", err)
		}
		putSeen("Re: while selected")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := c.Noop().Wait(); err != nil {
				t.Fatalf("NOOP = %v", err)
			}
			msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, UID: true}).Collect()
			if err != nil {
				t.Fatalf("FETCH 1:* (FLAGS) = %v", err)
			}
			if len(msgs) == 2 {
				for _, m := range msgs {
					if !slices.Contains(m.Flags, imap.FlagSeen) {
						t.Errorf("FETCH UID %d FLAGS = %v, want \\Seen", m.UID, m.Flags)
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Sent holds %d messages 10s after the second put, want 2", len(msgs))
			}
		}
	})
}
