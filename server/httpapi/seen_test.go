package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// TestSentCopySeen: a sent copy stored seen, as submission stores it, reads seen in
// the listing and the message (issue 14 item 4: both stores reset the flags on Put).
func TestSentCopySeen(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		now := time.Now()
		m := &storage.Message{
			Inbox: box.Address, Subject: "Re: hello", Sent: true, Flags: storage.FlagSeen,
			Received: now, Expires: now.Add(time.Hour), Raw: []byte("Subject: Re: hello\r\n\r\nthanks\r\n"),
		}
		if err := e.store.Put(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		var msg messageJSON
		e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages/"+m.ID, box.Token, nil).json(t, &msg)
		if !msg.Seen || !msg.Sent {
			t.Errorf("GET message: seen %v, sent %v; want both", msg.Seen, msg.Sent)
		}
		var list struct{ Messages []summaryJSON }
		e.do("GET", "/api/v1/inboxes/"+box.Address+"/messages", box.Token, nil).json(t, &list)
		if len(list.Messages) != 1 || !list.Messages[0].Seen {
			t.Errorf("GET messages = %+v, want the sent copy seen", list.Messages)
		}
	})
}
