package guerrilla

import (
	"bufio"
	"bytes"
	"sync"
)

// Chunks of a message being read grow from the first size to the last, so that a
// large one wastes at most one chunk's slack. The first chunk is lent from dataPool:
// a message that fits in it (most mail) is read into it and handed to the backend
// there, without a copy, and the chunk is reused for the next message unless the
// backend took it (mail.Envelope.TakeData).
const (
	firstDataChunk = 64 << 10
	lastDataChunk  = 256 << 10
)

var dataPool = sync.Pool{New: func() any {
	b := make([]byte, 0, firstDataChunk)
	return &b
}}

// putDataChunk gives a chunk lent by readData back to dataPool.
func putDataChunk(b []byte) {
	if cap(b) != firstDataChunk {
		return
	}
	b = b[:0]
	dataPool.Put(&b)
}

// readData reads a message's content from r up to the line that ends it and puts it
// in dst, which it replaces, returning its length. The content is kept as it crossed
// the wire, line ends included, less the end-of-data line and the dots of dot-stuffing.
//
// Only CRLF "." CRLF ends the content (RFC 5321 section 4.1.1.4), and only a line
// after a CRLF is unstuffed (section 4.5.2): a bare LF or a bare CR ends no line,
// or a client could end a message where the server before us did not and have us
// take the rest as a second message (SMTP smuggling). A bare LF is made a CRLF (RFC
// 5321 section 2.3.8 allows none, and mail parsers read LF-only lines either way),
// so a sloppy client's LF-only lines still arrive as lines; a bare CR is kept as it is.
//
// A message over max bytes is read to its end, so that the client reads the refusal
// rather than a reset connection, but not kept, and the read returns
// MessageSizeExceeded (the caller bounds the bytes read in all). The content is
// gathered in chunks; a content that fits in the first, pooled one is left there
// (lent is true: the caller gives it back with putDataChunk once the backend is done
// with it), a larger one is copied into dst once, at its exact size: a message being
// received costs its size plus one chunk, not the doubling growth of a bytes.Buffer.
func readData(dst *bytes.Buffer, r *bufio.Reader, max int64) (n int64, lent bool, err error) {
	var (
		chunks [][]byte
		bol    = true  // at the start of a line, after a CRLF
		cr     = false // the last byte read was a CR, whose LF may come in the next read
	)
	first := *dataPool.Get().(*[]byte)
	defer func() {
		if !lent {
			putDataChunk(first)
		}
	}()
	write := func(p []byte) {
		for len(p) > 0 {
			if len(chunks) == 0 || len(chunks[len(chunks)-1]) == cap(chunks[len(chunks)-1]) {
				if len(chunks) == 0 {
					chunks = append(chunks, first[:0])
				} else {
					chunks = append(chunks, make([]byte, 0, min(2*cap(chunks[len(chunks)-1]), lastDataChunk)))
				}
			}
			last := &chunks[len(chunks)-1]
			k := min(len(p), cap(*last)-len(*last))
			*last = append(*last, p[:k]...)
			p = p[k:]
		}
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return 0, false, err
		}
		whole := err == nil // line ends with its LF; else it goes on in the next read
		crlf := whole && (len(line) >= 2 && line[len(line)-2] == '\r' || len(line) == 1 && cr)
		if bol && whole && len(line) == 3 && line[0] == '.' && line[1] == '\r' {
			break
		}
		if bol && line[0] == '.' {
			line = line[1:]
		}
		bareLF := whole && !crlf
		size := len(line)
		if bareLF {
			line = line[:len(line)-1]
			size++ // its CRLF
		}
		if n += int64(size); n > max {
			chunks = nil
		} else {
			write(line)
			if bareLF {
				write(crlfBytes)
			}
		}
		bol, cr = crlf, !whole && line[len(line)-1] == '\r'
	}
	if n > max {
		return 0, false, MessageSizeExceeded
	}
	if len(chunks) <= 1 {
		if len(chunks) == 0 {
			chunks = append(chunks, first[:0]) // an empty message
		}
		*dst = *bytes.NewBuffer(chunks[0])
		return n, true, nil
	}
	buf := make([]byte, 0, n)
	for _, c := range chunks {
		buf = append(buf, c...)
	}
	*dst = *bytes.NewBuffer(buf)
	return n, false, nil
}

var crlfBytes = []byte("\r\n")
