package imapd

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
)

// TestCurl reads an inbox with curl, an IMAP client that is not ours and not
// go-imap's: list, search, and fetch byte for byte.
func TestCurl(t *testing.T) {
	curl := testlib.Curl(t)
	raw := readFile(t, "testdata/invoice.eml")
	eachBackend(t, func(t *testing.T, st storage.Store, _ func() storage.Store) {
		srv := startServer(t, st, false)
		inbox, token := newInbox()
		plain := put(t, st, inbox, "plain", nil)
		invoice := put(t, st, inbox, "invoice", raw)
		run := func(args ...string) []byte {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args = append([]string{"--silent", "--show-error", "--max-time", "15", "--user", inbox + ":" + token}, args...)
			out, err := exec.CommandContext(ctx, curl, args...).Output()
			if err != nil {
				var stderr string
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("curl %s: %v %s", strings.Join(args[5:], " "), err, stderr)
			}
			return out
		}
		base := "imap://" + srv.addr

		if out := string(run(base + "/")); !strings.Contains(out, "INBOX") {
			t.Errorf("curl list = %q, want INBOX", out)
		}
		want := fmt.Sprintf("* SEARCH %d %d", plain.UID, invoice.UID)
		if out := strings.TrimSpace(string(run(base+"/INBOX", "--request", "UID SEARCH ALL"))); out != want {
			t.Errorf("curl UID SEARCH ALL = %q, want %q", out, want)
		}
		if out := run(fmt.Sprintf("%s/INBOX;UID=%d", base, invoice.UID)); !bytes.Equal(out, raw) {
			t.Errorf("curl fetch UID %d = %d bytes, want the %d stored:\n%q", invoice.UID, len(out), len(raw), out)
		}
		m, err := st.Get(ctxFor(t), inbox, invoice.ID)
		if err != nil || m.Flags&storage.FlagSeen == 0 {
			t.Errorf("flags after curl's fetch = %v, %v; want seen", m, err)
		}
	})
}
