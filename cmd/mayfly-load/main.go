// Mayfly-load is an SMTP load generator for sizing and benchmarking Mayfly against the
// ceiling of the machine, Postfix's smtp-sink. It sends messages of one size over
// concurrent SMTP sessions and reports throughput and latency. It is written to cost
// little CPU, since it shares the machine with the server it measures: raw connections,
// one body built per run, a header block appended into a reused buffer per message.
//
// Usage:
//
//	mayfly-load [flags]
//	mayfly-load soak [flags]
//
// The flags are:
//
//	-addr host:port
//		SMTP server to load; the only address connected to (default 127.0.0.1:2525).
//	-n count
//		Messages to attempt, accepted or not (default 10000).
//	-duration d
//		Start messages for this long instead, e.g. 30s; 0 means use -n (default 0).
//	-size bytes
//		Approximate size of each message, header block included: plain bytes (1500,
//		1500B) or binary units (1KiB, 10KiB, 1MiB); KB and MB mean KiB and MiB
//		(default 10KiB).
//	-c count
//		Concurrent SMTP sessions (default 8).
//	-per-conn count
//		Messages per connection: 1 opens a connection for every message, like many
//		independent MTAs; N > 1 sends up to N messages on one connection, like a busy
//		MTA; 0 keeps one connection per session for the whole run (default 1).
//	-to address
//		Recipient template; the first %d becomes an inbox number in [0, -inboxes),
//		picked round-robin (default load%d@mayfly.test).
//	-inboxes count
//		Number of distinct recipients (default 100).
//	-from address
//		Envelope and header sender (default load@sender.test).
//	-ehlo name
//		Name sent in EHLO (default mayfly-load).
//	-pid pid
//		Server process to measure: its CPU time per accepted message, from utime and
//		stime in /proc/PID/stat (read in clock ticks of 1/100 s, the Linux USER_HZ,
//		so short runs are coarse), and its VmRSS after the run. 0 disables (default 0).
//	-timeout d
//		Deadline for dialing and for each command and its reply (default 30s).
//	-dns-stub host:port
//		Instead of a load, serve DNS on this loopback UDP address for the -from domain
//		(SPF allows loopback, DMARC p=none, other names NXDOMAIN) until interrupted:
//		point a Mayfly's -dns at it to measure with SPF/DKIM/DMARC verification on.
//	-ws-api URL
//		Mayfly's HTTP address. Instead of a load: open -idle WebSockets (default 1000)
//		on fresh inboxes, then -n times in turn send one message to another inbox
//		watched over a WebSocket and measure from the SMTP 250 to its event; with -pid,
//		also the server's resident size per idle connection.
//	-sse-api URL
//		Mayfly's HTTP address. As -ws-api, over the resumable event stream (GET
//		.../events): -idle streams on fresh inboxes, then -n messages one at a time from
//		the SMTP 250 to the watcher's message.received; then the -ws-api measure in the
//		same run, as the reference.
//	-webhook-api URL
//		Mayfly's HTTP address, with the webhooks of issue 18. Instead of a load: create
//		one inbox and -subscribers webhooks on it (default 10) that POST to a receiver
//		of this process on 127.0.0.1, which verifies each Standard Webhooks signature;
//		send -n messages one at a time and measure from each SMTP 250 to every
//		subscriber's POST; then, with -rate and -duration, send -rate messages a second
//		over -c SMTP sessions and check that every subscriber got every message. The
//		server needs MAYFLY_OUTBOUND_ALLOW_PRIVATE=true, -receive-rate off and
//		-recipient-rate off. A server without the webhook routes is an error saying so.
//	-wait-api URL
//		Mayfly's HTTP address, e.g. http://127.0.0.1:8025. Instead of a load, -n times in
//		turn: create an inbox, open a wait on it, send one message, and measure from
//		the SMTP 250 to the wait's answer; prints p50/p90/p99/max. -size applies.
//	-json
//		Print one JSON object instead of text.
//	-csv
//		Print one CSV line, without a header, instead of text; see -csv-header.
//	-csv-header
//		Print the CSV header line and exit:
//		addr,size_bytes,conns,per_conn,sent,errors,wall_s,msg_per_s,mb_per_s,p50_ms,
//		p90_ms,p99_ms,max_ms,server_cpu_ms_per_msg,server_rss_kib,client_cpu_ms_per_msg,
//		interrupted,error_codes. The server columns are empty without -pid; error_codes
//		reads like 451=3;net=1.
//
// Each message is a fresh-connection greeting and EHLO when needed, then MAIL FROM, RCPT
// TO, DATA and the message: a header block with a unique Subject and Message-ID, and a
// text/plain body of 76-character printable ASCII lines, some starting with a dot so the
// server's dot-unstuffing is exercised. Latency is measured from the flush of the final
// ".\r\n" to the end of the reply, over accepted messages, as exact nearest-rank
// percentiles. MB/s counts 10^6 bytes of accepted messages.
//
// A reply of an unexpected class fails the message: it is counted by reply code, and the
// session goes on with a new connection. Connection failures count as "net", deadlines as
// "timeout", unparsable replies as "proto". The run ends after -n messages or -duration;
// SIGINT or SIGTERM ends it early and prints what it has. The exit status is 1 when no
// message was accepted, 2 for bad flags.
//
// # Soak
//
// mayfly-load soak puts mixed load on one Mayfly for a bounded time and then checks it.
// It creates -inboxes inboxes over the API, each with mail lifetime -ttl, and opens a
// WebSocket on each. For -duration it sends -rate messages a second round-robin to them
// over -c SMTP sessions; meanwhile -readers list the inboxes (-list-rate listings a
// second over all) and read in full each message not read yet, -waiters each open a
// wait for a message about to be sent, and -imap-sessions and -pop3-sessions log in
// to one inbox after another (IMAP: SELECT, FETCH of the newest five, IDLE for
// -imap-idle, LOGOUT; POP3: STAT, RETR of the newest, QUIT). Every few seconds it reads
// go_goroutines, go_memstats_heap_inuse_bytes and process_resident_memory_bytes from
// /metrics (the RSS from /proc/PID/status instead with -pid).
//
// At the end it lists every inbox once more, and reports the latency of each step,
// the errors by kind, and what became of every message the server accepted. A message
// is lost when it was never read over the API before it expired, or when it went before
// its time: missing from a listing, an IMAP SELECT or a POP3 STAT made after its 250
// and before its expires_at, or deleted or expired early by a WebSocket event. Each
// WebSocket must push the event of every message of its inbox.
//
// The memory and goroutines must stay flat from the end of the warm-up (-warm-up; by
// default when the server holds as much as it will: 5/4 of -ttl, or 6/5 of the 10
// minutes of events the inboxes' logs keep if longer, at most 3/4 of -duration) to the
// end: the median of the last five samples may exceed the median of the first five
// after the warm-up by -max-goroutine-growth goroutines (default 50) and by
// -max-heap-growth percent (default 20) plus 16 MiB, the collector's slack, for the
// heap in use and the RSS. With a warm-up shorter than that the server is still
// filling during the measure, so memory is then reported, not checked: with the
// default -ttl, memory is judged by soaks of 16 minutes or more (the default is 20).
//
// The exit status is 0 when nothing was lost, every WebSocket saw every message, no
// session or request failed and nothing grew past its limit; 1 otherwise, 2 for bad
// flags. All the load comes from one address: against a Mayfly with its per-client
// limits (-http-rate, -recipient-rate, -http-max-connections-per-ip, ...) the soak
// must stay under them, or run against a server with them off.
//
//	mayfly-load soak -duration 20m -rate 50 -addr 127.0.0.1:2525 -api http://127.0.0.1:8025 \
//		-imap 127.0.0.1:1143 -pop3 127.0.0.1:1110 -pid "$(pgrep -x mayfly)"
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `mayfly-load sends SMTP messages of one size over concurrent sessions and reports
throughput, latency (end of DATA to reply) and, with -pid, the server's CPU and memory.
"mayfly-load soak -help" describes the soak mode.

Usage: mayfly-load [flags]

`

