package response

import (
	"bufio"
	"net/textproto"
	"strings"
	"testing"
)

// TestQuotes: every HELP reply is one well-formed multi-line reply; two lacked a CRLF,
// and a client waited for the rest of the reply until it timed out.
func TestQuotes(t *testing.T) {
	for k, q := range quotes.m {
		r := textproto.NewReader(bufio.NewReader(strings.NewReader("214-OK\r\n" + q + "\r\n")))
		if _, _, err := r.ReadResponse(214); err != nil {
			t.Errorf("quote %d: %v in %q", k, err, q)
		}
	}
}
