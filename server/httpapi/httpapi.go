// Package httpapi is Mayfly's HTTP face: the QA inbox API (JSON, echo v4), long-poll
// waits fed by store events, health and Prometheus metrics.
package httpapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"

	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/report"
	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure the API. Zero values mean the documented defaults.
type Options struct {
	Addr            string
	Domains         []string      // the first is used for random addresses
	Hostname        string        // MAYFLY_HOSTNAME: the authserv-id of the receiver's Authentication-Results
	TTL             time.Duration // the receiver's default message lifetime; 0 = 1h
	MaxTTL          time.Duration // the longest ttl an inbox may ask for; 0 = 24h
	Secret          []byte        // key of the inbox tokens
	APIKey          string        // opens every inbox; "" = none
	Public          bool          // every inbox readable without a token
	CORSOrigins     []string      // origins allowed to call the API from a browser
	ShutdownTimeout time.Duration // 0 = 10s
	// Registry receives the API's metrics and is served at /metrics; nil = a new one.
	Registry *prometheus.Registry
	// MetricsAddr says where /metrics is served. Empty: on Addr, where it answers only
	// loopback peers that forward for no one and the admin key, since it tells who uses
	// the service and how. Set: there (by MetricsServer, which cmd runs), and Addr has none.
	MetricsAddr string
	// Frontend is the web page's files, served at /; nil = no page.
	Frontend fs.FS
	// MaxMessageSize is the receiver's limit, told to clients by /api/v1/service.
	MaxMessageSize int64
	// MailClients are the IMAP, POP3 and submission listeners a user may point a mail
	// client at, shown by /api/v1/service and the page.
	MailClients []Endpoint
	// Replier sends replies for POST .../reply; nil = the route answers 501.
	Replier replier
	// Injector stores the messages of POST .../messages through the receiver; nil =
	// the route answers 501.
	Injector injector
	// Webhooks manages and delivers webhooks (server/webhook) for /api/v1/webhooks;
	// nil = those routes answer 501.
	Webhooks webhooks

	// MaxConnectionsPerIP is how many connections one client (an IPv4 address or an
	// IPv6 /64) may hold at once; more are answered 429 too_many_connections and closed.
	// 0 = 512, negative = no limit. Trusted proxies are not counted.
	MaxConnectionsPerIP int
	// RequestRate is how many requests one client may make, with bursts of as many;
	// more are answered 429 rate_limited with a Retry-After. /healthz, /readyz and
	// /metrics are exempt. Zero = 100 per second; N < 0 = no limit.
	RequestRate limit.Rate
	// CreateRate is how many inboxes one client may create (POST /api/v1/inboxes),
	// with bursts of as many, counted apart from RequestRate: an inbox costs memory for
	// a day or more, a request does not. More are answered 429 create_rate_limited with
	// a Retry-After. Zero = 3000 per hour; N < 0 = no limit.
	CreateRate limit.Rate
	// LoginFailures counts wrong tokens per client, shared with the mail servers so a
	// guesser is throttled across protocols: a client with none left is answered 429
	// too_many_failures before its token is looked at. nil = no throttle.
	LoginFailures *limit.Buckets[netip.Addr]
	// TrustedProxies are the load balancers whose X-Forwarded-For names the client;
	// none by default, so a client cannot choose whom its requests count against.
	TrustedProxies []netip.Prefix
	// MaxReadsPerIP is how many reads of messages (parsed, HTML, raw, attachments) one
	// client may have in flight; more are answered 429 too_many_reads. 0 = 8, negative
	// = no limit.
	MaxReadsPerIP int
	// ParseCache is how many bytes of parsed messages the API keeps (MAYFLY_PARSE_CACHE);
	// 0 = 64 MiB.
	ParseCache int64
	// MaxTextJSON cuts a message's text, its HTML, its header fields and its links in
	// JSON answers to this many bytes each, marking the message truncated; the raw and
	// html routes have the rest. 0 = 1 MiB.
	MaxTextJSON int

	// ACMEChallenge, when set, answers an ACME CA's http-01 requests under
	// /.well-known/acme-challenge/.
	ACMEChallenge http.Handler
	// MCP, when set, is served at /mcp (server/mcpd: each of its tools is a request
	// to this API's own handler), under the rate limits of requests without a
	// credential; nil = no /mcp.
	MCP http.Handler
	// Reporter computes GET .../messages/{id}/report (server/report); nil = the route
	// answers 501.
	Reporter *report.Reporter
}

