package imapserver

import (
	"bufio"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func readIDLine(line string) (int, error) {
	dec := imapwire.NewDecoder(bufio.NewReader(strings.NewReader(line+"\r\n")), imapwire.ConnSideServer)
	dec.MaxSize = 1 << 16
	data, err := readIDParams(dec)
	if err != nil {
		return 0, err
	}
	return len(idPairs(data)) / 2, nil
}

func TestReadIDParams(t *testing.T) {
	for _, tc := range []struct {
		line  string
		pairs int
		ok    bool
	}{
		{` NIL`, 0, true},
		{` nil`, 0, true},
		{` ("name" "Thunderbird" "version" "115.6.0")`, 2, true},
		{` ("NAME" "x" "x-unknown" "y" "os" NIL)`, 1, true},
		{` ("name" {3}` + "\r\nabc)", 1, true},
		{` ()`, 0, true},
		{` ("name")`, 0, false},
		{` "name"`, 0, false},
		{` FOO`, 0, false},
		{` ("` + strings.Repeat("f", 31) + `" "x")`, 0, false},
		{` ("name" "` + strings.Repeat("v", 1025) + `")`, 0, false},
		{` (` + strings.Repeat(`"k" "v" `, 31) + `)`, 0, false},
	} {
		pairs, err := readIDLine(tc.line)
		if (err == nil) != tc.ok || pairs != tc.pairs {
			t.Errorf("readIDParams(%.40q) = %d pairs, %v; want %d, ok %v", tc.line, pairs, err, tc.pairs, tc.ok)
		}
	}
}

func FuzzReadIDParams(f *testing.F) {
	f.Add(` ("name" "Thunderbird" "version" "115.6.0")`)
	f.Add(` NIL`)
	f.Add(` ("name" {3}` + "\r\nabc)")
	f.Fuzz(func(t *testing.T, line string) {
		if pairs, err := readIDLine(line); err == nil && pairs > 11 {
			t.Errorf("%d pairs from %q, more fields than RFC 2971 names", pairs, line)
		}
	})
}
