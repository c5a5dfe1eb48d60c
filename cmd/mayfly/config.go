package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mayfly-mail/mayfly/server/certs"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage/redisstore"
)

// Config is every setting, validated. Only this package reads flags and environment.
type Config struct {
	Domains         []string
	Hostname        string
	SMTPAddr        string
	SubmissionAddr  string
	SubmissionsAddr string
	IMAPAddr        string
	IMAPSAddr       string
	POP3Addr        string
	POP3SAddr       string
	HTTPAddr        string
	MetricsAddr     string
	PprofAddr       string
	RedisURL        string
	ReplicaWait     time.Duration
	TTL             time.Duration
	MaxTTL          time.Duration
	MemoryLimit     int64
	ParseCache      int64
	MaxMessageSize  int64
	MaxMessages     int
	SettingsCache   time.Duration
	Secret          string
	APIKey          string
	Public          bool
	TLSCert         string
	TLSKey          string
	SMTPStartTLS    string // auto, on or off
	ACME            certs.ACME
	DKIMKey         string
	DKIMSelector    string
	Relay           *url.URL // nil = direct to MX
	SendLimit       limit.Rate
	ClientSendLimit limit.Rate
	OutboundRate    limit.Rate
	MaxReplyRcpts   int
	AllowPrivate    bool
	InboxCreateRate limit.Rate
	OutboundPort    int
	CORSOrigins     []string
	DNS             string
	Verify          bool
	RspamdURL       string // the deliverability report's spam scorer; "" = not run

	IMAPSearchTimeout      time.Duration
	SMTPMaxConnections     int
	SMTPTimeout            time.Duration
	SMTPMaxStalledCommands int

	MaxConnectionsPerIP     int
	HTTPMaxConnectionsPerIP int
	HTTPMaxReadsPerIP       int
	CommandRate             limit.Rate
	LoginFailures           limit.Rate
	HTTPRate                limit.Rate
	RecipientRate           limit.Rate
	ReceiveRate             limit.Rate
	TrustedProxies          []netip.Prefix

	WebhookTimeout time.Duration

	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
}

// setting is one row of the settings table: a flag, its environment twin, its default.
type setting struct {
	name  string // flag name; the variable is MAYFLY_ + upper-cased name with _ for -
	def   string
	usage string
	set   func(c *Config, v string) error
}

