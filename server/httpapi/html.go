package httpapi

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
)

// htmlPolicy isolates a stranger's HTML shown by the page: a sandbox without scripts
// or our origin (so even opened on its own it cannot reach the API or the page's
// storage), links opening outside it, and nothing fetched from elsewhere, which is
// what stops tracking pixels. Inline images travel inside the document as data: URLs.
const htmlPolicy = "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; " +
	"img-src data:; style-src 'unsafe-inline' data:; font-src data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// htmlPolicyRemote is htmlPolicy once the reader asked to see remote images: images,
// styles and fonts from anywhere, still no scripts, frames, forms or connections.
const htmlPolicyRemote = "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; " +
	"img-src data: http: https:; style-src 'unsafe-inline' data: http: https:; font-src data: http: https:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// htmlPrologue opens links in a new tab (the sandbox lets them escape) and sends no
// Referer with anything the reader clicks or loads.
const htmlPrologue = `<meta name="referrer" content="no-referrer"><base target="_blank">`

// getHTML answers GET .../messages/{id}/html: the HTML body as a document for the
// page's sandboxed iframe, its cid: images inlined, remote content blocked unless
// ?images=1.
func (s *Server) getHTML(c echo.Context) error {
	ctx, inbox, id := c.Request().Context(), inboxOf(c), c.Param("id")
	m, err := s.store.Get(ctx, inbox, id)
	if err != nil {
		return err
	}
	p, err := s.parsedMessage(ctx, m)
	if err != nil {
		return err
	}
	if p.HTML == "" {
		return errorf(http.StatusNotFound, "not_found", "message %s has no HTML body", id)
	}
	body := p.HTML
	if strings.Contains(body, "cid:") {
		raw, err := s.store.Raw(ctx, inbox, id)
		if err != nil {
			return err
		}
		body = inlineImages(body, raw, p.Attachments)
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
	return c.HTMLBlob(http.StatusOK, []byte(htmlPrologue+body))
}

// inlineImages replaces each cid: reference to an image part (RFC 2392) with a data:
// URL of its bytes, so the document needs nothing from outside itself. Only image types
// are inlined: a data: URL of another type is not something to hand a browser.
func inlineImages(body string, raw []byte, atts []attachmentJSON) string {
	var pairs []string
	for _, a := range atts {
		if a.ContentID == "" || !strings.HasPrefix(a.ContentType, "image/") || !strings.Contains(body, a.ContentID) {
			continue
		}
		data, _, err := parse.Attachment(raw, a.Index)
		if err != nil {
			continue
		}
		url := "data:" + a.ContentType + ";base64," + base64.StdEncoding.EncodeToString(data)
		pairs = append(pairs, "cid:"+a.ContentID, url, "CID:"+a.ContentID, url)
	}
	if len(pairs) == 0 {
		return body
	}
	return strings.NewReplacer(pairs...).Replace(body)
}