// output is how the report is printed.
type output int

const (
	outText output = iota
	outJSON
	outCSV
	outCSVHeader
)

const csvHeader = "addr,size_bytes,conns,per_conn,sent,errors,wall_s,msg_per_s,mb_per_s," +
	"p50_ms,p90_ms,p99_ms,max_ms,server_cpu_ms_per_msg,server_rss_kib,client_cpu_ms_per_msg," +
	"interrupted,error_codes"

func main() {
	os.Exit(mainStatus())
}

func mainStatus() int {
	if len(os.Args) > 1 && os.Args[1] == "soak" {
		return soakStatus(os.Args[2:])
	}
	cfg, out, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // parseFlags has printed why
	}
	if out == outCSVHeader {
		fmt.Println(csvHeader)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal the default handling comes back, so a second one kills the
	// process even if a server holds a connection until -timeout.
	context.AfterFunc(ctx, stop)

	if cfg.DNSStub != "" {
		_, domain, _ := strings.Cut(cfg.From, "@")
		fmt.Fprintf(os.Stderr, "mayfly-load: DNS stub for %s on udp %s until interrupted\n", domain, cfg.DNSStub)
		if err := serveDNSStub(ctx, cfg.DNSStub, domain); err != nil {
			fmt.Fprintln(os.Stderr, "mayfly-load:", err)
			return 1
		}
		return 0
	}
	if cfg.WSAPI != "" {
		res, err := runWSLatency(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mayfly-load:", err)
			return 1
		}
		fmt.Print(res)
		return 0
	}
	if cfg.SSEAPI != "" || cfg.WebhookAPI != "" {
		run := runSSELatency
		if cfg.WebhookAPI != "" {
			run = runWebhookBench
		}
		res, err := run(ctx, cfg)
		fmt.Print(res)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mayfly-load:", err)
			return 1
		}
		return 0
	}
	if cfg.WaitAPI != "" {
		res, err := runWaitLatency(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mayfly-load:", err)
			return 1
		}
		fmt.Print(res)
		return 0
	}

	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mayfly-load:", err)
		if rep.Sent == 0 && rep.ErrorCount() == 0 {
			return 1
		}
	}
	if err := printReport(os.Stdout, rep, out); err != nil {
		fmt.Fprintln(os.Stderr, "mayfly-load:", err)
		return 1
	}
	if err != nil || rep.Sent == 0 {
		return 1
	}
	return 0
}

