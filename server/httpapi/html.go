package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
)

// htmlPolicy isolates a stranger's HTML shown by the page: a sandbox with no origin of
// its own (no allow-same-origin, so even opened on its own it cannot reach the API or
// the page's storage), links opening outside it, and nothing fetched from elsewhere,
// which is what stops tracking pixels. The one script that runs is frameScript, by a
// nonce made for each response: the mail's own scripts, event handlers and javascript:
// URLs carry none and run nothing. Inline (cid:) images come from this server's
// attachment route, by a URL that opens only this message's images ('self' is the
// document's URL's origin, the sandbox notwithstanding: CSP 3, a policy's self-origin).
// %s is the nonce.
const htmlPolicy = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox; default-src 'none'; " +
	"script-src 'nonce-%s'; img-src 'self' data:; style-src 'unsafe-inline' data:; font-src data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// htmlPolicyRemote is htmlPolicy once the reader asked to see remote images: images,
// styles and fonts from anywhere, still no other script, no frames, forms or connections.
const htmlPolicyRemote = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox; default-src 'none'; " +
	"script-src 'nonce-%s'; img-src 'self' data: http: https:; style-src 'unsafe-inline' data: http: https:; font-src data: http: https:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// htmlPrologue opens links in a new tab (the sandbox lets them escape) and sends no
// Referer with anything the reader clicks or loads: the document's URL holds the
// inbox's token. It comes before the mail's markup, which therefore cannot change how
// it is parsed (an unclosed comment or <textarea> in the mail swallows what follows it,
// not what precedes it), and the script has run before any of the mail's elements
// exist, so none can shadow what it uses (a named <img> overrides document's own
// properties). %s is the nonce.
const htmlPrologue = `<meta name="referrer" content="no-referrer"><base target="_blank">` +
	// html and body take the height of their content rather than the quirk that
	// stretches them to the frame's: the height measured must be the mail's, or a frame
	// once made tall could never shrink. A mail may override it and keep the frame as
	// tall as it once was; it is clipped nowhere either way.
	`<style>html,body{height:fit-content!important}</style>` +
	`<script nonce="%s">` + frameScript + `</script>`

// frameScript reports the document's height and width to the page, which sizes the
// frame to it (and scales a document wider than the pane to fit): on load, on each
// image's load and on any resize. It also opens every link clicked in a new tab, as
// the prologue's base target does for links that name none: a link with
// target="_self" would otherwise load its site in the frame, where scripts may run. The frame is an opaque origin: the
// report goes to the page by postMessage, aimed at this server's origin, with the key
// the page put in the frame's URL fragment (never sent, unknown to the mail), so the
// page can tell it from a document the reader navigated the frame to.
const frameScript = `(()=>{const r=document.documentElement,p=parent,o=location.origin,k=location.hash.slice(1);` +
	`const f=()=>{if(!innerWidth)return;p.postMessage({type:"mayfly-frame-height",height:Math.max(r.scrollHeight,Math.ceil(r.getBoundingClientRect().height)),width:r.scrollWidth,key:k},o)};` +
	`addEventListener("load",f);document.addEventListener("load",f,true);addEventListener("resize",f);new ResizeObserver(f).observe(r);` +
	`addEventListener("click",e=>{const a=e.target.closest&&e.target.closest("a[href],area[href]");if(a)a.target="_blank"},true)})()`

// newNonce returns a nonce for one response's script.
func newNonce() string {
	var b [18]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// getHTML answers GET .../messages/{id}/html: the HTML body as a document for the
// page's sandboxed iframe, its cid: images linked to the attachment route, remote
// content blocked unless ?images=1. How to make the document is worked out once per
// message, with the parse, and cached with it; the document itself is written as it
// is made.
func (s *Server) getHTML(c echo.Context) error {
	ctx, inbox, id := c.Request().Context(), inboxOf(c), c.Param("id")
	m, err := s.store.Get(ctx, inbox, id)
	if err != nil {
		return err
	}
	p, err := s.cachedMessage(ctx, m)
	if err != nil {
		return err
	}
	if p.p.HTML == "" {
		return errorf(http.StatusNotFound, "not_found", "message %s has no HTML body", id)
	}
	h := c.Response().Header()
	policy := htmlPolicy
	if c.QueryParam("images") == "1" {
		policy = htmlPolicyRemote
	}
	nonce := newNonce()
	prologue := fmt.Sprintf(htmlPrologue, nonce)
	h.Set("Content-Security-Policy", fmt.Sprintf(policy, nonce))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "private, max-age=300")
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(prologue)+p.docLen))
	c.Response().WriteHeader(http.StatusOK)
	w := &pieceWriter{w: c.Response()}
	if _, err := w.WriteString(prologue); err != nil {
		return nil // the client left; nothing to answer
	}
	if p.images == nil {
		w.WriteString(p.p.HTML)
		return nil
	}
	// Written as it is made: the document is never held, however many references
	// it has.
	p.images.WriteString(w, p.p.HTML)
	return nil
}

