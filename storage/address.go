package storage

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// ErrBadAddress is returned for a string that is not an address Mayfly can hold.
var ErrBadAddress = errors.New("storage: bad address")

// ParseAddress turns a recipient as written ("Box+Tag@Example.ORG") into the inbox it
// belongs to ("box@example.org") and its tag ("Tag"). Domain and local part are matched
// case-insensitively; the tag keeps the sender's spelling so it reads as written.
// It accepts whatever an SMTP parser let through (quoted local parts included) and
// rejects only what cannot be an inbox: no "@", an empty or over-long part.
func ParseAddress(s string) (inbox, tag string, err error) {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", "", ErrBadAddress
	}
	// RFC 6531: an address beyond ASCII is UTF-8. Other bytes would turn into U+FFFD
	// when lowered, and two different recipients into one inbox.
	if !utf8.ValidString(s) {
		return "", "", ErrBadAddress
	}
	local, domain := s[:at], lower(s[at+1:])
	// RFC 5321 section 4.5.3.1: 64 octets of local part, 255 of domain; counted after
	// lowering, which can lengthen a string ("İ" is two bytes, "i̇" three), so that the
	// inbox itself always parses back.
	if len(lower(local)) > 64 || len(domain) > 255 {
		return "", "", ErrBadAddress
	}
	if plus := strings.IndexByte(local, '+'); plus > 0 {
		local, tag = local[:plus], local[plus+1:]
	}
	return lower(local) + "@" + domain, tag, nil
}

// lower is strings.ToLower without the allocation when s is already lower case,
// which it nearly always is on the receive path.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return strings.ToLower(s)
		}
	}
	return s
}

// Domain returns the domain of a normalized inbox.
func Domain(inbox string) string {
	return inbox[strings.LastIndexByte(inbox, '@')+1:]
}