// soakStatus runs mayfly-load soak with args and returns the exit status.
func soakStatus(args []string) int {
	cfg, err := parseSoakFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // parseSoakFlags has printed why
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	rep, err := runSoak(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mayfly-load:", err)
		return 1
	}
	fmt.Print(rep.text())
	if len(rep.Failures()) > 0 {
		return 1
	}
	return 0
}

const soakUsage = `mayfly-load soak sends mail to fresh inboxes at a steady rate while API readers,
waiters, IMAP and POP3 sessions and WebSockets read them, then checks that every
accepted message stayed readable until it expired, that no session failed, and that
the server's memory and goroutines stayed flat.

Usage: mayfly-load soak [flags]

`

// parseSoakFlags turns the arguments after "soak" into a SoakConfig. It prints its
// errors, and the usage when asked or when a flag does not parse, to stderr.
func parseSoakFlags(args []string, stderr io.Writer) (SoakConfig, error) {
	fs := flag.NewFlagSet("mayfly-load soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, soakUsage)
		fs.PrintDefaults()
	}
	var c SoakConfig
	size := sizeFlag(10 << 10)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:2525", "SMTP server `host:port` the mail goes to")
	fs.StringVar(&c.API, "api", "http://127.0.0.1:8025", "Mayfly's HTTP base `URL`: inboxes, reads, waits, WebSockets and /metrics")
	fs.StringVar(&c.IMAP, "imap", "127.0.0.1:1143", "IMAP `host:port`; empty: no IMAP sessions")
	fs.StringVar(&c.POP3, "pop3", "127.0.0.1:1110", "POP3 `host:port`; empty: no POP3 sessions")
	fs.BoolVar(&c.StartTLS, "starttls", false, "IMAP and POP3 sessions start TLS before logging in (certificate not verified); Mayfly takes passwords without TLS from loopback only")
	fs.DurationVar(&c.Duration, "duration", 20*time.Minute, "how long mail is sent (memory is checked only when the warm-up reaches the server's steady size: with the default ttl, 16 minutes or more)")
	fs.DurationVar(&c.WarmUp, "warm-up", 0, "time after which memory and goroutines must stay flat; 0: the server's steady size (5/4 of -ttl, or 12m for the event logs if longer), at most 3/4 of -duration")
	fs.Float64Var(&c.Rate, "rate", 50, "messages per second, over all SMTP sessions")
	fs.IntVar(&c.Inboxes, "inboxes", 50, "inboxes created and watched, each over a WebSocket; mail goes to them round-robin")
	fs.DurationVar(&c.TTL, "ttl", 2*time.Minute, "lifetime of the inboxes' mail, whole seconds; shorter than -duration so mail expires under load")
	fs.Var(&size, "size", "approximate message `size` with headers: bytes, or KiB/MiB")
	fs.IntVar(&c.Conns, "c", 4, "concurrent SMTP sessions")
	fs.IntVar(&c.PerConn, "per-conn", 1, "messages per SMTP connection; 0: one connection per session for the whole run")
	fs.IntVar(&c.Readers, "readers", 2, "API readers: each lists an inbox in turn, then reads every message it has not read")
	fs.Float64Var(&c.ListRate, "list-rate", 10, "inbox listings per second, over all readers")
	fs.IntVar(&c.Waiters, "waiters", 4, "concurrent waits, each for a message about to be sent")
	fs.IntVar(&c.IMAPSessions, "imap-sessions", 2, "IMAP sessions at a time, one after another")
	fs.DurationVar(&c.IMAPIdle, "imap-idle", 2*time.Second, "how long each IMAP session idles before LOGOUT")
	fs.IntVar(&c.POP3Sessions, "pop3-sessions", 2, "POP3 sessions at a time, one after another")
	fs.StringVar(&c.From, "from", "load@sender.test", "envelope and header sender")
	fs.StringVar(&c.EHLO, "ehlo", "mayfly-load", "`name` sent in EHLO")
	fs.IntVar(&c.PID, "pid", 0, "server `pid` whose VmRSS to sample from /proc; 0: process_resident_memory_bytes from /metrics")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "deadline for each command, request and reply")
	fs.DurationVar(&c.SampleEvery, "sample-every", 5*time.Second, "how often the server's gauges are read")
	fs.IntVar(&c.MaxGoroutineGrowth, "max-goroutine-growth", 50, "goroutines the server may gain over the measured span")
	fs.Float64Var(&c.MaxHeapGrowth, "max-heap-growth", 20, "percent the heap in use and the RSS may grow over the measured span, on top of 16 MiB")
	if err := fs.Parse(args); err != nil {
		return SoakConfig{}, err // the FlagSet has printed it
	}
	c.Size = int(size)
	if c.IMAP == "" {
		c.IMAPSessions = 0
	}
	if c.POP3 == "" {
		c.POP3Sessions = 0
	}
	err := c.check()
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("parse flags: unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(stderr, "mayfly-load:", err)
		return SoakConfig{}, err
	}
	return c, nil
}

