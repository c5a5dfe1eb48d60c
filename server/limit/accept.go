package limit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
