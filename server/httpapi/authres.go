package httpapi

import (
	"strings"
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
// claims authservID: ours, since the receiver prepends it and removes forged ones.
// The field is ours, so a small reader of RFC 8601's grammar is enough: resinfos
// separated by ";", each "method=result" then "reason=..." and "ptype.property=value",
// values possibly quoted, comments in parentheses.
func authDetails(headers []headerJSON, authservID string) []authDetail {
	for _, h := range headers {
		if !strings.EqualFold(h.Name, "Authentication-Results") {
			continue
		}
		parts := splitOutside(h.Value, ';')
		if len(parts) == 0 || !strings.EqualFold(strings.TrimSpace(firstWord(parts[0])), authservID) {
			continue
		}
		details := []authDetail{}
		for _, p := range parts[1:] {
			if d, ok := parseResinfo(p); ok {
				details = append(details, d)
			}
		}
		return details
	}
	return []authDetail{}
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t("); i >= 0 {
		return s[:i]
	}
	return s
}

func parseResinfo(s string) (authDetail, bool) {
	var d authDetail
	for i, tok := range splitOutside(s, ' ') {
		if strings.HasPrefix(tok, "(") {
			d.Comment = strings.TrimSpace(strings.Trim(tok, "()"))
			continue
		}
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		switch {
		case i == 0:
			d.Method, d.Result = strings.ToLower(k), strings.ToLower(v)
		case strings.EqualFold(k, "reason"):
			d.Reason = v
		default:
			if d.Properties == nil {
				d.Properties = map[string]string{}
			}
			d.Properties[strings.ToLower(k)] = v
		}
	}
	return d, d.Method != ""
}

// splitOutside splits s at sep where sep stands outside quotes and parentheses,
// dropping empty pieces; folding whitespace counts as a space.
func splitOutside(s string, sep byte) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	flush := func(end int) {
		if p := strings.TrimSpace(s[start:end]); p != "" {
			out = append(out, p)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if sep == ' ' && (c == '\t' || c == '\r' || c == '\n') {
			c = ' '
		}
		switch {
		case c == '\\' && quoted:
			i++
		case c == '"' && depth == 0:
			quoted = !quoted
		case c == '(' && !quoted:
			depth++
		case c == ')' && !quoted && depth > 0:
			depth--
		case c == sep && !quoted && depth == 0:
			flush(i)
			start = i + 1
		}
	}
	flush(len(s))
	return out
}
