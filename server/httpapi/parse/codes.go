package parse

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Codes returns the one-time codes of a message, looking in the subject, then the
// text body, then the HTML body rendered as text; each code once, in order of
// appearance. There is usually none or one.
//
// A code is a token of 4 to 10 digits ("482917"; "482 917" and "482-917" come back as
// "482917"; "4 8 2 9 1 7", one digit a box, too), or of 4 to 10 upper-case letters and
// digits with at least one of each ("X7KQ2M"; hyphenated ones, "AB12-CD34", come back
// as written, since the hyphen is part of what such services print and accept). It
// counts only when a keyword labels it: "code", "verification", "OTP", "PIN",
// "验证码", ... in the same sentence within a few words, or on the line before it
// ("Your code:" then the code alone on the next line). Numbers that a nearer word
// claims for something else (order, invoice, tracking, phone, zip code, promo code),
// amounts, dates, times, phone numbers and anything inside a URL or e-mail address
// are not codes; a year-like number needs the keyword right before it ("Code: 2026").
func Codes(subject, text, html string) []string {
	var rendered string
	if html != "" {
		rendered, _ = renderHTML(html)
	}
	return codes(subject, text, rendered)
}

func codes(sources ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range sources {
		for _, c := range findCodes(s) {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// Windows of the code finder, in words.
const (
	nearWords   = 6  // a keyword this close labels a code
	strongWords = 12 // a strong keyword ("verification", "OTP") reaches this far
	directWords = 3  // "Code: 2026", "your code is 2026"
)

type tokKind uint8

const (
	tWord    tokKind = iota // a run of letters and digits of a script written with spaces
	tCJK                    // a run of Han, Kana or Hangul
	tOpaque                 // a URL or e-mail address: never a code, never a keyword
	tSpace                  // a run of white space within a line
	tNewline                // a line break
	tPunct                  // any other character
)

type token struct {
	kind       tokKind
	start, end int32
	word       int32 // index in scanner.words, for word-like tokens
}

// word is a word-like token with where it stands and what it says.
type word struct {
	tok       int
	seg, line int32
	labelled  bool  // back and fwd are known: labels are looked up only near candidates
	back, fwd label // the label that counts before a number, and after it (they differ in CJK runs)
	cont      bool  // a digit group continuing a number: "299" in "1,299.00"
}

type line struct {
	first, last int  // word indices; -1 when the line has no word
	colon       bool // the line ends with a colon
}

// scanner is one text cut into tokens and words.
type scanner struct {
	s        string
	toks     []token
	words    []word
	lines    []line
	promoSeg map[int32]bool // sentence to whether it is about a discount
}

// candidate is a token or tokens that look like a code.
type candidate struct {
	value         string
	firstTok      int
	lastTok       int
	firstW, lastW int
	yearLike      bool
}

// maxScan bounds the text searched for codes: a code stands near the top of a mail,
// and the scanner's offsets are 32 bits.
const maxScan = 4 << 20

func findCodes(src string) []string {
	if len(src) > maxScan {
		src = strings.ToValidUTF8(src[:maxScan], "")
	}
	s := normalizeForCodes(src)
	if !strings.ContainsAny(s, "0123456789") {
		return nil // every code has a digit
	}
	sc := &scanner{s: s}
	sc.tokenize()
	sc.split()
	var out []string
	for _, c := range sc.candidates() {
		if sc.accept(c) {
			out = append(out, c.value) // codes() removes duplicates
		}
	}
	return out
}

// normalizeForCodes folds full-width letters, digits and colons to ASCII
// ("４８２９１７"), drops invisible characters that split words, and turns CRLF and CR
// into LF.
func normalizeForCodes(s string) string {
	var sb strings.Builder
	start := 0 // where the stretch not yet copied begins
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf && c != '\r' {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		var repl string
		switch {
		case r == '\r':
			if i+1 >= len(s) || s[i+1] != '\n' {
				repl = "\n"
			}
		case invisible(r):
		case r >= '０' && r <= '９', r >= 'Ａ' && r <= 'Ｚ', r >= 'ａ' && r <= 'ｚ', r == '：':
			// Full-width punctuation other than the colon stays: "，" after a code
			// ends a clause, while "," would join two numbers.
			repl = string(r - 0xfee0)
		case r == utf8.RuneError && size == 1:
			repl = " "
		default:
			i += size
			continue
		}
		if sb.Cap() == 0 {
			sb.Grow(len(s))
		}
		sb.WriteString(s[start:i])
		sb.WriteString(repl)
		i += size
		start = i
	}
	if sb.Cap() == 0 {
		return s
	}
	sb.WriteString(s[start:])
	return sb.String()
}

func isCJK(r rune) bool {
	if r < 0x3000 {
		return false
	}
	return r == '\u30fc' || r == '\u3005' ||
		unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// opaqueSpans returns the URLs and e-mail addresses of s, in order: their digits are
// tokens, ids and message-ids, never codes.
func opaqueSpans(s string) []span {
	var spans []span
	for _, m := range textURLs(s) {
		spans = append(spans, span{m.start, m.end})
	}
	for i := 0; i < len(s); {
		at := strings.IndexByte(s[i:], '@')
		if at < 0 {
			break
		}
		at += i
		i = at + 1
		start := at
		for start > 0 {
			r, size := utf8.DecodeLastRuneInString(s[:start])
			if !(isWordRune(r) || strings.ContainsRune("._%+-*'", r)) || isCJK(r) {
				break
			}
			start -= size
		}
		end := at + 1
		for end < len(s) {
			r, size := utf8.DecodeRuneInString(s[end:])
			if !(isWordRune(r) || r == '.' || r == '-') || isCJK(r) {
				break
			}
			end += size
		}
		if start < at && end > at+1 {
			spans = append(spans, span{start, end})
			i = end
		}
	}
	// Sort by start (two short lists: insertion sort) and merge overlaps.
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j].start < spans[j-1].start; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	merged := spans[:0]
	for _, sp := range spans {
		if n := len(merged); n > 0 && sp.start < merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, sp.end)
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// span is a byte range in a string.
type span struct{ start, end int }

func (sc *scanner) tokenize() {
	s := sc.s
	spans := opaqueSpans(s)
	sp := 0
	sc.toks = make([]token, 0, len(s)/2+8)
	add := func(k tokKind, start, end int) { sc.toks = append(sc.toks, token{k, int32(start), int32(end), -1}) }
	for i := 0; i < len(s); {
		if sp < len(spans) && i >= spans[sp].start {
			if i < spans[sp].end {
				add(tOpaque, i, spans[sp].end)
				i = spans[sp].end
			}
			sp++
			continue
		}
		limit := len(s)
		if sp < len(spans) {
			limit = spans[sp].start
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		run := func(in func(rune) bool) int {
			j := i + size
			for j < limit {
				r, n := utf8.DecodeRuneInString(s[j:])
				if !in(r) {
					break
				}
				j += n
			}
			return j
		}
		switch {
		case r == '\n':
			add(tNewline, i, i+1)
			i++
		case unicode.IsSpace(r):
			j := run(func(r rune) bool { return r != '\n' && unicode.IsSpace(r) })
			add(tSpace, i, j)
			i = j
		case isCJK(r):
			j := run(isCJK)
			add(tCJK, i, j)
			i = j
		case isWordRune(r):
			j := run(func(r rune) bool { return isWordRune(r) && !isCJK(r) })
			add(tWord, i, j)
			i = j
		default:
			add(tPunct, i, i+size)
			i += size
		}
	}
}

func (sc *scanner) text(k int) string { return sc.s[sc.toks[k].start:sc.toks[k].end] }

func (sc *scanner) isPunct(k int, chars string) bool {
	return k >= 0 && k < len(sc.toks) && sc.toks[k].kind == tPunct && strings.Contains(chars, sc.text(k))
}

// split finds the words, sentences and lines of the text.
func (sc *scanner) split() {
	sc.words = make([]word, 0, len(sc.toks)/2+1)
	seg := 0
	cur := line{first: -1, last: -1}
	lastSolid := tNewline // kind of the last token that is not white space
	lastWordText := ""
	for k, t := range sc.toks {
		switch t.kind {
		case tNewline:
			if lastSolid == tNewline {
				seg++ // a blank line ends a paragraph
			}
			sc.lines = append(sc.lines, cur)
			cur = line{first: -1, last: -1}
			lastSolid = tNewline
			continue
		case tSpace:
			continue
		case tPunct:
			p := sc.text(k)
			cur.colon = p == ":"
			if strings.Contains(".!?。！？", p) && (k+1 == len(sc.toks) || sc.toks[k+1].kind == tSpace || sc.toks[k+1].kind == tNewline) &&
				!(p == "." && isAbbreviation(lastWordText)) {
				seg++
			}
		default:
			cur.colon = false
			w := word{tok: k, seg: int32(seg), line: int32(len(sc.lines))}
			w.cont = t.kind == tWord && isDigits(sc.text(k)) && sc.isPunct(k-1, ".,") && k >= 2 &&
				sc.toks[k-2].kind == tWord && isDigits(sc.text(k-2))
			if cur.first < 0 {
				cur.first = len(sc.words)
			}
			cur.last = len(sc.words)
			sc.toks[k].word = int32(len(sc.words))
			sc.words = append(sc.words, w)
			lastWordText = sc.text(k)
		}
		lastSolid = t.kind
	}
	sc.lines = append(sc.lines, cur)
}

// labels returns what word i says before and after a number.
func (sc *scanner) labels(i int) (back, fwd label) {
	w := &sc.words[i]
	if !w.labelled {
		w.back, w.fwd = sc.wordLabel(i)
		w.labelled = true
	}
	return w.back, w.fwd
}

func (sc *scanner) back(i int) label { l, _ := sc.labels(i); return l }

func (sc *scanner) fwd(i int) label { _, l := sc.labels(i); return l }

// isAbbreviation reports a short word before a dot that does not end the sentence:
// "Nr. 12345", "z.B.", "No."
func isAbbreviation(w string) bool {
	if w == "" || utf8.RuneCountInString(w) > 3 {
		return false
	}
	for _, r := range w {
		if !unicode.IsLetter(r) {
			return false
		}
	}
	return true
}

// wordLabel says what word i says about a number next to it.
func (sc *scanner) wordLabel(i int) (back, fwd label) {
	w := sc.words[i]
	switch sc.toks[w.tok].kind {
	case tCJK:
		return cjkLabel(sc.text(w.tok))
	case tOpaque:
		return noLabel, noLabel
	}
	lw := strings.ToLower(sc.text(w.tok))
	l := wordLabels[lw]
	prev := sc.adjacentWord(i, -1)
	switch {
	case codeNouns[lw]:
		if m, ok := codeBefore[prev]; ok {
			l = m
		} else if wordLabels[prev] == strong {
			l = strong // "verification code"
		}
		next := sc.adjacentWord(i, 1)
		if codeLinks[next] {
			next = sc.adjacentWord(i+1, 1) // "code de confirmation"
		}
		if m, ok := codeAfter[next]; ok {
			l = m
		}
	case lw == "time" && prev == "one", lw == "factor" && prev == "two", lw == "step" && (prev == "2" || prev == "two"):
		l = strong // "one-time", "two-factor", "2-step"
	case (lw == "no" || lw == "n") && sc.isPunct(w.tok+1, ".°º"):
		l = anti // "No. 12345"
	case lw == "order" && prev == "in":
		l = noLabel // "in order to"
	}
	return l, l
}

// adjacentWord returns the lower-case word next to word i (dir -1 or 1) when only
// white space or one hyphen stands between them on the same line, else "".
func (sc *scanner) adjacentWord(i, dir int) string {
	j := i + dir
	if j < 0 || j >= len(sc.words) || sc.words[j].line != sc.words[i].line {
		return ""
	}
	lo, hi := sc.words[min(i, j)].tok, sc.words[max(i, j)].tok
	hyphens := 0
	for k := lo + 1; k < hi; k++ {
		switch {
		case sc.toks[k].kind == tSpace:
		case sc.isPunct(k, "-"):
			hyphens++
		default:
			return ""
		}
	}
	if hyphens > 1 {
		return ""
	}
	return strings.ToLower(sc.text(sc.words[j].tok))
}

// cjkLabel finds keywords inside a run of CJK text. Before a number the keyword that
// ends last counts, after a number the one that starts first; of two matches ending
// (or starting) at the same place the longer wins, so "クーポンコード" is a coupon.
func cjkLabel(run string) (back, fwd label) {
	bestEnd, bestEndLen := -1, 0
	bestStart, bestStartLen := len(run)+1, 0
	for _, kw := range cjkLabels {
		if i := strings.LastIndex(run, kw.word); i >= 0 {
			if end := i + len(kw.word); end > bestEnd || end == bestEnd && len(kw.word) > bestEndLen {
				bestEnd, bestEndLen, back = end, len(kw.word), kw.label
			}
			first := strings.Index(run, kw.word)
			if first < bestStart || first == bestStart && len(kw.word) > bestStartLen {
				bestStart, bestStartLen, fwd = first, len(kw.word), kw.label
			}
		}
	}
	return back, fwd
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isUpperAlnum reports ASCII upper-case letters and digits only.
func isUpperAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'A' <= s[i] && s[i] <= 'Z') {
			return false
		}
	}
	return true
}

func hasDigitAndLetter(s string) bool {
	return strings.ContainsAny(s, "0123456789") && strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

// isSingleSpace reports a white-space token of exactly one space-like character (not
// a tab, which separates columns).
func (sc *scanner) isSingleSpace(k int) bool {
	if k < 0 || k >= len(sc.toks) || sc.toks[k].kind != tSpace {
		return false
	}
	r, n := utf8.DecodeRuneInString(sc.text(k))
	return n == len(sc.text(k)) && r != '\t'
}

// asciiWord returns token k when it is a word of ASCII letters and digits.
func (sc *scanner) asciiWord(k int) (string, bool) {
	if k < 0 || k >= len(sc.toks) || sc.toks[k].kind != tWord {
		return "", false
	}
	t := sc.text(k)
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", false
		}
	}
	return t, true
}

// connected reports whether token k (the edge of a candidate) joins another number
// through a separator: a date, a time, a price, a version, a phone number in groups.
// dir is -1 to look left, 1 to look right.
func (sc *scanner) connected(k, dir int, digits bool) bool {
	sep := k + dir
	other := k + 2*dir
	w, ok := sc.asciiWord(other)
	if !ok || !hasDigit(w) {
		return false
	}
	if sc.isPunct(sep, ".,/:-_") {
		return true
	}
	return digits && sc.isSingleSpace(sep)
}

// candidates finds the tokens shaped like codes, joining groups ("482 917",
// "AB12-CD34", "4 8 2 9 1 7") and skipping numbers that belong to longer ones.
func (sc *scanner) candidates() []candidate {
	var out []candidate
	for k := 0; k < len(sc.toks); k++ {
		t, ok := sc.asciiWord(k)
		if !ok {
			continue
		}
		c, last, ok := sc.shape(k, t)
		if ok {
			c.firstTok, c.lastTok = k, last
			c.firstW, c.lastW = int(sc.toks[k].word), int(sc.toks[last].word)
			out = append(out, c)
		}
		k = last
	}
	return out
}

// shape classifies the word at token k: a code shape or not, and the last token the
// shape (or the longer number it belongs to) covers.
func (sc *scanner) shape(k int, t string) (candidate, int, bool) {
	digits := isDigits(t)
	// One digit a box: "4 8 2 9 1 7".
	if digits && len(t) == 1 {
		last, n := k, 1
		var b strings.Builder
		b.WriteString(t)
		for {
			d, ok := sc.asciiWord(last + 2)
			if !ok || len(d) != 1 || !isDigits(d) || !sc.isSingleSpace(last+1) {
				break
			}
			b.WriteString(d)
			last += 2
			n++
		}
		if n >= 4 && n <= 10 && !sc.connected(k, -1, true) && !sc.connected(last, 1, true) {
			return candidate{value: b.String()}, last, true
		}
		return candidate{}, last, false
	}
	// Two groups: "482 917", "482-917", "AB12-CD34".
	if u, ok := sc.asciiWord(k + 2); ok && (sc.isPunct(k+1, "-") || sc.isSingleSpace(k+1)) {
		switch {
		case digits && isDigits(u) && len(t) == len(u) && len(t) >= 2 && len(t) <= 5:
			last := k + 2
			for sc.connected(last, 1, true) {
				last += 2 // swallow the rest of a longer number: "+1 415 555 0134"
			}
			if last != k+2 || sc.connected(k, -1, true) {
				return candidate{}, last, false
			}
			return candidate{value: t + u}, last, true
		case sc.isPunct(k+1, "-") && isUpperAlnum(t) && isUpperAlnum(u) && len(t) >= 2 && len(u) >= 2 &&
			len(t)+len(u) >= 4 && len(t)+len(u) <= 10 && hasDigitAndLetter(t+u):
			if sc.connected(k, -1, false) || sc.connected(k+2, 1, false) {
				return candidate{}, k + 2, false
			}
			return candidate{value: t + "-" + u}, k + 2, true
		}
	}
	if len(t) < 4 || len(t) > 10 {
		return candidate{}, k, false
	}
	switch {
	case digits:
		if sc.connected(k, -1, true) || sc.connected(k, 1, true) {
			return candidate{}, k, false
		}
		year := len(t) == 4 && (t[:2] == "19" || t[:2] == "20")
		return candidate{value: t, yearLike: year}, k, true
	case isUpperAlnum(t) && hasDigitAndLetter(t):
		if sc.connected(k, -1, false) || sc.connected(k, 1, false) {
			return candidate{}, k, false
		}
		return candidate{value: t}, k, true
	}
	return candidate{}, k, false
}

// prevSolid returns the index of the nearest token before k that is not white space
// on the same line, or -1.
func (sc *scanner) prevSolid(k int) int {
	for k--; k >= 0; k-- {
		switch sc.toks[k].kind {
		case tSpace:
		case tNewline:
			return -1
		default:
			return k
		}
	}
	return -1
}

func (sc *scanner) nextSolid(k int) int {
	for k++; k < len(sc.toks); k++ {
		switch sc.toks[k].kind {
		case tSpace:
		case tNewline:
			return -1
		default:
			return k
		}
	}
	return -1
}

// amountSymbols before or after a number make it a price, a percentage, a count; "#"
// and "№" make it an order or ticket number, "+" a phone number.
const amountSymbols = "#№$€£¥₹₽₩₺%+@&=•"

// isAmount reports a number that a currency, unit or numbering sign claims.
func (sc *scanner) isAmount(c candidate) bool {
	if p := sc.prevSolid(c.firstTok); p >= 0 {
		if sc.isPunct(p, amountSymbols) {
			return true
		}
		if sc.toks[p].kind == tWord && currencyWords[strings.ToLower(sc.text(p))] {
			return true
		}
		// "****1234", "***-***-0134": a masked card or phone number ("**482917**" is
		// bold in text converted from HTML).
		stars := 0
		for k := c.firstTok - 1; k >= max(c.firstTok-8, 0) && sc.toks[k].kind == tPunct; k-- {
			if sc.text(k) == "*" {
				stars++
			}
		}
		if stars >= 3 {
			return true
		}
		// "(030) 1234567"
		if sc.isPunct(p, ")") {
			if w, ok := sc.asciiWord(p - 1); ok && isDigits(w) {
				return true
			}
		}
	}
	if n := sc.nextSolid(c.lastTok); n >= 0 {
		if sc.isPunct(n, "$€£¥₹₽₩₺%") {
			return true
		}
		switch sc.toks[n].kind {
		case tWord:
			return currencyWords[strings.ToLower(sc.text(n))]
		case tCJK:
			r, _ := utf8.DecodeRuneInString(sc.text(n))
			return strings.ContainsRune("円元원块圓", r)
		}
	}
	return false
}

// accept decides whether a keyword labels the candidate as a code.
func (sc *scanner) accept(c candidate) bool {
	if sc.isAmount(c) {
		return false
	}
	l, d, direct := sc.nearestBack(c)
	if l == anti {
		return false
	}
	if l == noLabel || !(d <= nearWords || l == strong && d <= strongWords) {
		l, d, direct = sc.nearestFwd(c)
		if l == anti {
			return false
		}
		if l != noLabel && d > nearWords {
			l = noLabel
		}
	}
	if l == noLabel {
		l, direct = sc.lineLabel(c)
	}
	switch {
	case l != weak && l != strong:
		return false
	case c.yearLike && !direct:
		return false
	case l == weak && sc.promo(c):
		return false
	}
	return true
}

// nearestBack returns the label of the nearest labelled word before the candidate in
// its sentence, its distance in words, and whether only fillers stand between.
func (sc *scanner) nearestBack(c candidate) (label, int, bool) {
	seg := sc.words[c.firstW].seg
	var l labeller
	for j := c.firstW - 1; j >= 0 && sc.words[j].seg == seg && l.d <= strongWords; j-- {
		if l.see(sc, j, sc.back(j)) {
			return l.found, l.d, l.direct && l.d <= directWords
		}
	}
	return noLabel, 0, false
}

// nearestFwd is nearestBack looking after the candidate: "482917 is your code".
func (sc *scanner) nearestFwd(c candidate) (label, int, bool) {
	seg := sc.words[c.lastW].seg
	var l labeller
	for j := c.lastW + 1; j < len(sc.words) && sc.words[j].seg == seg && l.d <= nearWords; j++ {
		if l.see(sc, j, sc.fwd(j)) {
			return l.found, l.d, l.direct && l.d <= directWords
		}
	}
	return noLabel, 0, false
}

// labeller walks words away from a candidate until one decides what it is.
type labeller struct {
	d       int   // words passed
	found   label // what decided
	passed  bool  // a word that is neither a filler nor a numbering word was passed
	started bool
	direct  bool
}

// see looks at word j with its label l and reports whether the walk is decided. A
// word like "order" decides "not a code" only when nothing but fillers and numbering
// words ("number", "ID") stand between it and the candidate; otherwise it labels
// something else ("login to account gabe:", "code for order 10234981 is 482917") and
// the walk goes on.
func (l *labeller) see(sc *scanner, j int, lab label) bool {
	if !l.started {
		l.started, l.direct = true, true
	}
	switch {
	case lab == anti && !l.passed:
		l.found = anti
		return true
	case lab == weak || lab == strong:
		l.found = lab
		return true
	}
	w := sc.words[j]
	if w.cont {
		return false
	}
	lw := strings.ToLower(sc.text(w.tok))
	if !fillers[lw] {
		l.direct = false
		if !numbering[lw] {
			l.passed = true
		}
	}
	l.d++
	return false
}

// numbering words stand between a label and its number: "Order number: 10234981".
var numbering = map[string]bool{
	"number": true, "no": true, "nr": true, "num": true, "id": true, "nummer": true,
	"numéro": true, "número": true, "numero": true, "numer": true, "номер": true,
	"numarası": true, "numarasi": true, "nº": true,
	// and the prepositions of "ending in 1234", "endet auf 1234"
	"in": true, "with": true, "auf": true, "mit": true, "en": true, "par": true, "por": true,
	"na": true, "на": true, "on": true,
}

// lineLabel applies the layout rules of HTML mail and plain-text templates: a code
// at the start of the line after "Your verification code:", or a code alone on its
// line with a keyword on the line before or right at the start of the line after.
func (sc *scanner) lineLabel(c candidate) (label, bool) {
	ln := int(sc.words[c.firstW].line)
	cur := sc.lines[ln]
	alone := cur.first == c.firstW && cur.last == c.lastW
	prev := ln - 1
	for prev >= 0 && sc.lines[prev].first < 0 {
		prev--
	}
	if prev >= 0 && (alone || sc.lines[prev].colon && c.firstW-cur.first < 2) {
		p := sc.lines[prev]
		var l labeller
		for j := p.last; j >= p.first && l.d <= strongWords; j-- {
			if l.see(sc, j, sc.back(j)) {
				// A colon and a code alone on the next line is the template of a code
				// mail: the keyword may stand further back there.
				if l.found == strong || l.found == weak && (l.d <= nearWords || alone && p.colon) {
					return l.found, true
				}
				break
			}
		}
	}
	if !alone {
		return noLabel, false
	}
	next := ln + 1
	for next < len(sc.lines) && sc.lines[next].first < 0 {
		next++
	}
	if next < len(sc.lines) {
		p := sc.lines[next]
		var l labeller
		for j := p.first; j <= p.last && l.d < 5; j++ {
			if l.see(sc, j, sc.fwd(j)) {
				if l.found != anti {
					return l.found, true
				}
				break
			}
		}
	}
	return noLabel, false
}

// promo reports a sentence about a discount, where "code" means a coupon. The answer
// is kept per sentence: a long one full of codes is read once.
func (sc *scanner) promo(c candidate) bool {
	seg := sc.words[c.firstW].seg
	if p, ok := sc.promoSeg[seg]; ok {
		return p
	}
	if sc.promoSeg == nil {
		sc.promoSeg = map[int32]bool{}
	}
	first := c.firstW
	for first > 0 && sc.words[first-1].seg == seg {
		first--
	}
	p := false
	for j := first; j < len(sc.words) && sc.words[j].seg == seg && !p; j++ {
		p = sc.promoWord(j)
	}
	sc.promoSeg[seg] = p
	return p
}

func (sc *scanner) promoWord(j int) bool {
	w := sc.words[j]
	if sc.toks[w.tok].kind == tCJK {
		t := sc.text(w.tok)
		return strings.Contains(t, "割引") || strings.Contains(t, "クーポン") || strings.Contains(t, "优惠") ||
			strings.Contains(t, "折扣") || strings.Contains(t, "할인") || strings.Contains(t, "쿠폰")
	}
	if promoWords[strings.ToLower(sc.text(w.tok))] {
		return true
	}
	return sc.isPunct(w.tok+1, "%") || sc.isPunct(sc.nextSolid(w.tok), "%")
}
