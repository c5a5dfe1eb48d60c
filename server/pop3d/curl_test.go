package pop3d

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// curl runs curl with args and returns its standard output.
func curl(t *testing.T, path string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"--silent", "--show-error", "--max-time", "20"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("curl %q: %w: %s", args, err, stderr.Bytes())
	}
	return stdout.Bytes(), err
}

// TestCurl has a real client list, fetch and delete over plain POP3 on loopback, STLS
// and POP3S.
func TestCurl(t *testing.T) {
	path := testlib.Curl(t)
	caFile := testlib.CAFile(t)
	eachStore(t, func(t *testing.T, st fullStore) {
		m1 := put(t, st, box, plainMsg)
		m2 := put(t, st, box, dotted)
		e := newEnv(t, st, setup{})
		user := box + ":" + token(box)
		url := "pop3://" + e.addr + "/"

		out, err := curl(t, path, "--user", user, url)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("1 %d\r\n2 %d\r\n", len(plainMsg), len(dotted)); string(out) != want {
			t.Errorf("curl %s listed %q, want %q", url, out, want)
		}
		// curl read CAPA and chose SASL PLAIN over USER/PASS.
		if got := testutil.ToFloat64(e.srv.metrics.commands.WithLabelValues("AUTH")); got != 1 {
			t.Errorf("curl sent AUTH %v times, want 1", got)
		}
		for i, raw := range [][]byte{plainMsg, dotted} {
			out, err := curl(t, path, "--user", user, fmt.Sprintf("%s%d", url, i+1))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, raw) {
				t.Errorf("curl fetched message %d as %q, want %q", i+1, out, raw)
			}
		}
		if _, err := curl(t, path, "--user", box+":wrong", url+"1"); err == nil {
			t.Error("curl with a wrong password succeeded")
		}
		// DELE then curl's QUIT: deleted from the store.
		if _, err := curl(t, path, "--user", user, "--request", "DELE", "--head", url+"1"); err != nil {
			t.Fatal(err)
		}
		if got, want := ids(t, st, box), []string{m2.ID}; !slices.Equal(got, want) {
			t.Errorf("after curl's DELE the store has %q, want %q (not %s)", got, want, m1.ID)
		}

		// Remote clients: curl must go through TLS, STLS or POP3S, to log in.
		e = newEnv(t, st, setup{remote: true})
		if _, err := curl(t, path, "--user", user, "pop3://"+e.addr+"/1"); err == nil {
			t.Error("curl logged in without TLS from a remote address")
		}
		for _, url := range []string{"pop3://" + e.addr + "/1", "pop3s://" + e.tlsAddr + "/1"} {
			out, err := curl(t, path, "--ssl-reqd", "--cacert", caFile, "--user", user, url)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, dotted) {
				t.Errorf("curl %s fetched %q, want %q", url, out, dotted)
			}
		}
		var exitErr *exec.ExitError
		if _, err := curl(t, path, "--ssl-reqd", "--user", user, "pop3s://"+e.tlsAddr+"/1"); !errors.As(err, &exitErr) {
			t.Errorf("curl trusting no certificate = %v, want an exit status", err)
		}
	})
}
