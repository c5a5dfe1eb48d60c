package imapd

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

// wantGone checks that the store no longer has m.
func wantGone(t *testing.T, st storage.Store, inbox string, m *storage.Message, what string) {
	t.Helper()
	if _, err := st.Get(ctxFor(t), inbox, m.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after %s, Get(%d) = %v; want ErrNotFound", what, m.UID, err)
	}
}

// TestTrashMove: Thunderbird and Apple Mail delete by UID MOVE to the \Trash mailbox.
// Trash is listed with \Trash, is always empty, and a move there deletes.
func TestTrashMove(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		r1 := put(t, st, inbox, "one", nil)
		r2 := put(t, st, inbox, "two", nil)
		r3 := put(t, st, inbox, "three", nil)
		s1 := putSent(t, st, inbox, "Re: one")

		u := newUpdates()
		c, _ := open(t, srv.addr, inbox, u)

		list, err := c.List("", "*", nil).Collect()
		if err != nil || len(list) != 3 || list[2].Mailbox != "Trash" || !slices.Contains(list[2].Attrs, imap.MailboxAttrTrash) {
			t.Fatalf("LIST \"\" * = %+v, %v; want INBOX, Sent, Trash with \\Trash", list, err)
		}
		use, err := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
		if err != nil || len(use) != 2 || use[0].Mailbox != "Sent" || use[1].Mailbox != "Trash" {
			t.Fatalf("LIST (SPECIAL-USE) = %+v, %v; want Sent and Trash", use, err)
		}

		// Thunderbird's delete: UID MOVE to Trash.
		if _, err := c.Move(imap.UIDSetNum(imap.UID(r2.UID)), "Trash").Wait(); err != nil {
			t.Fatalf("UID MOVE %d Trash = %v", r2.UID, err)
		}
		if seq := next(t, u.expunge, 5*time.Second, "EXPUNGE after MOVE"); seq != 2 {
			t.Errorf("EXPUNGE after MOVE = %d, want 2", seq)
		}
		wantGone(t, st, inbox, r2, "MOVE to Trash")
		if got, want := uidsOf(t, c), uidList(r1, r3); !slices.Equal(got, want) {
			t.Errorf("INBOX after MOVE = %v, want %v", got, want)
		}

		// Clients without MOVE: COPY, then \Deleted and EXPUNGE of what is gone already.
		if _, err := c.Copy(imap.UIDSetNum(imap.UID(r1.UID)), "Trash").Wait(); err != nil {
			t.Fatalf("UID COPY %d Trash = %v", r1.UID, err)
		}
		wantGone(t, st, inbox, r1, "COPY to Trash")
		if _, err := c.Store(imap.UIDSetNum(imap.UID(r1.UID)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
			t.Fatalf("UID STORE +FLAGS \\Deleted after COPY = %v", err)
		}
		if _, err := c.UIDExpunge(imap.UIDSetNum(imap.UID(r1.UID))).Collect(); err != nil {
			t.Fatalf("UID EXPUNGE after COPY = %v", err)
		}
		if got, want := uidsOf(t, c), uidList(r3); !slices.Equal(got, want) {
			t.Errorf("INBOX after COPY = %v, want %v", got, want)
		}

		// MOVE elsewhere is still refused, and deletes nothing.
		_, err = c.Move(imap.UIDSetNum(imap.UID(r3.UID)), "Sent").Wait()
		wantCode(t, "UID MOVE to Sent", err, imap.ResponseCodeCannot)
		_, err = c.Copy(imap.UIDSetNum(imap.UID(r3.UID)), "INBOX").Wait()
		wantCode(t, "UID COPY to INBOX", err, imap.ResponseCodeCannot)
		if _, err := st.Get(ctxFor(t), inbox, r3.ID); err != nil {
			t.Errorf("after refused MOVE, Get = %v", err)
		}

		// Deleting a sent copy works the same from Sent.
		if _, err := c.Select("Sent", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Move(imap.SeqSetNum(1), "Trash").Wait(); err != nil {
			t.Fatalf("MOVE 1 Trash from Sent = %v", err)
		}
		wantGone(t, st, inbox, s1, "MOVE to Trash from Sent")

		// Trash itself stays empty.
		status, err := c.Status("Trash", &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
		if err != nil || *status.NumMessages != 0 {
			t.Errorf("STATUS Trash = %+v, %v; want 0 messages", status, err)
		}
		data, err := c.Select("Trash", nil).Wait()
		if err != nil || data.NumMessages != 0 {
			t.Errorf("SELECT Trash = %+v, %v; want 0 messages", data, err)
		}
	})
}

// TestTrashExamine: a mailbox opened read-only cannot lose messages to Trash.
func TestTrashExamine(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		m := put(t, st, inbox, "keep", nil)
		c := login(t, srv.addr, inbox, nil)
		if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		_, err := c.Move(imap.SeqSetNum(1), "Trash").Wait()
		wantCode(t, "MOVE after EXAMINE", err, imap.ResponseCodeCannot)
		if _, err := st.Get(ctxFor(t), inbox, m.ID); err != nil {
			t.Errorf("after MOVE refused, Get = %v", err)
		}
	})
}

