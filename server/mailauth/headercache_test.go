package mailauth

import (
	"bytes"
	"testing"

	"github.com/emersion/go-msgauth/dmarc"
)

// TestCachedHeader: the Authentication-Results field of unsigned mail is formatted once
// per distinct content and then shared, and is always the one header formats: every
// input that changes the field is part of the cache's key.
func TestCachedHeader(t *testing.T) {
	v := &Verifier{authservID: "mx.mayfly.test"}
	pct := 50
	rec := &dmarc.Record{Policy: dmarc.PolicyReject}
	recPct := &dmarc.Record{Policy: dmarc.PolicyReject, SubdomainPolicy: dmarc.PolicyNone, Percent: &pct}
	base := func() (Input, outcome) {
		return Input{MailFrom: "a@example.test", Helo: "client.test"}, outcome{
			spf: spfOutcome{verdict: Pass}, dkim: dkimOutcome{verdict: None},
			dmarc: dmarcOutcome{verdict: Pass, reason: "SPF aligned", policy: rec, applied: "reject"}, from: "example.test"}
	}
	variants := []struct {
		name   string
		change func(*Input, *outcome)
	}{
		{"base", func(*Input, *outcome) {}},
		{"other sender", func(in *Input, _ *outcome) { in.MailFrom = "b@example.test" }},
		{"bounce", func(in *Input, _ *outcome) { in.MailFrom = "" }},
		{"bounce, other HELO", func(in *Input, _ *outcome) { in.MailFrom, in.Helo = "", "other.test" }},
		{"injected", func(in *Input, _ *outcome) { in.Injected = true }},
		{"SPF fail", func(_ *Input, o *outcome) { o.spf.verdict = Fail }},
		{"SPF reason", func(_ *Input, o *outcome) { o.spf.verdict, o.spf.reason = TempError, "dns" }},
		{"DKIM temperror", func(_ *Input, o *outcome) { o.dkim.verdict = TempError }},
		{"DMARC fail", func(_ *Input, o *outcome) { o.dmarc.verdict, o.dmarc.reason = Fail, "no aligned SPF or DKIM pass" }},
		{"other From", func(_ *Input, o *outcome) { o.from = "other.test" }},
		{"sp and pct", func(_ *Input, o *outcome) { o.dmarc.policy = recPct }},
		{"applied sp", func(_ *Input, o *outcome) { o.dmarc.policy, o.dmarc.applied = recPct, "none" }},
		{"no policy", func(_ *Input, o *outcome) { o.dmarc = dmarcOutcome{verdict: None, reason: "no DMARC record"} }},
	}
	seen := map[string]string{}
	for _, tt := range variants {
		in, o := base()
		tt.change(&in, &o)
		want := v.header(in, o.spf, o.dkim, o.dmarc, o.from)
		first := v.cachedHeader(in, o)
		again := v.cachedHeader(in, o)
		if !bytes.Equal(first, want) || !bytes.Equal(again, want) {
			t.Errorf("%s: cachedHeader =\n%s%s\nwant\n%s", tt.name, first, again, want)
		}
		if &first[0] != &again[0] {
			t.Errorf("%s: the second cachedHeader formatted the field again, want it from the cache", tt.name)
		}
		if other, ok := seen[string(want)]; ok {
			t.Errorf("%s: same field as %s, so this case tests nothing", tt.name, other)
		}
		seen[string(want)] = tt.name
	}
}
