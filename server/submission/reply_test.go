package submission

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// TestReply sends a reply through Reply: threaded, quoted, to the Reply-To address,
// and delivered to the sink with the same signing and sent copy as submission.
func TestReply(t *testing.T) {
	eachStore(t, func(t *testing.T, st fullStore) {
		orig := received(t, st, box, "bounce@sender.test", "Ann <"+ann+">", "help@sender.test")
		k := newSink(t, sinkOptions{})
		e := newEnv(t, st, setup{opts: Options{Relay: relayURL(t, k, "", ""), DKIM: rsaKey()}})
		e.startWorkers()

		sent, err := e.srv.Reply(ctxFor(t), testClient, "Box@Mayfly.test", orig.ID, "Thanks, got it.", "")
		if err != nil {
			t.Fatalf("Reply: %v", err)
		}
		if !sent.Sent || sent.ID == "" || sent.Subject != "Re: Welcome aboard" || !slices.Equal(sent.To, []string{"help@sender.test"}) || sent.Raw != nil {
			t.Errorf("Reply returned %+v", sent)
		}
		m := k.next(t)
		if m.from != box || !slices.Equal(m.to, []string{"help@sender.test"}) {
			t.Errorf("sink got MAIL FROM %q RCPT TO %q", m.from, m.to)
		}
		verifyDKIM(t, m.data, e.dns)
		msg, err := mail.ReadMessage(bytes.NewReader(m.data))
		if err != nil {
			t.Fatal(err)
		}
		h := msg.Header
		for key, want := range map[string]string{
			"From":        "<box@mayfly.test>",
			"To":          "<help@sender.test>",
			"Subject":     "Re: Welcome aboard",
			"In-Reply-To": "<orig-1@sender.test>",
			"References":  "<root@sender.test> <orig-1@sender.test>",
		} {
			if got := h.Get(key); got != want {
				t.Errorf("%s: %q, want %q", key, got, want)
			}
		}
		if !strings.HasSuffix(h.Get("Message-Id"), "@mayfly.test>") {
			t.Errorf("Message-ID %q", h.Get("Message-Id"))
		}
		text := decodedBody(t, h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), msg.Body)
		want := "Thanks, got it.\r\n\r\nOn Mon, 2 Jun 2025 10:00 +0000, Ann <ann@sender.test> wrote:\r\n> Hello there,\r\n> your code is 123456.\r\n>\r\n>> an old quote\r\n"
		if text != want {
			t.Errorf("reply text:\n%q\nwant\n%q", text, want)
		}

		// A second reply, with HTML, is multipart/alternative; its subject stays.
		html := "<p>Thanks <b>again</b></p>"
		if _, err := e.srv.Reply(ctxFor(t), testClient, box, orig.ID, "Thanks again", html); err != nil {
			t.Fatalf("Reply with HTML: %v", err)
		}
		m = k.next(t)
		msg, err = mail.ReadMessage(bytes.NewReader(m.data))
		if err != nil {
			t.Fatal(err)
		}
		mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if mt != "multipart/alternative" {
			t.Fatalf("Content-Type %q, want multipart/alternative", mt)
		}
		types, parts := readParts(t, msg.Body, params["boundary"]) // multipart decodes quoted-printable itself
		var got []string
		for i := range types {
			got = append(got, types[i]+": "+parts[i])
		}
		if len(got) != 2 || !strings.HasPrefix(got[0], "text/plain; charset=utf-8: Thanks again\r\n\r\nOn ") || got[1] != "text/html; charset=utf-8: "+html {
			t.Errorf("parts %q", got)
		}
		if n := len(sentCopies(t, st, box)); n != 2 {
			t.Errorf("%d sent copies, want 2", n)
		}
	})
}

// decodedBody reads a single-part body in its transfer encoding.
func decodedBody(t testing.TB, contentType, cte string, body io.Reader) string {
	t.Helper()
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "text/plain" {
		t.Fatalf("Content-Type %q, want text/plain", contentType)
	}
	// multipart's part reader is the stdlib's quoted-printable decoder in reach.
	raw, _ := io.ReadAll(body)
	r := multipart.NewReader(io.MultiReader(
		strings.NewReader("--b\r\nContent-Transfer-Encoding: "+cte+"\r\n\r\n"),
		bytes.NewReader(raw),
		strings.NewReader("\r\n--b--\r\n"),
	), "b")
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReplyRefused: the errors the HTTP route maps to statuses.
func TestReplyRefused(t *testing.T) {
	st := memory(t)
	orig := received(t, st, box, "bounce@sender.test", "Ann <"+ann+">")
	// A message kept as sent (say, copied in over IMAP) with a stranger's From: its
	// sender never wrote to the inbox.
	now := time.Now()
	foreign := &storage.Message{Inbox: box, From: "Eve <" + eve + ">", Sent: true, Received: now, Expires: now.Add(time.Hour),
		Raw: []byte("From: Eve <" + eve + ">\r\nSubject: hi\r\n\r\nhi\r\n")}
	foreign.Size = int64(len(foreign.Raw))
	if err := st.Put(ctxFor(t), foreign); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, st, setup{opts: Options{SendLimit: SendLimit{N: 1, Per: time.Hour}, MaxMessageSize: 4000}})

	if _, err := e.srv.Reply(ctxFor(t), testClient, box, foreign.ID, "hi", ""); !errors.Is(err, ErrNotCorrespondent) || !strings.Contains(err.Error(), eve+" has not written to this inbox") {
		t.Errorf("Reply to a stranger = %v, want ErrNotCorrespondent naming %s", err, eve)
	}
	if _, err := e.srv.Reply(ctxFor(t), testClient, box, "nosuchid", "hi", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Reply to a missing message = %v, want storage.ErrNotFound", err)
	}
	if _, err := e.srv.Reply(ctxFor(t), testClient, box, orig.ID, strings.Repeat("long line of text\n", 300), ""); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Reply of 5400 bytes = %v, want ErrTooLarge", err)
	}
	if _, err := e.srv.Reply(ctxFor(t), testClient, box, orig.ID, "one", ""); err != nil {
		t.Fatalf("first Reply: %v", err)
	}
	if _, err := e.srv.Reply(ctxFor(t), testClient, box, orig.ID, "two", ""); !errors.Is(err, ErrSendLimit) {
		t.Errorf("second Reply over a limit of 1 = %v, want ErrSendLimit", err)
	}
}

