package submission

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/netguard"
	"github.com/mayfly-mail/mayfly/storage"
)

// RunWorkers delivers the queue with Options.Workers workers until ctx ends. Then
// each finishes its current job, for at most Options.ShutdownTimeout; a delivery
// still running after that is cut, and its job stays leased in the queue, to be
// taken again by any node once the lease runs out: never lost, at worst delivered
// twice.
func (s *Server) RunWorkers(ctx context.Context) error {
	if s.opts.Workers < 0 {
		return nil
	}
	hard, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	var wg sync.WaitGroup
	for i := range s.opts.Workers {
		consumer := s.consumer + ":" + strconv.Itoa(i)
		wg.Go(func() { s.work(ctx, hard, consumer) })
	}
	s.logger.Info("delivering", "workers", s.opts.Workers, "relay", s.relay != nil)
	done := limit.Waited(&wg)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	if !limit.Drain(done, s.opts.ShutdownTimeout, s.logger, "deliveries still running after the shutdown timeout, cutting them; their jobs wait out the lease", cut) {
		<-done
	}
	return nil
}

// work takes jobs until ctx ends; hard ends the delivery in progress.
func (s *Server) work(ctx, hard context.Context, consumer string) {
	var pause time.Duration
	for {
		job, err := s.queue.Next(ctx, consumer, s.opts.Lease)
		if err == nil {
			// Even when ctx has just ended: the job is leased to us now, and a
			// delivery within the shutdown's grace beats waiting out the lease.
			pause = 0
			s.process(hard, job)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		pause = min(max(2*pause, 100*time.Millisecond), 10*time.Second)
		s.logger.Warn("queue next", "err", err, "retry_in", pause)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// failure is a recipient given up on, for the bounce.
type failure struct {
	rcpt string
	o    outcome
}

// process makes one delivery attempt of job and then settles it in the queue: Done
// when no recipient is left, Retry with the ones left after a backoff, a bounce into
// the inbox for the ones that failed for good.
func (s *Server) process(hard context.Context, job *storage.Job) {
	start := s.now()
	// A delivery must end well within the lease, or another node would take the job
	// while this one still works on it.
	ctx, cancel := context.WithTimeout(hard, s.opts.Lease*3/4)
	results := s.attempt(ctx, job)
	cancel()
	settled := func(r string) bool { k := results[r].kind; return k == delivered || k == permanent }
	if hard.Err() != nil && !slices.ContainsFunc(job.To, settled) {
		// The cut, not a remote, ended this attempt before any recipient had its
		// answer: nothing to count or report. The job stays leased, for whoever
		// takes it after the lease. (When some recipients were settled, the job is
		// settled as usual below, so that they do not get the message twice.)
		s.logger.Warn("delivery cut by shutdown; the job waits out its lease", "id", job.ID, "inbox", job.Inbox)
		return
	}

	now := s.now()
	var pending []string
	var failed []failure
	var lastTemp outcome
	for _, rcpt := range job.To {
		o := results[rcpt]
		switch o.kind {
		case delivered:
			s.metrics.delivery.WithLabelValues(deliveryDelivered).Inc()
			s.metrics.latency.Observe(now.Sub(job.Created).Seconds())
			s.logger.Info("delivered", "id", job.ID, "inbox", job.Inbox, "rcpt", rcpt, "remote", o.remote, "attempt", job.Attempts+1, "dur", now.Sub(start))
		case permanent:
			failed = append(failed, failure{rcpt, o})
			s.logger.Info("bounced", "id", job.ID, "inbox", job.Inbox, "rcpt", rcpt, "remote", o.remote, "err", o.diag)
		default:
			pending = append(pending, rcpt)
			lastTemp = o
			s.logger.Info("deferred", "id", job.ID, "inbox", job.Inbox, "rcpt", rcpt, "remote", o.remote, "attempt", job.Attempts+1, "err", o.diag)
		}
	}
	job.Attempts++
	if len(pending) > 0 {
		job.LastError = lastTemp.diag
	}
	if len(pending) > 0 && !now.Before(job.Expires) {
		// Past the message's expiry the retrying stops: what is still pending
		// failed, with the last reason it was deferred (RFC 3463 5.4.7: delivery
		// time expired).
		for _, rcpt := range pending {
			o := results[rcpt]
			o.kind, o.status = permanent, "5.4.7"
			failed = append(failed, failure{rcpt, o})
			s.logger.Info("bounced", "id", job.ID, "inbox", job.Inbox, "rcpt", rcpt, "reason", "expired", "err", o.diag)
		}
		pending = nil
	}
	for range pending {
		s.metrics.delivery.WithLabelValues(deliveryDeferred).Inc()
	}

	sctx, scancel := context.WithTimeout(context.WithoutCancel(hard), storeTimeout)
	defer scancel()
	if len(failed) > 0 {
		if err := s.bounce(sctx, job, failed, now); err != nil {
			s.logger.Error("put bounce", "id", job.ID, "inbox", job.Inbox, "err", err)
			if now.Before(job.Expires) {
				// Try these recipients again: their next failure brings the next
				// chance to tell the inbox.
				for _, f := range failed {
					pending = append(pending, f.rcpt)
				}
				failed = nil
			}
		}
		for range failed {
			s.metrics.delivery.WithLabelValues(deliveryBounced).Inc()
		}
	}
	if len(pending) == 0 {
		if err := s.queue.Done(sctx, job); err != nil {
			s.logger.Error("queue done; the job comes back after its lease", "id", job.ID, "err", err)
		}
		return
	}
	job.To = pending
	at := now.Add(s.backoff(job.Attempts))
	if at.After(job.Expires) {
		at = job.Expires
	}
	if err := s.queue.Retry(sctx, job, at); err != nil {
		s.logger.Error("queue retry; the job comes back after its lease", "id", job.ID, "err", err)
	}
}

// backoff is the wait after the attempts-th attempt: Backoff, doubled per attempt, up
// to an hour (or Backoff, if that is longer).
func (s *Server) backoff(attempts int) time.Duration {
	limit := max(time.Hour, s.opts.Backoff)
	d := s.opts.Backoff
	for i := 1; i < attempts && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// attempt tries every recipient of job once and returns what became of each.
func (s *Server) attempt(ctx context.Context, job *storage.Job) map[string]outcome {
	results := make(map[string]outcome, len(job.To))
	if s.relay != nil {
		s.deliverVia(ctx, []target{s.relay.target(s.opts.RelayTLS)}, job, job.To, results)
		return results
	}
	// One connection per domain carries all its recipients (RFC 5321 section 3.3).
	var domains []string
	byDomain := make(map[string][]string)
	for _, rcpt := range job.To {
		d := strings.ToLower(rcpt[strings.LastIndexByte(rcpt, '@')+1:])
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], rcpt)
	}
	for _, d := range domains {
		rcpts := byDomain[d]
		hosts, fail := s.route(ctx, d)
		if fail != nil {
			for _, r := range rcpts {
				results[r] = *fail
			}
			continue
		}
		targets := make([]target, len(hosts))
		for i, h := range hosts {
			targets[i] = target{addr: net.JoinHostPort(h, strconv.Itoa(s.opts.OutboundPort)), host: h, opportunistic: true}
		}
		s.deliverVia(ctx, targets, job, rcpts, results)
	}
	return results
}

// route returns the hosts that take mail for domain, best first (RFC 5321 section
// 5.1): its MX hosts by preference; the domain itself when it has no MX but has an
// address; or a permanent failure for a domain that does not exist or says it takes
// no mail (null MX, RFC 7505).
func (s *Server) route(ctx context.Context, domain string) ([]string, *outcome) {
	fqdn := strings.TrimSuffix(domain, ".") + "."
	mxs, err := s.resolver.LookupMX(ctx, fqdn)
	var dnsErr *net.DNSError
	if err != nil && len(mxs) == 0 {
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			o := localOutcome(temporary, "4.4.3", "MX lookup of "+domain+": "+err.Error(), "")
			return nil, &o
		}
		mxs = nil // no MX records: the domain itself, if it has an address
	}
	if len(mxs) == 1 && mxs[0].Host == "." {
		o := outcome{kind: permanent, status: "5.1.10", diag: "smtp; 556 5.1.10 " + domain + " accepts no mail (null MX)"}
		return nil, &o
	}
	var hosts []string
	for _, mx := range mxs {
		if h := strings.TrimSuffix(mx.Host, "."); h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) > 0 {
		return hosts, nil
	}
	if _, err := s.resolver.LookupIPAddr(ctx, fqdn); err != nil {
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			o := localOutcome(permanent, "5.1.2", "the domain "+domain+" has no MX and no address", "")
			return nil, &o
		}
		o := localOutcome(temporary, "4.4.3", "address lookup of "+domain+": "+err.Error(), "")
		return nil, &o
	}
	return []string{domain}, nil
}

