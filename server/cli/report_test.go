package cli

import (
	"context"
	"strings"
	"testing"
)

// TestReportErrors: mayfly report's usage mistakes and the server's refusals end with
// status 2 and say why. (Its report itself: cmd/mayfly's TestReportEndToEnd.)
func TestReportErrors(t *testing.T) {
	eachServer(t, func(t *testing.T, s *server) {
		address, token := s.inbox(t)
		id := s.inject(t, address, token, "From: a@b.test\r\nSubject: hi\r\n\r\nhi\r\n")
		for _, tt := range []struct {
			name string
			env  map[string]string
			args []string
			want string
		}{
			{"no operands", nil, []string{"report"}, "takes ADDRESS ID"},
			{"id without inbox", nil, []string{"report", id}, "takes ADDRESS ID"},
			{"three operands", nil, []string{"report", address, id, "x"}, "takes ADDRESS ID"},
			{"bad token", nil, []string{"report", address, id, "--token", "nope"}, "does not open"},
			{"no reports", nil, []string{"report", address, id, "--token", token}, "no deliverability reports (501"},
			{"inbox from the environment", map[string]string{"MAYFLY_INBOX": address, "MAYFLY_TOKEN": token}, []string{"report", id}, "no deliverability reports (501"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				out, errOut, code := s.run(t, context.Background(), tt.env, tt.args...)
				if code != ExitError || out != "" || !strings.Contains(errOut, tt.want) {
					t.Errorf("%q = %q, %q, %d; want status 2 and %q", tt.args, out, errOut, code, tt.want)
				}
			})
		}
	})
}
