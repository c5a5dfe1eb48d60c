package limit

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"golang.org/x/sync/errgroup"
)

// This file is the listener layer the mail servers (IMAP, POP3, submission and the
// inbound SMTP wrapper) share, written once: opening the plain and implicit-TLS
// listeners, the order of the wrappers in front of a protocol, the accept loop with
// its backoff, the refusal of a connection over a cap, and the bounded drain at
// shutdown. What differs between protocols (their refusal lines, how a session is told
// goodbye) comes in as values and functions.

// ServeFunc serves one listener until ctx ends; implicitTLS says every connection on
// it starts with a TLS handshake (IMAPS, POP3S, submissions).
type ServeFunc func(ctx context.Context, ln net.Listener, implicitTLS bool) error

// Run opens addr (plain, with STARTTLS where tlsConfig is set) and tlsAddr (implicit
// TLS) as Listen does and runs serve on each, and every one of also, until ctx ends and
// all have returned. An empty address is a listener that is off; a tlsAddr without
// tlsConfig is an error, named after proto.
func Run(ctx context.Context, proto, addr, tlsAddr string, tlsConfig *tls.Config, serve ServeFunc, also ...func(context.Context) error) error {
	if tlsAddr != "" && tlsConfig == nil {
		return fmt.Errorf("%s: a TLS listener needs a certificate", proto)
	}
	lns, err := Listen(addr, tlsAddr)
	if err != nil {
		return fmt.Errorf("%s listen: %w", proto, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	for i, ln := range lns {
		if ln != nil {
			g.Go(func() error { return serve(ctx, ln, i == 1) })
		}
	}
	for _, f := range also {
		g.Go(func() error { return f(ctx) })
	}
	return g.Wait()
}

// The rest of the layer: front.go (the wrappers in front of a protocol), accept.go
// (the accept loop and refusals), drain.go (sessions at once, the drain, defaults).
