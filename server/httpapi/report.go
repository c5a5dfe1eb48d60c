package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// getReport answers GET .../messages/{id}/report: the deliverability report of the
// message (server/report), computed once and cached. It is no read of the message:
// burn-after-read does not apply.
func (s *Server) getReport(c echo.Context) error {
	if s.opts.Reporter == nil {
		return errorf(http.StatusNotImplemented, "not_implemented", "this service makes no deliverability reports")
	}
	ctx, inbox, id := c.Request().Context(), inboxOf(c), c.Param("id")
	m, err := s.store.Get(ctx, inbox, id)
	if err != nil {
		return err
	}
	if rep := s.opts.Reporter.Cached(m.Inbox, m.ID); rep != nil {
		return c.JSON(http.StatusOK, rep)
	}
	if m.Raw == nil {
		if m.Raw, err = s.store.Raw(ctx, m.Inbox, m.ID); err != nil {
			return err
		}
	}
	rep, err := s.opts.Reporter.Report(ctx, m)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}
