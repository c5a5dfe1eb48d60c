package report

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// Thresholds of the content checks.
const (
	// maxHTML is where Gmail clips a message's HTML ("[Message clipped]").
	maxHTML = 102 * 1024
	// minTextPerImage: an HTML mail with less visible text than this per image reads
	// as an image-only mail to filters.
	minTextPerImage = 100
	maxLine         = 998 // RFC 5322 section 2.1.1: MUST
	shortLine       = 78  // RFC 5322 section 2.1.1: SHOULD
)

// shorteners are URL shortening services: their links hide where they lead, and
// spammers use them for just that.
var shorteners = map[string]bool{
	"bit.ly": true, "bitly.com": true, "tinyurl.com": true, "t.co": true, "goo.gl": true, "ow.ly": true,
	"is.gd": true, "buff.ly": true, "rebrand.ly": true, "cutt.ly": true, "shorturl.at": true, "rb.gy": true,
	"tiny.cc": true, "bit.do": true, "t.ly": true, "s.id": true, "lnkd.in": true, "v.gd": true, "tr.im": true,
	"shorte.st": true, "adf.ly": true, "qr.ae": true, "soo.gd": true, "clck.ru": true,
}

// contentChecks reads the message itself; no link is ever fetched.
func contentChecks(raw []byte) []Check {
	// Our own Authentication-Results and Received fields lead the stored copy; they
	// are well formed and change none of the checks below.
	msg := mailparse.Parse(raw)
	html := msg.HTML()
	var out []Check

	switch {
	case msg.HTMLPart == nil:
		out = append(out, Check{ID: "text-part", Status: Pass, Detail: "plain text"})
	case len(msg.TextParts) == 0:
		out = append(out, Check{ID: "text-part", Status: Fail, Detail: "HTML without a text/plain alternative",
			Fix: "send multipart/alternative with a text/plain part beside the HTML"})
	default:
		out = append(out, Check{ID: "text-part", Status: Pass, Detail: "text/plain beside the HTML"})
	}

	facts := parse.Facts(html)
	if msg.HTMLPart == nil {
		out = append(out,
			Check{ID: "html-size", Status: Info, Detail: "no HTML"},
			Check{ID: "image-ratio", Status: Info, Detail: "no HTML"},
			Check{ID: "image-alt", Status: Info, Detail: "no HTML"})
	} else {
		if len(html) > maxHTML {
			out = append(out, Check{ID: "html-size", Status: Warn, Detail: fmt.Sprintf("the HTML is %d KiB: Gmail clips it past 102 KiB", len(html)/1024),
				Fix: "shorten the HTML (inline CSS once, drop comments and unused markup)"})
		} else {
			out = append(out, Check{ID: "html-size", Status: Pass, Detail: fmt.Sprintf("the HTML is %d KiB", (len(html)+1023)/1024)})
		}
		if facts.Images > 0 && facts.TextChars < minTextPerImage*facts.Images {
			out = append(out, Check{ID: "image-ratio", Status: Warn,
				Detail: fmt.Sprintf("%d images and %d characters of text: fewer than %d per image", facts.Images, facts.TextChars, minTextPerImage),
				Fix:    "say in text what the images say"})
		} else {
			out = append(out, Check{ID: "image-ratio", Status: Pass, Detail: fmt.Sprintf("%d images, %d characters of text", facts.Images, facts.TextChars)})
		}
		if facts.ImagesWithout > 0 {
			out = append(out, Check{ID: "image-alt", Status: Warn, Detail: fmt.Sprintf("%d of %d images have no alt text", facts.ImagesWithout, facts.Images),
				Fix: `give every <img> an alt (alt="" for a decorative one)`})
		} else {
			out = append(out, Check{ID: "image-alt", Status: Pass, Detail: fmt.Sprintf("%d images, each with alt", facts.Images)})
		}
	}

	var ipLinks, short []string
	for _, l := range parse.Links(msg.Text(), html) {
		u, err := url.Parse(l)
		if err != nil || u.Host == "" {
			continue
		}
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if _, err := netip.ParseAddr(host); err == nil {
			ipLinks = append(ipLinks, clip(l, 100))
		} else if shorteners[host] || shorteners[strings.TrimPrefix(host, "www.")] {
			short = append(short, clip(l, 100))
		}
	}
	out = append(out, linkCheck("link-ip", ipLinks, "links to bare IP addresses", "link to a name under your domain"),
		linkCheck("link-shortener", short, "links through URL shorteners", "link to the destination itself"))

	out = append(out, unsubscribeChecks(msg)...)

	if msg.MessageID == "" {
		out = append(out, Check{ID: "message-id", Status: Fail, Detail: "no Message-ID", Fix: "add a Message-ID field (RFC 5322 section 3.6.4): <unique@your.domain>"})
	} else {
		out = append(out, Check{ID: "message-id", Status: Pass, Detail: "Message-ID <" + clip(msg.MessageID, 200) + ">"})
	}
	switch {
	case msg.Header.Get("Date") == "":
		out = append(out, Check{ID: "date", Status: Fail, Detail: "no Date field", Fix: "add a Date field (RFC 5322 section 3.6.1 requires it)"})
	case msg.Date.IsZero():
		out = append(out, Check{ID: "date", Status: Fail, Detail: "the Date field does not parse", Fix: "write Date as RFC 5322 section 3.3 says, e.g. Mon, 7 Dec 2026 08:00:00 +0000"})
	default:
		out = append(out, Check{ID: "date", Status: Pass, Detail: "Date " + msg.Date.UTC().Format("2006-01-02 15:04:05 UTC")})
	}
	return append(out, lineCheck(raw))
}

