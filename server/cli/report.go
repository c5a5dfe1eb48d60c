package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// reportTimeout bounds one report: the server's DNS budget and rspamd's, and some.
const reportTimeout = 60 * time.Second

// report is the part of the API's report that is printed.
type report struct {
	Score  float64 `json:"score"`
	Checks []struct {
		ID       string  `json:"id"`
		Category string  `json:"category"`
		Status   string  `json:"status"`
		Points   float64 `json:"points"`
		Detail   string  `json:"detail"`
		Fix      string  `json:"fix"`
	} `json:"checks"`
	Spam *struct {
		Score         float64 `json:"score"`
		RequiredScore float64 `json:"required_score"`
		Action        string  `json:"action"`
		Symbols       []struct {
			Name        string  `json:"name"`
			Score       float64 `json:"score"`
			Description string  `json:"description"`
		} `json:"symbols"`
	} `json:"spam"`
}

// Report is `mayfly report ADDRESS ID`: it prints the deliverability report of a
// message (GET .../messages/{id}/report), a line per check, or the API's JSON.
func Report(ctx context.Context, args []string, env Env, stdout, stderr io.Writer) error {
	fs := newFlags("mayfly report", "mayfly report [ADDRESS] ID [--json]", stderr)
	asJSON := fs.Bool("json", false, "print the API's whole answer, as JSON")
	urlFlag := fs.String("url", "", "the server's URL; empty: $MAYFLY_URL, else "+DefaultURL)
	tokenFlag := fs.String("token", "", "the inbox's token or an API key; empty: $MAYFLY_TOKEN, else $MAYFLY_API_KEY")
	operands, err := parse(fs, args)
	if err != nil {
		return err
	}
	address, id := env.get("MAYFLY_INBOX"), ""
	switch {
	case len(operands) == 2:
		address, id = operands[0], operands[1]
	case len(operands) == 1 && address != "":
		id = operands[0]
	default:
		fs.Usage()
		return exitf(ExitError, "mayfly report takes ADDRESS ID (or ID with MAYFLY_INBOX set), got %q", operands)
	}
	c, err := connection(*urlFlag, *tokenFlag, env, "MAYFLY_TOKEN", "MAYFLY_API_KEY")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	status, answer, err := c.do(ctx, http.MethodGet, "/api/v1/inboxes/"+url.PathEscape(address)+"/messages/"+url.PathEscape(id)+"/report", nil)
	if err != nil {
		return requestError(ctx, c, err)
	}
	if status != http.StatusOK {
		return apiError(status, answer)
	}
	if *asJSON {
		_, err := stdout.Write(append(answer, '\n'))
		return err
	}
	var rep report
	if err := json.Unmarshal(answer, &rep); err != nil {
		return exitf(ExitError, "%s: unreadable report: %.200s", c.base, answer)
	}
	fmt.Fprintf(stdout, "score %g/10\n", rep.Score)
	for _, ch := range rep.Checks {
		lost := ""
		if ch.Points > 0 {
			lost = fmt.Sprintf("-%g", ch.Points)
		}
		fmt.Fprintf(stdout, "%-4s %-5s %-22s %s\n", lost, ch.Status, ch.ID, ch.Detail)
		if ch.Fix != "" {
			fmt.Fprintf(stdout, "%33s fix: %s\n", "", ch.Fix)
		}
	}
	if rep.Spam != nil {
		for _, s := range rep.Spam.Symbols {
			fmt.Fprintf(stdout, "     rspamd %-22s %6.2f %s\n", s.Name, s.Score, s.Description)
		}
	}
	return nil
}
