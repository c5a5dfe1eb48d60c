package submission

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

func curl(t *testing.T, path string, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"--silent", "--show-error", "--max-time", "20"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("curl %q: %w: %s", args, err, stderr.Bytes())
	}
	return nil
}

// TestCurl has a real mail client send replies through the submission listener: in
// the clear on loopback, and with STARTTLS as a remote client must; the sink, as
// ann's MX, gets them.
func TestCurl(t *testing.T) {
	path := testlib.Curl(t)
	dir := t.TempDir()
	caFile := testlib.CAFile(t)
	// As a user writes it: LF line ends, no Date, no Message-ID. curl sends them as
	// they are unless told --crlf, and bare LFs are refused.
	file := filepath.Join(dir, "reply.eml")
	if err := os.WriteFile(file, []byte("From: Box <box@mayfly.test>\nTo: Ann <ann@sender.test>\nSubject: Re: Welcome aboard\n\n.leading dot\nSent with curl.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eachStore(t, func(t *testing.T, st fullStore) {
		received(t, st, box, "", "Ann <"+ann+">")
		k := newSink(t, sinkOptions{})
		for _, remote := range []bool{false, true} {
			e := newEnv(t, st, setup{opts: Options{OutboundPort: k.port, DKIM: edKey(), DKIMSelector: "ed", SendLimit: SendLimit{N: -1}}, remote: remote})
			e.startWorkers()
			args := []string{"--url", "smtp://" + e.addr, "--mail-from", box, "--mail-rcpt", ann, "--upload-file", file, "--crlf", "--user", box + ":" + token(box)}
			if remote {
				if err := curl(t, path, args...); err == nil {
					t.Error("curl logged in without TLS from a remote address")
				}
				args = append(args, "--ssl-reqd", "--cacert", caFile)
			}
			if err := curl(t, path, args...); err != nil {
				t.Fatal(err)
			}
			m := k.next(t)
			if m.from != box || len(m.to) != 1 || m.to[0] != ann {
				t.Errorf("sink got MAIL FROM %q RCPT TO %q", m.from, m.to)
			}
			body := string(m.data)
			for _, want := range []string{"\r\nDate: ", "\r\nMessage-ID: <", "Subject: Re: Welcome aboard\r\n", "\r\n\r\n.leading dot\r\nSent with curl.\r\n"} {
				if !strings.Contains(body, want) {
					t.Errorf("delivered message lacks %q:\n%s", want, body)
				}
			}
			verifyDKIM(t, m.data, e.dns)
			e.stop()
		}
	})
}