// store is what the API needs of storage.Store.
type store interface {
	List(ctx context.Context, inbox string, page storage.Page) ([]storage.Message, error)
	Get(ctx context.Context, inbox, id string) (*storage.Message, error)
	Raw(ctx context.Context, inbox, id string) ([]byte, error)
	Delete(ctx context.Context, inbox, id string) error
	DeleteInbox(ctx context.Context, inbox string) (int, error)
	Mailbox(ctx context.Context, inbox string) (storage.Mailbox, error)
	SetInbox(ctx context.Context, inbox string, set storage.InboxSettings) error
	Settings(ctx context.Context, inbox string) (storage.InboxSettings, error)
	SetFlags(ctx context.Context, inbox, id string, add, remove storage.Flags) (storage.Flags, error)
	Subscribe(ctx context.Context, inbox string) (<-chan storage.Event, error)
	// InboxEvents is the event stream's source (storage.EventLog): Subscribe only says
	// when to read it.
	InboxEvents(ctx context.Context, inbox, after string, limit int) ([]storage.LoggedEvent, error)
	Ping(ctx context.Context) error
	// NamespaceStore is the teams' (namespaces.go).
	storage.NamespaceStore
}

// authFailDelay is how late a refused login is answered (the login gate's Delay); a
// variable for tests, most of which have no second to spare per wrong password.
var authFailDelay = gate.Delay

// Server serves the API.
type Server struct {
	opts    Options
	store   store
	logger  *slog.Logger
	tokens  *storage.Tokens
	echo    *echo.Echo
	cache   *parseCache
	flight  singleflight.Group
	parses  atomic.Int64  // messages parsed, for tests
	parsing chan struct{} // a slot per parse running; see cachedMessage
	metrics *metrics
	// conns and requests are the per-client limits; nil = none.
	conns    *limit.Conns
	requests *limit.Buckets[rateKey]
	creates  *limit.Buckets[netip.Addr]
	reads    *limit.Conns
	awaiting atomic.Int64  // requests waiting for a read slot, for tests
	readWait time.Duration // how long a read past MaxReadsPerIP waits for a slot; a variable for tests
	// authFailDelay is how late a refused token is answered; a variable for tests.
	authFailDelay time.Duration
	// readTimeout bounds reading a request, body included, and readHeaderTimeout its
	// headers; variables for tests.
	readTimeout       time.Duration
	readHeaderTimeout time.Duration
	// sockets are the WebSocket sessions, which http.Server.Shutdown does not wait for;
	// once closing, no new one starts.
	writeWait time.Duration // a WebSocket client that takes no frame for this long is dropped
	socketsMu sync.Mutex
	sockets   sync.WaitGroup
	closing   bool
	// sseHeartbeat is how often an idle event stream gets a comment; a variable for tests.
	sseHeartbeat time.Duration
	resubscribed atomic.Int64 // event streams that fell behind the doorbell, for tests
}

// Limits on every request: bodies are small JSON, and nothing but a wait takes long.
const (
	maxBody        = 64 << 10
	requestTimeout = 30 * time.Second
	maxWait        = 120 * time.Second
)

