package webhook

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzCheckURL feeds CheckURL what clients may send: it must not panic, and what it
// lets through is http or https.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/in", "http://127.0.0.1:8080/", "http://[::ffff:10.0.0.1]/", "http://localhost./", "ftp://x", "http://%zz", "http://a b/", ""} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, allowPrivate bool) {
		if err := CheckURL(raw, allowPrivate); err == nil && len(raw) > maxURL {
			t.Errorf("CheckURL(%d bytes) = nil, want too long", len(raw))
		}
	})
}

// FuzzVerify feeds Verify the headers a receiver gets: it must not panic, and no
// header but the right signature passes.
func FuzzVerify(f *testing.F) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	f.Add("msg_1", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", `{"test": 2432232314}`)
	f.Add("", "-1", "v1, v2,x", "")
	f.Fuzz(func(t *testing.T, id, ts, sig, body string) {
		if err := Verify(secret, id, ts, sig, []byte(body), time.Unix(1614265330, 0), 5*time.Minute); err != nil {
			return
		}
		sec, _ := strconv.ParseInt(ts, 10, 64)
		want, _ := Sign(secret, id, time.Unix(sec, 0), []byte(body))
		if !slices.Contains(strings.Fields(sig), want) {
			t.Errorf("Verify(%q, %q, %q) passed without the signature %s", id, ts, sig, want)
		}
	})
}
