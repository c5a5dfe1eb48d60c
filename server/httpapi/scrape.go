package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsServer serves /metrics on a listener of its own (MAYFLY_METRICS_ADDR), which
// the operator keeps off the public side: whoever reaches it may read it.
type MetricsServer struct {
	addr            string
	handler         http.Handler
	shutdownTimeout time.Duration
	logger          *slog.Logger
}

// NewMetricsServer returns a server of reg's metrics on addr; a shutdownTimeout of 0 = 10s.
func NewMetricsServer(addr string, reg *prometheus.Registry, shutdownTimeout time.Duration, logger *slog.Logger) *MetricsServer {
	if shutdownTimeout <= 0 {
		shutdownTimeout = 10 * time.Second
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return &MetricsServer{addr: addr, handler: mux, shutdownTimeout: shutdownTimeout, logger: logger.With("proto", "metrics")}
}

// Run listens on the server's address and serves until ctx ends.
func (m *MetricsServer) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	return m.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then lets scrapes in flight finish.
func (m *MetricsServer) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           m.handler,
		ReadHeaderTimeout: defaultReadHeaderTimeout,
		ReadTimeout:       defaultReadTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	m.logger.Info("listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/metrics")
	return serveHTTP(ctx, srv, ln, m.shutdownTimeout, m.logger)
}