// New returns the API over st.
func New(opts Options, st store, logger *slog.Logger) *Server {
	if opts.TTL <= 0 {
		opts.TTL = time.Hour
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = 24 * time.Hour
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.MaxConnectionsPerIP == 0 {
		opts.MaxConnectionsPerIP = defaultMaxConnections
	}
	if opts.ParseCache <= 0 {
		opts.ParseCache = defaultParseCache
	}
	if opts.MaxTextJSON <= 0 {
		opts.MaxTextJSON = defaultMaxTextJSON
	}
	if opts.RequestRate == (limit.Rate{}) {
		opts.RequestRate = defaultRequestRate
	}
	if opts.CreateRate == (limit.Rate{}) {
		opts.CreateRate = defaultCreateRate
	}
	s := &Server{
		opts:              opts,
		store:             st,
		logger:            logger.With("proto", "http"),
		tokens:            tokensOf(opts.Secret),
		authFailDelay:     authFailDelay,
		cache:             newParseCache(opts.ParseCache),
		parsing:           make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		metrics:           newMetrics(opts.Registry),
		readTimeout:       defaultReadTimeout,
		readWait:          defaultReadWait,
		readHeaderTimeout: defaultReadHeaderTimeout,
		writeWait:         writeWait,
		sseHeartbeat:      sseHeartbeat,
	}
	opts.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mayfly_http_parse_cache_bytes",
		Help: "Bytes of parsed messages the API keeps, at most MAYFLY_PARSE_CACHE.",
	}, func() float64 { return float64(s.cache.bytes()) }))
	if opts.MaxConnectionsPerIP > 0 {
		s.conns = limit.NewConns(opts.MaxConnectionsPerIP).Except(func(a net.Addr) bool { return s.trusted(peerIP(a.String())) })
	}
	if opts.MaxReadsPerIP == 0 {
		opts.MaxReadsPerIP = defaultMaxReads
	}
	if opts.MaxReadsPerIP > 0 {
		s.reads = limit.NewConns(opts.MaxReadsPerIP)
	}
	if !opts.RequestRate.Off() {
		s.requests = limit.NewBuckets[rateKey](opts.RequestRate)
	}
	if !opts.CreateRate.Off() {
		s.creates = limit.NewBuckets[netip.Addr](opts.CreateRate)
	}
	s.echo = s.routes()
	return s
}

// tokensOf returns the inbox tokens under secret. Tokens under an empty secret anybody
// could make, so without one they are under a random secret nobody knows: the tokens
// this server hands out open, and no other.
func tokensOf(secret []byte) *storage.Tokens {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	}
	return storage.NewTokens(secret)
}

// Handler returns the API as an http.Handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.echo }

// Run listens on Options.Addr and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then lets requests in flight finish for at most
// Options.ShutdownTimeout; waits in flight end at once with their current answer.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ln = limit.Listener(ln, s.conns, connRefusal, func() { s.metrics.refused.WithLabelValues("connections").Inc() })
	// A slow client may not hold a connection by trickling a request: its headers have
	// readHeaderTimeout to arrive, all of it readTimeout. That covers reading the
	// request, not the handler's work: net/http clears the deadline once the body is
	// read (a wait has none to read), and a hijacked WebSocket sets its own.
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: s.readHeaderTimeout,
		ReadTimeout:       s.readTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithValue(ctx, serveContext{}, ctx) },
	}
	base := "http://" + ln.Addr().String()
	urls := []any{"addr", ln.Addr().String(), "url", base + "/", "api", base + "/api/v1"}
	if s.opts.MCP != nil {
		urls = append(urls, "mcp", base+"/mcp")
	}
	s.logger.Info("listening", urls...)
	err := serveHTTP(ctx, srv, ln, s.opts.ShutdownTimeout, s.logger)
	s.socketsMu.Lock()
	s.closing = true
	s.socketsMu.Unlock()
	s.sockets.Wait() // their context ended with ctx: they are closing
	return err
}