func (s setting) env() string {
	return "MAYFLY_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func defaultHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

func settings() []setting {
	return []setting{
		{"domains", "mayfly.test", "comma list of domains accepted (catch-all); the first is used for random addresses", func(c *Config, v string) (err error) {
			c.Domains, err = parseDomains(v)
			return err
		}},
		{"hostname", defaultHostname(), "name in the SMTP banner, EHLO reply and Received headers", func(c *Config, v string) error {
			if v == "" || strings.ContainsAny(v, " \t\r\n") {
				return errors.New("want a host name")
			}
			c.Hostname = v
			return nil
		}},
		{"smtp-addr", "127.0.0.1:2525", "inbound MX listener (port 25 in production)", addr(func(c *Config) *string { return &c.SMTPAddr }, true)},
		{"submission-addr", "127.0.0.1:2587", "SMTP submission with STARTTLS and AUTH (587 in production); empty = off", addr(func(c *Config) *string { return &c.SubmissionAddr }, false)},
		{"submissions-addr", "", "SMTP submission over implicit TLS (465); empty = off", addr(func(c *Config) *string { return &c.SubmissionsAddr }, false)},
		{"imap-addr", "127.0.0.1:1143", "IMAP with STARTTLS; empty = off", addr(func(c *Config) *string { return &c.IMAPAddr }, false)},
		{"imaps-addr", "", "IMAP over implicit TLS (993); empty = off", addr(func(c *Config) *string { return &c.IMAPSAddr }, false)},
		{"pop3-addr", "127.0.0.1:1110", "POP3 with STLS; empty = off", addr(func(c *Config) *string { return &c.POP3Addr }, false)},
		{"pop3s-addr", "", "POP3 over implicit TLS (995); empty = off", addr(func(c *Config) *string { return &c.POP3SAddr }, false)},
		{"http-addr", "127.0.0.1:8025", "web UI and API; empty = off", addr(func(c *Config) *string { return &c.HTTPAddr }, false)},
		{"metrics-addr", "", "Prometheus /metrics on a listener of its own; empty = on the HTTP listener, for loopback peers and the admin key only", addr(func(c *Config) *string { return &c.MetricsAddr }, false)},
		{"pprof-addr", "", "Go's runtime profiles (/debug/pprof/) on a listener of their own, for whoever reaches it (bind it to loopback); empty = none", addr(func(c *Config) *string { return &c.PprofAddr }, false)},
		{"redis-url", "", "redis:// or rediss:// URL, or comma-separated addresses for a Cluster; empty = the embedded memory store", func(c *Config, v string) error {
			if v != "" {
				if err := redisstore.CheckURL(v); err != nil {
					return err
				}
			}
			c.RedisURL = v
			return nil
		}},
		{"redis-replica-wait", "1s", "Redis with replicas: how long the answer to a message waits for a replica of its primary to have it (else 451), so a failover loses no accepted mail; 0 = answer once the primary has it", func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return errors.New("want a duration such as 500ms or 1s, or 0")
			}
			c.ReplicaWait = d
			return nil
		}},
		{"ttl", "1h", "how long a message lives, unless its inbox was created with its own ttl", duration(func(c *Config) *time.Duration { return &c.TTL })},
		{"max-ttl", "24h", "the longest ttl an inbox may ask for", duration(func(c *Config) *time.Duration { return &c.MaxTTL })},
		{"memory-limit", "512MiB", "memory store only: total message bytes kept; the soonest to expire go first", size(func(c *Config) *int64 { return &c.MemoryLimit })},
		{"parse-cache", "64MiB", "bytes of parsed messages the HTTP API keeps, across all inboxes", func(c *Config, v string) (err error) {
			if c.ParseCache, err = limit.ParseSize(v); err == nil && c.ParseCache < 1<<20 {
				err = errors.New("want at least 1MiB")
			}
			return err
		}},
		{"max-message-size", "10MiB", "larger mail gets 552 5.3.4", size(func(c *Config) *int64 { return &c.MaxMessageSize })},
		{"max-messages", "200", "messages kept per inbox; the oldest goes first", positive(func(c *Config) *int { return &c.MaxMessages })},
		{"settings-cache", "1s", "Redis store: how long a node takes an inbox read to have no settings (faults, ttl, burn) for that, rather than read them at every RCPT; faults set through another node apply there within it; 0 = read every time", func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return errors.New("want a duration such as 1s or 500ms, or 0")
			}
			c.SettingsCache = d
			return nil
		}},
		{"secret", "", "HMAC key for inbox tokens; empty = random per process (memory) or shared in Redis", func(c *Config, v string) error {
			if v != "" && len(v) < 16 {
				return errors.New("want at least 16 characters")
			}
			c.Secret = v
			return nil
		}},
		{"api-key", "", "admin key: reads every inbox", func(c *Config, v string) error { c.APIKey = v; return nil }},
		{"public", "false", "true = any inbox is readable without its token", func(c *Config, v string) (err error) {
			c.Public, err = strconv.ParseBool(v)
			return err
		}},
		{"tls-cert", "", "PEM certificate for STARTTLS and the TLS listeners; empty = self-signed, made at start", func(c *Config, v string) error { c.TLSCert = v; return nil }},
		{"tls-key", "", "PEM private key of tls-cert", func(c *Config, v string) error { c.TLSKey = v; return nil }},
		{"smtp-starttls", "auto", "inbound SMTP offers STARTTLS: auto = only with a certificate from tls-cert or ACME, on = also the self-signed one, off = never", oneOf(func(c *Config) *string { return &c.SMTPStartTLS }, "auto", "on", "off")},
		{"acme-email", "", "contact address for an ACME account; set, the certificate comes from the ACME CA (acme-url) for acme-hosts, over http-01 on the HTTP listener (which must be port 80 of those names)", func(c *Config, v string) error {
			if v != "" && !strings.Contains(v, "@") {
				return errors.New("want an email address")
			}
			c.ACME.Email = v
			return nil
		}},
		{"acme-hosts", "", "comma list of names to get certificates for; empty = hostname; the first is served to clients that name none", func(c *Config, v string) error {
			c.ACME.Hosts = splitList(v)
			return nil
		}},
		{"acme-dir", "/var/lib/mayfly/acme", "directory where the ACME account and certificates are kept between restarts", func(c *Config, v string) error {
			if v == "" {
				return errors.New("want a directory")
			}
			c.ACME.Dir = v
			return nil
		}},
		{"acme-url", "https://acme-v02.api.letsencrypt.org/directory", "directory URL of the ACME CA (Let's Encrypt; its staging, or a private CA)", func(c *Config, v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return errors.New("want an https:// URL")
			}
			c.ACME.URL = v
			return nil
		}},
		{"acme-ca", "", "PEM file of the roots to trust for the ACME CA's own HTTPS (a private CA); empty = the system's", func(c *Config, v string) error { c.ACME.CA = v; return nil }},
		{"dkim-key", "", "PEM key signing outgoing replies (RSA PKCS#1 or PKCS#8, Ed25519 PKCS#8)", func(c *Config, v string) error { c.DKIMKey = v; return nil }},
		{"dkim-selector", "mayfly", "DKIM selector of dkim-key", func(c *Config, v string) error { c.DKIMSelector = v; return nil }},
		{"relay", "", "smarthost for outgoing mail: smtp://[user:pass@]host:port or smtps://...; empty = direct to MX", func(c *Config, v string) error {
			c.Relay = nil
			if v != "" {
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
					return errors.New("want smtp://[user:pass@]host:port or smtps://[user:pass@]host:port")
				}
				c.Relay = u
			}
			return nil
		}},
		{"send-limit", "20/h", "recipients one inbox may send replies to, per s, m, h or d", func(c *Config, v string) (err error) {
			c.SendLimit, err = limit.ParseRate(v)
			return err
		}},
		{"client-send-limit", "500/h", "recipients one client (an IPv4 address or an IPv6 /64) may send replies to, over every inbox and node; off = no limit", rateOrOff(func(c *Config) *limit.Rate { return &c.ClientSendLimit })},
		{"outbound-rate", "5000/h", "recipients the whole service sends replies to, over every node; off = no limit", rateOrOff(func(c *Config) *limit.Rate { return &c.OutboundRate })},
		{"max-reply-recipients", "10", "recipients of one reply, over SMTP submission and the API", positive(func(c *Config) *int { return &c.MaxReplyRcpts })},
		{"outbound-allow-private", "false", "let direct delivery and webhooks reach loopback, private, link-local, CGNAT and multicast addresses (tests; mail servers on a private network); the relay is always allowed", func(c *Config, v string) (err error) {
			c.AllowPrivate, err = strconv.ParseBool(v)
			return err
		}},
		{"webhook-timeout", "10s", "how long a webhook's receiver may take to answer one delivery; a delivery a node dies holding is made by another after twice this plus 10s", duration(func(c *Config) *time.Duration { return &c.WebhookTimeout })},
		{"inbox-create-rate", "3000/h", "inboxes one client may create over the API (POST /api/v1/inboxes), apart from http-rate; off = no limit", rateOrOff(func(c *Config) *limit.Rate { return &c.InboxCreateRate })},
		{"outbound-port", "25", "port of the remote MX", func(c *Config, v string) error {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return errors.New("want a port from 1 to 65535")
			}
			c.OutboundPort = p
			return nil
		}},
		{"cors-origins", "", "comma list of origins allowed to call the API from a browser", func(c *Config, v string) error {
			c.CORSOrigins = splitList(v)
			return nil
		}},
		{"dns", "", "host:port of the resolver for SPF, DKIM, DMARC and MX lookups; empty = the system's", addr(func(c *Config) *string { return &c.DNS }, false)},
		{"verify", "true", "check SPF, DKIM and DMARC of incoming mail and tag it (false: every verdict is none, no DNS lookups)", func(c *Config, v string) (err error) {
			c.Verify, err = strconv.ParseBool(v)
			return err
		}},
		{"rspamd-url", "", "http://host:11334 of an rspamd whose /checkv2 scores each message for the deliverability report; empty = no spam score (the report says it was not run)", func(c *Config, v string) error {
			c.RspamdURL = ""
			if v != "" {
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
					return errors.New("want http://host:port or https://host:port of rspamd's normal worker")
				}
				c.RspamdURL = v
			}
			return nil
		}},
		{"smtp-max-connections", "1000", "inbound SMTP sessions at once; later ones wait", positive(func(c *Config) *int { return &c.SMTPMaxConnections })},
		{"smtp-timeout", "5m", "inbound SMTP: time for one command, or for the whole DATA transfer", duration(func(c *Config) *time.Duration { return &c.SMTPTimeout })},
		{"imap-search-timeout", "2s", "IMAP: time one SEARCH may take; past it the client gets NO [LIMIT] and is told to narrow it", duration(func(c *Config) *time.Duration { return &c.IMAPSearchTimeout })},
		{"smtp-max-stalled-commands", "50", "inbound SMTP: commands in a row that make no progress (MAIL, NOOP, RSET, HELO, VRFY, refused recipients...; all but an accepted DATA, accepted recipients not counted) before the session is answered 421 and closed; 0 = no limit", atLeastZero(func(c *Config) *int { return &c.SMTPMaxStalledCommands })},
		{"max-connections-per-ip", "20", "inbound SMTP, SMTP submission, IMAP and POP3: connections at once from one client (an IPv4 address or an IPv6 /64), per listener kind; 0 = no limit", atLeastZero(func(c *Config) *int { return &c.MaxConnectionsPerIP })},
		{"http-max-connections-per-ip", "512", "HTTP: connections at once from one client (a browser opens about six per page, plus a WebSocket per tab; a CI runner one per parallel test); 0 = no limit", atLeastZero(func(c *Config) *int { return &c.HTTPMaxConnectionsPerIP })},
		{"http-max-reads-per-ip", "8", "HTTP: reads of messages (parsed, HTML, raw, attachments) one client may have in flight; 0 = no limit", atLeastZero(func(c *Config) *int { return &c.HTTPMaxReadsPerIP })},
		{"command-rate", "50/s", "IMAP, POP3 and submission: commands one connection is served, as a count per s, m, h or d, in bursts of the count or 500; past it the client is slowed, only a sustained flood cut; off = no limit", rateOrOff(func(c *Config) *limit.Rate { return &c.CommandRate })},
		{"login-failures", "10/m", "wrong passwords and tokens one client may try over IMAP, POP3, submission and HTTP together before being refused for a while; off = no limit", rateOrOff(func(c *Config) *limit.Rate { return &c.LoginFailures })},
		{"http-rate", "100/s", "HTTP requests one client may make (health, readiness and metrics exempt); off = no limit", rateOrOff(func(c *Config) *limit.Rate { return &c.HTTPRate })},
		{"recipient-rate", "600/m", "inbound SMTP: recipients one client (an IPv4 address or an IPv6 /64) may give; off = no limit", rateOrOff(func(c *Config) *limit.Rate { return &c.RecipientRate })},
		{"receive-rate", "120/m", "inbound SMTP: messages one inbox may receive on this node, so one flood cannot push everyone's mail out; off = no limit", rateOrOff(func(c *Config) *limit.Rate { return &c.ReceiveRate })},
		{"trusted-proxies", "", "comma list of CIDRs of load balancers (as in deploy/compose.yaml) that name the client: with X-Forwarded-For over HTTP, with a PROXY protocol header (required from them) on inbound SMTP, submission, IMAP and POP3; empty = trust none", func(c *Config, v string) error {
			c.TrustedProxies = nil
			for _, s := range splitList(v) {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("%q: want a CIDR such as 10.0.0.0/8", s)
				}
				c.TrustedProxies = append(c.TrustedProxies, p.Masked())
			}
			return nil
		}},
		{"shutdown-timeout", "10s", "on SIGTERM, how long work in flight may finish", duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"log-level", "info", "debug, info, warn or error", oneOf(func(c *Config) *string { return &c.LogLevel }, "debug", "info", "warn", "error")},
		{"log-format", "text", "text or json", oneOf(func(c *Config) *string { return &c.LogFormat }, "text", "json")},
	}
}

