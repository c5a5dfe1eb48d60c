// Package cli is the command line of a test author: `mayfly inbox` creates an inbox and
// `mayfly wait` waits for its mail, each a call of a running server's HTTP API, so that
// a test in any language needs only a shell. It speaks HTTP with the standard library
// alone and imports nothing of the server.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultURL is the server the commands talk to when MAYFLY_URL is unset: the default
// HTTP listener.
const DefaultURL = "http://127.0.0.1:8025"

// Exit statuses.
const (
	ExitFound   = 0   // the wait found its mail (with --expect-none: none came)
	ExitTimeout = 1   // the wait timed out (with --expect-none: mail came)
	ExitError   = 2   // a usage mistake, or an error of the server or the network
	ExitStopped = 130 // interrupted (Ctrl-C), as shells report SIGINT
)

// Exit is how a command ends other than with status 0: its status, and the
// message to print on stderr ("" when the command has said everything).
type Exit struct {
	Code    int
	Message string
}

func (e *Exit) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Message
}

func exitf(code int, format string, args ...any) *Exit {
	return &Exit{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Env looks up an environment variable; os.LookupEnv in main.
type Env func(string) (string, bool)

func (env Env) get(name string) string {
	v, _ := env(name)
	return v
}

// maxServerWait is the longest wait the server answers in one request (its maxWait):
// a longer --timeout is served by waiting again. A variable for tests.
var maxServerWait = 120 * time.Second

// client is one command's connection to the server.
type client struct {
	base  string
	token string
	http  *http.Client
}

// connection reads --url and --token, which fs has parsed, falling back on the
// environment: MAYFLY_URL, then tokenVars in order.
func connection(urlFlag, tokenFlag string, env Env, tokenVars ...string) (*client, error) {
	base := urlFlag
	if base == "" {
		base = env.get("MAYFLY_URL")
	}
	if base == "" {
		base = DefaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, exitf(ExitError, "server URL %q: want http://host:port or https://host", base)
	}
	token := tokenFlag
	for _, v := range tokenVars {
		if token == "" {
			token = env.get(v)
		}
	}
	// No client timeout: each request has its own context deadline, and Ctrl-C cancels it.
	return &client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{}}, nil
}

// do sends one request and returns the status and body of the answer; an error only
// when there is no answer.
func (c *client) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	// An answer of a thousand large messages is bounded by the server; this bounds a
	// server that is not ours.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

// apiError is the message of the API's {"error": {"code", "message"}}, or the status.
func apiError(status int, body []byte) *Exit {
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return exitf(ExitError, "%s (%d %s)", e.Error.Message, status, e.Error.Code)
	}
	return exitf(ExitError, "the server answered %d %s", status, http.StatusText(status))
}

// requestError turns a failed request into the command's end: interrupted, or the
// server could not be reached.
func requestError(ctx context.Context, c *client, err error) *Exit {
	if ctx.Err() != nil {
		return &Exit{Code: ExitStopped}
	}
	return exitf(ExitError, "%s: %v", c.base, err)
}

// newFlags returns a flag set that reports its mistakes as a usage Exit.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nflags (-flag or --flag):\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, flags and operands in any order (`wait ADDRESS --code` as well as
// `wait --code ADDRESS`), and returns the operands.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &Exit{Code: 0}
			}
			return nil, &Exit{Code: ExitError} // the flag package printed why
		}
		args = fs.Args()
		if len(args) == 0 {
			return operands, nil
		}
		if args[0] == "--" {
			return append(operands, args[1:]...), nil
		}
		operands, args = append(operands, args[0]), args[1:]
	}
}

