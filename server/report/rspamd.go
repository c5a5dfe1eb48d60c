package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mayfly-mail/mayfly/storage"
)

// maxRspamdAnswer bounds what is read of rspamd's answer: a real one is a few KiB.
const maxRspamdAnswer = 1 << 20

// SpamResult is rspamd's verdict on a message.
type SpamResult struct {
	Score         float64  `json:"score"`
	RequiredScore float64  `json:"required_score"`
	Action        string   `json:"action"` // "no action", "greylist", "add header", "rewrite subject", "soft reject", "reject"
	Symbols       []Symbol `json:"symbols"`
}

// Symbol is one rule of rspamd that matched.
type Symbol struct {
	Name        string   `json:"name"`
	Score       float64  `json:"score"`
	Description string   `json:"description,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// checkRspamd asks rspamd's /checkv2 (its HTTP protocol: the message as the body,
// the envelope in the IP, Helo, From and Rcpt headers).
func (r *Reporter) checkRspamd(ctx context.Context, m *storage.Message, raw []byte) (*SpamResult, error) {
	ctx, cancel := context.WithTimeout(ctx, r.rspamdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(r.rspamdURL, "/")+"/checkv2", bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if m.Envelope.RemoteIP != "" && !injected(m) {
		req.Header.Set("IP", m.Envelope.RemoteIP)
		req.Header.Set("Helo", m.Envelope.Helo)
	}
	if m.Envelope.From != "" {
		req.Header.Set("From", m.Envelope.From)
	}
	for _, rc := range m.Envelope.Recipients {
		req.Header.Add("Rcpt", rc)
	}
	if len(m.Envelope.Recipients) == 0 {
		req.Header.Set("Rcpt", m.Inbox)
	}
	req.Header.Set("Queue-Id", m.ID)
	resp, err := r.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("no answer within %s", r.rspamdTimeout)
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRspamdAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	if len(body) > maxRspamdAnswer {
		return nil, fmt.Errorf("answer larger than %d bytes", maxRspamdAnswer)
	}
	return parseRspamd(body)
}

// parseRspamd reads the JSON answer of /checkv2. Symbols come sorted by the points
// they cost, then by name, so that the report reads the same every time.
func parseRspamd(body []byte) (*SpamResult, error) {
	var a struct {
		IsSkipped     bool     `json:"is_skipped"`
		Score         *float64 `json:"score"`
		RequiredScore float64  `json:"required_score"`
		Action        string   `json:"action"`
		Symbols       map[string]struct {
			Name        string   `json:"name"`
			Score       float64  `json:"score"`
			Description string   `json:"description"`
			Options     []string `json:"options"`
		} `json:"symbols"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("unreadable answer: %w", err)
	}
	if a.Score == nil || a.Action == "" {
		return nil, fmt.Errorf("answer without score or action")
	}
	if a.IsSkipped {
		return nil, fmt.Errorf("rspamd skipped the message")
	}
	res := &SpamResult{Score: *a.Score, RequiredScore: a.RequiredScore, Action: clip(a.Action, 40)}
	names := slices.Sorted(maps.Keys(a.Symbols))
	for _, name := range names[:min(len(names), maxSymbols)] {
		s := a.Symbols[name]
		sym := Symbol{Name: clip(name, 100), Score: s.Score, Description: clip(s.Description, 200)}
		for _, o := range s.Options[:min(len(s.Options), 10)] {
			sym.Options = append(sym.Options, clip(o, 200))
		}
		res.Symbols = append(res.Symbols, sym)
	}
	slices.SortFunc(res.Symbols, func(x, y Symbol) int {
		if x.Score != y.Score {
			if x.Score > y.Score {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	return res, nil
}

// maxSymbols bounds the symbols shown: rspamd matches a few dozen at most.
const maxSymbols = 100

// clip cuts s to at most n bytes, at a character boundary, valid UTF-8.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
