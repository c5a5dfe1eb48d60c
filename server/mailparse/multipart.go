package mailparse

import (
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// seg is one part as go-message's multipart reader split it, located in the parent's
// body.
type seg struct {
	fields [][]byte
	hdrRaw []byte
	body   []byte
	closed bool // a close delimiter followed it
}

// multipart reads p's children; false when no delimiter could be found for the
// declared boundary, its trimmed form, or a boundary guessed from the body.
func (w *walker) multipart(p *Part, depth int) bool {
	declared := p.Params["boundary"]
	b := ""
	switch {
	case declared != "" && nextDelimiter(p.Body, 0, declared, false) >= 0:
		b = declared
	case strings.TrimSpace(declared) != "" && nextDelimiter(p.Body, 0, strings.TrimSpace(declared), false) >= 0:
		b = strings.TrimSpace(declared) // a boundary="abc " whose lines read "--abc"
	default:
		w.budget -= int64(len(p.Body)) // the scans for the declared boundary and a guess
		b = guessBoundary(p.Body)
	}
	if b == "" {
		return false
	}
	segs := w.split(p.Body, b)
	if len(segs) == 0 {
		return false
	}
	childType := "text/plain"
	if p.MediaType == "multipart/digest" {
		childType = "message/rfc822"
	}
	inAlt := p.inAlternative || p.MediaType == "multipart/alternative"
	p.Children = w.build(segs, b, p.Path, depth+1, childType, inAlt)
	return true
}

// build makes parts of segs. A multipart part that declares the boundary of its
// parent, and so was split by it into nothing, takes the parts that follow it up to
// the first close delimiter: a nested multipart that reused its parent's boundary.
func (w *walker) build(segs []seg, boundary, parent string, depth int, childType string, inAlt bool) []*Part {
	var out []*Part
	for i := 0; i < len(segs) && w.parts < MaxParts && !w.settled; i++ {
		s := segs[i]
		w.parts++
		path := childPath(parent, len(out)+1)
		h := buildHeader(s.fields)
		p := newPart(h, childType)
		if p.IsMultipart() && p.Params["boundary"] == boundary && !s.closed &&
			len(bytes.TrimSpace(s.body)) == 0 && i+1 < len(segs) && depth < MaxDepth {
			j := i + 1
			for j < len(segs)-1 && !segs[j].closed {
				j++
			}
			p.Path, p.HeaderRaw = path, s.hdrRaw
			p.inAlternative = inAlt
			first, last := segs[i+1].body, segs[j].body
			w.setBody(p, span(w.raw, first, last))
			ct := "text/plain"
			if p.MediaType == "multipart/digest" {
				ct = "message/rfc822"
			}
			p.Children = w.build(segs[i+1:j+1], "\x00", path, depth+1, ct, inAlt || p.MediaType == "multipart/alternative")
			out = append(out, p)
			i = j
			continue
		}
		out = append(out, w.entity(h, s.hdrRaw, s.body, path, depth, childType, inAlt))
	}
	return out
}

// span is the bytes of raw from first's start to last's end when both lie in raw;
// else first.
func span(raw, first, last []byte) []byte {
	a, b := offset(raw, first), offset(raw, last)
	if a < 0 || b < 0 || b+len(last) < a || len(first) == 0 {
		return first
	}
	return raw[a : b+len(last)]
}

// split cuts a multipart body at boundary with go-message's multipart reader and
// locates each part's header and body in body. Where the reader gives up (a part
// header it cannot read, a line it did not expect, a close delimiter with more parts
// after it), it starts again at the next delimiter line, so one broken part costs at
// most that part, not the rest of the message. Each start hands the reader the part's
// header as this package reads it (scanHeader), so a part and a message end their
// header by the same rule.
func (w *walker) split(body []byte, boundary string) []seg {
	var segs []seg
	last := -1             // the delimiter the reader last started at
	lines, counted := 0, 0 // line breaks in body[:counted], for ParseFacts

	d := nextDelimiter(body, 0, boundary, false)
	for d > last && w.parts+len(segs) < MaxParts {
		last = d
		start := lineEnd(body, d)
		first := seg{}
		var n int
		first.fields, first.hdrRaw, n = scanHeader(body[start:], false)
		pos := start + n
		stream := io.MultiReader(bytes.NewReader(synthHeader(body[d:start], first.fields)), bytes.NewReader(body[pos:]))
		mr := textproto.NewMultipartReader(stream, boundary)
		cur, pending := pos, &first
		d = -1
		for w.parts+len(segs) < MaxParts {
			part, err := mr.NextPart()
			if err == io.EOF {
				// A close delimiter. Parts after it belong to a nested multipart that
				// reused this boundary: read on.
				if c := nextDelimiter(body, cur, boundary, true); c >= 0 {
					if d = nextDelimiter(body, lineEnd(body, c), boundary, false); d >= 0 && len(segs) > 0 {
						segs[len(segs)-1].closed = true
					}
				}
				break
			}
			if err != nil {
				d = nextDelimiter(body, max(cur, last+1), boundary, false)
				break
			}
			var s seg
			bodyStart := pos
			if pending != nil {
				s, pending = *pending, nil
			} else {
				at := nextDelimiter(body, cur, boundary, false)
				if at < 0 {
					return segs // the reader found one this package does not: keep what is read
				}
				hs := lineEnd(body, at)
				s.fields, s.hdrRaw, n = scanHeader(body[hs:], false)
				bodyStart = hs + n
				if part.Header.Len() != len(s.fields) {
					// go-message ended the header elsewhere (a line that is no field):
					// start again at this part with the header as read here.
					d = at
					break
				}
			}
			if w.facts && settles(s.fields) {
				lines += bytes.Count(body[counted:bodyStart], []byte("\n"))
				counted = bodyStart
				// Built, this part is an attachment, unless the parts before it use up
				// MaxParts: each takes a line of its own, an attached message two.
				if w.parts+2*(lines+len(segs)+1) < MaxParts {
					w.settled = true
					return segs
				}
			}
			s.body = w.readBody(part, body[bodyStart:])
			cur = bodyStart
			if offset(body, s.body) >= 0 {
				cur = bodyStart + len(s.body)
			}
			segs = append(segs, s)
		}
	}
	return segs
}

// settles reports whether a part with these header fields is an attachment by the
// package rule wherever it is in the tree: a leaf that is not text (an image, a
// message/rfc822, an octet-stream), or one named or disposed as a file. A text part
// without a name depends on what came before it.
func settles(fields [][]byte) bool {
	p := newPart(buildHeader(fields), "text/plain")
	return !p.IsMultipart() && (p.IsAttachment() || !strings.HasPrefix(p.MediaType, "text/"))
}

// synthHeader is a part's delimiter line and header fields, ended by a blank line,
// with the delimiter line's line end: go-message reads the parts' line ends from the
// first delimiter line.
func synthHeader(delim []byte, fields [][]byte) []byte {
	eol := "\r\n"
	if !bytes.HasSuffix(delim, []byte("\r\n")) {
		eol = "\n"
	}
	var b bytes.Buffer
	b.Write(bytes.TrimRight(delim, "\r\n"))
	b.WriteString(eol)
	for _, f := range fields {
		b.Write(bytes.TrimLeft(f, " \t")) // an indented first field, which go-message refuses
	}
	if n := b.Len(); n > 0 && b.Bytes()[n-1] != '\n' {
		b.WriteString(eol)
	}
	b.WriteString(eol)
	return b.Bytes()
}

// readBody reads a part's body from go-message's reader and returns where it lies in
// rest, which it should start: a slice of the message, not a copy. Where it does not
// (it never should), it is found with bytes.Index or kept as read.
func (w *walker) readBody(r io.Reader, rest []byte) []byte {
	if w.buf == nil {
		w.buf = make([]byte, 4<<10) // go-message's reader hands out at most its 4 KiB buffer
	}
	cw := &cmpWriter{want: rest}
	n, _ := io.CopyBuffer(cw, r, w.buf) // a missing close delimiter ends the part at the end
	w.budget -= n
	if cw.copy == nil {
		return rest[:cw.n]
	}
	if i := bytes.Index(rest, cw.copy); i >= 0 {
		return rest[i : i+len(cw.copy)]
	}
	return cw.copy
}

// cmpWriter checks that what is written is want, from its start; once it is not, it
// keeps a copy.
type cmpWriter struct {
	want []byte
	n    int
	copy []byte
}

func (c *cmpWriter) Write(p []byte) (int, error) {
	if c.copy == nil && c.n+len(p) <= len(c.want) && bytes.Equal(c.want[c.n:c.n+len(p)], p) {
		c.n += len(p)
		return len(p), nil
	}
	if c.copy == nil {
		c.copy = append([]byte(nil), c.want[:c.n]...)
	}
	c.copy = append(c.copy, p...)
	c.n += len(p)
	return len(p), nil
}

// nextDelimiter is where the first delimiter line of boundary at or after from starts
// in b: "--boundary" at the start of a line, then white space and the line end (RFC
// 2046 section 5.1.1), or "--" for a close delimiter (closing). -1 if there is none.
func nextDelimiter(b []byte, from int, boundary string, closing bool) int {
	delim := "--" + boundary
	for i := from; i < len(b); {
		n := bytes.Index(b[i:], []byte(delim))
		if n < 0 {
			return -1
		}
		at := i + n
		i = at + len(delim)
		if at > 0 && b[at-1] != '\n' {
			continue
		}
		rest := b[i:]
		isClose := bytes.HasPrefix(rest, []byte("--"))
		if isClose {
			rest = rest[2:]
		}
		if isClose != closing {
			continue
		}
		rest = bytes.TrimLeft(rest, " \t")
		if len(rest) == 0 || rest[0] == '\r' || rest[0] == '\n' {
			return at
		}
	}
	return -1
}

// lineEnd is where the line that holds b[i] ends, its line break included.
func lineEnd(b []byte, i int) int {
	if n := bytes.IndexByte(b[i:], '\n'); n >= 0 {
		return i + n + 1
	}
	return len(b)
}

// maxGuesses bounds the candidate lines guessBoundary keeps.
const maxGuesses = 20

// guessBoundary finds the boundary a multipart body uses when its parameter is
// missing or wrong, in one pass over its lines: the first "--x" line followed by a
// header field, else the first one that recurs (as "--x" or "--x--"). "" if none.
func guessBoundary(body []byte) string {
	seen := map[string]int{} // candidate: times seen
	var order []string
	for i := 0; i < len(body); {
		next := lineEnd(body, i)
		line := bytes.TrimRight(body[i:next], " \t\r\n")
		if len(line) > 2 && len(line) <= 72 && line[0] == '-' && line[1] == '-' && !bytes.ContainsAny(line, " \t") {
			cand := string(bytes.TrimSuffix(line[2:], []byte("--")))
			if n, ok := seen[cand]; ok {
				seen[cand] = n + 1
			} else if strings.Trim(cand, "-") != "" && len(order) < maxGuesses {
				if next < len(body) && isField(bytes.TrimRight(body[next:lineEnd(body, next)], "\r\n")) {
					return cand
				}
				seen[cand] = 1
				order = append(order, cand)
			}
		}
		i = next
	}
	for _, c := range order {
		if seen[c] > 1 {
			return c
		}
	}
	return ""
}
