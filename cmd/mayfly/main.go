// Command mayfly is a self-hostable disposable inbox service: a catch-all MX that keeps
// mail for a limited time and shows each throwaway inbox over HTTP, IMAP and POP3.
//
//	mayfly [serve] [flags]   run the service (the default)
//	mayfly token ADDRESS     print the inbox token of ADDRESS
//	mayfly inbox             create an inbox on a running server; print its address and token
//	mayfly wait [ADDRESS]    wait for mail in an inbox of a running server
//	mayfly mcp               stdio bridge to a running server's /mcp, for desktop agents
//	mayfly dns -domain D -ip IP [-check]   print (or check) the DNS records to publish
//	mayfly version           print the version
//
// Every flag has a MAYFLY_* environment twin; `mayfly serve -help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/mayfly-mail/mayfly/frontend"
	"github.com/mayfly-mail/mayfly/server/certs"
	"github.com/mayfly-mail/mayfly/server/cli"
	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/dnssetup"
	"github.com/mayfly-mail/mayfly/server/httpapi"
	"github.com/mayfly-mail/mayfly/server/imapd"
	"github.com/mayfly-mail/mayfly/server/inboxtoken"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/mailauth"
	"github.com/mayfly-mail/mayfly/server/mcpd"
	"github.com/mayfly-mail/mayfly/server/mx"
	"github.com/mayfly-mail/mayfly/server/pop3d"
	"github.com/mayfly-mail/mayfly/server/report"
	"github.com/mayfly-mail/mayfly/server/webhook"
	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
	"github.com/mayfly-mail/mayfly/storage/storemetrics"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := command(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var exit *cli.Exit
	switch {
	case errors.As(err, &exit):
		if exit.Message != "" {
			fmt.Fprintln(os.Stderr, "mayfly:", exit.Message)
		}
		os.Exit(exit.Code)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "mayfly:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "mayfly:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line or settings: exit status 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := "serve"
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		printHelp(stdout)
		return flag.ErrHelp
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "serve":
		cfg, err := parseConfig("mayfly serve", args, os.LookupEnv, stderr)
		if err != nil {
			return asUsage(err)
		}
		return serve(ctx, cfg, newLogger(cfg, stderr))
	case "token":
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return usageError{errors.New("usage: mayfly token ADDRESS [flags]")}
		}
		cfg, err := parseConfig("mayfly token ADDRESS", args[1:], os.LookupEnv, stderr)
		if err != nil {
			return asUsage(err)
		}
		serverURL, ok := os.LookupEnv("MAYFLY_URL")
		if !ok || serverURL == "" {
			serverURL = defaultServerURL
		}
		src := inboxtoken.Source{Secret: cfg.Secret, RedisURL: cfg.RedisURL, ServerURL: serverURL}
		return fromUsage(inboxtoken.Print(ctx, src, args[0], stdout))
	case "inbox":
		return cli.Inbox(ctx, args, os.LookupEnv, stdout, stderr)
	case "wait":
		return cli.Wait(ctx, args, os.LookupEnv, stdout, stderr)
	case "report":
		return cli.Report(ctx, args, os.LookupEnv, stdout, stderr)
	case "mcp":
		endpoint, token, err := cli.MCPServer(args, os.LookupEnv, stderr)
		if err != nil {
			return err
		}
		// stdout is the protocol's: the bridge's complaints go to stderr.
		logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		return mcpd.Bridge(ctx, endpoint, token, version(), os.Stdin, os.Stdout, logger)
	case "dns":
		return fromUsage(dnssetup.Command(ctx, args, os.LookupEnv, stdout, stderr))
	case "version":
		fmt.Fprintln(stdout, "mayfly", version())
		return nil
	case "probe":
		return probe(ctx, args, os.LookupEnv, stdout)
	case "help":
		printHelp(stdout)
		return nil
	}
	printHelp(stderr)
	return usageError{fmt.Errorf("unknown command %q", sub)}
}

// fromUsage makes a subcommand's usage error ours.
func fromUsage(err error) error {
	if errors.As(err, new(dnssetup.UsageError)) || errors.As(err, new(inboxtoken.UsageError)) {
		return usageError{err}
	}
	return err
}

