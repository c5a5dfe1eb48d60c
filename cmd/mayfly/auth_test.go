package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mayfly-mail/mayfly/server/mailauth/dnstest"
)

// TestAuthenticationThroughAPI: mail from 127.0.0.1 for a domain whose zone allows it,
// signed with Ed25519, reads spf=pass dkim=pass dmarc=pass through the API, starts with
// our Authentication-Results; the same mail with its body changed reads dkim and dmarc fail.
func TestAuthenticationThroughAPI(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// SPF passes for the envelope's mail.shop.test but strict SPF alignment keeps it
	// from counting for DMARC: DMARC stands on the DKIM signature alone.
	dnsAddr := dnstest.TXTServer(t, map[string]string{
		"mail.shop.test.":          "v=spf1 ip4:127.0.0.0/8 -all",
		"ed._domainkey.shop.test.": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub),
		"_dmarc.shop.test.":        "v=DMARC1; p=reject; aspf=s",
	})
	n := startNode(t, "-dns", dnsAddr)
	var signed bytes.Buffer
	mail := "From: Shop <noreply@shop.test>\r\nSubject: Welcome\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nWelcome aboard.\r\n"
	if err := dkim.Sign(&signed, strings.NewReader(mail), &dkim.SignOptions{Domain: "shop.test", Selector: "ed", Signer: key}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, body string
		want       [3]string
	}{
		{"signed", signed.String(), [3]string{"pass", "pass", "pass"}},
		{"body changed", strings.Replace(signed.String(), "Welcome aboard", "Welcome abroad", 1), [3]string{"pass", "fail", "fail"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := createInbox(t, n.http, "")
			n.sendAs(t, "bounce@mail.shop.test", in.Address, tt.body)
			var list struct {
				Messages []struct {
					ID   string
					Auth struct{ SPF, DKIM, DMARC string }
				}
			}
			getJSON(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages", in.Token, &list)
			if len(list.Messages) != 1 {
				t.Fatalf("%d messages listed, want 1", len(list.Messages))
			}
			m := list.Messages[0]
			if got := [3]string{m.Auth.SPF, m.Auth.DKIM, m.Auth.DMARC}; got != tt.want {
				t.Errorf("API auth = %q, want %q", got, tt.want)
			}
			var parsed struct {
				AuthDetails []struct {
					Method, Result, Reason, Comment string
					Properties                      map[string]string
				} `json:"auth_details"`
			}
			getJSON(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID, in.Token, &parsed)
			if len(parsed.AuthDetails) != 3 || parsed.AuthDetails[1].Method != "dkim" || parsed.AuthDetails[1].Result != tt.want[1] {
				t.Fatalf("auth_details = %+v", parsed.AuthDetails)
			}
			// What go-msgauth's authres.Parse alone drops: DKIM's selector and
			// signature prefix, DMARC's policy, the comment, a reason of several words.
			spf, sig, dm := parsed.AuthDetails[0], parsed.AuthDetails[1], parsed.AuthDetails[2]
			if spf.Properties["smtp.mailfrom"] != "bounce@mail.shop.test" || sig.Properties["header.d"] != "shop.test" ||
				sig.Properties["header.s"] != "ed" || sig.Properties["header.b"] == "" || dm.Properties["policy.dmarc"] != "reject" ||
				dm.Properties["header.from"] != "shop.test" || dm.Comment != "p=reject" || dm.Reason == "" || !strings.Contains(dm.Reason, " ") {
				t.Errorf("auth_details = %+v", parsed.AuthDetails)
			}
			raw := get(t, n.http, "/api/v1/inboxes/"+in.Address+"/messages/"+m.ID+"/raw", in.Token)
			if !strings.HasPrefix(raw, "Authentication-Results: mx.serve.test;") {
				t.Errorf("raw does not start with our Authentication-Results:\n%.300s", raw)
			}
		})
	}
}

func get(t *testing.T, httpAddr, path, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

func getJSON(t *testing.T, httpAddr, path, token string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(get(t, httpAddr, path, token)), v); err != nil {
		t.Fatal(err)
	}
}