// Inbox is `mayfly inbox`: it creates an inbox and prints its address and token.
func Inbox(ctx context.Context, args []string, env Env, stdout, stderr io.Writer) error {
	fs := newFlags("mayfly inbox", "mayfly inbox [--local L] [--domain D] [--ttl 30m] [--json | --env] [--url URL] [--token KEY]", stderr)
	local := fs.String("local", "", "the local part to ask for (a chosen address, which anyone may ask a token for); empty: a random, private one")
	domain := fs.String("domain", "", "one of the service's domains; empty: its first")
	ttl := fs.String("ttl", "", "how long the inbox's mail lives, a Go duration (30m, 2h) up to the server's MAYFLY_MAX_TTL; empty: the server's MAYFLY_TTL")
	asJSON := fs.Bool("json", false, "print the API's answer, as JSON")
	asEnv := fs.Bool("env", false, "print MAYFLY_INBOX='...' and MAYFLY_TOKEN='...' lines, for eval \"$(mayfly inbox --env)\"")
	urlFlag := fs.String("url", "", "the server's URL; empty: $MAYFLY_URL, else "+DefaultURL)
	tokenFlag := fs.String("token", "", "an API key, for a server that asks one to create inboxes; empty: $MAYFLY_API_KEY")
	operands, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) > 0 {
		fs.Usage()
		return exitf(ExitError, "mayfly inbox takes no operand, got %q", operands[0])
	}
	if *asJSON && *asEnv {
		return exitf(ExitError, "--json and --env: choose one")
	}
	// MAYFLY_TOKEN is not sent: it is an inbox's token, likely the previous inbox's.
	c, err := connection(*urlFlag, *tokenFlag, env, "MAYFLY_API_KEY")
	if err != nil {
		return err
	}
	req := map[string]any{}
	if *local != "" {
		req["local"] = *local
	}
	if *domain != "" {
		req["domain"] = *domain
	}
	if *ttl != "" {
		if _, err := time.ParseDuration(*ttl); err != nil {
			return exitf(ExitError, "--ttl %q: want a Go duration such as 30m", *ttl)
		}
		req["ttl"] = *ttl
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	status, answer, err := c.do(ctx, http.MethodPost, "/api/v1/inboxes", body)
	if err != nil {
		return requestError(ctx, c, err)
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return apiError(status, answer)
	}
	var created struct{ Address, Token string }
	if err := json.Unmarshal(answer, &created); err != nil || created.Address == "" {
		return exitf(ExitError, "%s: not an inbox in the answer: %.200s", c.base, answer)
	}
	switch {
	case *asJSON:
		_, err = fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(answer))
	case *asEnv:
		_, err = fmt.Fprintf(stdout, "MAYFLY_INBOX=%s\nMAYFLY_TOKEN=%s\n", shellQuote(created.Address), shellQuote(created.Token))
	default:
		_, err = fmt.Fprintf(stdout, "%s\n%s\n", created.Address, created.Token)
	}
	return err
}

// shellQuote quotes s for a POSIX shell: an address's local part may hold ' and $.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// linkFlag is --link: alone it prints the first link; --link=SUBSTRING also filters
// on a link's URL and prints the first link that has it. IsBoolFlag lets it stand
// alone, which is why a value must follow "=".
type linkFlag struct {
	print  bool
	filter string
}

func (l *linkFlag) String() string { return l.filter }
func (l *linkFlag) IsBoolFlag() bool {
	return true
}

func (l *linkFlag) Set(v string) error {
	switch v {
	case "true":
		l.print = true
	case "false":
		l.print, l.filter = false, ""
	default:
		l.print, l.filter = true, v
	}
	return nil
}

// hasFlag is --has, repeatable.
type hasFlag []string

func (h *hasFlag) String() string     { return strings.Join(*h, ",") }
func (h *hasFlag) Set(v string) error { *h = append(*h, v); return nil }

