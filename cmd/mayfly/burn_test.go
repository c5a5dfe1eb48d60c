package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// TestBurnAfterReadViews (issue 17 item 6): an inbox created with burn_after_read loses
// a message once IMAP (FETCH BODY[], which sets \Seen) or POP3 (RETR) has read it, over
// real sockets, with no code for it in either view: the store's SetFlags burns it.
func TestBurnAfterReadViews(t *testing.T) {
	for name, flags := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, flags...)
			inboxOf := func(local string) inboxJSON {
				return createInbox(t, n.http, fmt.Sprintf(`{"local": "%s-%d", "burn_after_read": true}`, local, time.Now().UnixNano()))
			}
			count := func(in inboxJSON) int {
				var got struct{ Messages int }
				apiGet(t, n.http, in, "", &got)
				return got.Messages
			}
			deliver := func(in inboxJSON, subjects ...string) {
				for _, s := range subjects {
					n.send(t, in.Address, "Subject: "+s+"\r\n\r\nthe secret of "+s+"\r\n")
				}
				var w struct{ Messages []struct{ ID string } }
				apiGet(t, n.http, in, fmt.Sprintf("/wait?timeout=10s&count=%d", len(subjects)), &w)
				if len(w.Messages) != len(subjects) || count(in) != len(subjects) {
					t.Fatalf("%d messages arrived, want %d", len(w.Messages), len(subjects))
				}
			}

			// IMAP: FETCH BODY.PEEK[] keeps it, FETCH BODY[] reads and burns it.
			box := inboxOf("imap")
			deliver(box, "first", "second")
			c := imapclient.New(dialRetry(t, n.imap), nil)
			defer c.Close()
			if err := c.Login(box.Address, box.Token).Wait(); err != nil {
				t.Fatalf("IMAP LOGIN: %v", err)
			}
			if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 2 {
				t.Fatalf("IMAP SELECT = %+v, %v; want 2 messages", sel, err)
			}
			fetch := func(peek bool) string {
				t.Helper()
				section := &imap.FetchItemBodySection{Peek: peek}
				msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
				if err != nil || len(msgs) != 1 {
					t.Fatalf("IMAP FETCH 1 BODY[] (peek %v) = %d messages, %v", peek, len(msgs), err)
				}
				return string(msgs[0].FindBodySection(section))
			}
			if body := fetch(true); !strings.Contains(body, "the secret of first") {
				t.Errorf("IMAP BODY.PEEK[] = %q", body)
			}
			if got := count(box); got != 2 {
				t.Errorf("after BODY.PEEK[]: %d messages, want 2 (a peek reads nothing)", got)
			}
			if body := fetch(false); !strings.Contains(body, "the secret of first") {
				t.Errorf("IMAP BODY[] = %q", body)
			}
			// SetFlags burned it before the FETCH completed.
			if got := count(box); got != 1 {
				t.Errorf("after IMAP BODY[]: %d messages, want 1", got)
			}

			// POP3: RETR reads and burns; TOP does not.
			box = inboxOf("pop3")
			deliver(box, "one", "two")
			p := dialPOP3(t, n.pop3)
			p.login(t, box)
			if line := p.cmd(t, "TOP 1 0"); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("POP3 TOP = %q", line)
			}
			p.multiline(t)
			if got := count(box); got != 2 {
				t.Errorf("after POP3 TOP: %d messages, want 2", got)
			}
			if line := p.cmd(t, "RETR 2"); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("POP3 RETR = %q", line)
			}
			if body := p.multiline(t); !strings.Contains(body, "the secret of two") {
				t.Errorf("POP3 RETR 2 = %q", body)
			}
			// RETR sends the message, then marks it seen: the burn follows the answer.
			testlib.WaitFor(t, "POP3 RETR to burn the message it read", func() bool { return count(box) == 1 })
			if line := p.cmd(t, "QUIT"); !strings.HasPrefix(line, "+OK") {
				t.Errorf("POP3 QUIT = %q; a message burned meanwhile is no error", line)
			}
		})
	}
}