func linkCheck(id string, found []string, what, fix string) Check {
	if len(found) == 0 {
		return Check{ID: id, Status: Pass, Detail: "no " + what}
	}
	return Check{ID: id, Status: Fail, Detail: fmt.Sprintf("%d %s: %s", len(found), what, strings.Join(found[:min(len(found), 3)], " ")), Fix: fix}
}

// unsubscribeChecks: bulk mail needs List-Unsubscribe, and one-click unsubscription
// (RFC 8058: List-Unsubscribe-Post "List-Unsubscribe=One-Click" with an https URI),
// which Gmail and Yahoo require of bulk senders. Mail is bulk when it says so
// (Precedence bulk or list, List-Id, or a List-Unsubscribe already).
func unsubscribeChecks(msg *mailparse.Message) []Check {
	h := msg.Header
	prec := strings.ToLower(strings.TrimSpace(h.Get("Precedence")))
	lu := h.Get("List-Unsubscribe")
	bulk := prec == "bulk" || prec == "list" || h.Get("List-Id") != "" || lu != ""
	if !bulk {
		return []Check{
			{ID: "list-unsubscribe", Status: Info, Detail: "not bulk mail (no Precedence: bulk, List-Id or List-Unsubscribe)"},
			{ID: "list-unsubscribe-post", Status: Info, Detail: "not bulk mail"},
		}
	}
	if lu == "" {
		return []Check{
			{ID: "list-unsubscribe", Status: Fail, Detail: "bulk mail without List-Unsubscribe",
				Fix: "add List-Unsubscribe: <https://your.domain/unsubscribe/TOKEN>, <mailto:unsubscribe@your.domain> (RFC 2369)"},
			{ID: "list-unsubscribe-post", Status: Info, Detail: "needs List-Unsubscribe first"},
		}
	}
	out := []Check{{ID: "list-unsubscribe", Status: Pass, Detail: "List-Unsubscribe: " + clip(lu, 200)}}
	post := strings.Join(strings.Fields(h.Get("List-Unsubscribe-Post")), "")
	https := strings.Contains(strings.ToLower(lu), "<https://")
	switch {
	case strings.EqualFold(post, "List-Unsubscribe=One-Click") && https:
		out = append(out, Check{ID: "list-unsubscribe-post", Status: Pass, Detail: "one-click unsubscription (RFC 8058)"})
	case post == "":
		out = append(out, Check{ID: "list-unsubscribe-post", Status: Fail, Detail: "no List-Unsubscribe-Post: no one-click unsubscription (RFC 8058)",
			Fix: "add List-Unsubscribe-Post: List-Unsubscribe=One-Click, with an https URI in List-Unsubscribe, and sign both with DKIM"})
	default:
		out = append(out, Check{ID: "list-unsubscribe-post", Status: Fail, Detail: "List-Unsubscribe-Post needs the value List-Unsubscribe=One-Click and an https URI in List-Unsubscribe (RFC 8058)",
			Fix: "add List-Unsubscribe-Post: List-Unsubscribe=One-Click, with an https URI in List-Unsubscribe"})
	}
	return out
}

// lineCheck counts the lines longer than RFC 5322 allows (998, a MUST) and
// recommends (78, a SHOULD: noted, not scored).
func lineCheck(raw []byte) Check {
	long, over78 := 0, 0
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		n := len(bytes.TrimSuffix(line, []byte("\r")))
		if n > maxLine {
			long++
		}
		if n > shortLine {
			over78++
		}
	}
	if long > 0 {
		return Check{ID: "line-length", Status: Fail, Detail: fmt.Sprintf("%d lines longer than 998 characters (RFC 5322 section 2.1.1): servers may break them", long),
			Fix: "send long lines quoted-printable or base64"}
	}
	if over78 > 0 {
		return Check{ID: "line-length", Status: Pass, Detail: fmt.Sprintf("no line past 998 characters; %d past the 78 that RFC 5322 recommends", over78)}
	}
	return Check{ID: "line-length", Status: Pass, Detail: "no line past 78 characters"}
}

// spamChecks asks rspamd, when there is one.
func (r *Reporter) spamChecks(ctx context.Context, m *storage.Message, raw []byte) ([]Check, *SpamResult) {
	if r.rspamdURL == "" {
		return []Check{{ID: "rspamd", Status: Info, Detail: "not run: no rspamd configured (MAYFLY_RSPAMD_URL)"}}, nil
	}
	res, err := r.checkRspamd(ctx, m, raw)
	if err != nil {
		return []Check{{ID: "rspamd", Status: Info, Detail: unknownPrefix + "rspamd did not answer: " + clip(err.Error(), 200)}}, nil
	}
	c := Check{ID: "rspamd", Status: Pass, Detail: fmt.Sprintf("rspamd: %.2f of %.2f, %s", res.Score, res.RequiredScore, res.Action)}
	var top []string
	for _, s := range res.Symbols {
		if s.Score > 0 && len(top) < 5 {
			top = append(top, fmt.Sprintf("%s (%.2f)", s.Name, s.Score))
		}
	}
	if res.Action != "no action" {
		c.Status = Fail
		if len(top) > 0 {
			c.Detail += "; " + strings.Join(top, ", ")
		}
		c.Fix = "see the symbols in spam: each names a rule of rspamd and what it matched"
	}
	return []Check{c}, res
}
