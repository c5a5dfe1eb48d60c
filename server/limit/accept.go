package limit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"
)

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

// FinalRead is a connection on which a read past its deadline is final: every later
// read fails at once with os.ErrDeadlineExceeded. Protocol libraries read on after a
// timeout (imapserver answers a command whose arguments timed out with a NO and reads
// the next; go-smtp's line reader hands back the bytes a deadline cut off as a line),
// so a client that sends each line a byte at a time would keep its connection for good
// under a fresh deadline per line. A server wraps its socket in one and lets the
// library set deadlines as it does.
type FinalRead struct {
	net.Conn
	timedOut atomic.Bool
}

// Read reads, or fails at once after a read has passed its deadline.
func (c *FinalRead) Read(b []byte) (int, error) {
	if c.timedOut.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

// TimedOut reports whether a read has passed its deadline.
func (c *FinalRead) TimedOut() bool { return c.timedOut.Load() }
