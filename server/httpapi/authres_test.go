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
}

func FuzzAuthDetails(f *testing.F) {
	f.Add("mx.mayfly.test; spf=pass reason=\"a\\\"b\" smtp.mailfrom=x@y (c (nested) d); dkim=none")
	f.Add("mx.mayfly.test (comment; with semicolon); dmarc=fail")
	f.Fuzz(func(t *testing.T, value string) {
		authDetails([]headerJSON{{Name: "Authentication-Results", Value: value}}, "mx.mayfly.test")
	})
}