func asUsage(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `Mayfly: disposable inboxes. A catch-all MX that keeps mail for a while.

Usage:
  mayfly [serve] [flags]   run the service (the default)
  mayfly token ADDRESS     print the inbox token of ADDRESS: computed from MAYFLY_SECRET,
                           or the secret Redis shares (MAYFLY_REDIS_URL), or else asked of
                           the running server at MAYFLY_URL (default `+defaultServerURL+`),
                           whose memory store makes a new secret each time it starts
  mayfly inbox [--local L] [--domain D] [--ttl 30m] [--json | --env]
                           create an inbox on the server at MAYFLY_URL; print its address
                           and token, one a line (docs/qa.md, "The command line")
  mayfly wait [ADDRESS] [--subject S] [--code | --link[=S] | --json] [--timeout 30s] ...
                           wait for mail in ADDRESS (default $MAYFLY_INBOX, token
                           $MAYFLY_TOKEN); exit 0 found, 1 timed out, 2 error; -h for the flags
  mayfly report [ADDRESS] ID [--json]
                           print the deliverability report of a message: score out of 10,
                           each check with the points it cost and its fix (docs/report.md)
  mayfly mcp [--url URL] [--token T]
                           MCP over stdio for desktop agents, bridged to MAYFLY_URL/mcp
                           with MAYFLY_TOKEN or MAYFLY_API_KEY as bearer (docs/mcp.md)
  mayfly dns -domain D -ip IP [-host H] [-dkim-key FILE] [-check]
                           print the DNS records to publish (MX, A, SPF, DKIM, DMARC,
                           PTR), or check what the resolver answers; -h for the flags
  mayfly version           print the version
  mayfly probe [/readyz]   exit 0 when this host's mayfly answers 200 on /healthz (or the
                           path) at MAYFLY_HTTP_ADDR's port: the image's health check

`)
	printUsage(w, "mayfly serve", settings())
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// newRegistry returns the registry /metrics serves: the Go runtime, the process, and
// what the store holds.
func newRegistry(st storage.Store, memoryLimit int64) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	storemetrics.Register(reg, st, memoryLimit)
	return reg
}

// mcpMaxWait bounds a wait tool call of /mcp; 0 = mcpd's default (55s). Tests shorten it.
var mcpMaxWait time.Duration

// certPoll is how often the certificate files are looked at; 0 = the certs default.
// Tests shorten it.
var certPoll time.Duration

// server is what every listener of Mayfly is.
type server interface {
	Run(ctx context.Context) error
}

