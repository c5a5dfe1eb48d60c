package mx

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
)

func createNamespace(t *testing.T, st storage.Store, ns storage.Namespace) {
	t.Helper()
	ns.Created = time.Now()
	_, k := storage.NewNamespaceKey(ns.Created)
	if err := st.CreateNamespace(t.Context(), ns, k); err != nil {
		t.Fatal(err)
	}
}

// sendTo sends one message to rcpt and returns the error of RCPT or DATA.
func sendTo(t *testing.T, addr, rcpt, body string) error {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if err := c.Mail("sender@sender.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	return send(c, body)
}

// TestNamespaceCatchAll: mail to a never-created address of a namespace is kept with
// the namespace's TTL, counted, and recorded in the activity; its limits refuse at
// RCPT (max_inboxes) and DATA (max_bytes), naming the limit.
func TestNamespaceCatchAll(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		addr := start(t, Options{TTL: 30 * time.Minute, Namespaces: st}, st)
		createNamespace(t, st, storage.Namespace{Name: "ci", TTL: 5 * time.Minute, MaxInboxes: 2, MaxBytes: 4000})
		body := "From: a@sender.test\r\nSubject: hello\r\n\r\nhi\r\n"
		if err := sendTo(t, addr, "ci.never-created+run1@mayfly.test", body); err != nil {
			t.Fatalf("send to a fresh namespace address: %v", err)
		}
		m := only(t, st, "ci.never-created@mayfly.test")
		if life := m.Expires.Sub(m.Received); life < 5*time.Minute-time.Second || life > 5*time.Minute+time.Second {
			t.Errorf("lifetime %s, want the namespace's 5m", life)
		}
		if m.Tag != "run1" {
			t.Errorf("tag %q, want run1", m.Tag)
		}
		testlib.WaitFor(t, "the message counted", func() bool {
			ns, err := st.GetNamespace(t.Context(), "ci")
			return err == nil && ns.Usage.Messages == 1 && ns.Usage.Inboxes == 1 && ns.Usage.Bytes == m.Size
		})
		act, err := st.Activity(t.Context(), "ci", 10)
		if err != nil || len(act) != 1 || act[0].Kind != "received" || act[0].Address != m.Inbox || act[0].ID != m.ID {
			t.Errorf("activity = %+v, %v; want the received message", act, err)
		}

		// Another namespace's limit does not touch plain mail or other addresses.
		if err := sendTo(t, addr, "ci.second@mayfly.test", body); err != nil {
			t.Fatalf("second inbox: %v", err)
		}
		err = sendTo(t, addr, "ci.third@mayfly.test", body)
		wantCode(t, "third inbox over max_inboxes", err, 452, smtp.EnhancedCode{4, 2, 2})
		if err == nil || !strings.Contains(err.Error(), "max_inboxes") || !strings.Contains(err.Error(), "namespace ci") {
			t.Errorf("refusal %v does not name namespace ci's max_inboxes", err)
		}
		if err := sendTo(t, addr, "plain.third@mayfly.test", body); err != nil {
			t.Errorf("an address of no namespace: %v", err)
		}

		big := body + strings.Repeat("x", 4000) + "\r\n"
		err = sendTo(t, addr, "ci.second@mayfly.test", big)
		wantCode(t, "message over max_bytes", err, 552, smtp.EnhancedCode{5, 2, 2})
		if err == nil || !strings.Contains(err.Error(), "max_bytes") {
			t.Errorf("refusal %v does not name max_bytes", err)
		}
		act, _ = st.Activity(t.Context(), "ci", 10)
		if len(act) < 2 || act[0].Kind != "refused" || act[0].Code != 552 || !strings.Contains(act[0].Reason, "max_bytes") ||
			act[1].Kind != "refused" || act[1].Code != 452 || !strings.Contains(act[1].Reason, "max_inboxes") {
			t.Errorf("activity = %+v; want the two refusals first", act)
		}
	})
}
