package testlib

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// Client is a client of a line-based protocol (SMTP, POP3, IMAP) that reads the server
// byte by byte as a strict client would: every line must end in CRLF.
type Client struct {
	T    testing.TB
	Conn net.Conn
	R    *bufio.Reader
}

// Dial connects to addr; it reads nothing.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return NewClient(t, conn)
}

// NewClient is a client on conn, closed when the test ends.
func NewClient(t testing.TB, conn net.Conn) *Client {
	t.Cleanup(func() { conn.Close() })
	// A safety net against a hung server, not a synchronisation.
	conn.SetDeadline(time.Now().Add(time.Minute))
	return &Client{T: t, Conn: conn, R: bufio.NewReader(conn)}
}

// Send writes line and CRLF.
func (c *Client) Send(line string) {
	c.T.Helper()
	if _, err := io.WriteString(c.Conn, line+"\r\n"); err != nil {
		c.T.Fatalf("send %q: %v", line, err)
	}
}

// Line reads one line, which must end in CRLF, and returns it without.
func (c *Client) Line() string {
	c.T.Helper()
	l, err := c.R.ReadString('\n')
	if err != nil {
		c.T.Fatalf("read: %v (after %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.T.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// Cmd sends line and reads one line.
func (c *Client) Cmd(line string) string {
	c.T.Helper()
	c.Send(line)
	return c.Line()
}

// Multi reads the rest of a dot-terminated response (POP3, SMTP DATA) and undoes the
// byte-stuffing: what it returns, CRLFs included, is what the server meant to send.
func (c *Client) Multi() []byte {
	c.T.Helper()
	var out bytes.Buffer
	for {
		l := c.Line()
		if l == "." {
			return out.Bytes()
		}
		out.WriteString(strings.TrimPrefix(l, "."))
		out.WriteString("\r\n")
	}
}

// Lines reads the rest of a dot-terminated response as lines.
func (c *Client) Lines() []string {
	c.T.Helper()
	b := c.Multi()
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
}

// Reply reads an SMTP reply, every line of a multi-line one ("250-a", "250 b").
func (c *Client) Reply() []string {
	c.T.Helper()
	var out []string
	for {
		l := c.Line()
		out = append(out, l)
		if len(l) < 4 || l[3] != '-' {
			return out
		}
	}
}

// StartTLS runs the client side of the handshake after the server agreed to it.
func (c *Client) StartTLS(cfg *tls.Config) {
	c.T.Helper()
	tc := tls.Client(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.T.Fatalf("TLS handshake: %v", err)
	}
	c.Conn, c.R = tc, bufio.NewReader(tc)
}

// Closed requires the server to have closed the connection.
func (c *Client) Closed() {
	c.T.Helper()
	if l, err := c.R.ReadString('\n'); err == nil {
		c.T.Fatalf("read %q, want the connection closed", l)
	}
}

// Drip writes prefix to w, then a byte "x" every interval, as a slow client keeping a
// line open does, until a write fails or stop is called; stop waits for the writer.
func Drip(w io.Writer, prefix string, every time.Duration) (stop func()) {
	done, dripped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(dripped)
		if _, err := io.WriteString(w, prefix); err != nil {
			return
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	return func() {
		close(done)
		<-dripped
	}
}

// Greeting connects to addr and returns the first line the server sends, "" when it
// closes without one; err is a failure to read other than the close.
func Greeting(t testing.TB, addr string) (line string, err error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A safety net against a hung server, not a synchronisation.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	line, err = bufio.NewReader(conn).ReadString('\n')
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return line, err
}

// WaitGreeting polls new connections to addr until one is greeted with a line that
// starts with prefix, as when a server frees a slot some time after a client closed.
func WaitGreeting(t testing.TB, addr, prefix string) {
	t.Helper()
	WaitFor(t, "a connection greeted with "+prefix, func() bool {
		l, _ := Greeting(t, addr)
		return strings.HasPrefix(l, prefix)
	})
}

// DialGreeted connects to addr and reads the greeting, which must start with prefix.
func DialGreeted(t testing.TB, addr, prefix string) *Client {
	t.Helper()
	c := Dial(t, addr)
	if line, err := c.R.ReadString('\n'); err != nil || !strings.HasPrefix(line, prefix) {
		t.Fatalf("greeting %q, %v", line, err)
	}
	return c
}

// Trickle sends line over and over a byte every 50ms, as a slow client does, until the
// server answers or closes the connection, and returns what it answered ("" for the
// close); tick runs before each byte. A client still connected 10s after start fails
// the test.
func (c *Client) Trickle(start time.Time, line string, tick func()) string {
	c.T.Helper()
	for i := 0; ; i++ {
		if time.Since(start) > 10*time.Second {
			c.T.Fatalf("a client sending a byte every 50ms was still connected after %v", time.Since(start))
		}
		if tick != nil {
			tick()
		}
		if _, err := c.Conn.Write([]byte{line[i%len(line)]}); err != nil {
			return "" // closed, and the write noticed first
		}
		// The client's own read deadline paces the bytes.
		c.Conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		l, err := c.R.ReadString('\n')
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		return l
	}
}
