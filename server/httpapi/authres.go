package httpapi

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// authDetail is one result of our Authentication-Results header: the method, its
// result, and its properties (smtp.mailfrom, header.d, header.s, policy.dmarc, ...).
type authDetail struct {
	Method     string            `json:"method"`
	Result     string            `json:"result"`
	Reason     string            `json:"reason,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
	Comment    string            `json:"comment,omitempty"`
}

// authDetails reads the results of the first Authentication-Results field that
// claims authservID (ours: the receiver prepends it and removes forged ones) with
// go-msgauth's authres.Parse, given the value as authresInput prepares it.
func authDetails(headers []headerJSON, authservID string) []authDetail {
	for _, h := range headers {
		if !strings.EqualFold(h.Name, "Authentication-Results") {
			continue
		}
		value := authresInput(h.Value)
		id, results, _ := authres.Parse(value) // on a malformed resinfo: the results before it
		if !strings.EqualFold(id, authservID) {
			continue
		}
		details := []authDetail{}
		for _, r := range results {
			g, ok := r.(*authres.GenericResult)
			if !ok || !strings.HasPrefix(g.Method, methodMark) {
				continue // "none"; every other method came marked
			}
			d := authDetail{Method: strings.TrimPrefix(g.Method, methodMark), Result: string(g.Value)}
			for k, v := range g.Params {
				v = unescapeQuoted(v)
				switch k {
				case "reason":
					d.Reason = v
					continue
				case commentKey:
					d.Comment = strings.TrimSpace(v)
					continue
				}
				if d.Properties == nil {
					d.Properties = map[string]string{}
				}
				d.Properties[k] = v
			}
			details = append(details, d)
		}
		return details
	}
	return []authDetail{}
}

// methodMark is put before each method so that authres.Parse returns every result as
// a GenericResult with all its properties: its results for spf, dkim and dmarc keep
// only some (DKIMResult has no header.s or header.b, DMARCResult no policy.dmarc).
const methodMark = "x-mayfly-"

// commentKey is the property a resinfo's comment is handed to authres.Parse as; the
// last comment of a resinfo is its comment.
const commentKey = methodMark + "comment"

// authresInput rewrites an Authentication-Results value (RFC 8601 section 2.2) into
// what authres.Parse (go-msgauth v0.7.0) reads whole. That parser splits resinfos at
// every ";" and properties at white space and knows no comments: here a comment
// becomes a quoted commentKey property of its resinfo (the authserv-id's is
// dropped), white space, ";", "%" and escapes inside quoted strings are %-escaped
// (unescapeQuoted undoes it), and each method is marked with methodMark. The patch
// upstream would be a parser that reads quoted strings and CFWS, and a Params map
// kept on every result type.
func authresInput(v string) string {
	var b strings.Builder
	var comment strings.Builder
	depth, quoted, resinfo, methodNext := 0, false, 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case depth > 0:
			switch {
			case c == '\\' && i+1 < len(v):
				i++
				comment.WriteByte(v[i])
				continue
			case c == '(':
				depth++
			case c == ')':
				depth--
			}
			if depth == 0 {
				b.WriteByte(' ')
				if resinfo > 0 {
					b.WriteString(commentKey + `="`)
					for _, c := range []byte(comment.String()) {
						escapeByte(&b, c)
					}
					b.WriteString(`" `)
				}
			} else {
				comment.WriteByte(c)
			}
		case quoted:
			switch {
			case c == '\\' && i+1 < len(v):
				i++
				escapeByte(&b, v[i])
			case c == '"':
				quoted = false
				b.WriteByte(c)
			default:
				escapeByte(&b, c)
			}
		case c == '(':
			depth = 1
			comment.Reset()
		case c == '"':
			quoted = true
			b.WriteByte(c)
		case c == ';':
			resinfo++
			methodNext = true
			b.WriteByte(c)
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			b.WriteByte(' ')
		default:
			if methodNext {
				methodNext = false
				if rest := v[i:]; strings.IndexByte(rest[:min(len(rest), strings.IndexAny(rest+";", " \t\r\n;("))], '=') > 0 {
					b.WriteString(methodMark)
				}
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

// escapeByte writes a byte of a quoted string so that it splits nothing.
func escapeByte(b *strings.Builder, c byte) {
	switch c {
	case ' ', '\t', ';', '%', '"', '\\', '\r', '\n', '(', ')':
		b.WriteByte('%')
		b.WriteByte("0123456789ABCDEF"[c>>4])
		b.WriteByte("0123456789ABCDEF"[c&15])
	default:
		b.WriteByte(c)
	}
}

// unescapeQuoted gives back the text of a value authresInput escaped; an unquoted
// value is as written.
func unescapeQuoted(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return strings.Trim(v, `"`)
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			b.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
			i += 2
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
