package imapd

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

func TestLogin(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, false)
	inbox, token := newInbox()
	other, otherToken := newInbox()
	_ = other
	local := strings.TrimSuffix(inbox, "@"+testDomain)
	tests := []struct {
		name, user, pass string
		ok               bool
	}{
		{"token", inbox, token, true},
		{"admin key", inbox, adminKey, true},
		{"plus tag and capitals", strings.ToUpper(local) + "+Newsletter@MAYFLY.Test", token, true},
		{"token of another inbox", inbox, otherToken, false},
		{"foreign domain", local + "@elsewhere.test", testTokens.Token(local + "@elsewhere.test"), false},
		{"not an address", "nobody", token, false},
		{"empty password", inbox, "", false},
		{"admin key with a space", inbox, adminKey + " ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/LOGIN", func(t *testing.T) {
			c := dial(t, srv.addr, nil)
			err := c.Login(tt.user, tt.pass).Wait()
			checkLogin(t, c, err, tt.ok)
		})
		t.Run(tt.name+"/AUTHENTICATE", func(t *testing.T) {
			c := dial(t, srv.addr, nil)
			err := c.Authenticate(sasl.NewPlainClient("", tt.user, tt.pass))
			checkLogin(t, c, err, tt.ok)
		})
	}
	if got, want := testutil.ToFloat64(srv.metrics.logins.WithLabelValues("ok")), 6.0; got != want {
		t.Errorf("logins ok = %v, want %v", got, want)
	}
	if got, want := testutil.ToFloat64(srv.metrics.logins.WithLabelValues("failed")), 10.0; got != want {
		t.Errorf("logins failed = %v, want %v", got, want)
	}
}

func checkLogin(t *testing.T, c *imapclient.Client, err error, ok bool) {
	t.Helper()
	if ok {
		if err != nil {
			t.Fatalf("login = %v, want OK", err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Errorf("Select after login = %v", err)
		}
		return
	}
	wantCode(t, "login", err, imap.ResponseCodeAuthenticationFailed)
	if c.State() != imap.ConnStateNotAuthenticated {
		t.Errorf("state after a failed login = %v, want not authenticated", c.State())
	}
}

// A connection from elsewhere must not send a password in clear text: LOGINDISABLED
// before STARTTLS (RFC 9051 section 6.2.3), and a login after it.
func TestPlainTextNeedsTLS(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, false, func(_ *Options, s *Server) {
		s.loopback = func(net.Addr) bool { return false }
	})
	inbox, token := newInbox()

	c := dial(t, srv.addr, nil)
	caps := c.Caps()
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) || caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Errorf("capabilities before STARTTLS = %v, want LOGINDISABLED and STARTTLS, no AUTH=PLAIN", capList(caps))
	}
	wantCode(t, "LOGIN before STARTTLS", c.Login(inbox, token).Wait(), imap.ResponseCodePrivacyRequired)
	wantCode(t, "AUTHENTICATE before STARTTLS", c.Authenticate(sasl.NewPlainClient("", inbox, token)), imap.ResponseCodePrivacyRequired)

	tc, err := imapclient.DialStartTLS(srv.addr, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatalf("DialStartTLS: %v", err)
	}
	defer tc.Close()
	caps, err = tc.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if caps.Has(imap.CapLoginDisabled) || caps.Has(imap.CapStartTLS) || !caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Errorf("capabilities after STARTTLS = %v, want AUTH=PLAIN and neither LOGINDISABLED nor STARTTLS", capList(caps))
	}
	if err := tc.Login(inbox, token).Wait(); err != nil {
		t.Fatalf("Login after STARTTLS = %v", err)
	}
	if _, err := tc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("Select = %v", err)
	}
}

func TestImplicitTLS(t *testing.T) {
	st := testlib.Memory(t, memstore.Options{})
	srv := startServer(t, st, true, func(_ *Options, s *Server) {
		s.loopback = func(net.Addr) bool { return false }
	})
	inbox, token := newInbox()
	put(t, st, inbox, "over tls", nil)
	c, err := imapclient.DialTLS(srv.addr, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatalf("DialTLS: %v", err)
	}
	defer c.Close()
	caps := c.Caps()
	if caps.Has(imap.CapLoginDisabled) || caps.Has(imap.CapStartTLS) || !caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Errorf("capabilities over implicit TLS = %v, want AUTH=PLAIN and neither LOGINDISABLED nor STARTTLS", capList(caps))
	}
	if err := c.Login(inbox, token).Wait(); err != nil {
		t.Fatalf("Login = %v", err)
	}
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil || data.NumMessages != 1 {
		t.Fatalf("Select = %+v, %v; want 1 message", data, err)
	}
}

func capList(caps imap.CapSet) []string {
	var l []string
	for c := range caps {
		l = append(l, string(c))
	}
	slices.Sort(l)
	return l
}

