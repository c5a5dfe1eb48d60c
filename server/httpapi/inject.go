package httpapi

import (
	"context"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/storage"
)

// injector stores a message handed over HTTP through the receiving path (the MX's),
// so that it is kept, summarized, rate-limited and announced like mail that came over
// SMTP. Its refusals are errors made with Refusal.
type injector interface {
	// remoteIP is who posted it, for the trace header.
	Inject(ctx context.Context, inbox, remoteIP string, raw []byte) (*storage.Message, error)
}

// injectTypes are the media types a posted message may come as: what it is, and what
// HTTP clients send raw bytes as when told nothing better. Anything else (JSON, a form)
// is a client mistaking the route, answered 415.
var injectTypes = map[string]bool{"message/rfc822": true, "application/octet-stream": true, "text/plain": true}

const injectRoute = "/messages"

// skipBodyLimit exempts the inject route from the 64 KiB limit of every other body:
// a message may be as large as the receiver takes, which inject enforces itself.
func skipBodyLimit(c echo.Context) bool {
	return c.Request().Method == http.MethodPost && c.Path() == inboxRoute+injectRoute
}

// inject answers POST .../messages: the body, one RFC 5322 message, stored in the
// inbox as if received; 201 with its summary.
func (s *Server) inject(c echo.Context) error {
	if s.opts.Injector == nil {
		return errorf(http.StatusNotImplemented, "not_implemented", "this service does not take messages over HTTP")
	}
	if ct := c.Request().Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !injectTypes[mt] {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type %q: send the message as message/rfc822 (or application/octet-stream, text/plain)", ct)
		}
	}
	size := s.opts.MaxMessageSize
	if size <= 0 {
		size = defaultMaxMessageSize
	}
	tooLarge := errorf(http.StatusRequestEntityTooLarge, "too_large", "message over %d bytes (MAYFLY_MAX_MESSAGE_SIZE)", size)
	if c.Request().ContentLength > size {
		return tooLarge
	}
	// The read is bounded by size here and by the server's read timeout.
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, size+1))
	if err != nil {
		return s.bodyError(err)
	}
	if int64(len(raw)) > size {
		return tooLarge
	}
	if len(raw) == 0 {
		return errorf(http.StatusBadRequest, "bad_request", "empty body: send one RFC 5322 message")
	}
	// The address as asked, tag and all: authorize has checked it names this inbox.
	address, err := url.PathUnescape(c.Param("address"))
	if err != nil {
		address = inboxOf(c)
	}
	m, err := s.opts.Injector.Inject(c.Request().Context(), address, s.clientIP(c.Request()).String(), raw)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toSummary(m))
}

// defaultMaxMessageSize is the receiver's default MaxMessageSize.
const defaultMaxMessageSize = 10 << 20
