package httpapi

import (
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// adminPageFile is the admin page in Options.Frontend; its script and style are served
// beside the main page's, at /admin.js and /admin.css.
const adminPageFile = "admin.html"

// routeAdminPage serves the admin page at /admin when the frontend has one. The page is
// public, like the main page: it holds no data, and asks for the admin key, which the
// namespace routes check on every request.
func (s *Server) routeAdminPage(e *echo.Echo) {
	if s.opts.Frontend == nil {
		return
	}
	if _, err := fs.Stat(s.opts.Frontend, adminPageFile); err != nil {
		return
	}
	e.GET("/admin", s.adminPage, middleware.Gzip())
}

func (s *Server) adminPage(c echo.Context) error {
	page, err := fs.ReadFile(s.opts.Frontend, adminPageFile)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	pageHeaders(h)
	// The page is static, but an admin's browser has no need to keep any copy of it.
	h.Set("Cache-Control", "no-store")
	return c.HTMLBlob(http.StatusOK, page)
}

// pageHeaders are the headers of every page of the frontend: the page runs only its own
// script and style; mail HTML comes from the html route into a sandboxed iframe, under
// that route's own, stricter policy.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