func TestMailbox(t *testing.T) {
	eachServer(t, func(t *testing.T, st storage.Store, srv *testServer, inbox string) {
		var msgs []*storage.Message
		for _, s := range []string{"one", "two", "three"} {
			msgs = append(msgs, put(t, st, inbox, s, nil))
		}
		if _, err := st.SetFlags(ctxFor(t), inbox, msgs[0].ID, storage.FlagSeen, 0); err != nil {
			t.Fatal(err)
		}
		mb, err := st.Mailbox(ctxFor(t), inbox)
		if err != nil {
			t.Fatal(err)
		}

		c, data := open(t, srv.addr, inbox, nil)
		if data.NumMessages != 3 || data.UIDValidity != mb.UIDValidity || data.UIDNext != imap.UID(msgs[2].UID+1) {
			t.Errorf("SELECT = EXISTS %d, UIDVALIDITY %d, UIDNEXT %d; want 3, %d, %d",
				data.NumMessages, data.UIDValidity, data.UIDNext, mb.UIDValidity, msgs[2].UID+1)
		}
		if !slices.Equal(data.PermanentFlags, permanentFlags) {
			t.Errorf("PERMANENTFLAGS = %v, want %v", data.PermanentFlags, permanentFlags)
		}

		status, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true}).Wait()
		if err != nil {
			t.Fatalf("STATUS = %v", err)
		}
		var size int64
		for _, m := range msgs {
			size += m.Size
		}
		if *status.NumMessages != 3 || *status.NumUnseen != 2 || *status.NumDeleted != 0 || *status.Size != size || status.UIDValidity != mb.UIDValidity || status.UIDNext != imap.UID(mb.UIDNext) {
			t.Errorf("STATUS = messages %d unseen %d deleted %d size %d validity %d next %d; want 3 2 0 %d %d %d",
				*status.NumMessages, *status.NumUnseen, *status.NumDeleted, *status.Size, status.UIDValidity, status.UIDNext, size, mb.UIDValidity, mb.UIDNext)
		}

		for _, tt := range []struct{ ref, pattern, want string }{
			{"", "*", "INBOX,Sent,Trash"},
			{"", "%", "INBOX,Sent,Trash"},
			{"", "inbox", "INBOX"},
			{"", "In*", "INBOX"},
			{"", "Sent", "Sent"},
			{"", "S%", "Sent"},
			{"", "sent", ""}, // only INBOX is case-insensitive
			{"", "INBOX/*", ""},
			{"", "Sent/*", ""},
		} {
			list, err := c.List(tt.ref, tt.pattern, nil).Collect()
			if err != nil {
				t.Fatalf("LIST %q %q = %v", tt.ref, tt.pattern, err)
			}
			var names []string
			for _, l := range list {
				names = append(names, l.Mailbox)
			}
			if got := strings.Join(names, ","); got != tt.want {
				t.Errorf("LIST %q %q = %q, want %q", tt.ref, tt.pattern, got, tt.want)
			}
		}
		list, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true, ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
		if err != nil || len(list) != 3 {
			t.Fatalf("LIST (SUBSCRIBED) RETURN (STATUS (MESSAGES)) = %+v, %v; want INBOX, Sent and Trash", list, err)
		}
		for i, want := range []uint32{3, 0, 0} {
			if l := list[i]; !slices.Contains(l.Attrs, imap.MailboxAttrSubscribed) || l.Status == nil || *l.Status.NumMessages != want {
				t.Errorf("LIST (SUBSCRIBED) RETURN (STATUS (MESSAGES)) %s = %+v, want \\Subscribed and %d messages", l.Mailbox, l, want)
			}
		}

		ns, err := c.Namespace().Wait()
		if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
			t.Errorf("NAMESPACE = %+v, %v", ns, err)
		}

		wantCode(t, "CREATE", c.Create("Archive", nil).Wait(), imap.ResponseCodeCannot)
		wantCode(t, "CREATE Sent", c.Create("Sent", nil).Wait(), imap.ResponseCodeAlreadyExists)
		wantCode(t, "DELETE INBOX", c.Delete("INBOX").Wait(), imap.ResponseCodeCannot)
		wantCode(t, "DELETE Sent", c.Delete("Sent").Wait(), imap.ResponseCodeCannot)
		wantCode(t, "DELETE Archive", c.Delete("Archive").Wait(), imap.ResponseCodeNonExistent)
		wantCode(t, "RENAME", c.Rename("INBOX", "Old", nil).Wait(), imap.ResponseCodeCannot)
		wantCode(t, "RENAME Sent", c.Rename("Sent", "Old", nil).Wait(), imap.ResponseCodeCannot)
		wantCode(t, "UNSUBSCRIBE Sent", c.Unsubscribe("Sent").Wait(), imap.ResponseCodeCannot)
		_, err = c.Copy(imap.SeqSetNum(1), "Archive").Wait()
		wantCode(t, "COPY", err, imap.ResponseCodeCannot)
		_, err = c.Move(imap.SeqSetNum(1), "Archive").Wait()
		wantCode(t, "MOVE", err, imap.ResponseCodeCannot)
		app := c.Append("INBOX", 5, nil)
		app.Write([]byte("hello"))
		app.Close()
		_, err = app.Wait()
		wantCode(t, "APPEND", err, imap.ResponseCodeCannot)
		app = c.Append("Sent", 5, nil)
		app.Write([]byte("hello"))
		app.Close()
		_, err = app.Wait()
		wantCode(t, "APPEND Sent", err, imap.ResponseCodeCannot)
		_, err = c.Select("Archive", nil).Wait()
		wantCode(t, "SELECT Archive", err, imap.ResponseCodeNonExistent)

		// EXAMINE shows the same mailbox read-only.
		c2 := dial(t, srv.addr, nil)
		if err := c2.Login(inbox, adminKey).Wait(); err != nil {
			t.Fatal(err)
		}
		data, err = c2.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil || data.NumMessages != 3 {
			t.Fatalf("EXAMINE = %+v, %v", data, err)
		}
		_, err = c2.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
		wantCode(t, "STORE after EXAMINE", err, imap.ResponseCodeCannot)
		if _, err := c2.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
			t.Fatalf("FETCH BODY[] after EXAMINE = %v", err)
		}
		if m, _ := st.Get(ctxFor(t), inbox, msgs[1].ID); m.Flags&storage.FlagSeen != 0 {
			t.Errorf("FETCH BODY[] after EXAMINE set \\Seen; it must not")
		}
	})
}