// parseFlags turns args into a Config. It prints its errors, and the usage when asked
// or when a flag does not parse, to stderr.
func parseFlags(args []string, stderr io.Writer) (Config, output, error) {
	fs := flag.NewFlagSet("mayfly-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	cfg := Config{}
	size := sizeFlag(10 << 10)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:2525", "SMTP server `host:port` to load; the only address connected to")
	fs.IntVar(&cfg.N, "n", 10000, "messages to attempt, accepted or not")
	fs.DurationVar(&cfg.Duration, "duration", 0, "start messages for this long instead of -n; 0 means use -n")
	fs.Var(&size, "size", "approximate message `size` with headers: bytes, or KiB/MiB (KB/MB mean the same)")
	fs.IntVar(&cfg.Conns, "c", 8, "concurrent SMTP sessions")
	fs.IntVar(&cfg.PerConn, "per-conn", 1, "messages per connection: 1 a new connection per message, N up to N, 0 one connection per session for the whole run")
	fs.StringVar(&cfg.To, "to", "load%d@mayfly.test", "recipient `template`; %d becomes an inbox number in [0, -inboxes), round-robin")
	fs.IntVar(&cfg.Inboxes, "inboxes", 100, "number of distinct recipients")
	fs.StringVar(&cfg.From, "from", "load@sender.test", "envelope and header sender")
	fs.StringVar(&cfg.EHLO, "ehlo", "mayfly-load", "`name` sent in EHLO")
	fs.IntVar(&cfg.PID, "pid", 0, "server `pid` to measure: CPU per message from /proc/PID/stat (100 ticks/s), VmRSS after the run; 0 disables")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "deadline for dialing and for each command and its reply")
	fs.StringVar(&cfg.DNSStub, "dns-stub", "", "instead of load, serve DNS on this loopback UDP `host:port` for the -from domain (SPF allows loopback, DMARC p=none, other names NXDOMAIN), for a Mayfly under test's -dns, until interrupted")
	fs.StringVar(&cfg.WSAPI, "ws-api", "", "Mayfly's HTTP `URL`: instead of load, open -idle WebSockets on other inboxes, then measure -n times, one at a time, from the SMTP 250 to the watcher's WebSocket event")
	fs.IntVar(&cfg.IdleSockets, "idle", 1000, "with -ws-api: idle WebSocket clients held open on other inboxes")
	fs.StringVar(&cfg.SSEAPI, "sse-api", "", "Mayfly's HTTP `URL`: as -ws-api over the event stream (GET .../events), then -ws-api's measure in the same run as the reference")
	fs.StringVar(&cfg.WebhookAPI, "webhook-api", "", "Mayfly's HTTP `URL`: instead of load, make -subscribers webhooks on one inbox, measure -n messages one at a time from the SMTP 250 to each POST, then with -rate a fan-out for -duration")
	fs.IntVar(&cfg.Subscribers, "subscribers", 10, "with -webhook-api: webhooks on the inbox, each POSTed every message")
	fs.Float64Var(&cfg.Rate, "rate", 0, "with -webhook-api: messages a second of the fan-out, for -duration; 0 = none")
	fs.StringVar(&cfg.WaitAPI, "wait-api", "", "Mayfly's HTTP `URL`: instead of load, measure -n times, one at a time, from the SMTP 250 to the return of a wait already open on a fresh inbox")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	asCSV := fs.Bool("csv", false, "print one CSV line (no header) instead of text")
	header := fs.Bool("csv-header", false, "print the CSV header line and exit")
	if err := fs.Parse(args); err != nil {
		return Config{}, 0, err // the FlagSet has printed it
	}
	fail := func(err error) (Config, output, error) {
		fmt.Fprintln(stderr, "mayfly-load:", err)
		return Config{}, 0, err
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("parse flags: unexpected argument %q", fs.Arg(0)))
	}
	cfg.Size = int(size)
	out := outText
	switch {
	case *header:
		return cfg, outCSVHeader, nil
	case *asJSON && *asCSV:
		return fail(errors.New("parse flags: -json and -csv exclude each other"))
	case *asJSON:
		out = outJSON
	case *asCSV:
		out = outCSV
	}
	if err := cfg.check(); err != nil {
		return fail(err)
	}
	return cfg, out, nil
}