func addr(field func(*Config) *string, required bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" && !required {
			*field(c) = ""
			return nil
		}
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return errors.New("want host:port")
		}
		*field(c) = v
		return nil
	}
}

func duration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("want a positive duration such as 90s, 30m or 24h")
		}
		*field(c) = d
		return nil
	}
}

func size(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) (err error) {
		*field(c), err = limit.ParseSize(v)
		return err
	}
}

func atLeastZero(field func(*Config) *int) func(*Config, string) error {
	return wholeNumber(field, 0, "want a whole number, 0 for no limit")
}

// oneOf takes one of the words in choices.
func oneOf(field func(*Config) *string, choices ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !slices.Contains(choices, v) {
			return fmt.Errorf("want %s or %s", strings.Join(choices[:len(choices)-1], ", "), choices[len(choices)-1])
		}
		*field(c) = v
		return nil
	}
}

// rateOrOff reads a rate such as 50/s, or "off" (kept as N = -1, which every server
// reads as no limit).
func rateOrOff(field func(*Config) *limit.Rate) func(*Config, string) error {
	return func(c *Config, v string) (err error) {
		if v == "off" {
			*field(c) = limit.Rate{N: -1}
			return nil
		}
		*field(c), err = limit.ParseRate(v)
		if err != nil {
			return errors.New("want a count per period such as 50/s or 10/m, or off")
		}
		return nil
	}
}

