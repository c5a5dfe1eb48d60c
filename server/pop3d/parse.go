package pop3d

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"github.com/mayfly-mail/mayfly/storage"
)

// Line limits. RFC 2449 section 4 caps a command line at 255 octets, CRLF included, but
// an address may be 64+1+255 octets (RFC 5321 section 4.5.3.1) and USER carries a whole
// one, so commands get twice that. AUTH lines carry base64 of two addresses and a
// password (RFC 5034 section 4 lets them exceed 255 octets), so they get more again.
const (
	maxCommandLine = 512
	maxAuthLine    = 2048
	// maxArgs is more than any POP3 command takes (TOP takes two): parseCommand keeps
	// no more, so a line of spaces does not become a thousand arguments.
	maxArgs = 3
)

var (
	errEmpty   = errors.New("empty command")
	errSyntax  = errors.New("malformed command")
	errPlain   = errors.New("malformed PLAIN response")
	errAuthzid = errors.New("authorization identity differs from the user")
)

// command is one parsed command line.
type command struct {
	name string   // the keyword in upper case
	args []string // the space-separated arguments, at most maxArgs
	rest string   // everything after the keyword and its space: PASS takes it whole
}

// parseCommand parses one command line, its CRLF removed. Keywords are matched
// case-insensitively (RFC 1939 section 3). Control characters are refused outright:
// no command needs them, and a NUL or a bare CR in a user name would only reach
// places that do not expect it.
func parseCommand(line string) (command, error) {
	if line == "" {
		return command{}, errEmpty
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c == 0x7f {
			return command{}, errSyntax
		}
	}
	name, rest, _ := strings.Cut(line, " ")
	if name == "" || len(name) > 8 {
		return command{}, errSyntax
	}
	for i := 0; i < len(name); i++ {
		if c := name[i] | 0x20; c < 'a' || c > 'z' {
			return command{}, errSyntax
		}
	}
	c := command{name: strings.ToUpper(name), rest: rest}
	// RFC 1939 separates arguments by one space; clients that send two, or a trailing
	// one, are common enough and harmless to forgive.
	for f := range strings.SplitSeq(rest, " ") {
		if f == "" {
			continue
		}
		if len(c.args) == maxArgs {
			break
		}
		c.args = append(c.args, f)
	}
	return c, nil
}

// parseNumber parses a message number or a line count: decimal digits only, no sign,
// at most 2^31-1, so that it fits an int on every platform.
func parseNumber(s string) (int, bool) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// decodePlain decodes a SASL PLAIN response (RFC 4616): base64 of
// authzid NUL authcid NUL passwd. It returns the user to log in as: the authcid, which
// an authzid, when given, must name too, for acting as another user is not offered.
func decodePlain(resp string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		// Some clients leave out the padding; the meaning is the same.
		if b, err = base64.RawStdEncoding.DecodeString(resp); err != nil {
			return "", "", errPlain
		}
	}
	authz, rest, ok := strings.Cut(string(b), "\x00")
	if !ok {
		return "", "", errPlain
	}
	authc, pass, ok := strings.Cut(rest, "\x00")
	if !ok || authc == "" || pass == "" || strings.IndexByte(pass, 0) >= 0 {
		return "", "", errPlain
	}
	if authz != "" && authz != authc {
		a, _, err1 := storage.ParseAddress(authz)
		c, _, err2 := storage.ParseAddress(authc)
		if err1 != nil || err2 != nil || a != c {
			return "", "", errAuthzid
		}
	}
	return authc, pass, nil
}
