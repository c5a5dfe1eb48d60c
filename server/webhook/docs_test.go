package webhook

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// verifyWebhook returns nil when body is a Mayfly delivery signed with secret
// (Standard Webhooks) within the last 5 minutes.
func verifyWebhook(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return errors.New("webhook-timestamp missing or more than 5 minutes from now")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// docBlock returns the first fenced block of lang in docs/webhooks.md.
func docBlock(t *testing.T, lang string) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/webhooks.md has no %s block", lang)
	}
	return string(m[1])
}

// TestDocsSnippets runs the verification snippets of docs/webhooks.md against real
// deliveries: the Go one is verifyWebhook above (the doc must show it as it is), the
// Python one is run by python3 on the deliveries a receiver saved, and the Node one is
// run as the receiver itself, with the official standardwebhooks library.
func TestDocsSnippets(t *testing.T) {
	src, err := os.ReadFile("docs_test.go")
	if err != nil {
		t.Fatal(err)
	}
	goFunc := regexp.MustCompile(`(?s)// verifyWebhook returns.*?\n}\n`).Find(src)
	if got := docBlock(t, "go"); got != string(goFunc) {
		t.Errorf("docs/webhooks.md's Go snippet differs from verifyWebhook in docs_test.go:\n%s", got)
	}

	st := testlib.Memory(t, memstore.Options{})
	rc := newReceiver(t)
	s := New(testOptions(), st, testlib.Logger(t))
	w := create(t, s, &storage.Webhook{URL: rc.URL(), Events: []string{EventReceived, EventDeleted}})
	run(t, s)
	m := put(t, st, "box@x.test", "Your code", "Your code is 482917", false)
	if err := st.Delete(t.Context(), "box@x.test", m.ID); err != nil {
		t.Fatal(err)
	}
	testlib.WaitFor(t, "two deliveries", func() bool { return len(rc.accepted()) == 2 })
	deliveries := rc.accepted()

	t.Run("go", func(t *testing.T) {
		for _, d := range deliveries {
			h := http.Header{}
			h.Set("webhook-id", d.ID)
			h.Set("webhook-timestamp", d.Timestamp)
			h.Set("webhook-signature", d.Signature)
			if err := verifyWebhook(w.Secret, h, []byte(d.Body)); err != nil {
				t.Errorf("verifyWebhook(%s) = %v", d.ID, err)
			}
			if err := verifyWebhook(w.Secret, h, []byte(d.Body+" ")); err == nil {
				t.Errorf("verifyWebhook(%s, tampered body) = nil, want an error", d.ID)
			}
		}
	})

	t.Run("python", func(t *testing.T) {
		if _, err := exec.LookPath("python3"); err != nil {
			if os.Getenv("MAYFLY_REQUIRE_CLIENTS") == "1" {
				t.Fatal("python3 is not installed, and MAYFLY_REQUIRE_CLIENTS=1")
			}
			t.Skip("python3 is not installed: make test installs it (MAYFLY_REQUIRE_CLIENTS=1 makes this a failure)")
		}
		dir := t.TempDir()
		in, _ := json.Marshal(map[string]any{"secret": w.Secret, "deliveries": deliveries})
		os.WriteFile(filepath.Join(dir, "deliveries.json"), in, 0o600)
		script := docBlock(t, "python") + `
import json, sys
data = json.load(open(sys.argv[1]))
for d in data["deliveries"]:
    headers = {"webhook-id": d["id"], "webhook-timestamp": d["timestamp"], "webhook-signature": d["signature"]}
    verify_webhook(data["secret"], headers, d["body"].encode())
    try:
        verify_webhook(data["secret"], headers, d["body"].encode() + b" ")
    except ValueError:
        pass
    else:
        sys.exit("a tampered body passed")
print("verified", len(data["deliveries"]))
`
		os.WriteFile(filepath.Join(dir, "verify.py"), []byte(script), 0o600)
		out, err := exec.Command("python3", filepath.Join(dir, "verify.py"), filepath.Join(dir, "deliveries.json")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "verified 2") {
			t.Errorf("python3 snippet = %v: %s", err, out)
		}
	})

	t.Run("node", func(t *testing.T) {
		dir, _ := filepath.Abs("testdata/verify")
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
			if os.Getenv("MAYFLY_REQUIRE_CLIENTS") == "1" {
				t.Fatalf("standardwebhooks is not installed in %s, and MAYFLY_REQUIRE_CLIENTS=1", dir)
			}
			t.Skipf("standardwebhooks is not installed (%v): make test installs it (MAYFLY_REQUIRE_CLIENTS=1 makes this a failure)", err)
		}
		// In the package's directory, so that the import finds its node_modules.
		file := filepath.Join(dir, "snippet-"+strconv.Itoa(os.Getpid())+".mjs")
		if err := os.WriteFile(file, []byte(docBlock(t, "js")), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(file) })
		_, port, _ := strings.Cut(testlib.FreePort(t), ":")
		nodeHook := create(t, s, &storage.Webhook{URL: "http://127.0.0.1:" + port + "/", Events: []string{EventReceived}})
		cmd := exec.Command("node", file)
		cmd.Env = append(os.Environ(), "PORT="+port, "MAYFLY_WEBHOOK_SECRET="+nodeHook.Secret)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		lines := make(chan string, 10)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()

		m := put(t, st, "box@x.test", "Your code", "Your code is 482917", false)
		if got, want := testlib.Next(t, lines, 30*time.Second, "the Node receiver's line"), "message.received box@x.test "+m.ID; got != want {
			t.Errorf("the Node receiver printed %q, want %q", got, want)
		}
		testlib.WaitFor(t, "the delivery answered 204", func() bool {
			list, _ := s.Deliveries(t.Context(), nodeHook.ID, 0)
			return len(list) == 1 && list[0].State == storage.DeliveryDelivered && list[0].Attempts[len(list[0].Attempts)-1].Status == http.StatusNoContent
		})
		// A delivery signed with another secret is refused.
		other := create(t, s, &storage.Webhook{URL: "http://127.0.0.1:" + port + "/", Events: []string{EventReceived}, Inbox: "else@x.test"})
		other.Secret = newSecret()
		if err := st.PutWebhook(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		d, err := s.Test(t.Context(), other.ID)
		if err != nil {
			t.Fatal(err)
		}
		testlib.WaitFor(t, "the forged delivery refused", func() bool {
			got, err := st.GetDelivery(t.Context(), other.ID, d.ID)
			return err == nil && len(got.Attempts) > 0 && got.Attempts[0].Status == http.StatusBadRequest
		})
	})
}
