package mcpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Bridge serves MCP on in and out (a desktop agent's stdio) for the server whose /mcp
// is endpoint, with token as the bearer of every request ("" = none): `mayfly mcp`.
// It lists the server's tools once and forwards each call, arguments and result as
// they are, so the tools, their checks and their answers are the server's alone. It
// returns when in ends or ctx does.
func Bridge(ctx context.Context, endpoint, token, version string, in io.ReadCloser, out io.WriteCloser, logger *slog.Logger) error {
	hc := &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
	client := mcp.NewClient(&mcp.Implementation{Name: "mayfly-mcp-bridge", Version: version}, &mcp.ClientOptions{Logger: logger})
	// The server is stateless: it has nothing to say outside a call, so no stream is
	// kept open for it.
	remote, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	defer remote.Close()
	tools, err := remote.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("list the tools of %s: %w", endpoint, err)
	}
	var instructions string
	if r := remote.InitializeResult(); r != nil {
		instructions = r.Instructions
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "mayfly", Version: version}, &mcp.ServerOptions{Instructions: instructions, Logger: logger})
	for _, t := range tools.Tools {
		if !objectSchema(t.InputSchema) {
			logger.Warn("tool skipped: its input schema is not an object", "tool", t.Name)
			continue
		}
		srv.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return remote.CallTool(ctx, &mcp.CallToolParams{Name: t.Name, Arguments: req.Params.Arguments})
		})
	}
	err = srv.Run(ctx, &mcp.IOTransport{Reader: in, Writer: out})
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil // the agent closed stdin, or the user stopped us
	}
	return err
}

// objectSchema reports whether a tool's input schema is a JSON object schema, which
// the SDK requires of a tool it serves (it panics otherwise).
func objectSchema(schema any) bool {
	b, err := json.Marshal(schema)
	if err != nil {
		return false
	}
	var m map[string]any
	return json.Unmarshal(b, &m) == nil && m["type"] == "object"
}

// bearer adds the Authorization header to the bridge's requests.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token == "" {
		return b.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}
