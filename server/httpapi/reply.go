package httpapi

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/storage"
)

// replier sends a reply from an inbox to the sender of one of its messages, under the
// same policy as SMTP submission (correspondents only, a send limit). Its refusals are
// errors made with Refusal, which carry the answer to give.
type replier interface {
	// client is who asks (limit.KeyIP of it counts against the per-client send limit).
	Reply(ctx context.Context, client netip.Addr, inbox, id, text, html string) (*storage.Message, error)
}

// Refusal is an error a replier returns for a reply it will not send: the status
// (403 not a correspondent, 429 over a send limit, 413 too large, 422 too many
// recipients, 400 a bare CR), a code for programs and a message for people.
func Refusal(status int, code, message string) error {
	return &apiError{Status: status, Code: code, Message: message}
}

// RefusalRetry is Refusal with a Retry-After: for a 429 or 503 that passes in time.
func RefusalRetry(status int, code, message string, after time.Duration) error {
	return &apiError{Status: status, Code: code, Message: message, RetryAfter: after}
}

type replyRequest struct {
	Text string `json:"text"`
	HTML string `json:"html"`
}

// reply answers POST .../messages/{id}/reply: the reply is signed, kept with the
// inbox's mail as sent, and queued for delivery; 202 with the sent copy's summary.
func (s *Server) reply(c echo.Context) error {
	if s.opts.Replier == nil {
		return errorf(http.StatusNotImplemented, "not_implemented", "this service does not send replies")
	}
	var req replyRequest
	if err := s.decodeBody(c, &req, false, `{"text", "html"}`); err != nil {
		return err
	}
	if strings.TrimSpace(req.Text) == "" && strings.TrimSpace(req.HTML) == "" {
		return errorf(http.StatusBadRequest, "bad_request", "a reply needs text or html")
	}
	sent, err := s.opts.Replier.Reply(c.Request().Context(), s.clientKey(c), inboxOf(c), c.Param("id"), req.Text, req.HTML)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, struct {
		Message summaryJSON `json:"message"`
	}{toSummary(sent)})
}