func printReport(w io.Writer, r Report, out output) error {
	var err error
	switch out {
	case outJSON:
		enc := json.NewEncoder(w)
		err = enc.Encode(toJSON(r))
	case outCSV:
		_, err = fmt.Fprintln(w, csvLine(r))
	default:
		_, err = io.WriteString(w, text(r))
	}
	if err != nil {
		return fmt.Errorf("print report: %w", err)
	}
	return nil
}

// ms formats d in milliseconds with microsecond precision.
func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1e3, 'f', 3, 64) }

// errorCodes lists r.Errors by key, as key, kv, count, joined by sep.
func errorCodes(r Report, kv, sep string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(k)
		b.WriteString(kv)
		b.WriteString(strconv.FormatInt(r.Errors[k], 10))
	}
	return b.String()
}

func mode(perConn int) string {
	switch perConn {
	case 0:
		return "one connection per session"
	case 1:
		return "a connection per message"
	default:
		return fmt.Sprintf("up to %d messages per connection", perConn)
	}
}

func text(r Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "target       %s, %d B messages, %d sessions, %s\n", r.Addr, r.Size, r.Conns, mode(r.PerConn))
	fmt.Fprintf(&b, "sent         %d ok, %d errors, %d connections\n", r.Sent, r.ErrorCount(), r.Connections)
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "errors       %s\n", errorCodes(r, ": ", ", "))
		fmt.Fprintf(&b, "first error  %s\n", r.FirstError)
	}
	fmt.Fprintf(&b, "wall         %.3fs\n", r.Wall.Seconds())
	fmt.Fprintf(&b, "throughput   %.1f msg/s, %.2f MB/s\n", r.MsgPerSec(), r.MBPerSec())
	fmt.Fprintf(&b, "latency ms   p50 %s  p90 %s  p99 %s  max %s  (end of DATA to reply)\n",
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max))
	if r.Server != nil {
		fmt.Fprintf(&b, "server       %s ms CPU/msg, RSS %.1f MiB\n", ms(r.PerMsg(r.Server.CPU)), float64(r.Server.RSS)/(1<<20))
	}
	fmt.Fprintf(&b, "client       %s ms CPU/msg\n", ms(r.PerMsg(r.ClientCPU)))
	if r.Interrupted {
		b.WriteString("interrupted  the figures cover the run until the signal\n")
	}
	return b.String()
}

