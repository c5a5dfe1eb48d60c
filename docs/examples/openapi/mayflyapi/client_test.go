package mayflyapi_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/docs/examples/openapi/mayflyapi"
)

// TestClient drives a Mayfly at MAYFLY_URL with the generated client: server/httpapi's
// TestOpenAPIGenerators starts one and runs this after generating the client.
func TestClient(t *testing.T) {
	url := os.Getenv("MAYFLY_URL")
	if url == "" {
		t.Skip("MAYFLY_URL not set: server/httpapi's TestOpenAPIGenerators runs this against a server")
	}
	ctx := context.Background()
	c, err := mayflyapi.NewClientWithResponses(url)
	if err != nil {
		t.Fatal(err)
	}

	var ttl mayflyapi.CreateInboxRequest_Ttl
	if err := ttl.FromCreateInboxRequestTtl0("30m"); err != nil {
		t.Fatal(err)
	}
	created, err := c.CreateInboxWithResponse(ctx, mayflyapi.CreateInboxRequest{Ttl: &ttl})
	if err != nil || created.JSON201 == nil {
		t.Fatalf("CreateInbox = %v, %v", created.Status(), err)
	}
	inbox := created.JSON201
	bearer := func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+inbox.Token)
		return nil
	}
	list, err := c.ListMessagesWithResponse(ctx, inbox.Address, nil, bearer)
	if err != nil || list.JSON200 == nil || len(list.JSON200.Messages) != 0 {
		t.Fatalf("ListMessages(%s) = %v, %v; want an empty list", inbox.Address, list.Status(), err)
	}
	timeout := "10ms"
	wait, err := c.WaitForMessagesWithResponse(ctx, inbox.Address, &mayflyapi.WaitForMessagesParams{Timeout: &timeout}, bearer)
	if err != nil || wait.JSON408 == nil || wait.JSON408.Error.Code != "timeout" {
		t.Fatalf("WaitForMessages(%s) = %v, %v; want 408 timeout", inbox.Address, wait.Status(), err)
	}

	// RFC 6238 appendix B: SHA256 at 1111111109 s.
	secret, digits, alg := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA", 8, mayflyapi.TOTPRequestAlgorithm("SHA256")
	at := time.Unix(1111111109, 0).UTC()
	code, err := c.GetTOTPWithResponse(ctx, mayflyapi.TOTPRequest{Secret: &secret, Digits: &digits, Algorithm: &alg, Time: &at})
	if err != nil || code.JSON200 == nil || code.JSON200.Code != "68084774" {
		t.Fatalf("GetTOTP = %v %s, %v; want code 68084774", code.Status(), code.Body, err)
	}
	bad := "1"
	refused, err := c.GetTOTPWithResponse(ctx, mayflyapi.TOTPRequest{Secret: &bad})
	if err != nil || refused.JSON400 == nil || refused.JSON400.Error.Code != "bad_secret" {
		t.Fatalf("GetTOTP(bad secret) = %v %s, %v; want 400 bad_secret", refused.Status(), refused.Body, err)
	}
}