// message is what the wait prints of a message.
type message struct {
	ID      string   `json:"id"`
	From    string   `json:"from"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
	Codes   []string `json:"codes"`
	Links   []string `json:"links"`
}

// Wait is `mayfly wait`: it waits for mail in an inbox as GET .../wait does, for as
// long as --timeout says, and prints it.
func Wait(ctx context.Context, args []string, env Env, stdout, stderr io.Writer) error {
	fs := newFlags("mayfly wait", "mayfly wait [ADDRESS] [filters] [--code | --link[=SUBSTRING] | --json] [--timeout 30s] [--expect-none]", stderr)
	q := url.Values{}
	for _, f := range []struct{ name, usage string }{
		{"from", "a substring of From, any case"},
		{"to", "a substring of a To address or an envelope recipient, any case"},
		{"subject", "a substring of the subject, any case"},
		{"tag", "the tag of box+tag@domain, whole"},
		{"body", "a substring of the text, or of the HTML as text, any case"},
		{"spf", "the SPF verdict, exactly (pass, fail, softfail, neutral, none, temperror, permerror)"},
		{"dkim", "the DKIM verdict, exactly"},
		{"dmarc", "the DMARC verdict, exactly"},
	} {
		fs.Func(f.name, f.usage, func(v string) error { q.Set(f.name, v); return nil })
	}
	since := fs.String("since", "", "only mail received after this: an RFC 3339 time, a message id of the inbox, or \"now\" (this machine's clock)")
	var has hasFlag
	fs.Var(&has, "has", "code, link or attachment: the message has one; repeat it for several")
	var link linkFlag
	fs.Var(&link, "link", "print only the first link's URL (and wait for a message with one); --link=SUBSTRING: only a link whose URL has it (use =)")
	code := fs.Bool("code", false, "print only the first one-time code (and wait for a message with one)")
	count := fs.Int("count", 1, "how many matching messages to wait for, 1 to 1000")
	timeout := new(time.Duration)
	*timeout = 30 * time.Second
	fs.Func("timeout", "how long to wait, a Go duration (30s, 5m) or seconds; past the server's 120s it waits again, as often as needed (default 30s)", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, serr := strconv.ParseFloat(v, 64)
			if serr != nil || secs > 1e9 {
				return errors.New("want a duration such as 30s, or seconds")
			}
			d = time.Duration(secs * float64(time.Second))
		}
		*timeout = d
		return nil
	})
	var none bool
	fs.BoolVar(&none, "expect-none", false, "assert that no matching mail comes within --timeout: exit 0 when none did, 1 (and print it) when some did")
	fs.BoolVar(&none, "none", false, "the same as --expect-none")
	asJSON := fs.Bool("json", false, "print the API's whole answer, as JSON")
	urlFlag := fs.String("url", "", "the server's URL; empty: $MAYFLY_URL, else "+DefaultURL)
	tokenFlag := fs.String("token", "", "the inbox's token or an API key; empty: $MAYFLY_TOKEN, else $MAYFLY_API_KEY")
	namespace := fs.String("namespace", "", "wait across every inbox NAME.*@ of a namespace, with its key (--token or $MAYFLY_API_KEY); --to picks an address")
	operands, err := parse(fs, args)
	if err != nil {
		return err
	}
	address := env.get("MAYFLY_INBOX")
	switch {
	case *namespace != "":
		if len(operands) > 0 {
			return exitf(ExitError, "mayfly wait --namespace takes no ADDRESS (--to %s picks one), got %q", operands[0], operands[0])
		}
	case len(operands) == 0:
		if address == "" {
			fs.Usage()
			return exitf(ExitError, "mayfly wait: which inbox? Give its ADDRESS, or set MAYFLY_INBOX")
		}
	case len(operands) == 1:
		address = operands[0]
	default:
		fs.Usage()
		return exitf(ExitError, "mayfly wait takes one ADDRESS, got %q", operands)
	}
	if *asJSON && link.filter != "" {
		link.print = false // --link=S --json: the filter, and the whole answer
	}
	outputs := 0
	for _, b := range []bool{*code, link.print, *asJSON} {
		if b {
			outputs++
		}
	}
	if outputs > 1 {
		return exitf(ExitError, "--code, --link and --json: choose one")
	}
	if *count < 1 || *count > 1000 {
		return exitf(ExitError, "--count %d: want 1 to 1000", *count)
	}
	if *timeout <= 0 {
		return exitf(ExitError, "--timeout %s: want more than 0", *timeout)
	}
	envs := []string{"MAYFLY_TOKEN", "MAYFLY_API_KEY"}
	path := "/api/v1/inboxes/" + url.PathEscape(address) + "/wait?"
	if *namespace != "" {
		// An inbox's token opens no namespace: the key, not a previous inbox's token.
		envs = envs[1:]
		path = "/api/v1/namespaces/" + url.PathEscape(*namespace) + "/wait?"
	}
	c, err := connection(*urlFlag, *tokenFlag, env, envs...)
	if err != nil {
		return err
	}
	switch *since {
	case "":
	case "now":
		q.Set("since", time.Now().UTC().Format(time.RFC3339Nano))
	default:
		q.Set("since", *since)
	}
	// What is printed must be there: --code waits for a message with a code.
	if *code {
		has = append(has, "code")
	}
	if link.print {
		has = append(has, "link")
	}
	if link.filter != "" {
		q.Set("link", link.filter)
	}
	for _, h := range has {
		q.Add("has", h)
	}
	if *count > 1 {
		q.Set("count", strconv.Itoa(*count))
	}
	if none {
		q.Set("expect", "none")
	}

	status, answer, err := waitFor(ctx, c, path, q, *timeout)
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusNoContent:
		return nil // --expect-none, and nothing came
	case status == http.StatusRequestTimeout:
		// The server's message counts what its last wait found, within that wait.
		e := apiError(status, answer)
		return exitf(ExitTimeout, "nothing matched within --timeout %s: %s", *timeout, e.Message)
	case status != http.StatusOK && status != http.StatusConflict:
		return apiError(status, answer)
	}
	var out struct{ Messages []message }
	if err := json.Unmarshal(answer, &out); err != nil || len(out.Messages) == 0 {
		return exitf(ExitError, "%s: no messages in the answer: %.200s", c.base, answer)
	}
	if err := show(stdout, answer, out.Messages, *asJSON, *code, link); err != nil {
		return err
	}
	if status == http.StatusConflict {
		return exitf(ExitTimeout, "mail came that should not have (--expect-none): %d message(s)", len(out.Messages))
	}
	return nil
}

// waitFor waits up to total, in requests of at most maxServerWait each. A request that
// times out returned nothing, so the next asks the same question again: the server
// looks at the mail already there as well as what comes, so nothing that arrived
// between two requests is missed and nothing is answered twice.
func waitFor(ctx context.Context, c *client, path string, q url.Values, total time.Duration) (int, []byte, error) {
	deadline := time.Now().Add(total)
	for {
		left := time.Until(deadline)
		chunk := min(left, maxServerWait)
		// The server takes milliseconds; less would be a 400.
		chunk = max(chunk.Round(time.Millisecond), time.Millisecond)
		q.Set("timeout", chunk.String())
		rctx, cancel := context.WithTimeout(ctx, chunk+30*time.Second)
		status, answer, err := c.do(rctx, http.MethodGet, path+q.Encode(), nil)
		cancel()
		if err != nil {
			return 0, nil, requestError(ctx, c, err)
		}
		again := status == http.StatusNoContent || status == http.StatusRequestTimeout && timedOut(answer)
		if !again || time.Until(deadline) <= 0 {
			return status, answer, nil
		}
	}
}

// timedOut tells a wait's timeout from a request body's, which is also 408.
func timedOut(body []byte) bool {
	var e struct{ Error struct{ Code string } }
	return json.Unmarshal(body, &e) == nil && e.Error.Code == "timeout"
}

// show writes what was asked for of msgs: a code, a link, the whole answer, or each
// message's id, sender, subject and text.
func show(w io.Writer, answer []byte, msgs []message, asJSON, code bool, link linkFlag) error {
	var err error
	switch {
	case asJSON:
		_, err = fmt.Fprintf(w, "%s\n", bytes.TrimSpace(answer))
	case code:
		for _, m := range msgs {
			if len(m.Codes) > 0 {
				_, err = fmt.Fprintln(w, m.Codes[0])
				return err
			}
		}
		return exitf(ExitError, "no code in the message")
	case link.print:
		needle := strings.ToLower(link.filter)
		for _, m := range msgs {
			for _, u := range m.Links {
				if strings.Contains(strings.ToLower(u), needle) {
					_, err = fmt.Fprintln(w, u)
					return err
				}
			}
		}
		return exitf(ExitError, "no link in the message")
	default:
		for i, m := range msgs {
			if i > 0 {
				if _, err = fmt.Fprintln(w); err != nil {
					return err
				}
			}
			text := strings.TrimRight(m.Text, "\r\n")
			if _, err = fmt.Fprintf(w, "id: %s\nfrom: %s\nsubject: %s\n\n%s\n", m.ID, m.From, m.Subject, text); err != nil {
				return err
			}
		}
	}
	return err
}

// MCPServer reads the flags of `mayfly mcp` (--url, --token) and returns the URL of the
// server's /mcp and the bearer to send it: --token, else $MAYFLY_TOKEN (an inbox's
// token: the tools open that inbox without a token argument), else $MAYFLY_API_KEY.
// The bridge itself is server/mcpd's, the one package that speaks MCP.
func MCPServer(args []string, env Env, stderr io.Writer) (endpoint, token string, err error) {
	fs := newFlags("mayfly mcp", "mayfly mcp [--url URL] [--token T]", stderr)
	urlFlag := fs.String("url", "", "the server's URL; empty: $MAYFLY_URL, else "+DefaultURL)
	tokenFlag := fs.String("token", "", "the bearer of every request, an inbox token or the admin key; empty: $MAYFLY_TOKEN, else $MAYFLY_API_KEY")
	operands, err := parse(fs, args)
	if err != nil {
		return "", "", err
	}
	if len(operands) > 0 {
		fs.Usage()
		return "", "", exitf(ExitError, "mayfly mcp takes no operand, got %q", operands[0])
	}
	c, err := connection(*urlFlag, *tokenFlag, env, "MAYFLY_TOKEN", "MAYFLY_API_KEY")
	if err != nil {
		return "", "", err
	}
	return c.base + "/mcp", c.token, nil
}