// pieceWriter writes strings to w a piece at a time. io.WriteString, and a
// strings.Replacer between two references, copy a whole string into a new byte slice
// for a writer without WriteString, as echo's Response is: the cached 10 MiB body of a
// message, copied for each reader and kept by a slow one until it has read it all
// (32 slow readers of one such mail: 460 MiB).
type pieceWriter struct {
	w   io.Writer
	buf []byte
}

func (p *pieceWriter) Write(b []byte) (int, error) { return p.w.Write(b) }

func (p *pieceWriter) WriteString(s string) (int, error) {
	if want := min(len(s), 32<<10); len(p.buf) < want {
		p.buf = make([]byte, want)
	}
	done := 0
	for done < len(s) {
		n := copy(p.buf, s[done:])
		if _, err := p.w.Write(p.buf[:n]); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// imageTypes are the inline images a frame may load, by the type the sender gave, and
// the type they are served with: types browsers show as images and never run. (An
// SVG in an <img> runs no script; opened on its own it is a download under a sandbox,
// as every attachment is.)
var imageTypes = map[string]string{
	"image/png": "image/png", "image/apng": "image/apng", "image/gif": "image/gif",
	"image/jpeg": "image/jpeg", "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg",
	"image/webp": "image/webp", "image/avif": "image/avif", "image/bmp": "image/bmp",
	"image/x-icon": "image/x-icon", "image/vnd.microsoft.icon": "image/x-icon",
	"image/svg+xml": "image/svg+xml",
}

// framed says whether attachment index is an image the HTML may show inline: one
// with a Content-ID and an image type.
func framed(p *parse.Parsed, index int) bool {
	if index < 0 || index >= len(p.Attachments) {
		return false
	}
	a := p.Attachments[index]
	return a.ContentID != "" && imageTypes[a.ContentType] != ""
}

// htmlImages returns what turns p's HTML body into the document of the html route,
// and the document's length: each cid: reference to one of its images (RFC 2392)
// replaced by the image's URL on the attachment route, relative to the html route's
// own URL. A nil replacer leaves the body as it is. The URL carries the frame's key
// instead of the inbox token: the document is the sender's, and with remote styles
// allowed its CSS could read an attribute out to another host; the key opens only
// this message's images, which the sender has anyway.
//
// A URL is about 40 bytes where its reference may be 5 ("cid:a"), so a body made of
// references would grow eightfold (a 10 MiB mail, an 80 MiB document): the document is
// written as it is made, never held, and a body whose references would more than
// double it (plus maxImageGrowth) keeps them as they are, showing no images; a real
// mail refers to each of its images once or twice.
func (s *Server) htmlImages(inbox, id string, p *parse.Parsed) (*strings.Replacer, int) {
	if p.HTML == "" || !strings.Contains(strings.ToLower(p.HTML), "cid:") {
		return nil, len(p.HTML)
	}
	key := s.frameKey(inbox, id)
	var pairs []string
	for i, a := range p.Attachments {
		if !framed(p, i) || !strings.Contains(p.HTML, a.ContentID) {
			continue
		}
		url := "attachments/" + strconv.Itoa(a.Index) + "?" + frameKeyParam + "=" + key
		pairs = append(pairs, "cid:"+a.ContentID, url, "CID:"+a.ContentID, url)
	}
	if len(pairs) == 0 {
		return nil, len(p.HTML)
	}
	r := strings.NewReplacer(pairs...)
	var n countWriter
	r.WriteString(&n, p.HTML)
	if n > countWriter(2*len(p.HTML)+maxImageGrowth) {
		return nil, len(p.HTML)
	}
	return r, int(n)
}

// maxImageGrowth is what the cid: URLs may add to a small body beyond doubling it.
const maxImageGrowth = 64 << 10

// countWriter counts what is written to it.
type countWriter int

func (w *countWriter) Write(b []byte) (int, error) {
	*w += countWriter(len(b))
	return len(b), nil
}

// frameKeyParam is the query parameter of the frame's key.
const frameKeyParam = "k"

// frameKey opens the inline images of one message: an HMAC under the tokens' secret of
// a string no inbox address can be (it has NULs in it).
func (s *Server) frameKey(inbox, id string) string {
	return s.tokens.Token("frame\x00" + inbox + "\x00" + id)
}
