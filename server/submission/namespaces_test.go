package submission

import (
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mayfly-mail/mayfly/storage"
)

// TestNamespaceSendLimit: a namespace key logs in as any address of its namespace and
// no other; the namespace's send_limit counts the replies of all its inboxes together
// and refuses past it naming the setting; sent replies show in its usage and activity.
func TestNamespaceSendLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, fs fullStore) {
		st := fs.(storage.Store)
		now := time.Now()
		key, k := storage.NewNamespaceKey(now)
		if err := st.CreateNamespace(ctxFor(t), storage.Namespace{Name: "ci", SendLimit: "2/h", Created: now}, k); err != nil {
			t.Fatal(err)
		}
		a, b := "ci.a@mayfly.test", "ci.b@mayfly.test"
		received(t, fs, a, "bounce@sender.test", "Ann <"+ann+">")
		received(t, fs, b, "bounce@sender.test", "Ann <"+ann+">")
		received(t, fs, box, "bounce@sender.test", "Ann <"+ann+">")
		sink := newSink(t, sinkOptions{})
		nsKeys := keys
		nsKeys.Namespaces = st
		e := newEnv(t, fs, setup{opts: Options{OutboundPort: sink.port, Keys: nsKeys, Namespaces: st}})
		e.startWorkers()

		// The key opens no address outside its namespace.
		c := dial(t, e.addr)
		if err := c.Auth(sasl.NewPlainClient("", box, key)); err == nil {
			t.Errorf("a namespace key logged in as %s", box)
		}
		c.Close()

		for _, inbox := range []string{a, b} {
			c := login(t, e.addr, inbox, key)
			if err := send(c, inbox, []string{ann}, letter(inbox, ann, "Re: hi", "thanks")); err != nil {
				t.Fatalf("reply from %s: %v", inbox, err)
			}
			sink.next(t)
			c.Close()
		}
		c = login(t, e.addr, a, key)
		err := send(c, a, []string{ann}, letter(a, ann, "Re: hi", "one too many"))
		wantCode(t, "third reply of the namespace", err, 450, smtp.EnhancedCode{4, 7, 1}, "send_limit of namespace ci")
		// An inbox of no namespace is not held to it.
		c = login(t, e.addr, box, token(box))
		if err := send(c, box, []string{ann}, letter(box, ann, "Re: hi", "thanks")); err != nil {
			t.Errorf("reply from %s: %v", box, err)
		}
		ns, err := st.GetNamespace(ctxFor(t), "ci")
		if err != nil || ns.Usage.Sends != 2 {
			t.Errorf("namespace sends = %+v, %v; want 2", ns, err)
		}
		act, err := st.Activity(ctxFor(t), "ci", 10)
		if err != nil || len(act) != 2 || act[0].Kind != "sent" || act[0].Address != b {
			t.Errorf("activity = %+v, %v; want the two replies sent", act, err)
		}
	})
}