func positive(field func(*Config) *int) func(*Config, string) error {
	return wholeNumber(field, 1, "want a positive whole number")
}

func wholeNumber(field func(*Config) *int, least int, want string) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < least {
			return errors.New(want)
		}
		*field(c) = n
		return nil
	}
}

func parseDomains(v string) ([]string, error) {
	list := splitList(strings.ToLower(v))
	if len(list) == 0 {
		return nil, errors.New("want at least one domain")
	}
	for _, d := range list {
		if len(d) > 253 || strings.ContainsAny(d, " @/:[]") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
			return nil, fmt.Errorf("%q is not a domain name", d)
		}
	}
	return list, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseConfig reads args, then MAYFLY_* variables, then defaults: a flag
// beats its variable, which beats the default. Every value is validated, and an error
// names the flag and the variable.
func parseConfig(name string, args []string, lookupEnv func(string) (string, bool), usageOut io.Writer) (Config, error) {
	table := settings()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usageOut)
	values := make(map[string]*string, len(table))
	for _, s := range table {
		v := new(string)
		values[s.name] = v
		fs.StringVar(v, s.name, "", s.usage)
	}
	fs.Usage = func() { printUsage(usageOut, name, table) }
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var c Config
	var errs []error
	for _, s := range table {
		v, from := s.def, "default"
		if e, ok := lookupEnv(s.env()); ok {
			v, from = e, s.env()
		}
		if given[s.name] {
			v, from = *values[s.name], "-"+s.name
		}
		if err := s.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q (from %s): %w", s.name, v, from, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, c.validate()
}

// validate checks what no single setting can.
func (c Config) validate() error {
	if c.MaxTTL < c.TTL {
		return fmt.Errorf("ttl %s is longer than max-ttl %s", c.TTL, c.MaxTTL)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key go together: set both or neither")
	}
	if c.ACME.Email != "" && c.TLSCert != "" {
		return errors.New("acme-email and tls-cert are two sources of one certificate: set one")
	}
	return nil
}

func printUsage(w io.Writer, name string, table []setting) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\nEvery flag has an environment twin; a flag beats its variable, which beats the default.\n\n", name)
	for _, s := range table {
		def := s.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  -%s  (%s, default %s)\n        %s\n", s.name, s.env(), def, s.usage)
	}
}
