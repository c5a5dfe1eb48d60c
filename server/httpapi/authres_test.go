package httpapi

import (
	"reflect"
	"testing"
)

func TestAuthDetails(t *testing.T) {
	ours := "mx.mayfly.test;\r\n\tspf=pass reason=\"matched ip\" smtp.mailfrom=bounces@bounces.test;\r\n" +
		"\tdkim=pass header.b=mmGZgHmi header.d=shop.test header.s=s1;\r\n" +
		"\tdkim=fail reason=\"signature; did not verify\" header.d=other.test header.s=x;\r\n" +
		"\tdmarc=pass reason=\"DKIM aligned\" header.from=shop.test policy.dmarc=reject (p=reject)"
	headers := []headerJSON{
		{Name: "Authentication-Results", Value: "elsewhere.test; spf=fail"},
		{Name: "authentication-results", Value: ours},
	}
	got := authDetails(headers, "MX.mayfly.test")
	want := []authDetail{
		{Method: "spf", Result: "pass", Reason: "matched ip", Properties: map[string]string{"smtp.mailfrom": "bounces@bounces.test"}},
		{Method: "dkim", Result: "pass", Properties: map[string]string{"header.b": "mmGZgHmi", "header.d": "shop.test", "header.s": "s1"}},
		{Method: "dkim", Result: "fail", Reason: "signature; did not verify", Properties: map[string]string{"header.d": "other.test", "header.s": "x"}},
		{Method: "dmarc", Result: "pass", Reason: "DKIM aligned", Properties: map[string]string{"header.from": "shop.test", "policy.dmarc": "reject"}, Comment: "p=reject"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("authDetails = %+v\nwant %+v", got, want)
	}
	if got := authDetails(headers[:1], "mx.mayfly.test"); len(got) != 0 {
		t.Errorf("authDetails of another server's field = %+v, want none", got)
	}

	// What go-msgauth's authres.Parse alone would lose: a comment in the authserv-id,
	// a nested comment, an escaped quote, a method it knows with a property its result
	// type has no field for, a method it does not know.
	other := "mx.mayfly.test (ours; really) 1; iprev=pass policy.iprev=192.0.2.1 (mail.example.test (v4));\r\n" +
		"\tarc=none reason=\"a \\\"quoted\\\" word\"; x-custom=neutral x.y=z; none"
	got = authDetails([]headerJSON{{Name: "Authentication-Results", Value: other}}, "mx.mayfly.test")
	want = []authDetail{
		{Method: "iprev", Result: "pass", Properties: map[string]string{"policy.iprev": "192.0.2.1"}, Comment: "mail.example.test (v4)"},
		{Method: "arc", Result: "none", Reason: `a "quoted" word`},
		{Method: "x-custom", Result: "neutral", Properties: map[string]string{"x.y": "z"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("authDetails(%q) = %+v\nwant %+v", other, got, want)
	}
}

func FuzzAuthDetails(f *testing.F) {
	f.Add("mx.mayfly.test; spf=pass reason=\"a\\\"b\" smtp.mailfrom=x@y (c (nested) d); dkim=none")
	f.Add("mx.mayfly.test (comment; with semicolon); dmarc=fail")
	f.Fuzz(func(t *testing.T, value string) {
		authDetails([]headerJSON{{Name: "Authentication-Results", Value: value}}, "mx.mayfly.test")
	})
}