// serveHTTP serves srv on ln until ctx ends, then lets requests in flight finish for at
// most timeout. Hijacked connections (WebSockets) are the caller's to wait for.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("requests still open after the shutdown timeout", "err", err)
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	return nil
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The peer's address, not X-Forwarded-For, unless the peer is a trusted proxy: a
	// header any client can set must not decide whose requests and failures are counted.
	e.IPExtractor = func(r *http.Request) string { return s.clientIP(r).String() }
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.logger.Error("panic", "route", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(s.metrics.middleware)
	e.Use(s.limitRate)
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: strconv.Itoa(maxBody), Skipper: skipBodyLimit}))
	// echo reads no origins as "any origin"; ours reads them as none.
	if len(s.opts.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  s.opts.CORSOrigins,
			AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
			AllowHeaders:  []string{"Authorization", "Content-Type", "Last-Event-ID"},
			ExposeHeaders: []string{"Content-Disposition"},
			MaxAge:        3600,
		}))
	}

	e.GET("/healthz", s.healthz)
	if s.opts.ACMEChallenge != nil {
		e.GET("/.well-known/acme-challenge/*", echo.WrapHandler(s.opts.ACMEChallenge))
	}
	e.GET("/readyz", s.readyz)
	if s.opts.MetricsAddr == "" {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{})), s.operatorOnly)
	}
	e.GET("/api/openapi.json", s.openAPI)
	if s.opts.MCP != nil {
		e.Match([]string{http.MethodGet, http.MethodPost, http.MethodDelete}, "/mcp", echo.WrapHandler(s.opts.MCP))
	}

	api := e.Group("/api/v1", timeout(requestTimeout))
	api.POST("/inboxes", s.createInbox)
	api.GET("/service", s.service)
	api.POST("/totp", s.totpCode)
	hooks := api.Group("/webhooks", s.webhooksOffered)
	hooks.POST("", s.createWebhook)
	hooks.GET("", s.listWebhooks)
	hooks.GET("/:id", s.getWebhook)
	hooks.DELETE("/:id", s.deleteWebhook)
	hooks.GET("/:id/deliveries", s.listDeliveries)
	hooks.POST("/:id/test", s.testWebhook)
	hooks.POST("/:id/deliveries/:delivery/retry", s.retryDelivery)
	api.POST("/namespaces", s.createNamespace, s.adminOnly)
	api.GET("/namespaces", s.listNamespaces, s.adminOnly)
	api.GET("/activity", s.activity, s.adminOnly)
	api.PATCH("/namespaces/:name", s.patchNamespace, s.adminOnly)
	api.DELETE("/namespaces/:name", s.deleteNamespace, s.adminOnly)
	api.POST("/namespaces/:name/keys", s.addKey, s.adminOnly)
	api.DELETE("/namespaces/:name/keys/:id", s.revokeKey, s.adminOnly)
	ns := e.Group("/api/v1/namespaces/:name", s.namespaceAuth)
	ns.GET("", s.getNamespace, timeout(requestTimeout))
	ns.GET("/messages", s.namespaceMessages, timeout(requestTimeout))
	ns.GET("/wait", s.namespaceWait, timeout(maxWait+5*time.Second))
	ns.DELETE("/inboxes", s.deleteNamespaceInboxes, timeout(requestTimeout))
	inbox := e.Group(inboxRoute, s.authorize)
	inbox.GET("/wait", s.wait, timeout(maxWait+5*time.Second))
	inbox.GET("/ws", s.websocket)
	inbox.GET("/events", s.events)
	inbox.GET("/messages", s.listMessages, timeout(requestTimeout))
	inbox.GET("/messages/:id", s.getMessage, timeout(requestTimeout), s.limitReads)
	inbox.GET("/messages/:id/raw", s.getRaw, timeout(requestTimeout), s.limitReads)
	inbox.GET("/messages/:id/html", s.getHTML, timeout(requestTimeout), s.limitReads)
	inbox.GET("/messages/:id/report", s.getReport, timeout(requestTimeout), s.limitReads)
	inbox.GET(strings.TrimPrefix(attachmentRoute, inboxRoute), s.getAttachment, timeout(requestTimeout), s.limitReads)
	inbox.DELETE("/messages/:id", s.deleteMessage, timeout(requestTimeout))
	inbox.POST("/messages/:id/reply", s.reply, timeout(requestTimeout))
	inbox.POST(injectRoute, s.inject, timeout(requestTimeout))
	inbox.DELETE("", s.deleteInbox, timeout(requestTimeout))
	inbox.GET("", s.getInbox, timeout(requestTimeout))
	inbox.PATCH("", s.patchInbox, timeout(requestTimeout))
	inbox.PATCH("/messages/:id", s.patchMessage, timeout(requestTimeout))
	s.routeAdminPage(e)
	if s.opts.Frontend != nil {
		files := http.FileServer(http.FS(s.opts.Frontend))
		e.GET("/*", func(c echo.Context) error {
			if strings.HasPrefix(c.Request().URL.Path, "/api/") {
				return echo.ErrNotFound // an API route that does not exist answers in JSON
			}
			pageHeaders(c.Response().Header())
			files.ServeHTTP(c.Response(), c.Request())
			return nil
		}, middleware.Gzip()) // the page's script and style shrink to a third
	}
	return e
}

