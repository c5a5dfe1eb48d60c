package pop3d

import (
	"bufio"
	"bytes"
)

// wireSize returns the octets that writeMessage sends of raw, byte-stuffing and the
// terminating line left out, which is how RFC 1939 section 11 has STAT and LIST count
// them. Mail arrives with CRLF line ends and the receiver keeps it that way, so this is
// nearly always len(raw); a bare LF is sent as CRLF and a last line without an end gets
// one, and each of those counts here too, or a client that reads exactly the octets LIST
// promised would lose the end of a message or wait for more.
func wireSize(raw []byte) int64 {
	n := int64(len(raw))
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			break
		}
		j += i
		if j == 0 || raw[j-1] != '\r' {
			n++
		}
		i = j + 1
	}
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		n += 2
	}
	return n
}

// writeMessage writes raw as a multi-line response (RFC 1939 section 3): each line ends
// in CRLF, a line that starts with "." gets another in front, and a line of one "."
// ends the response. A bare LF ends a line too, so no line of the message can pass for
// the end whatever way a client splits lines. bodyLines < 0 writes the whole message;
// otherwise the header, the empty line after it and that many lines of the body (TOP).
// The header is raw[:headerEnd], where every view splits the message (mailparse's
// Message.HeaderEnd); a message that has no empty line there gets one, so that a
// client reads the header TOP sends as the header IMAP and the API show.
// It returns the octets written as wireSize counts them.
//
// Runs of lines that go out as stored are written in one piece: for mail as the
// receiver stores it, that is all but the lines that start with a dot.
func writeMessage(w *bufio.Writer, raw []byte, headerEnd, bodyLines int) int64 {
	var n int64
	inBody := false
	done, i := 0, 0 // raw[:done] is written; the line at i is next
	for i < len(raw) {
		if !inBody && i >= headerEnd && bodyLines >= 0 {
			inBody = true
			if !endsBlank(raw[:headerEnd]) {
				w.Write(raw[done:i])
				w.WriteString("\r\n")
				done, n = i, n+2
			}
		}
		if inBody {
			if bodyLines == 0 {
				break
			}
			if bodyLines > 0 {
				bodyLines--
			}
		}
		// The line's content is raw[i:end]; the next line starts at next.
		end, next, crlf := len(raw), len(raw), false
		if j := bytes.IndexByte(raw[i:], '\n'); j >= 0 {
			end, next = i+j, i+j+1
			if end > i && raw[end-1] == '\r' {
				end, crlf = end-1, true
			}
		}
		dot := end > i && raw[i] == '.'
		if dot || !crlf {
			w.Write(raw[done:i])
			if dot {
				w.WriteByte('.')
			}
			done = i
			if !crlf {
				w.Write(raw[i:end])
				w.WriteString("\r\n")
				done = next
			}
		}
		n += int64(end-i) + 2
		i = next
	}
	w.Write(raw[done:i])
	if !inBody && bodyLines >= 0 && !endsBlank(raw[:headerEnd]) {
		w.WriteString("\r\n") // a message that is all header
		n += 2
	}
	w.WriteString(".\r\n")
	return n
}

// endsBlank reports whether a header block ends with its empty line.
func endsBlank(h []byte) bool {
	h, ok := bytes.CutSuffix(h, []byte("\n"))
	if !ok {
		return false
	}
	h = bytes.TrimSuffix(h, []byte("\r"))
	return len(h) == 0 || h[len(h)-1] == '\n'
}