// putSentRaw stores a sent copy with raw as its bytes.
func putSentRaw(t *testing.T, st storage.Store, inbox string, raw string) *storage.Message {
	t.Helper()
	m := storetest.NewMessage(inbox, "Re: hello")
	m.Sent = true
	m.Raw = []byte(raw)
	m.Size = int64(len(raw))
	if err := st.Put(ctxFor(t), m); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return m
}

func appendTo(c *imapclient.Client, mailbox, msg string) (*imap.AppendData, error) {
	app := c.Append(mailbox, int64(len(msg)), nil)
	if _, err := app.Write([]byte(msg)); err != nil {
		return nil, err
	}
	if err := app.Close(); err != nil {
		return nil, err
	}
	return app.Wait()
}

// TestAppendSentCopy: after sending, Thunderbird APPENDs its own copy to Sent. The
// copy we keep has the same Message-ID (and more header: DKIM, Received), so the
// APPEND is answered OK with that copy's UID and nothing is stored; any other APPEND to
// Sent is refused.
func TestAppendSentCopy(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		const client = "From: " + "me@example.org\r\nTo: ann@sender.test\r\nSubject: Re: hello\r\n" +
			"Message-ID: <reply.1@example.org>\r\nDate: Mon, 7 Dec 2026 03:00:00 +0000\r\n\r\nthanks\r\n"
		put(t, st, inbox, "hello", []byte("From: ann@sender.test\r\nMessage-ID: <hello.1@sender.test>\r\nSubject: hello\r\n\r\nhi\r\n"))
		sent := putSentRaw(t, st, inbox, "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; b=abc\r\n"+client)
		putSent(t, st, inbox, "Re: other") // newer, without the Message-ID
		mb, err := st.Mailbox(ctxFor(t), inbox)
		if err != nil {
			t.Fatal(err)
		}
		before, err := st.List(ctxFor(t), inbox, storage.Page{})
		if err != nil {
			t.Fatal(err)
		}

		c := login(t, srv.addr, inbox, nil)
		data, err := appendTo(c, "Sent", client)
		if err != nil || data == nil || data.UID != imap.UID(sent.UID) || data.UIDValidity != mb.UIDValidity {
			t.Errorf("APPEND Sent of the sent copy = %+v, %v; want OK [APPENDUID %d %d]", data, err, mb.UIDValidity, sent.UID)
		}

		// Only the head of the client's copy is read: a big body still matches, a
		// Message-ID past appendHeaderMax is not looked for.
		big := client + strings.Repeat("a long line of the body of a big reply\r\n", 50000)
		if data, err := appendTo(c, "Sent", big); err != nil || data == nil || data.UID != imap.UID(sent.UID) {
			t.Errorf("APPEND Sent of the sent copy with a 2 MB body = %+v, %v; want OK [APPENDUID %d %d]", data, err, mb.UIDValidity, sent.UID)
		}
		padded := strings.Repeat("X-Pad: 0123456789012345678901234567890123456789\r\n", appendHeaderMax/40) + client
		_, err = appendTo(c, "Sent", padded)
		wantCode(t, "APPEND Sent with the Message-ID past appendHeaderMax", err, imap.ResponseCodeCannot)

		foreign := "From: me@example.org\r\nMessage-ID: <never.sent@example.org>\r\nSubject: x\r\n\r\nx\r\n"
		_, err = appendTo(c, "Sent", foreign)
		wantCode(t, "APPEND Sent of a message never sent", err, imap.ResponseCodeCannot)
		_, err = appendTo(c, "Sent", "From: ann@sender.test\r\nMessage-ID: <hello.1@sender.test>\r\n\r\nhi\r\n")
		wantCode(t, "APPEND Sent of a received message", err, imap.ResponseCodeCannot)
		_, err = appendTo(c, "INBOX", client)
		wantCode(t, "APPEND INBOX of the sent copy", err, imap.ResponseCodeCannot)

		after, err := st.List(ctxFor(t), inbox, storage.Page{})
		if err != nil || len(after) != len(before) {
			t.Errorf("after APPENDs, %d messages (%v); want %d, nothing stored", len(after), err, len(before))
		}
	})
}

