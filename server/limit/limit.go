// Package limit holds the per-client limits every listener applies: connections at
// once per address, and keyed token buckets for command rates, failed logins and
// per-inbox mail. One implementation, so SMTP, submission, IMAP, POP3 and HTTP count
// alike and an operator reads one set of rules.
//
// Clients are keyed by address; IPv6 clients by their /64, the block one host is
// usually given, so that rotating through it gains nothing. Behind a load balancer,
// ProxyListener makes that address the client's, from a trusted proxy's PROXY
// protocol header, rather than the balancer's.
//
// The listener layer the mail servers (IMAP, POP3, submission, inbound SMTP) share is
// here too: the settings each embeds (Options), opening their plain and implicit-TLS listeners (Run, Listen), the wrappers
// in front of a protocol (Front), one accept loop (Accept), refusals (Refuse, Slots),
// the slow-client rule (FinalRead), connection tracking and the bounded drain
// (Tracker, Drain), their connection and login metrics (NewMetrics), and telling a
// client on this machine (IsLoopback), who may log in without TLS.
package limit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Key is the address a limit counts a client under: its IPv4 address, or its IPv6 /64.
func Key(addr net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
			ip = ap.Addr()
		}
	}
	return KeyIP(ip)
}

// KeyIP is Key for an address already parsed.
func KeyIP(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Conns counts the connections each client has open.
type Conns struct {
	max    int                 // per client; 0 = no limit
	exempt func(net.Addr) bool // peers not counted; nil = none
	mu     sync.Mutex
	n      map[netip.Addr]int
}

// Except leaves the peers exempt says are exempt uncounted, and returns c. A load
// balancer is such a peer: every client behind it arrives from its few addresses, and
// who they are shows only later (HTTP's X-Forwarded-For, request by request).
func (c *Conns) Except(exempt func(net.Addr) bool) *Conns {
	c.exempt = exempt
	return c
}

// NewConns allows max connections at once per client; max <= 0 means no limit.
func NewConns(max int) *Conns {
	return &Conns{max: max, n: make(map[netip.Addr]int)}
}

// Acquire takes a connection slot for addr's client. ok is false when it has max open
// already; otherwise release gives the slot back, once.
func (c *Conns) Acquire(addr net.Addr) (release func(), ok bool) {
	if c == nil || c.max <= 0 || c.exempt != nil && c.exempt(addr) {
		return func() {}, true
	}
	k := Key(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] >= c.max {
		return nil, false
	}
	c.n[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[k]--; c.n[k] <= 0 {
				delete(c.n, k)
			}
		})
	}, true
}

// Rate is N events per Per, with bursts of up to N.
type Rate struct {
	N   int
	Per time.Duration
}

// ParseRate reads a count per period as an operator writes it: 20/h, 50/s, 5000/d.
func ParseRate(v string) (Rate, error) {
	num, unit, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n <= 0 {
		return Rate{}, errors.New("want a count per period such as 20/h")
	}
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[unit]
	if per == 0 {
		return Rate{}, errors.New("want a period of s, m, h or d, as in 20/h")
	}
	return Rate{N: n, Per: per}, nil
}

