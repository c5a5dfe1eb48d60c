package mailauth

import (
	"bytes"
	"strings"
)

// field is one header field of a raw message, located by byte offsets so that
// removing it leaves every other byte as received.
type field struct {
	name       string // as written, trailing blanks removed; "" for a line without a colon
	start, end int    // msg[start:end] is the whole field, folded lines and line end included
	value      int    // msg[value:end] is the raw value, after the colon
}

// headerFields splits the header section of msg into fields (RFC 5322 section
// 2.2): a line starting with a blank continues the field before it (2.2.3), and
// the first empty line ends the section. It accepts bare LF line ends and lines
// that are not fields, because hostile mail has both.
func headerFields(msg []byte) []field {
	var fields []field
	pos := 0
	for pos < len(msg) {
		end := len(msg)
		if i := bytes.IndexByte(msg[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := msg[pos:end]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the empty line before the body
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1].end = end
		} else {
			f := field{start: pos, end: end, value: end}
			if c := bytes.IndexByte(line, ':'); c >= 0 {
				f.name = string(bytes.TrimRight(line[:c], " \t"))
				f.value = pos + c + 1
			}
			fields = append(fields, f)
		}
		pos = end
	}
	return fields
}

// headerFieldsNamed is headerFields less every field not named name (compared
// case-insensitively), without allocating for the others: the receiver looks for two
// names that most mail does not have (its own Authentication-Results, DKIM-Signature).
func headerFieldsNamed(msg []byte, name string) []field {
	var fields []field
	kept := false // the field of the line before is the last of fields
	pos := 0
	for pos < len(msg) {
		end := len(msg)
		if i := bytes.IndexByte(msg[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := msg[pos:end]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the empty line before the body
		}
		switch {
		case line[0] == ' ' || line[0] == '\t':
			if kept {
				fields[len(fields)-1].end = end
			}
		default:
			c := bytes.IndexByte(line, ':')
			kept = c >= 0 && strings.EqualFold(string(bytes.TrimRight(line[:c], " \t")), name)
			if kept {
				fields = append(fields, field{name: name, start: pos, end: end, value: pos + c + 1})
			}
		}
		pos = end
	}
	return fields
}

// unfold returns a field's value as one line (RFC 5322 section 2.2.3).
func unfold(raw []byte) string {
	s := string(bytes.TrimSpace(raw))
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(s)
	}
	return s
}

// StripOwn returns msg without the Authentication-Results header fields that
// claim authservID. RFC 8601 section 5: a border MTA removes those arriving from
// outside, or a sender could forge our verdicts. The authserv-id is compared
// case-insensitively, after any comments before it. msg itself is returned, not a
// copy, when there is nothing to remove.
func StripOwn(msg []byte, authservID string) []byte {
	if authservID == "" {
		return msg
	}
	var drop []field
	for _, f := range headerFieldsNamed(msg, "Authentication-Results") {
		if strings.EqualFold(authservIDOf(unfold(msg[f.value:f.end])), authservID) {
			drop = append(drop, f)
		}
	}
	if len(drop) == 0 {
		return msg
	}
	out := make([]byte, 0, len(msg))
	pos := 0
	for _, f := range drop {
		out = append(out, msg[pos:f.start]...)
		pos = f.end
	}
	return append(out, msg[pos:]...)
}

// authservIDOf returns the authserv-id at the start of an Authentication-Results
// value: RFC 8601 section 2.2, [CFWS] authserv-id, where authserv-id is a
// token or a quoted-string.
func authservIDOf(v string) string {
	v = skipCFWS(v)
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(c)
			}
		}
		return "" // unterminated: not a valid authserv-id, so not ours
	}
	if i := strings.IndexAny(v, " \t;()"); i >= 0 {
		v = v[:i]
	}
	return v
}

// skipCFWS drops leading blanks and comments, which nest (RFC 5322 section 3.2.2).
func skipCFWS(v string) string {
	depth := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0 && c != ' ' && c != '\t':
			return v[i:]
		}
	}
	return ""
}