const (
	inboxRoute      = "/api/v1/inboxes/:address"
	attachmentRoute = inboxRoute + "/messages/:id/attachments/:index"
)

// timeout bounds a handler's time through its request context; the store calls give
// up when it ends.
func timeout(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx, cancel := context.WithTimeout(c.Request().Context(), d)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

// apiError is an error with its status and machine-readable code, answered as
// {"error": {"code": ..., "message": ...}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter, when set, is said in a Retry-After header: when trying again helps.
	RetryAfter time.Duration `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// serveContext keys the context Serve runs under, in every request's context.
type serveContext struct{}

// stopping says whether the server c came through is shutting down.
func stopping(c echo.Context) bool {
	base, ok := c.Request().Context().Value(serveContext{}).(context.Context)
	return ok && base.Err() != nil
}

// handleError answers every error in one JSON shape: the handlers' own, echo's (404 of
// the router, 413 of the body limit), and internal ones, which are logged and answered
// generically — or 503 when the store is down, so clients retry.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = &apiError{Status: he.Code, Code: codeFor(he.Code), Message: fmt.Sprint(he.Message)}
		if he.Code == http.StatusRequestEntityTooLarge {
			ae.Message = fmt.Sprintf("request body over %d bytes", maxBody)
		}
	case errors.Is(err, storage.ErrNotFound):
		ae = errorf(http.StatusNotFound, "not_found", "no such message")
	case errors.Is(err, context.Canceled) && stopping(c):
		// A wait or a read cut short by SIGTERM: another node can answer it.
		ae = errorf(http.StatusServiceUnavailable, "unavailable", "the server is stopping; try again")
	case errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil:
		// The client went away: nobody reads an answer, and it is not the server's error.
		s.logger.Debug("request abandoned", "route", c.Path())
		ae = errorf(499, "canceled", "the request was canceled")
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.logger.Warn("store unavailable", "route", c.Path(), "err", err)
		ae = errorf(http.StatusServiceUnavailable, "unavailable", "the store is unavailable; try again")
	default:
		s.logger.Error("request", "route", c.Path(), "err", err)
		ae = errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	if ae.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(ae.RetryAfter.Seconds())))))
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(ae.Status)
		return
	}
	c.JSON(ae.Status, map[string]*apiError{"error": ae})
}

func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestTimeout:
		return "timeout"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "error"
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready when the store answers: a node whose Redis is gone should leave the
// load balancer's rotation.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger.Warn("not ready", "err", err)
		return errorf(http.StatusServiceUnavailable, "unavailable", "the store does not answer")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
