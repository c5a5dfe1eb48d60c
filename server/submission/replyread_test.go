package submission

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// TestReplyReadsLikeTheViews replies to stored messages that a MIME walk of its own
// read differently from the API (issue 15): a boundary parameter that the delimiters
// do not use, and a header broken off by a line that is no field. The reply quotes
// the text the API shows and threads on the Message-ID every view reads.
func TestReplyReadsLikeTheViews(t *testing.T) {
	tests := []struct{ name, raw, quoted, irt string }{
		{
			name:   "wrong boundary",
			raw:    "Message-ID: <wb@sender.test>\r\nContent-Type: multipart/mixed; boundary=wrong\r\n\r\n--right\r\nContent-Type: text/plain\r\n\r\nYour code is 482917.\r\n--right\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--right--\r\n",
			quoted: "> Your code is 482917.\r\n", irt: "<wb@sender.test>",
		},
		{
			name:   "header broken off",
			raw:    "Message-ID: <nb@sender.test>\r\nthis line is no field\r\nYour code is 112233.\r\n",
			quoted: "> this line is no field\r\n> Your code is 112233.\r\n", irt: "<nb@sender.test>",
		},
	}
	eachStore(t, func(t *testing.T, st fullStore) {
		k := newSink(t, sinkOptions{})
		e := newEnv(t, st, setup{opts: Options{Relay: relayURL(t, k, "", ""), DKIM: rsaKey()}})
		e.startWorkers()
		for _, tt := range tests {
			now := time.Now()
			raw := []byte("From: Ann <" + ann + ">\r\nSubject: code\r\n" + tt.raw)
			orig := &storage.Message{
				Inbox: box, Envelope: storage.Envelope{From: ann, Recipients: []string{box}, RemoteIP: "192.0.2.1"},
				From: "Ann <" + ann + ">", Subject: "code", Date: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC),
				Auth: verified, Received: now, Expires: now.Add(time.Hour), Raw: raw, Size: int64(len(raw)),
			}
			if err := st.Put(ctxFor(t), orig); err != nil {
				t.Fatal(err)
			}
			if _, err := e.srv.Reply(ctxFor(t), testClient, box, orig.ID, "ok", ""); err != nil {
				t.Fatalf("%s: Reply: %v", tt.name, err)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(k.next(t).data))
			if err != nil {
				t.Fatal(err)
			}
			text := decodedBody(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
			if !strings.HasSuffix(text, "wrote:\r\n"+tt.quoted) || msg.Header.Get("In-Reply-To") != tt.irt {
				t.Errorf("%s: In-Reply-To %q, text %q; want %q quoting %q", tt.name, msg.Header.Get("In-Reply-To"), text, tt.irt, tt.quoted)
			}
		}
	})
}

// TestSentCopyAttachments: the listing of a sent copy counts attachments by the rule
// every view shares: an inline image with a Content-ID and no file name is one, as
// the API and IMAP list it.
func TestSentCopyAttachments(t *testing.T) {
	eachStore(t, func(t *testing.T, st fullStore) {
		received(t, st, box, "bounce@sender.test", ann)
		e := newEnv(t, st, setup{})
		c := login(t, e.addr, box, token(box))
		msg := "From: Box <box@mayfly.test>\r\nTo: <ann@sender.test>\r\nSubject: logo\r\nContent-Type: multipart/related; boundary=r\r\n\r\n" +
			"--r\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:logo\">\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n"
		if err := send(c, box, []string{ann}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		sent := sentCopies(t, st, box)
		if len(sent) != 1 || !sent[0].HasAttachments || sent[0].Subject != "logo" {
			t.Fatalf("sent copies %+v, want one with has_attachments", sent)
		}
	})
}