// String writes r as ParseRate reads it, or "off".
func (r Rate) String() string {
	if r.N < 0 {
		return "off"
	}
	for _, u := range []struct {
		s string
		d time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if r.Per == u.d {
			return fmt.Sprintf("%d/%s", r.N, u.s)
		}
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// Off says whether r limits nothing.
func (r Rate) Off() bool { return r.N <= 0 || r.Per <= 0 }

// Limiter returns a token bucket for r, or nil when r is off.
func (r Rate) Limiter() *rate.Limiter {
	if r.Off() {
		return nil
	}
	return rate.NewLimiter(rate.Every(r.Per/time.Duration(r.N)), r.N)
}

// PaceBurst is the least burst a Pacer allows: a client fetching a full inbox (200
// messages) in one pipeline, plus the commands around it, never waits.
const PaceBurst = 500

// paceSlack is how many commands' worth of waiting (at the rate) a Pacer's client may
// run up, net of half the time gone by, before it is taken for abuse: at 50/s, 5 s.
const paceSlack = 250

// ErrTooFast is a Pacer's answer to clear abuse: a client that keeps sending at more
// than twice its rate long after its burst is spent.
var ErrTooFast = errors.New("too many commands")

// Pacer paces one connection's commands at a Rate. A client past its burst is not
// cut but slowed: Wait holds its command until a token is due, so the server reads
// its next one no faster than the rate. Waiting costs the client slack, which comes
// back at half the speed of the clock. So a client that, left alone, would go at up to
// twice the rate (its own pauses between an answer and its next command are at least
// half a token's time) is slowed for ever and never cut; one that floods, whose every
// command waits the full token's time, runs out after about 2*paceSlack commands
// past its burst (10 s at 50/s) and is cut.
// A Pacer is safe for concurrent use: go-imap polls for updates on the reading
// goroutine while an IDLE command runs on another.
type Pacer struct {
	tokens *rate.Limiter
	mu     sync.Mutex    // slack and at
	slack  time.Duration // left; at most max
	max    time.Duration
	most   time.Duration // the longest one wait; 0 = no bound
	at     time.Time     // when slack was last brought up to date
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
}

// Pacer returns a Pacer at r with a burst of N or PaceBurst, whichever is more; nil
// (which paces nothing) when r is off. A wait longer than maxWait, which a rate of
// a few an hour may ask for, is abuse too: the connection's idle timeout is a good
// maxWait, as an idle client is cut after it anyway. 0 = no bound.
func (r Rate) Pacer(maxWait time.Duration) *Pacer {
	if r.Off() {
		return nil
	}
	every := r.Per / time.Duration(r.N)
	p := &Pacer{
		tokens: rate.NewLimiter(rate.Every(every), max(r.N, PaceBurst)),
		slack:  paceSlack * every,
		max:    paceSlack * every,
		most:   maxWait,
		now:    time.Now,
		sleep:  sleep,
	}
	p.at = p.now()
	return p
}

// Wait takes one command, at once while the burst lasts and otherwise once its token
// is due. It returns ErrTooFast, at once, when the wait would take more slack than
// the client has left or more than maxWait, and ctx's error when ctx ends first (the connection closing,
// the server shutting down). One wait is at most one token's time, Per/N, and
// maxWait, so a paced connection still reaches its read deadline (idle timeout)
// between commands and holds no goroutine for longer than an idle one.
func (p *Pacer) Wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	now := p.now()
	p.slack = min(p.max, p.slack+now.Sub(p.at)/2)
	p.at = now
	r := p.tokens.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		p.mu.Unlock()
		return nil
	}
	if d > p.slack || p.most > 0 && d > p.most {
		r.CancelAt(now)
		p.mu.Unlock()
		return ErrTooFast
	}
	p.slack -= d
	p.mu.Unlock()
	if err := p.sleep(ctx, d); err != nil {
		r.CancelAt(p.now())
		return err
	}
	return nil
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Buckets is a token bucket per key (a client, an inbox). Buckets that have refilled
// are forgotten, so memory follows the clients active in the last window, not every
// client ever seen.
type Buckets[K comparable] struct {
	rate    Rate
	mu      sync.Mutex
	m       map[K]*rate.Limiter
	sweepAt int // sweep when the map reaches this size
	now     func() time.Time
}

// NewBuckets returns buckets of r; an r that is Off allows everything.
func NewBuckets[K comparable](r Rate) *Buckets[K] {
	return &Buckets[K]{rate: r, m: make(map[K]*rate.Limiter), sweepAt: 1024, now: time.Now}
}

// Allow takes a token from key's bucket, reporting whether there was one.
func (b *Buckets[K]) Allow(key K) bool {
	if b == nil || b.rate.Off() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bucket(key).AllowN(b.now(), 1)
}

// Empty reports whether key's bucket has no token left, taking none: a client that
// used up its failed logins is refused before it tries again.
func (b *Buckets[K]) Empty(key K) bool {
	if b == nil || b.rate.Off() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.m[key]
	return ok && l.TokensAt(b.now()) < 1
}

func (b *Buckets[K]) bucket(key K) *rate.Limiter {
	if l, ok := b.m[key]; ok {
		return l
	}
	if len(b.m) >= b.sweepAt {
		now := b.now()
		for k, l := range b.m {
			if l.TokensAt(now) >= float64(l.Burst()) {
				delete(b.m, k)
			}
		}
		// Still full of busy clients: let the map grow, and sweep again at twice the size.
		b.sweepAt = max(1024, 2*len(b.m))
	}
	l := b.rate.Limiter()
	b.m[key] = l
	return l
}

// Listener wraps ln so that a client over its connection limit is answered refusal
// (a line of the listener's protocol) and closed, never reaching Accept's caller;
// refused, when not nil, counts it. A connection accepted is released when closed.
func Listener(ln net.Listener, c *Conns, refusal string, refused func()) net.Listener {
	if c == nil || c.max <= 0 {
		return ln
	}
	return &listener{Listener: ln, conns: c, refusal: refusal, refused: refused}
}

type listener struct {
	net.Listener
	conns   *Conns
	refusal string
	refused func()
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.conns.Acquire(conn.RemoteAddr())
		if ok {
			return &limitedConn{Conn: conn, release: release}, nil
		}
		if l.refused != nil {
			l.refused()
		}
		Refuse(conn, l.refusal)
	}
}

type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// IsLoopback reports whether a client is on this machine, where a password in clear
// text crosses no network. addr is the client's (after a PROXY header, the real one).
func IsLoopback(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// Listen opens a TCP listener on each address, in order; an empty address gets a nil
// listener (that listener is off). When one fails, those opened are closed again.
func Listen(addrs ...string) ([]net.Listener, error) {
	lns := make([]net.Listener, len(addrs))
	for i, a := range addrs {
		if a == "" {
			continue
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, o := range lns[:i] {
				if o != nil {
					o.Close()
				}
			}
			return nil, err
		}
		lns[i] = ln
	}
	return lns, nil
}

// ParseSize reads a byte count written the Go way with binary units: 1024, 64KiB,
// 10MiB, 1GiB.
func ParseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}, {"", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(v, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n <= 0 || n > (1<<62)/u.mult {
			break
		}
		return n * u.mult, nil
	}
	return 0, errors.New("want a positive size such as 65536, 64KiB, 10MiB or 1GiB")
}