// target is one server to hand mail to.
type target struct {
	addr        string // host:port to dial
	host        string // its name: TLS server name, Remote-MTA
	implicitTLS bool
	// opportunistic: STARTTLS when offered, without verifying the certificate, and
	// once more in the clear when the handshake fails. Otherwise TLS is verified
	// with tlsConfig.
	opportunistic bool
	noTLS         bool // the retry in the clear
	relay         bool // the operator's relay, which may be on any address
	tlsConfig     *tls.Config
	user, pass    string // AUTH PLAIN when user is set
}

// deliverVia hands rcpts of job to the first of targets that takes the transaction,
// and records each recipient's outcome in results. A target that cannot be reached
// or refuses the session passes the turn to the next; once a transaction gets to the
// recipients, its answers are final for this attempt.
func (s *Server) deliverVia(ctx context.Context, targets []target, job *storage.Job, rcpts []string, results map[string]outcome) {
	var last outcome
	for _, t := range targets {
		res, fail := s.transact(ctx, t, job, rcpts)
		var te *tlsError
		if fail != nil && t.opportunistic && errors.As(fail.err, &te) {
			// RFC 7435 section 6: a failed opportunistic handshake falls back to the
			// clear, as it would have been with no STARTTLS at all.
			s.logger.Debug("opportunistic TLS failed, trying without", "remote", t.host, "err", fail.err)
			t.noTLS = true
			res, fail = s.transact(ctx, t, job, rcpts)
		}
		if fail == nil {
			for r, o := range res {
				results[r] = o
			}
			return
		}
		last = fail.o
		if ctx.Err() != nil {
			break
		}
	}
	for _, r := range rcpts {
		results[r] = last
	}
}

