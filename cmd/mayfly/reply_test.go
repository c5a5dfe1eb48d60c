package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	gosmtp "github.com/emersion/go-smtp"
)

// relaySink is the smarthost of a test: it takes every message Mayfly delivers, so
// replies go nowhere but this process.
type relaySink struct {
	addr string
	msgs chan relayed
}

type relayed struct {
	from string
	to   []string
	data string
}

func newRelaySink(t testing.TB) *relaySink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &relaySink{addr: ln.Addr().String(), msgs: make(chan relayed, 16)}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &relaySession{sink: k}, nil
	}))
	srv.Domain = "relay.test"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return k
}

// next returns the next message the sink took, failing the test after 30s.
func (k *relaySink) next(t testing.TB) relayed {
	t.Helper()
	return testlib.Next(t, k.msgs, 30*time.Second, "message at the relay")
}

type relaySession struct {
	sink *relaySink
	msg  relayed
}

func (s *relaySession) Mail(from string, _ *gosmtp.MailOptions) error { s.msg.from = from; return nil }
func (s *relaySession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = string(b)
	s.sink.msgs <- s.msg
	return nil
}
func (s *relaySession) Reset()        { s.msg = relayed{} }
func (s *relaySession) Logout() error { return nil }

// writeDKIMKey writes a new Ed25519 key as PKCS#8 PEM and returns its path and public half.
func writeDKIMKey(t testing.TB) (string, ed25519.PublicKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dkim.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, pub
}

// postReply answers POST .../reply with its status and decoded body.
func postReply(t *testing.T, httpAddr string, in inboxJSON, id, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/api/v1/inboxes/"+in.Address+"/messages/"+id+"/reply", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+in.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("reply answer %d: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// TestRepliesReachTheSender is a reply's whole path in one `mayfly serve`: over the
// HTTP API and over SMTP submission, signed with the configured key, through the
// relay, kept as sent, and held to the reply-only policy and the send limit.
func TestRepliesReachTheSender(t *testing.T) {
	for name, extra := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			sink := newRelaySink(t)
			keyPath, pub := writeDKIMKey(t)
			// Two per day: a test that straddled midnight would see a fresh window,
			// which the test's few seconds make unlikely but not impossible.
			// sender.test passes SPF for loopback: alice proves herself, as replies need.
			dnsAddr := dnstest.TXTServer(t, map[string]string{"sender.test.": "v=spf1 ip4:127.0.0.0/8 -all"})
			n := startNode(t, append([]string{"-relay", "smtp://" + sink.addr, "-dkim-key", keyPath, "-dkim-selector", "t1", "-send-limit", "2/d", "-dns", dnsAddr}, extra...)...)
			in := createInbox(t, n.http, "")
			n.sendAs(t, "alice@sender.test", in.Address, "From: Alice <alice@sender.test>\r\nSubject: Your code\r\nMessage-ID: <first@sender.test>\r\n\r\nThe code is 4242.\r\n")
			var list struct {
				Messages []struct {
					ID, Subject string
					Sent        bool
				}
			}
			getJSON(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages", in.Token, &list)
			if len(list.Messages) != 1 {
				t.Fatalf("%d messages, want 1", len(list.Messages))
			}
			original := list.Messages[0].ID

			status, body := postReply(t, n.http, in, original, `{"text":"Thanks, got it."}`)
			if status != http.StatusAccepted {
				t.Fatalf("reply: %d %v", status, body)
			}
			m := sink.next(t)
			if m.from != in.Address || len(m.to) != 1 || m.to[0] != "alice@sender.test" {
				t.Errorf("relayed from %q to %q, want from %s to alice@sender.test", m.from, m.to, in.Address)
			}
			for _, want := range []string{"In-Reply-To: <first@sender.test>", "Subject: Re: Your code", "Thanks, got it."} {
				if !strings.Contains(m.data, want) {
					t.Errorf("relayed reply lacks %q:\n%s", want, m.data)
				}
			}
			verifications, err := dkim.VerifyWithOptions(strings.NewReader(m.data), &dkim.VerifyOptions{
				LookupTXT: func(domain string) ([]string, error) {
					if domain != "t1._domainkey.serve.test" {
						return nil, errors.New("no such record: " + domain)
					}
					return []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}, nil
				},
			})
			if err != nil || len(verifications) != 1 || verifications[0].Err != nil || verifications[0].Domain != "serve.test" {
				t.Errorf("DKIM of the relayed reply: %v %+v", err, verifications)
			}

			// Over submission, as a mail client would: AUTH PLAIN is allowed without TLS
			// on loopback.
			c, err := smtp.Dial(n.submission)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Auth(smtp.PlainAuth("", in.Address, in.Token, "127.0.0.1")); err != nil {
				t.Fatalf("AUTH: %v", err)
			}
			if err := c.Mail(in.Address); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt("stranger@else.test"); err == nil || !strings.HasPrefix(err.Error(), "550") {
				t.Errorf("RCPT to a stranger: %v, want 550", err)
			}
			if err := c.Rcpt("alice@sender.test"); err != nil {
				t.Fatalf("RCPT to the correspondent: %v", err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "From: "+in.Address+"\r\nTo: alice@sender.test\r\nSubject: From my client\r\n\r\nSent with a mail client.\r\n")
			if err := w.Close(); err != nil {
				t.Fatalf("DATA: %v", err)
			}
			if m := sink.next(t); !strings.Contains(m.data, "Sent with a mail client.") || !strings.Contains(m.data, "DKIM-Signature:") {
				t.Errorf("submitted message relayed as:\n%s", m.data)
			}

			getJSON(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages", in.Token, &list)
			sent := 0
			for _, m := range list.Messages {
				if m.Sent {
					sent++
				}
			}
			if len(list.Messages) != 3 || sent != 2 {
				t.Errorf("listed %+v, want the received mail and two sent copies", list.Messages)
			}
			if status, body := postReply(t, n.http, in, original, `{"text":"Third."}`); status != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(body["error"]), "code:send_limit") {
				t.Errorf("third reply of 2/d: %d %v, want 429 send_limit", status, body)
			}
			if status, _ := postReply(t, n.http, in, "00000000000000000000000000", `{"text":"x"}`); status != http.StatusNotFound {
				t.Errorf("reply to a missing message: %d, want 404", status)
			}
		})
	}
}

