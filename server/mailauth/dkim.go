package mailauth

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// maxSignatures bounds the work one message can cause: each signature costs a
// key lookup and a public-key operation.
const maxSignatures = 10

// dkimSig is one DKIM-Signature field and its result.
type dkimSig struct {
	domain, selector, bprefix string
	algorithm                 string // a=, e.g. "rsa-sha256"
	result, reason            string
}

type dkimOutcome struct {
	verdict string // pass if any signature passes, else fail, temperror, permerror; none when unsigned
	sigs    []dkimSig
}

// dkimSignatures reads d=, s= and b= of the DKIM-Signature fields in the order
// the library verifies them (header order), which its Verification lacks.
func dkimSignatures(msg []byte, fields []field) []dkimSig {
	var sigs []dkimSig
	for _, f := range fields {
		if !strings.EqualFold(f.name, "DKIM-Signature") {
			continue
		}
		if len(sigs) == maxSignatures {
			break
		}
		var s dkimSig
		for _, tag := range strings.Split(unfold(msg[f.value:f.end]), ";") {
			k, val, _ := strings.Cut(tag, "=")
			// RFC 6376 section 3.2: whitespace around and inside tag values is FWS.
			val = strings.Join(strings.Fields(val), "")
			switch strings.TrimSpace(k) {
			case "d":
				s.domain = strings.ToLower(val)
			case "s":
				s.selector = val
			case "a":
				s.algorithm = strings.ToLower(val)
			case "b":
				// RFC 6008 section 2: at least 8 characters tell signatures apart.
				s.bprefix = val[:min(len(val), 8)]
			}
		}
		sigs = append(sigs, s)
	}
	return sigs
}

// checkDKIM verifies every signature (up to maxSignatures) and fills in sigs.
func (v *Verifier) checkDKIM(ctx context.Context, msg []byte, sigs []dkimSig) dkimOutcome {
	if len(sigs) == 0 {
		return dkimOutcome{verdict: None}
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return v.res.LookupTXT(ctx, name) },
		MaxVerifications: maxSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// The library gives up on the whole message (an unreadable header, or an
		// error it does not classify, in which case it also clears that
		// signature's Err): no signature can be trusted.
		for i := range sigs {
			sigs[i].result, sigs[i].reason = PermError, err.Error()
		}
		return dkimOutcome{verdict: PermError, sigs: sigs}
	}
	for i := range sigs {
		if i >= len(verifs) {
			sigs[i].result, sigs[i].reason = PermError, "not verified"
			continue
		}
		sigs[i].result, sigs[i].reason = dkimResult(verifs[i].Err), ""
		if verifs[i].Err != nil {
			sigs[i].reason = verifs[i].Err.Error()
		}
		if verifs[i].Domain != "" {
			sigs[i].domain = strings.ToLower(verifs[i].Domain)
		}
	}
	return dkimOutcome{verdict: dkimSummary(sigs), sigs: sigs}
}

// dkimResult maps the library's error classes to RFC 8601 section 2.7.1 results.
func dkimResult(err error) string {
	switch {
	case err == nil:
		return Pass
	case dkim.IsTempFail(err):
		return TempError
	case dkim.IsPermFail(err):
		return PermError
	default:
		return Fail // a body hash or signature that does not verify
	}
}

func dkimSummary(sigs []dkimSig) string {
	rank := map[string]int{Pass: 4, Fail: 3, TempError: 2, PermError: 1}
	best := ""
	for _, s := range sigs {
		if rank[s.result] > rank[best] {
			best = s.result
		}
	}
	if best == "" {
		return None
	}
	return best
}