// hostFailure is a session that never reached the recipients.
type hostFailure struct {
	o   outcome
	err error
}

// transact runs one SMTP session with t for rcpts: EHLO, STARTTLS, AUTH, MAIL, RCPT
// per recipient, DATA. It returns each recipient's outcome, or a hostFailure when
// the session failed before any recipient had an answer.
func (s *Server) transact(ctx context.Context, t target, job *storage.Job, rcpts []string) (map[string]outcome, *hostFailure) {
	fail := func(err error) *hostFailure {
		var re *replyError
		if errors.As(err, &re) {
			return &hostFailure{replyOutcome(re.code, re.msg, t.host), err}
		}
		return &hostFailure{localOutcome(temporary, "4.4.2", t.host+": "+err.Error(), t.host), err}
	}
	// The check is on the address dialed, after resolution: a name checked first and
	// resolved again to dial could answer differently the second time.
	conn, err := s.dial(ctx, t)
	if errors.Is(err, netguard.ErrForbidden) {
		// The domain's DNS, not the network, sends us there: trying again would only
		// get the same answer until the message expires.
		return nil, &hostFailure{localOutcome(permanent, "5.4.4", t.host+": "+err.Error()+"; direct delivery goes to public addresses only (MAYFLY_OUTBOUND_ALLOW_PRIVATE)", t.host), err}
	}
	if err != nil {
		return nil, &hostFailure{localOutcome(temporary, "4.4.1", "connect to "+t.addr+": "+err.Error(), t.host), err}
	}
	defer conn.Close()
	// Shutdown or the job's deadline cuts the session wherever it waits.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if t.implicitTLS {
		tc := tls.Client(conn, t.tlsConfig)
		hctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return nil, fail(&tlsError{err})
		}
		conn = tc
	}
	c := newClient(conn, s.opts.Timeout)
	if err := c.greet(s.opts.Hostname); err != nil {
		return nil, fail(err)
	}
	if !c.tls && !t.noTLS && c.has("STARTTLS") {
		cfg := t.tlsConfig
		if t.opportunistic {
			// RFC 7435: opportunistic TLS defends against passive eavesdropping only.
			// Nothing tells us which certificate an MX should present (the MX name
			// comes from unsigned DNS, and many MX certificates are self-signed or for
			// another name), so verifying would not stop an active attacker; it would
			// only turn encrypted delivery into cleartext or failed delivery. MTA-STS
			// or DANE would make verification meaningful.
			cfg = &tls.Config{ServerName: t.host, InsecureSkipVerify: true}
		}
		if err := c.startTLS(ctx, cfg, s.opts.Hostname); err != nil {
			return nil, fail(err)
		}
	}
	if t.user != "" {
		if !c.tls && !isLoopbackAddr(t.addr) {
			err := errors.New("the relay offers no TLS; credentials not sent in the clear")
			return nil, &hostFailure{localOutcome(temporary, "4.7.0", err.Error(), t.host), err}
		}
		if err := c.authPlain(t.user, t.pass); err != nil {
			// A relay refusing our credentials is a configuration to fix, not the
			// recipient's fault: retried until the job expires.
			f := fail(err)
			f.o.kind = temporary
			f.o.status = "4.7.0"
			return nil, f
		}
	}

	results := make(map[string]outcome, len(rcpts))
	all := func(o outcome) map[string]outcome {
		for _, r := range rcpts {
			results[r] = o
		}
		return results
	}
	if n := c.maxSize(); n > 0 && int64(len(job.Raw)) > n {
		c.quit()
		return all(outcome{kind: permanent, status: "5.3.4", remote: t.host,
			diag: fmt.Sprintf("x-mayfly; %s takes messages of at most %d bytes, this one has %d", t.host, n, len(job.Raw))}), nil
	}
	params := ""
	if c.has("SIZE") {
		params += " SIZE=" + strconv.Itoa(len(job.Raw))
	}
	if c.has("8BITMIME") && !isASCII(job.Raw) {
		params += " BODY=8BITMIME"
	}
	if !isASCII([]byte(job.From)) || slices.ContainsFunc(rcpts, func(r string) bool { return !isASCII([]byte(r)) }) {
		if !c.has("SMTPUTF8") {
			c.quit()
			return all(outcome{kind: permanent, status: "5.6.7", remote: t.host,
				diag: "x-mayfly; an address is not ASCII and " + t.host + " does not offer SMTPUTF8 (RFC 6531)"}), nil
		}
		params += " SMTPUTF8"
	}
	if _, _, err := c.cmd(250, "MAIL FROM:<%s>%s", job.From, params); err != nil {
		var re *replyError
		if !errors.As(err, &re) {
			return nil, fail(err)
		}
		c.quit()
		return all(replyOutcome(re.code, re.msg, t.host)), nil
	}
	var accepted []string
	for _, r := range rcpts {
		_, _, err := c.cmd(25, "RCPT TO:<%s>", r)
		var re *replyError
		switch {
		case err == nil:
			accepted = append(accepted, r)
		case errors.As(err, &re):
			results[r] = replyOutcome(re.code, re.msg, t.host)
		default:
			return nil, fail(err)
		}
	}
	if len(accepted) == 0 {
		c.quit()
		return results, nil
	}
	code, msg, err := c.data(job.Raw)
	var re *replyError
	switch {
	case err == nil:
		for _, r := range accepted {
			results[r] = outcome{kind: delivered, remote: t.host, diag: "smtp; " + strconv.Itoa(code) + " " + diagText(msg)}
		}
		c.quit()
	case errors.As(err, &re):
		for _, r := range accepted {
			results[r] = replyOutcome(re.code, re.msg, t.host)
		}
		c.quit()
	default:
		// The connection broke at DATA: whether the message arrived is unknown, and
		// sending it again is the safer error (RFC 5321 section 6.1).
		for _, r := range accepted {
			results[r] = localOutcome(temporary, "4.4.2", t.host+": "+err.Error(), t.host)
		}
	}
	return results, nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dial connects to t within 30s (or Options.Timeout). A relay is named by the
