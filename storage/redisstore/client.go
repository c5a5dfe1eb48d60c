package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timeouts that make a dead or unreachable Redis fail a call in seconds rather than hang
// it: SMTP then answers 451 and the sender retries. A URL's own dial_timeout,
// read_timeout, write_timeout, dialer_retries or max_retries win over these.
const (
	dialTimeout = 2 * time.Second
	ioTimeout   = 2 * time.Second
	// go-redis dials up to 5 times per connection and retries a command 3 times, which
	// with a blackholed address makes one call take 40s. One dial per attempt and one
	// retry (enough for a pooled connection the server closed) bound it to 2 attempts.
	dialAttempts = 1
	maxRetries   = 1
	// clusterReload is how old the Cluster client's slot map may get before a command
	// has it read again. A live node tells the client of a moved slot (MOVED);
	// a dead primary answers nothing, and with go-redis's 60s every command for its
	// slots would go on failing, after the failover, for up to a minute.
	clusterReload = time.Second
)

// CheckURL reports whether spec is a Redis URL that New would accept, without
// connecting, so a bad setting is caught where the settings are read.
func CheckURL(spec string) error {
	c, err := newClient(spec)
	if c != nil {
		c.Close()
	}
	return err
}

// newClient builds the client that spec describes:
//   - one redis:// or rediss:// URL (a bare host:port means redis://): one node;
//   - a URL with master_name=NAME: Sentinel, the URL's host and any other listed
//     addresses being sentinels, its user and password the primary's (the sentinels'
//     own in sentinel_username= and sentinel_password=);
//   - several comma-separated addresses or URLs, or one URL with addr= parameters: Cluster.
//
// Query parameters are go-redis's (pool_size=50, dial_timeout=5s, ...). The first URL
// that has any gives them, and the credentials and scheme; the others add addresses.
func newClient(spec string) (redis.UniversalClient, error) {
	var parts []string
	for p := range strings.SplitSeq(spec, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if !strings.Contains(p, "://") {
				p = "redis://" + p
			}
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return nil, errors.New("no Redis URL")
	}
	base, query := "", url.Values(nil)
	var hosts []string
	for i, p := range parts {
		// url.Parse's errors quote the URL, password included: say which part instead.
		u, err := url.Parse(p)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("redis URL %d of %d: not a URL or host:port", i+1, len(parts))
		}
		if base == "" && u.RawQuery != "" {
			base, query = p, u.Query()
		}
		port := u.Port()
		if port == "" {
			port = "6379"
		}
		hosts = append(hosts, net.JoinHostPort(u.Hostname(), port))
	}
	if base == "" {
		base = parts[0]
	}
	switch {
	case query.Has("master_name"):
		// go-redis gives a Sentinel URL's user and password to the sentinels and takes
		// the primary's from password=; an operator writes the primary's where every
		// other Redis URL has it. So the URL's are the primary's (and its replicas'),
		// and sentinel_username= and sentinel_password= the sentinels' own; with
		// password= given, the URL keeps go-redis's meaning.
		base, sentinelUser, sentinelPass, moved := sentinelCredentials(base, query)
		o, err := redis.ParseFailoverURL(base)
		if err != nil {
			return nil, err
		}
		if moved {
			o.Username, o.Password = o.SentinelUsername, o.SentinelPassword
			o.SentinelUsername, o.SentinelPassword = sentinelUser, sentinelPass
		} else if sentinelUser != "" || sentinelPass != "" {
			o.SentinelUsername, o.SentinelPassword = sentinelUser, sentinelPass
		}
		o.SentinelAddrs = addAddrs(o.SentinelAddrs, hosts)
		setTimeouts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.DialerRetries, &o.MaxRetries)
		o.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(o), nil
	case len(parts) > 1 || query.Has("addr"):
		o, err := redis.ParseClusterURL(base)
		if err != nil {
			return nil, err
		}
		o.Addrs = addAddrs(o.Addrs, hosts)
		setTimeouts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.DialerRetries, &o.MaxRetries)
		if o.ClusterStateReloadInterval == 0 {
			o.ClusterStateReloadInterval = clusterReload
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(base)
		if err != nil {
			return nil, err
		}
		setTimeouts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.DialerRetries, &o.MaxRetries)
		o.ContextTimeoutEnabled = true
		return redis.NewClient(o), nil
	}
}

// sentinelCredentials takes sentinel_username and sentinel_password, which go-redis
// does not know, out of a Sentinel URL, and reports whether the URL's user and password
// are the primary's (no password= parameter).
func sentinelCredentials(spec string, query url.Values) (rest, user, pass string, moved bool) {
	user, pass = query.Get("sentinel_username"), query.Get("sentinel_password")
	if query.Has("sentinel_username") || query.Has("sentinel_password") {
		u, err := url.Parse(spec)
		if err == nil {
			q := u.Query()
			q.Del("sentinel_username")
			q.Del("sentinel_password")
			u.RawQuery = q.Encode()
			spec = u.String()
		}
	}
	return spec, user, pass, !query.Has("password")
}

func addAddrs(addrs, more []string) []string {
	for _, a := range more {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

func setTimeouts(dial, read, write *time.Duration, dialRetries, retries *int) {
	if *dial == 0 {
		*dial = dialTimeout
	}
	if *read == 0 {
		*read = ioTimeout
	}
	if *write == 0 {
		*write = ioTimeout
	}
	if *dialRetries == 0 {
		*dialRetries = dialAttempts
	}
	if *retries == 0 {
		*retries = maxRetries
	}
}

// libraryLogger is set once: go-redis has one logger per process.
var libraryLogger sync.Once

// setLibraryLogger sends go-redis's Printf lines to logger at Warn, the first time a
// Store is given a logger.
func setLibraryLogger(logger *slog.Logger) {
	libraryLogger.Do(func() {
		redis.SetLogger(printfLogger{slog.NewLogLogger(logger.Handler(), slog.LevelWarn)})
	})
}

type printfLogger struct{ l *log.Logger }

func (p printfLogger) Printf(_ context.Context, format string, v ...any) {
	p.l.Printf(format, v...)
}
