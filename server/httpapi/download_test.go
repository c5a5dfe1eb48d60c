package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/testlib"
)

// namesMail has a UTF-8 file name, an unnamed invitation and an unnamed image.
const namesMail = "Subject: names\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain\r\n\r\nsee the files\r\n" +
	"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n\r\n%PDF-1.4\r\n" +
	"--b\r\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n" +
	"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment\r\n\r\n\x89PNG\r\n--b--\r\n"

// TestAttachmentNames: a download is offered under the name the message JSON shows,
// with a plain ASCII filename= beside filename*= for clients that read only the former
// (curl -OJ saved "résumé.pdf" as "0"), and unnamed parts get names from their type
// (issue 14 item 6).
func TestAttachmentNames(t *testing.T) {
	eachEnv(t, Options{}, func(t *testing.T, e *env, box createResponse) {
		path, msg := e.readDelivered(t, box, namesMail)
		var names []string
		for _, a := range msg.Attachments {
			names = append(names, a.Filename)
		}
		if want := []string{"résumé.pdf", "invite.ics", "attachment-2.png"}; !slices.Equal(names, want) {
			t.Fatalf("attachments[].filename = %q, want %q", names, want)
		}
		for i, want := range []string{"r_sum_.pdf", "invite.ics", "attachment-2.png"} {
			r := e.do("GET", fmt.Sprintf("%s/attachments/%d", path, i), box.Token, nil)
			v := r.header.Get("Content-Disposition")
			if r.status != 200 {
				t.Fatalf("attachment %d: %d %s", i, r.status, r.body)
			}
			// What curl -OJ and wget read: filename= alone.
			plain, _, _ := strings.Cut(v, "; filename*=")
			if _, params, err := mime.ParseMediaType(plain); err != nil || params["filename"] != want {
				t.Errorf("attachment %d: Content-Disposition %q: filename= %q, %v; want %q", i, v, params["filename"], err, want)
			}
			// What a browser reads: filename*= when there is one.
			if _, params, err := mime.ParseMediaType(v); err != nil || params["filename"] != names[i] {
				t.Errorf("attachment %d: Content-Disposition %q reads as %q, %v; want %q", i, v, params["filename"], err, names[i])
			}
		}

		// The real thing, when curl is here: -OJ saves under the ASCII name.
		curl := testlib.Curl(t)
		for i, want := range []string{"r_sum_.pdf", "invite.ics", "attachment-2.png"} {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--max-time", "20", "-OJ",
				"-H", "Authorization: Bearer "+box.Token, fmt.Sprintf("%s%s/attachments/%d", e.base, path, i))
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			cancel()
			if err != nil {
				t.Fatalf("curl -OJ attachment %d: %v: %s", i, err, stderr.Bytes())
			}
			files, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 || files[0].Name() != want {
				var got []string
				for _, f := range files {
					got = append(got, f.Name())
				}
				t.Errorf("curl -OJ attachment %d saved %q, want %q", i, got, want)
			}
		}
	})
}
