package mayflyapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/mayfly-mail/mayfly/docs/examples/openapi/mayflyapi"
)

// TestSignup is the sign-up test of docs/examples in Go: the generated client for Mayfly,
// net/http for the application under test (docs/examples/signup) at SIGNUP_URL.
func TestSignup(t *testing.T) {
	mayfly, app := os.Getenv("MAYFLY_URL"), os.Getenv("SIGNUP_URL")
	if mayfly == "" || app == "" {
		t.Skip("MAYFLY_URL and SIGNUP_URL not set: cmd/mayfly's TestExamples runs this against both")
	}
	ctx := context.Background()
	c, _ := mayflyapi.NewClientWithResponses(mayfly)
	inbox := must(c.CreateInboxWithResponse(ctx, mayflyapi.CreateInboxRequest{})).JSON201
	post(t, app+"/signup", url.Values{"email": {inbox.Address}})
	subject, timeout := "code", "30s"
	wait := must(c.WaitForMessagesWithResponse(ctx, inbox.Address, &mayflyapi.WaitForMessagesParams{Subject: &subject, Timeout: &timeout}, bearer(inbox.Token)))
	page := post(t, app+"/verify", url.Values{"email": {inbox.Address}, "code": {wait.JSON200.Messages[0].Codes[0]}})
	if !strings.Contains(page, "Your account is verified") {
		t.Errorf("after the code from the mail, the page says:\n%s", page)
	}
}

// must stops the test at an error, or at an answer outside 2xx, which the generated
// client returns as a value; a panic, so that it can wrap the client's two results.
func must[R interface{ StatusCode() int }](r R, err error) R {
	if err == nil && r.StatusCode()/100 != 2 {
		err = fmt.Errorf("HTTP %d", r.StatusCode())
	}
	if err != nil {
		panic(err)
	}
	return r
}

func bearer(token string) mayflyapi.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

func post(t *testing.T, u string, form url.Values) string {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s\n%s", u, resp.Status, body)
	}
	return string(body)
}
