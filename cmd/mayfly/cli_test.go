package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIFromAShell runs the real mayfly (this test binary as main) the way a test
// in any language does, through sh: eval "$(mayfly inbox --env)", then mayfly wait
// --code while the application (here, this test) sends its mail; and the exit statuses
// a script sees.
func TestCLIFromAShell(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	script := "#!/bin/sh\nMAYFLY_TEST_RUN_MAIN=1 exec '" + os.Args[0] + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "mayfly"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	shell := func(ctx context.Context, name, line string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, name, "-c", line)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "MAYFLY_URL=http://"+n.http, "DIR="+dir,
			"MAYFLY_INBOX=", "MAYFLY_TOKEN=", "MAYFLY_API_KEY=")
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cmd := shell(ctx, "sh", `set -e
eval "$(mayfly inbox --env)"
printf '%s\n%s\n' "$MAYFLY_INBOX" "$MAYFLY_TOKEN" > "$DIR/inbox.tmp"
mv "$DIR/inbox.tmp" "$DIR/inbox"
mayfly wait --code --timeout 30s`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		if b, err := os.ReadFile(filepath.Join(dir, "inbox")); err == nil {
			lines = strings.Fields(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the script wrote no inbox within 20s: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling for the script's file, with a deadline
	}
	if len(lines) != 2 {
		t.Fatalf("inbox file = %q", lines)
	}
	in := inboxJSON{Address: lines[0], Token: lines[1]}
	n.send(t, in.Address, "From: app@shop.test\r\nSubject: Sign up\r\n\r\nYour code is 774411\r\n")
	if err := cmd.Wait(); err != nil || stdout.String() != "774411\n" {
		t.Fatalf("script = %q, %v (stderr %q), want the code and status 0", stdout.String(), err, stderr.String())
	}

	for _, tt := range []struct{ name, line, want string }{
		{"timeout", `mayfly wait "$1" --token "$2" --subject never --timeout 200ms; echo "status $?"`, "status 1\n"},
		{"expect none", `mayfly wait "$1" --token "$2" --subject never --timeout 200ms --expect-none; echo "status $?"`, "status 0\n"},
		{"bad token", `mayfly wait "$1" --token nope 2>&1; echo "status $?"`, "mayfly: that token does not open"},
		{"default output", `MAYFLY_INBOX="$1" MAYFLY_TOKEN="$2" mayfly wait`, "subject: Sign up\n\nYour code is 774411\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := shell(ctx, "sh", tt.line+"\n")
			cmd.Args = append(cmd.Args, "sh", in.Address, in.Token)
			out, err := cmd.Output()
			if err != nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("%s = %q, %v; want %q", tt.line, out, err, tt.want)
			}
		})
	}
	// Ctrl-C: the wait stops at once, with the status shells give SIGINT.
	wait := exec.CommandContext(ctx, filepath.Join(dir, "mayfly"), "wait", in.Address, "--token", in.Token, "--subject", "never", "--timeout", "60s")
	wait.Env = append(os.Environ(), "MAYFLY_URL=http://"+n.http)
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, n.http, "mayfly_http_waiters 1")
	start := time.Now()
	wait.Process.Signal(os.Interrupt)
	if err := wait.Wait(); wait.ProcessState.ExitCode() != 130 || time.Since(start) > 10*time.Second {
		t.Errorf("mayfly wait after SIGINT = %v after %s, want status 130 at once", err, time.Since(start))
	}
	waitMetric(t, n.http, "mayfly_http_waiters 0")

	if bash, err := exec.LookPath("bash"); err == nil {
		out, err := shell(ctx, bash, `{ read -r addr; read -r token; } < <(mayfly inbox); mayfly wait "$addr" --token "$token" --timeout 100ms --expect-none && echo "$addr"`).Output()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "@serve.test") {
			t.Errorf("bash read of mayfly inbox = %q, %v", out, err)
		}
	}
}
