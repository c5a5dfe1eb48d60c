package storage

import "testing"

func TestFilterMatch(t *testing.T) {
	m := &Message{
		From: "Shop <NoReply@Shop.test>", To: []string{"Box <box@x.test>"}, Subject: "Your Verification Code", Tag: "SignUp",
		Envelope: Envelope{Recipients: []string{"box+signup@x.test"}},
		Auth:     AuthResults{SPF: "pass", DKIM: "fail", DMARC: "none"},
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want bool
	}{
		{"empty", Filter{}, true},
		{"from, any case", Filter{From: "noreply@SHOP"}, true},
		{"from differs", Filter{From: "bank"}, false},
		{"to header", Filter{To: "box@x"}, true},
		{"to envelope", Filter{To: "+signup"}, true},
		{"to differs", Filter{To: "other@"}, false},
		{"subject substring", Filter{Subject: "verification"}, true},
		{"tag, any case, whole", Filter{Tag: "signup"}, true},
		{"tag is not a substring", Filter{Tag: "sign"}, false},
		{"verdicts", Filter{SPF: "pass", DKIM: "FAIL", DMARC: "none"}, true},
		{"verdict differs", Filter{DKIM: "pass"}, false},
		{"every field must match", Filter{From: "shop", Subject: "invoice"}, false},
	} {
		if got := tc.f.Lower().Match(m); got != tc.want {
			t.Errorf("%s: %+v.Match = %v, want %v", tc.name, tc.f, got, tc.want)
		}
	}
}
