package mailauth

import (
	"context"
	"errors"

	"blitiri.com.ar/go/spf"
)

type spfOutcome struct {
	verdict string
	reason  string
}

// checkSPF checks the MAIL FROM identity, or for a bounce the HELO identity as
// postmaster@HELO (RFC 7208 section 2.4). The library keeps the RFC's limits of
// 10 lookups and 2 void lookups (section 4.6.4).
func (v *Verifier) checkSPF(ctx context.Context, in Input) spfOutcome {
	sender := in.MailFrom
	if sender == "" {
		sender = "postmaster@" + in.Helo
	}
	res, err := spf.CheckHostWithSender(in.RemoteIP, in.Helo, sender,
		spf.WithResolver(v.res), spf.WithContext(ctx))
	out := spfOutcome{verdict: string(res)}
	if err != nil && !errors.Is(err, spf.ErrNoResult) {
		out.reason = err.Error()
	}
	if res == "" {
		out.verdict = PermError
	}
	return out
}