// TestBuildReply covers the parts of a reply that depend on the original.
func TestBuildReply(t *testing.T) {
	now := time.Date(2025, 6, 3, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		subject  string
		raw      string
		wantSubj string
		wantIRT  string
		wantRefs string
		wantText string
	}{
		{
			name: "already re", subject: "RE: order", raw: "Subject: RE: order\r\nMessage-ID: <a@x>\r\nIn-Reply-To: <p@x>\r\n\r\nline\r\n",
			wantSubj: "RE: order", wantIRT: "<a@x>", wantRefs: "<p@x> <a@x>", wantText: "> line",
		},
		{
			name: "html only", subject: "news", raw: "Content-Type: text/html\r\nMessage-ID: <b@x>\r\n\r\n<p>hi</p>\r\n",
			wantSubj: "Re: news", wantIRT: "<b@x>", wantRefs: "<b@x>", wantText: "",
		},
		{
			name: "no message id", subject: "", raw: "Subject:\r\n\r\nhello\r\n",
			wantSubj: "Re:", wantText: "> hello",
		},
		{
			name: "multipart with attachment", subject: "files", raw: "Message-ID: <c@x>\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n--zz\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nsecret\r\n--zz--\r\n",
			wantSubj: "Re: files", wantIRT: "<c@x>", wantRefs: "<c@x>", wantText: "> Grüße",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := buildReply(replyInput{
				from: box, to: []string{ann}, orig: &storage.Message{Subject: tt.subject, From: ann, Received: now},
				raw: []byte(tt.raw), text: "ok", now: now, idDomain: "mayfly.test",
			})
			if err != nil {
				t.Fatal(err)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			h := msg.Header
			if h.Get("Subject") != tt.wantSubj || h.Get("In-Reply-To") != tt.wantIRT || h.Get("References") != tt.wantRefs {
				t.Errorf("Subject %q In-Reply-To %q References %q, want %q %q %q", h.Get("Subject"), h.Get("In-Reply-To"), h.Get("References"), tt.wantSubj, tt.wantIRT, tt.wantRefs)
			}
			text := decodedBody(t, h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), msg.Body)
			if tt.wantText == "" && strings.Contains(text, "wrote:") || !strings.Contains(text, tt.wantText) {
				t.Errorf("text %q, want it to quote %q", text, tt.wantText)
			}
			if strings.Contains(text, "secret") {
				t.Errorf("the attachment was quoted: %q", text)
			}
			// Our own reply always passes our own checks.
			if _, _, err := prepare(out, box, "mayfly.test", now); err != nil {
				t.Errorf("prepare(reply) = %v", err)
			}
		})
	}
}

// TestSentCopySeen: a sent copy, whether sent over SMTP or as a reply, reads seen from
// the store afterwards (Get and List, what the API and IMAP show), not only in the
// answer to the reply (issue 14 item 4).
func TestSentCopySeen(t *testing.T) {
	eachStore(t, func(t *testing.T, st fullStore) {
		orig := received(t, st, box, "bounce@sender.test", "Ann <"+ann+">", "help@sender.test")
		k := newSink(t, sinkOptions{})
		e := newEnv(t, st, setup{opts: Options{Relay: relayURL(t, k, "", "")}})
		e.startWorkers()

		c := login(t, e.addr, box, token(box))
		if err := send(c, box, []string{ann}, letter(box, ann, "over smtp", "hello")); err != nil {
			t.Fatal(err)
		}
		reply, err := e.srv.Reply(ctxFor(t), testClient, box, orig.ID, "Thanks.", "")
		if err != nil {
			t.Fatalf("Reply: %v", err)
		}
		if reply.Flags&storage.FlagSeen == 0 {
			t.Errorf("Reply answered flags %b, want seen", reply.Flags)
		}
		sent := sentCopies(t, st, box)
		if len(sent) != 2 {
			t.Fatalf("%d sent copies, want 2", len(sent))
		}
		for _, m := range sent {
			if m.Flags != storage.FlagSeen {
				t.Errorf("List: sent copy %q flags %b, want seen", m.Subject, m.Flags)
			}
			got, err := st.Get(ctxFor(t), box, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Flags != storage.FlagSeen {
				t.Errorf("Get: sent copy %q flags %b, want seen", got.Subject, got.Flags)
			}
		}
		// The mail received stays unseen.
		if got, err := st.Get(ctxFor(t), box, orig.ID); err != nil || got.Flags != 0 {
			t.Errorf("Get: received message flags %v, %v; want none", got, err)
		}
	})
}
