package httpapi

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
)

// htmlPolicy isolates a stranger's HTML shown by the page: a sandbox without scripts
// or our origin (so even opened on its own it cannot reach the API or the page's
// storage), links opening outside it, and nothing fetched from elsewhere, which is
// what stops tracking pixels. Inline (cid:) images come from this server's attachment
// route, by a URL that opens only this message's images ('self' is the document's
// URL's origin, the sandbox notwithstanding: CSP 3, a policy's self-origin).
const htmlPolicy = "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; " +
	"img-src 'self' data:; style-src 'unsafe-inline' data:; font-src data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// htmlPolicyRemote is htmlPolicy once the reader asked to see remote images: images,
// styles and fonts from anywhere, still no scripts, frames, forms or connections.
const htmlPolicyRemote = "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; " +
	"img-src 'self' data: http: https:; style-src 'unsafe-inline' data: http: https:; font-src data: http: https:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// htmlPrologue opens links in a new tab (the sandbox lets them escape) and sends no
// Referer with anything the reader clicks or loads: the document's URL holds the
// inbox's token.
const htmlPrologue = `<meta name="referrer" content="no-referrer"><base target="_blank">`

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
	h.Set("Content-Security-Policy", policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "private, max-age=300")
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(htmlPrologue)+p.docLen))
	c.Response().WriteHeader(http.StatusOK)
	w := &pieceWriter{w: c.Response()}
	if _, err := w.WriteString(htmlPrologue); err != nil {
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
