package guerrilla

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadData(t *testing.T) {
	tests := []struct {
		name, in, want, rest string
	}{
		{name: "crlf", in: "a\r\nb\r\n.\r\nNEXT", want: "a\r\nb\r\n", rest: "NEXT"},
		{name: "empty", in: ".\r\n", want: ""},
		{name: "stuffed", in: "..a\r\n...\r\n.\r\n", want: ".a\r\n..\r\n"},
		{name: "stuffed first line only after crlf", in: "a\n..b\r\n..c\r\n.\r\n", want: "a\r\n..b\r\n.c\r\n"},
		{name: "bare lf made crlf", in: "a\nb\n\r\n.\r\n", want: "a\r\nb\r\n\r\n"},
		{name: "lf dot lf", in: "a\n.\nMAIL\r\n.\r\n", want: "a\r\n.\r\nMAIL\r\n"},
		{name: "lf dot crlf", in: "a\n.\r\nMAIL\r\n.\r\n", want: "a\r\n.\r\nMAIL\r\n"},
		{name: "crlf dot lf", in: "a\r\n.\nMAIL\r\n.\r\n", want: "a\r\n\r\nMAIL\r\n"},
		{name: "cr dot cr", in: "a\r.\rMAIL\r\n.\r\n", want: "a\r.\rMAIL\r\n"},
		{name: "dot space", in: ". \r\n.\r\n", want: " \r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.in))
			var dst bytes.Buffer
			n, _, err := readData(&dst, r, 1<<20)
			rest, _ := io.ReadAll(r)
			if err != nil || dst.String() != tt.want || n != int64(len(tt.want)) || string(rest) != tt.rest {
				t.Errorf("readData(%q) = %q, %d, %v, rest %q; want %q, rest %q", tt.in, dst.String(), n, err, rest, tt.want, tt.rest)
			}
		})
	}
}

// TestReadDataLongLines crosses bufio's buffer: a CRLF split between two reads still
// ends a line, and a long line is no line start.
func TestReadDataLongLines(t *testing.T) {
	long := strings.Repeat("x", 4095) // with its CR, exactly one 4096-byte buffer
	in := long + "\r\n.\r\n" + long + "\n.\r\n" + strings.Repeat("y", 10000) + "\r\n.\r\n"
	var dst bytes.Buffer
	if _, _, err := readData(&dst, bufio.NewReaderSize(strings.NewReader(in), 4096), 1<<20); err != nil {
		t.Fatal(err)
	}
	want := long + "\r\n"
	if dst.String() != want {
		t.Errorf("readData ended at %d bytes, want %d", dst.Len(), len(want))
	}
}

func TestReadDataLimits(t *testing.T) {
	var dst bytes.Buffer
	_, _, err := readData(&dst, bufio.NewReader(strings.NewReader(strings.Repeat("a\r\n", 100)+".\r\n")), 299)
	if !errors.Is(err, MessageSizeExceeded) {
		t.Errorf("readData over the limit: %v, want MessageSizeExceeded", err)
	}
	_, _, err = readData(&dst, bufio.NewReader(strings.NewReader("a\r\nb\n.\n")), 100)
	if err != io.EOF {
		t.Errorf("readData without an end: %v, want EOF", err)
	}
}

// TestReadDataMemory: reading a message costs about its size, not a doubling buffer's
// up to twice that.
func TestReadDataMemory(t *testing.T) {
	msg := bytes.Repeat([]byte(strings.Repeat("z", 78)+"\r\n"), (10<<20)/80)
	in := append(msg, ".\r\n"...)
	allocs := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var dst bytes.Buffer
			readData(&dst, bufio.NewReader(bytes.NewReader(in)), 20<<20)
		}
	}).AllocedBytesPerOp()
	// The chunks once, and the message once more at its exact size.
	if max := int64(2*len(msg) + 512<<10); allocs > max {
		t.Errorf("reading a %d-byte message allocated %d bytes, want at most %d", len(msg), allocs, max)
	}
}

// refReadData is readData a byte at a time, as RFC 5321 reads: the oracle of FuzzReadData.
func refReadData(in []byte) (out []byte, ok bool) {
	bol := true
	for i := 0; i < len(in); i++ {
		c := in[i]
		if bol && c == '.' {
			if i+2 < len(in) && in[i+1] == '\r' && in[i+2] == '\n' {
				return out, true
			}
			bol = false
			continue // dot-unstuffing
		}
		bol = false
		switch {
		case c == '\n' && i > 0 && in[i-1] == '\r':
			out = append(out, c)
			bol = true
		case c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out, false
}

func FuzzReadData(f *testing.F) {
	f.Add([]byte("a\r\n..b\r\n.\r\n"))
	f.Add([]byte("a\n.\nMAIL FROM:<x@y>\r\n.\r\n"))
	f.Add([]byte("a\r\n.\nb\r.\r\n.\r\n"))
	f.Add([]byte("0123456789abcde\r\n.\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var dst bytes.Buffer
		// bufio's smallest buffer, so that lines and CRLFs straddle reads.
		n, _, err := readData(&dst, bufio.NewReaderSize(bytes.NewReader(in), 16), 1<<20)
		want, ok := refReadData(in)
		if ok != (err == nil) || ok && (!bytes.Equal(dst.Bytes(), want) || n != int64(len(want))) {
			t.Fatalf("readData(%q) = %q, %d, %v; want %q, ended %v", in, dst.Bytes(), n, err, want, ok)
		}
	})
}
