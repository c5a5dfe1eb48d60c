package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// probe asks the HTTP listener of the mayfly in the same container for path
// (/healthz by default, or /readyz) and says whether it answered 200: the
// container image's HEALTHCHECK, which has no curl or shell to do it. The port is
// MAYFLY_HTTP_ADDR's; a listener on all interfaces is asked on loopback.
func probe(ctx context.Context, args []string, lookup func(string) (string, bool), stdout io.Writer) error {
	path := "/healthz"
	switch {
	case len(args) > 1:
		return usageError{fmt.Errorf("usage: mayfly probe [/healthz | /readyz]")}
	case len(args) == 1:
		path = args[0]
	}
	if !strings.HasPrefix(path, "/") {
		return usageError{fmt.Errorf("probe: the path starts with /, not %q", path)}
	}
	addr, ok := lookup("MAYFLY_HTTP_ADDR")
	if !ok {
		addr = "127.0.0.1:8025"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return usageError{fmt.Errorf("probe: MAYFLY_HTTP_ADDR %q is not host:port", addr)}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	// Within Docker's and Kubernetes' probe timeouts (3s), so a hung server is
	// reported as one rather than as a killed probe.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, url+": ok")
	return nil
}
