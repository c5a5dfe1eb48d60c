package parse

import (
	"errors"
	"strings"

	"golang.org/x/net/html"
)

// maxToken bounds what the HTML tokenizer buffers for one token. x/net/html keeps a
// whole token in memory and doubles its buffer as it grows, so 10 MiB of "<" (one
// text token: no "<" there starts a tag) cost 64 MiB per pass; a stranger chooses
// the input, so the buffer must not follow it.
var maxToken = 64 << 10 // a variable for the fuzz test, which makes it small

// tokenizer is html.Tokenizer over a string with its buffer bounded by maxToken. A
// text run longer than that comes out as several text tokens; a tag, comment or
// attribute longer than that is dropped up to its closing '>'. A browser would show
// the same text; what it would make of a 64 KiB tag name nobody needs to know.
type tokenizer struct {
	*html.Tokenizer
	s   string
	pos int // where in s the current Tokenizer started
	r   strings.Reader
}

func newTokenizer(s string) *tokenizer {
	t := &tokenizer{s: s}
	t.restart(0)
	return t
}

func (t *tokenizer) restart(at int) {
	t.pos = at
	t.r.Reset(t.s[at:])
	t.Tokenizer = html.NewTokenizer(&t.r)
	t.Tokenizer.SetMaxBuf(maxToken)
}

// Next is html.Tokenizer.Next, going on past a token over maxToken.
func (t *tokenizer) Next() html.TokenType {
	for {
		tt := t.Tokenizer.Next()
		if tt != html.ErrorToken || !errors.Is(t.Tokenizer.Err(), html.ErrBufferExceeded) {
			return tt
		}
		// Where the tokenizer stopped reading: what it took from the reader minus what
		// it holds unread. A text token was returned before the error; a partial tag
		// is what Raw still shows, and is skipped to its end.
		at := t.pos + int(t.r.Size()) - t.r.Len() - len(t.Tokenizer.Buffered())
		if len(t.Tokenizer.Raw()) > 0 {
			if gt := strings.IndexByte(t.s[at:], '>'); gt >= 0 {
				at += gt + 1
			} else {
				at = len(t.s)
			}
		}
		if at >= len(t.s) {
			return html.ErrorToken
		}
		t.restart(at)
	}
}