// operator and found as the system finds it, hosts file included; an MX host's
// addresses come from the DNS client, tried in turn with a share of the time each, as
// net.Dialer tries a name's.
func (s *Server) dial(ctx context.Context, t target) (net.Conn, error) {
	timeout := min(30*time.Second, s.opts.Timeout)
	d := netguard.Dialer(net.Dialer{}, s.opts.AllowPrivate || t.relay)
	host, port, err := net.SplitHostPort(t.addr)
	if _, ipErr := netip.ParseAddr(host); t.relay || err != nil || ipErr == nil {
		d.Timeout = timeout
		return d.DialContext(ctx, "tcp", t.addr)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := s.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	var first error
	for i, a := range addrs {
		// net.Dialer's rule: what time is left, shared among the addresses left, at
		// least 2s each.
		share := timeout
		if deadline, ok := ctx.Deadline(); ok {
			share = max(time.Until(deadline)/time.Duration(len(addrs)-i), 2*time.Second)
		}
		d.Timeout = share
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.IP.String(), port))
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// relay is a parsed Options.Relay.
type relay struct {
	addr        string
	host        string
	implicitTLS bool
	user, pass  string
}

// parseRelay checks a relay URL: smtp:// or smtps://, a host, an optional port,
// optional credentials, and nothing else, so that a typo is an error at start and
// not mail sent somewhere unexpected.
func parseRelay(u *url.URL) (*relay, error) {
	r := &relay{}
	port := "25"
	switch strings.ToLower(u.Scheme) {
	case "smtp":
	case "smtps":
		r.implicitTLS, port = true, "465"
	default:
		return nil, fmt.Errorf("relay %s: scheme must be smtp or smtps", u.Redacted())
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("relay %s: want smtp://[user:pass@]host[:port] and nothing more", u.Redacted())
	}
	r.host = u.Hostname()
	if r.host == "" || strings.ContainsAny(r.host, " \t\r\n/[]@") {
		return nil, fmt.Errorf("relay %s: want a host name or an IP address", u.Redacted())
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("relay %s: bad port", u.Redacted())
		}
		port = strconv.Itoa(n)
	}
	r.addr = net.JoinHostPort(r.host, port)
	if u.User != nil {
		r.user = u.User.Username()
		r.pass, _ = u.User.Password()
		if r.user == "" {
			return nil, fmt.Errorf("relay %s: credentials without a user", u.Redacted())
		}
		if strings.ContainsAny(r.user+r.pass, "\x00\r\n") {
			return nil, fmt.Errorf("relay %s: bad characters in the credentials", u.Redacted())
		}
	}
	return r, nil
}

// target is how to reach the relay. Its certificate is verified (cfg, or the
// system's roots): we may hand it a password, and every message.
func (r *relay) target(cfg *tls.Config) target {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = r.host
	}
	return target{addr: r.addr, host: r.host, implicitTLS: r.implicitTLS, tlsConfig: cfg, user: r.user, pass: r.pass, relay: true}
}

// headerOf returns the header section of a message, blank line excluded.
func headerOf(raw []byte) []byte {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return raw[:i+2]
	}
	return raw
}