type jsonReport struct {
	Addr            string           `json:"addr"`
	SizeBytes       int              `json:"size_bytes"`
	Conns           int              `json:"conns"`
	PerConn         int              `json:"per_conn"`
	Sent            int64            `json:"sent"`
	Errors          int64            `json:"errors"`
	ErrorCodes      map[string]int64 `json:"error_codes"`
	FirstError      string           `json:"first_error,omitempty"`
	Connections     int64            `json:"connections"`
	WallS           float64          `json:"wall_s"`
	MsgPerS         float64          `json:"msg_per_s"`
	MBPerS          float64          `json:"mb_per_s"`
	P50ms           float64          `json:"p50_ms"`
	P90ms           float64          `json:"p90_ms"`
	P99ms           float64          `json:"p99_ms"`
	MaxMs           float64          `json:"max_ms"`
	ServerCPUPerMsg *float64         `json:"server_cpu_ms_per_msg,omitempty"`
	ServerRSSKiB    *int64           `json:"server_rss_kib,omitempty"`
	ClientCPUPerMsg float64          `json:"client_cpu_ms_per_msg"`
	Interrupted     bool             `json:"interrupted"`
}

func msFloat(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func toJSON(r Report) jsonReport {
	j := jsonReport{
		Addr: r.Addr, SizeBytes: r.Size, Conns: r.Conns, PerConn: r.PerConn,
		Sent: r.Sent, Errors: r.ErrorCount(), ErrorCodes: r.Errors, FirstError: r.FirstError,
		Connections: r.Connections, WallS: r.Wall.Seconds(), MsgPerS: r.MsgPerSec(), MBPerS: r.MBPerSec(),
		P50ms: msFloat(r.Latency.P50), P90ms: msFloat(r.Latency.P90),
		P99ms: msFloat(r.Latency.P99), MaxMs: msFloat(r.Latency.Max),
		ClientCPUPerMsg: msFloat(r.PerMsg(r.ClientCPU)), Interrupted: r.Interrupted,
	}
	if r.Server != nil {
		cpu, rss := msFloat(r.PerMsg(r.Server.CPU)), r.Server.RSS>>10
		j.ServerCPUPerMsg, j.ServerRSSKiB = &cpu, &rss
	}
	return j
}

func csvLine(r Report) string {
	var serverCPU, serverRSS string
	if r.Server != nil {
		serverCPU, serverRSS = ms(r.PerMsg(r.Server.CPU)), strconv.FormatInt(r.Server.RSS>>10, 10)
	}
	return strings.Join([]string{
		r.Addr,
		strconv.Itoa(r.Size),
		strconv.Itoa(r.Conns),
		strconv.Itoa(r.PerConn),
		strconv.FormatInt(r.Sent, 10),
		strconv.FormatInt(r.ErrorCount(), 10),
		strconv.FormatFloat(r.Wall.Seconds(), 'f', 3, 64),
		strconv.FormatFloat(r.MsgPerSec(), 'f', 1, 64),
		strconv.FormatFloat(r.MBPerSec(), 'f', 2, 64),
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max),
		serverCPU, serverRSS,
		ms(r.PerMsg(r.ClientCPU)),
		strconv.FormatBool(r.Interrupted),
		errorCodes(r, "=", ";"),
	}, ",")
}