func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	logConfig(cfg, logger)
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close() // after every server has drained
	// On Redis the ACME state is kept where every node finds it.
	shared, _ := st.(certs.SharedValues)
	cert, tlsConfig, err := certs.New(certs.Options{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, Hostname: cfg.Hostname, ACME: cfg.ACME, Shared: shared, Poll: certPoll}, logger)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	smtpTLS := cert.SMTPStartTLS(cfg.SMTPStartTLS, tlsConfig)

	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		if secret, err = st.Secret(ctx); err != nil {
			return fmt.Errorf("token secret: %w", err)
		}
	}
	// Both stores keep the outgoing queue too; the timing wrapper covers the Store
	// methods only, so the queue is taken before it.
	queue, _ := st.(storage.Queue)
	registry := newRegistry(st, cfg.MemoryLimit)
	st = storemetrics.Timed(st, registry)
	// One DNS client: verification and outbound delivery share its cache.
	res, err := dnsclient.New(dnsclient.Options{Server: cfg.DNS, Metrics: registry})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	var verifier interface { // nil, not a nil *mailauth.Verifier, when off
		Verify(context.Context, mailauth.Input) mailauth.Result
	}
	if cfg.Verify {
		v, err := mailauth.New(mailauth.Options{AuthservID: cfg.Hostname, Resolver: res, Metrics: registry})
		if err != nil {
			return fmt.Errorf("mail authentication: %w", err)
		}
		verifier = v
	}
	// The report explains verdicts by verifying again, on request only: it has a
	// verifier of its own even when incoming mail is not verified.
	explainer, err := mailauth.New(mailauth.Options{AuthservID: cfg.Hostname, Resolver: res})
	if err != nil {
		return fmt.Errorf("mail authentication: %w", err)
	}
	reporter, err := report.New(report.Options{Verifier: explainer, Resolver: res, RspamdURL: cfg.RspamdURL})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}

	// One count of failed logins for every protocol, so a guesser gains nothing by
	// moving from IMAP to POP3 to HTTP.
	failures := limit.NewBuckets[netip.Addr](limit.Rate(cfg.LoginFailures))
	// The limits every mail listener shares; 0 in the config is no limit, in
	// Options the default.
	front := limit.Options{
		MaxConnectionsPerIP: perClient(cfg.MaxConnectionsPerIP),
		ShutdownTimeout:     cfg.ShutdownTimeout,
		CommandRate:         limit.Rate(cfg.CommandRate),
		LoginFailures:       failures,
		TrustedProxies:      cfg.TrustedProxies,
		Metrics:             registry,
	}
	inbound := front // CommandRate and LoginFailures do not apply to inbound SMTP
	inbound.MaxConnections = cfg.SMTPMaxConnections
	servers := []server{
		mx.New(mx.Options{
			Namespaces:     st,
			Addr:           cfg.SMTPAddr,
			Hostname:       cfg.Hostname,
			Domains:        cfg.Domains,
			MaxMessageSize: cfg.MaxMessageSize,
			Timeout:        cfg.SMTPTimeout,
			TTL:            cfg.TTL,
			TLS:            smtpTLS,
			Verifier:       verifier,
			RecipientRate:  limit.Rate(cfg.RecipientRate),
			ReceiveRate:    limit.Rate(cfg.ReceiveRate),
			Options:        inbound,

			// 0 in the config is no limit; in Options, the default.
			MaxStalledCommands: perClient(cfg.SMTPMaxStalledCommands),
		}, st, logger),
	}
	receiver := servers[0].(*mx.Server) // POST .../messages stores through it
	keys := storage.Keys{Tokens: storage.NewTokens(secret), APIKey: cfg.APIKey, Namespaces: st}
	if cfg.IMAPAddr != "" || cfg.IMAPSAddr != "" {
		servers = append(servers, imapd.New(imapd.Options{
			Addr:          cfg.IMAPAddr,
			TLSAddr:       cfg.IMAPSAddr,
			Hostname:      cfg.Hostname,
			Domains:       cfg.Domains,
			Keys:          keys,
			TLS:           tlsConfig,
			SearchTimeout: cfg.IMAPSearchTimeout,
			Options:       front,
		}, st, logger))
	}
	if cfg.POP3Addr != "" || cfg.POP3SAddr != "" {
		servers = append(servers, pop3d.New(pop3d.Options{
			Addr:     cfg.POP3Addr,
			TLSAddr:  cfg.POP3SAddr,
			Hostname: cfg.Hostname,
			Domains:  cfg.Domains,
			Keys:     keys,
			TLS:      tlsConfig,
			Options:  front,
		}, st, logger))
	}
	// Webhooks are delivered by every node, with or without an HTTP listener: the
	// queue is the store's.
	hooks := webhook.New(webhook.Options{
		AllowPrivate:    cfg.AllowPrivate,
		Describe:        httpapi.WebhookMessage,
		Timeout:         cfg.WebhookTimeout,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Registry:        registry,
	}, st, logger)
	servers = append(servers, hooks)
	sub, err := newSubmission(cfg, keys, front, tlsConfig, st, queue, res, logger)
	if err != nil {
		return err
	}
	servers = append(servers, sub)
	if cfg.HTTPAddr != "" {
		// /mcp's tools are requests to the API's own handler, which exists only once
		// the API does: the MCP handler reaches it through api, set below.
		var api http.Handler
		mcpHandler := mcpd.New(mcpd.Options{MaxWait: mcpMaxWait, Version: version()},
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.ServeHTTP(w, r) }), logger)
		srv := httpapi.New(httpapi.Options{
			Addr:                cfg.HTTPAddr,
			Domains:             cfg.Domains,
			Hostname:            cfg.Hostname,
			TTL:                 cfg.TTL,
			MaxTTL:              cfg.MaxTTL,
			Secret:              secret,
			APIKey:              cfg.APIKey,
			Public:              cfg.Public,
			CORSOrigins:         cfg.CORSOrigins,
			ShutdownTimeout:     cfg.ShutdownTimeout,
			Registry:            registry,
			MetricsAddr:         cfg.MetricsAddr,
			Frontend:            frontend.FS(),
			MaxMessageSize:      cfg.MaxMessageSize,
			MailClients:         mailClients(cfg),
			Replier:             replier{sub},
			Injector:            injector{receiver},
			Webhooks:            hooks,
			MaxConnectionsPerIP: perClient(cfg.HTTPMaxConnectionsPerIP),
			MaxReadsPerIP:       perClient(cfg.HTTPMaxReadsPerIP),
			ParseCache:          cfg.ParseCache,
			RequestRate:         limit.Rate(cfg.HTTPRate),
			CreateRate:          limit.Rate(cfg.InboxCreateRate),
			LoginFailures:       failures,
			TrustedProxies:      cfg.TrustedProxies,
			ACMEChallenge:       cert.Challenge(),
			MCP:                 mcpHandler,
			Reporter:            reporter,
		}, st, logger)
		api = srv.Handler()
		servers = append(servers, srv)
	}
	if cfg.MetricsAddr != "" {
		servers = append(servers, httpapi.NewMetricsServer(cfg.MetricsAddr, registry, cfg.ShutdownTimeout, logger))
	}
	if cfg.PprofAddr != "" {
		servers = append(servers, pprofServer{addr: cfg.PprofAddr, logger: logger})
	}
	g, ctx := errgroup.WithContext(ctx)
	watch := cert.Watch(ctx)
	g.Go(func() error { watch(); return nil })
	if cfg.RedisURL == "" {
		g.Go(func() error { memstore.TuneGC(ctx); return nil })
	}
	for _, srv := range servers {
		g.Go(func() error { return srv.Run(ctx) })
	}
	err = g.Wait()
	logger.Info("stopped")
	return err
}

