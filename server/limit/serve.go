package limit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

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

// Front is what every mail listener puts between its socket and its protocol.
type Front struct {
	// TrustedProxies are the networks of the TCP proxies (load balancers) in front of
	// the listener, which send the PROXY protocol header (v1 or v2) naming the client
	// they relay (ProxyListener). A peer in one must send it, and every per-client
	// rule (connection and login-failure limits, the loopback exemption for plain-text
	// logins, logs) then applies to the client it names; a peer in none is its own
	// client, header or not. nil = no proxies: every peer is its own client.
	TrustedProxies []netip.Prefix
	// PerClient caps each client's connections at once (Listener), a client being its
	// IPv4 address or its IPv6 /64 (Key); nil = no cap.
	PerClient *Conns
	// Refusal is the protocol's line to a client over PerClient, on a plain listener.
	Refusal string
	// Refused counts a client turned away by PerClient; nil = not counted.
	Refused func()
}

// Wrap puts f in front of ln. The PROXY header comes first, so that the cap, and
// everything after it (the loopback exemption, logs), sees the client a trusted proxy
// relays rather than the proxy; on an implicit-TLS listener the handshake follows the
// header. There a client over its cap just sees the connection close: it would need a
// handshake to read a refusal, which is the work the cap saves.
func (f Front) Wrap(ln net.Listener, implicitTLS bool) net.Listener {
	refusal := f.Refusal
	if implicitTLS {
		refusal = ""
	}
	return Listener(ProxyListener(ln, f.TrustedProxies), f.PerClient, refusal, f.Refused)
}

// Accept calls handle with each connection of ln until ctx ends (nil) or ln fails
// (the error, named after proto). Errors such as running out of file descriptors pass,
// so it retries them after a pause that doubles up to a second, as net/http does.
func Accept(ctx context.Context, ln net.Listener, proto string, logger *slog.Logger, handle func(net.Conn)) error {
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			pause = 0
			handle(c)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("%s accept: %w", proto, err)
		}
		pause = min(max(2*pause, 5*time.Millisecond), time.Second)
		logger.Warn("accept", "err", err, "retry_in", pause)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Refuse writes line (none when empty: an implicit-TLS client could not read it) to a
// connection just accepted and closes it.
func Refuse(c net.Conn, line string) {
	if line != "" {
		// A new socket's send buffer is empty, so this write does not wait on the
		// client; the deadline covers a kernel that thinks otherwise.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(line))
	}
	c.Close()
}

// Slots counts the sessions open at once over a server's listeners.
type Slots chan struct{}

// NewSlots allows n sessions at once.
func NewSlots(n int) Slots { return make(Slots, n) }

// Take takes a slot, reporting false when all are taken.
func (s Slots) Take() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

// Give gives back a slot taken.
func (s Slots) Give() { <-s }

// Waited returns a channel closed once wg.Wait returns.
func Waited(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		wg.Wait()
	}()
	return done
}

// Drain waits for done for at most timeout, the server's ShutdownTimeout, and reports
// whether it closed in time. When not, it logs msg as a warning and calls cut, which
// ends what is left (cancels store calls, closes sockets); the caller then waits for
// done again.
func Drain(done <-chan struct{}, timeout time.Duration, logger *slog.Logger, msg string, cut func()) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		logger.Warn(msg, "timeout", timeout)
		cut()
		return false
	}
}

// Defaults fills the zero values of the options every mail listener has, each
// pointer nil where a server has no such option: 1000 sessions at once, 20 per
// client, 10 seconds of drain and 50 commands a second.
func Defaults(maxConns, perClient *int, shutdown *time.Duration, commands *Rate) {
	if maxConns != nil && *maxConns <= 0 {
		*maxConns = 1000
	}
	if perClient != nil && *perClient == 0 {
		*perClient = 20
	}
	if shutdown != nil && *shutdown <= 0 {
		*shutdown = 10 * time.Second
	}
	if commands != nil && *commands == (Rate{}) {
		*commands = Rate{N: 50, Per: time.Second}
	}
}