// TestThunderbirdSession replays, over a raw socket, the dialogue Thunderbird 115 and
// Apple Mail hold on default settings: ID before and after login (Apple Mail's before
// it closed the connection as an unknown command), the header fetch of a new
// mailbox, reading and flagging, delete as UID MOVE to Trash, the sent copy's APPEND
// to Sent, IDLE, and LOGOUT.
func TestThunderbirdSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		srv := startServer(t, st, false)
		inbox, token := newInbox()
		first := put(t, st, inbox, "welcome", nil)
		second := put(t, st, inbox, "your code", nil)
		const copy = "From: me@example.org\r\nTo: ann@sender.test\r\nSubject: Re: welcome\r\n" +
			"Message-ID: <tb.1@example.org>\r\nDate: Mon, 7 Dec 2026 03:00:00 +0000\r\n\r\nthanks\r\n"
		sent := putSentRaw(t, st, inbox, "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; b=abc\r\n"+copy)

		r := dialRaw(t, srv.addr)
		if caps := strings.Join(r.ok("CAPABILITY"), " ") + " "; !strings.Contains(caps, " ID ") {
			t.Errorf("CAPABILITY before login = %q, want ID", caps)
		}
		// Apple Mail, before login.
		id := r.ok(`ID ("name" "iPhone Mail" "version" "20E247" "os" "iOS" "os-version" "16.4.1 (20E247)")`)
		if len(id) != 1 || id[0] != `* ID ("name" "Mayfly")` {
			t.Errorf("ID before login = %q, want * ID (\"name\" \"Mayfly\")", id)
		}
		if _, status := r.cmd(`ID ("name" "` + strings.Repeat("x", 1025) + `")`); strings.HasPrefix(status, "OK") {
			t.Errorf("ID with a 1025-octet name = %s, want BAD (RFC 2971 section 3.3)", status)
		}
		r.ok(fmt.Sprintf("LOGIN %s %s", inbox, token))
		caps := strings.Join(r.ok("CAPABILITY"), " ") + " "
		for _, c := range []string{" ID ", " MOVE ", " UIDPLUS ", " SPECIAL-USE ", " IDLE "} {
			if !strings.Contains(caps, c) {
				t.Errorf("CAPABILITY after login = %q, want%s", caps, c)
			}
		}
		// Thunderbird, after login.
		if id := r.ok(`ID ("name" "Thunderbird" "version" "115.6.0")`); len(id) != 1 {
			t.Errorf("ID after login = %q, want one * ID", id)
		}
		if id := r.ok("ID NIL"); len(id) != 1 {
			t.Errorf("ID NIL = %q, want one * ID", id)
		}
		list := strings.Join(r.ok(`LIST (SPECIAL-USE) "" "*"`), "\n")
		if !strings.Contains(list, `\Sent`) || !strings.Contains(list, `\Trash`) {
			t.Errorf("LIST (SPECIAL-USE) = %q, want Sent and Trash", list)
		}
		r.ok(`SELECT "INBOX"`)
		flags := strings.Join(r.ok("UID FETCH 1:* (FLAGS)"), "\n")
		if strings.Count(flags, "FETCH") != 2 {
			t.Errorf("UID FETCH 1:* (FLAGS) = %q, want two messages", flags)
		}
		head := strings.Join(r.ok(fmt.Sprintf("UID FETCH %d:%d (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "+
			"(From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])",
			first.UID, second.UID)), "\n")
		if !strings.Contains(head, "Subject: welcome") || !strings.Contains(head, "Subject: your code") {
			t.Errorf("header fetch = %q, want both subjects", head)
		}
		body := strings.Join(r.ok(fmt.Sprintf("UID FETCH %d (UID RFC822.SIZE BODY.PEEK[])", second.UID)), "\n")
		if !strings.Contains(body, "body of your code") {
			t.Errorf("UID FETCH BODY.PEEK[] = %q, want the message", body)
		}
		r.ok(fmt.Sprintf(`UID STORE %d +FLAGS (\Seen)`, second.UID))
		if moved := strings.Join(r.ok(fmt.Sprintf(`UID MOVE %d "Trash"`, first.UID)), "\n"); !strings.Contains(moved, "* 1 EXPUNGE") {
			t.Errorf("UID MOVE to Trash = %q, want * 1 EXPUNGE", moved)
		}
		wantGone(t, st, inbox, first, "MOVE to Trash")

		// The sent copy, with a synchronizing literal as Thunderbird writes it.
		r.n++
		fmt.Fprintf(r.c, "r%d APPEND \"Sent\" (\\Seen) {%d}\r\n", r.n, len(copy))
		if l := r.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("APPEND literal: %q, want a continuation", l)
		}
		fmt.Fprintf(r.c, "%s\r\n", copy)
		if l := r.line(); !strings.Contains(l, "OK [APPENDUID ") || !strings.Contains(l, fmt.Sprintf(" %d]", sent.UID)) {
			t.Errorf("APPEND Sent of the sent copy = %q, want OK [APPENDUID ... %d]", l, sent.UID)
		}

		r.n++
		fmt.Fprintf(r.c, "r%d IDLE\r\n", r.n)
		if l := r.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q, want a continuation", l)
		}
		third := put(t, st, inbox, "late", nil)
		if l := r.line(); l != "* 2 EXISTS\r\n" {
			t.Errorf("during IDLE, %q; want * 2 EXISTS for %d", l, third.UID)
		}
		fmt.Fprintf(r.c, "DONE\r\n")
		for l := r.line(); !strings.HasPrefix(l, fmt.Sprintf("r%d ", r.n)); l = r.line() {
		}
		if untagged, status := r.cmd("LOGOUT"); !strings.HasPrefix(status, "OK") || len(untagged) == 0 || !strings.HasPrefix(untagged[0], "* BYE") {
			t.Errorf("LOGOUT = %q %s, want * BYE and OK", untagged, status)
		}
	})
}