// perClient turns the setting's "0 = no limit" into the servers' "negative = no limit"
// (their zero is a default).
func perClient(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// mailClients lists the listeners a user may point a mail client at.
func mailClients(cfg Config) []httpapi.Endpoint {
	return httpapi.Endpoints(cfg.Hostname,
		httpapi.Listener{Protocol: "IMAP", Addr: cfg.IMAPAddr, Security: "STARTTLS"},
		httpapi.Listener{Protocol: "IMAP", Addr: cfg.IMAPSAddr, Security: "TLS"},
		httpapi.Listener{Protocol: "POP3", Addr: cfg.POP3Addr, Security: "STARTTLS"},
		httpapi.Listener{Protocol: "POP3", Addr: cfg.POP3SAddr, Security: "TLS"},
		httpapi.Listener{Protocol: "SMTP submission", Addr: cfg.SubmissionAddr, Security: "STARTTLS"},
		httpapi.Listener{Protocol: "SMTP submission", Addr: cfg.SubmissionsAddr, Security: "TLS"})
}

func openStore(ctx context.Context, cfg Config, logger *slog.Logger) (storage.Store, error) {
	if cfg.RedisURL == "" {
		logger.Info("store", "kind", "memory", "memory_limit", cfg.MemoryLimit, "max_messages", cfg.MaxMessages)
		return memstore.New(memstore.Options{MaxMessages: cfg.MaxMessages, MemoryLimit: cfg.MemoryLimit}), nil
	}
	st, err := redisstore.New(ctx, redisstore.Options{URL: cfg.RedisURL, MaxMessages: cfg.MaxMessages, Logger: logger,
		ReplicaWait: replicaWait(cfg.ReplicaWait), SettingsCache: cfg.SettingsCache})
	if err != nil {
		return nil, err
	}
	logger.Info("store", "kind", "redis", "max_messages", cfg.MaxMessages)
	return st, nil
}

// defaultServerURL is where the CLI finds a server when MAYFLY_URL is unset: the
// default HTTP listener.
const defaultServerURL = cli.DefaultURL

// logConfig logs the settings once at start, secrets reduced to whether they are set.
func logConfig(cfg Config, logger *slog.Logger) {
	set := func(s string) string {
		if s == "" {
			return "unset"
		}
		return "set"
	}
	logger.Info("config",
		"domains", strings.Join(cfg.Domains, ","), "hostname", cfg.Hostname,
		"store", map[bool]string{true: "memory", false: "redis"}[cfg.RedisURL == ""],
		"ttl", cfg.TTL, "max_ttl", cfg.MaxTTL, "max_message_size", cfg.MaxMessageSize, "max_messages", cfg.MaxMessages,
		"secret", set(cfg.Secret), "api_key", set(cfg.APIKey), "public", cfg.Public,
		"tls_cert", cfg.TLSCert, "acme", cfg.ACME.Email != "", "smtp_starttls", cfg.SMTPStartTLS, "version", version())
}

// replicaWait is -redis-replica-wait as redisstore takes it, where 0 is its default.
func replicaWait(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