// TestSpamCannonOverHTTP is the attack of a Reply-To naming 500 addresses through the
// reply route of a whole `mayfly serve`: refused 422 naming the setting, nothing
// relayed; a Reply-To of 10 gets its reply, and the send limit counts its 10
// recipients, not one message. A Reply-To in mail that proved nothing (SPF fail) is
// no correspondent.
func TestSpamCannonOverHTTP(t *testing.T) {
	sink := newRelaySink(t)
	dnsAddr := dnstest.TXTServer(t, map[string]string{
		"sender.test.": "v=spf1 ip4:127.0.0.0/8 -all",
		"forged.test.": "v=spf1 ip4:192.0.2.1 -all",
	})
	n := startNode(t, "-relay", "smtp://"+sink.addr, "-send-limit", "15/d", "-dns", dnsAddr)
	in := createInbox(t, n.http, "")
	victims := make([]string, 500)
	for i := range victims {
		victims[i] = fmt.Sprintf("victim%d@victims.test", i)
	}
	latest := func() string {
		var list struct{ Messages []struct{ ID string } }
		getJSON(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages", in.Token, &list)
		return list.Messages[0].ID
	}
	n.sendAs(t, "news@sender.test", in.Address, "From: News <news@sender.test>\r\nReply-To: "+strings.Join(victims, ", ")+"\r\nSubject: All of you\r\n\r\nReply!\r\n")
	status, body := postReply(t, n.http, in, latest(), `{"text":"hi all"}`)
	if status != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(body["error"]), "code:too_many_recipients") || !strings.Contains(fmt.Sprint(body["error"]), "MAYFLY_MAX_REPLY_RECIPIENTS") {
		t.Errorf("reply to 500: %d %v, want 422 too_many_recipients naming the setting", status, body)
	}
	n.sendAs(t, "news@sender.test", in.Address, "From: News <news@sender.test>\r\nReply-To: "+strings.Join(victims[:10], ", ")+"\r\nSubject: Ten of you\r\n\r\nReply!\r\n")
	ten := latest()
	if status, body := postReply(t, n.http, in, ten, `{"text":"hi ten"}`); status != http.StatusAccepted {
		t.Fatalf("reply to 10: %d %v", status, body)
	}
	if m := sink.next(t); len(m.to) != 10 || !strings.Contains(m.data, "hi ten") {
		t.Errorf("relayed to %d: %q, want the reply to 10", len(m.to), m.to)
	}
	if status, body := postReply(t, n.http, in, ten, `{"text":"again"}`); status != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(body["error"]), "MAYFLY_SEND_LIMIT") {
		t.Errorf("second reply to 10 under 15/d: %d %v, want 429 naming MAYFLY_SEND_LIMIT", status, body)
	}

	other := createInbox(t, n.http, "")
	n.sendAs(t, "spoof@forged.test", other.Address, "From: Bank <ceo@bank.test>\r\nReply-To: victim@victims.test\r\nSubject: Unproved\r\n\r\nReply!\r\n")
	var list struct{ Messages []struct{ ID string } }
	getJSON(t, n.http, "/api/v1/inboxes/"+other.Address+"/messages", other.Token, &list)
	if status, body := postReply(t, n.http, other, list.Messages[0].ID, `{"text":"hi"}`); status != http.StatusForbidden {
		t.Errorf("reply to the Reply-To of unproved mail: %d %v, want 403", status, body)
	}
	select {
	case m := <-sink.msgs:
		t.Errorf("the relay got another message, to %q", m.to)
	default:
	}
}
