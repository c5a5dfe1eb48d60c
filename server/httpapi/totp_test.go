package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// RFC 6238 appendix B's seeds, base32: "12345678901234567890" for SHA1, the same to 32
// bytes for SHA256 and to 64 for SHA512.
const (
	seedSHA1   = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	seedSHA256 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA"
	seedSHA512 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA"
)

func newTOTPEnv(t *testing.T, opts Options) *env {
	t.Helper()
	st := memstore.New(memstore.Options{}) // TOTP reads no store; any will do
	t.Cleanup(func() { st.Close() })
	return newEnv(t, st, opts)
}

func (e *env) totp(body string) (response, totpResponse) {
	e.t.Helper()
	r := e.do("POST", "/api/v1/totp", "", strings.NewReader(body))
	var out totpResponse
	if r.status == http.StatusOK {
		r.json(e.t, &out)
	}
	return r, out
}

func TestTOTPVectors(t *testing.T) {
	e := newTOTPEnv(t, Options{})
	// RFC 6238 appendix B, every row.
	vectors := []struct {
		unix                 int64
		sha1, sha256, sha512 string
	}{
		{59, "94287082", "46119246", "90693936"},
		{1111111109, "07081804", "68084774", "25091201"},
		{1111111111, "14050471", "67062674", "99943326"},
		{1234567890, "89005924", "91819424", "93441116"},
		{2000000000, "69279037", "90698825", "38618901"},
		{20000000000, "65353130", "77737706", "47863826"},
	}
	for _, v := range vectors {
		at := time.Unix(v.unix, 0).UTC().Format(time.RFC3339)
		for _, alg := range []struct{ name, seed, want string }{
			{"SHA1", seedSHA1, v.sha1}, {"SHA256", seedSHA256, v.sha256}, {"SHA512", seedSHA512, v.sha512},
		} {
			body := `{"secret": "` + alg.seed + `", "algorithm": "` + alg.name + `", "digits": 8, "time": "` + at + `"}`
			r, got := e.totp(body)
			if r.status != http.StatusOK || got.Code != alg.want || got.Algorithm != alg.name || got.Digits != 8 || got.Period != 30 {
				t.Errorf("POST /api/v1/totp %s = %d %s, want code %s", body, r.status, r.body, alg.want)
			}
			// The next code is the code of the next period, which begins at expires_at.
			wantExpires := time.Unix((v.unix/30+1)*30, 0).UTC()
			if !got.ExpiresAt.Equal(wantExpires) || got.ExpiresIn != int(wantExpires.Unix()-v.unix) {
				t.Errorf("POST %s: expires_at %s in %d, want %s in %d", body, got.ExpiresAt, got.ExpiresIn, wantExpires, wantExpires.Unix()-v.unix)
			}
			_, next := e.totp(`{"secret": "` + alg.seed + `", "algorithm": "` + alg.name + `", "digits": 8, "time": "` + wantExpires.Format(time.RFC3339) + `"}`)
			if got.NextCode != next.Code || next.Code == "" {
				t.Errorf("POST %s: next_code %s, want %s, the code at %s", body, got.NextCode, next.Code, wantExpires)
			}
		}
	}
}

func TestTOTPInputs(t *testing.T) {
	e := newTOTPEnv(t, Options{})
	const at59 = `"time": "1970-01-01T00:00:59Z"`
	tests := []struct {
		name, body, code string
	}{
		{"defaults: SHA1, 6 digits, 30s", `{"secret": "` + seedSHA1 + `", ` + at59 + `}`, "287082"},
		{"as a page shows it: lower case, groups, padding", `{"secret": "gezd gnbv-gy3t qojq gezd gnbv gy3t qojq====", ` + at59 + `}`, "287082"},
		{"otpauth URI", `{"otpauth_url": "otpauth://totp/ACME%20Co:john@example.com?secret=` + seedSHA1 + `&issuer=ACME%20Co&algorithm=SHA1&digits=8&period=30", ` + at59 + `}`, "94287082"},
		{"otpauth URI, SHA512", `{"otpauth_url": "otpauth://totp/x?secret=` + seedSHA512 + `&algorithm=SHA512&digits=8", ` + at59 + `}`, "90693936"},
		{"otpauth URI, fields override it", `{"otpauth_url": "otpauth://totp/x?secret=` + seedSHA1 + `&digits=8", "digits": 6, ` + at59 + `}`, "287082"},
		// At 89s a 60s period is in its second step, counter 1 as at 59s with 30s.
		{"otpauth URI period", `{"otpauth_url": "otpauth://totp/x?secret=` + seedSHA1 + `&digits=8&period=60", "time": "1970-01-01T00:01:29Z"}`, "94287082"},
		{"algorithm in lower case with a dash", `{"secret": "` + seedSHA256 + `", "algorithm": "sha-256", "digits": 8, ` + at59 + `}`, "46119246"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, got := e.totp(tt.body)
			if r.status != http.StatusOK || got.Code != tt.code {
				t.Errorf("POST /api/v1/totp %s = %d %s, want code %s", tt.body, r.status, r.body, tt.code)
			}
		})
	}

	// Now, when no time is given: the code changes within a period.
	r, got := e.totp(`{"secret": "JBSWY3DPEHPK3PXP"}`)
	if r.status != http.StatusOK || len(got.Code) != 6 || len(got.NextCode) != 6 || got.ExpiresIn < 1 || got.ExpiresIn > 30 {
		t.Errorf("POST /api/v1/totp now = %d %s, want a 6-digit code expiring within 30s", r.status, r.body)
	}
	if d := time.Until(got.ExpiresAt); d > 30*time.Second || d < -time.Second {
		t.Errorf("expires_at %s is %s away, want within a period", got.ExpiresAt, d)
	}
}

func TestTOTPErrors(t *testing.T) {
	e := newTOTPEnv(t, Options{})
	tests := []struct {
		name, body, code string
		status           int
	}{
		{"not JSON", `{`, "bad_request", 400},
		{"empty", `{}`, "bad_request", 400},
		{"both", `{"secret": "` + seedSHA1 + `", "otpauth_url": "otpauth://totp/x?secret=` + seedSHA1 + `"}`, "bad_request", 400},
		{"unknown field", `{"secret": "` + seedSHA1 + `", "counter": 1}`, "bad_request", 400},
		{"secret not base32", `{"secret": "01890189"}`, "bad_secret", 400},
		{"secret of bad length", `{"secret": "ABC"}`, "bad_secret", 400},
		{"secret only padding", `{"secret": "===="}`, "bad_secret", 400},
		{"secret too long", `{"secret": "` + strings.Repeat("A", 1032) + `"}`, "bad_secret", 400},
		{"URL not otpauth", `{"otpauth_url": "https://shop.test/?secret=` + seedSHA1 + `"}`, "bad_otpauth_url", 400},
		{"URL counter-based", `{"otpauth_url": "otpauth://hotp/x?secret=` + seedSHA1 + `&counter=1"}`, "bad_otpauth_url", 400},
		{"URL without secret", `{"otpauth_url": "otpauth://totp/x?issuer=Shop"}`, "bad_otpauth_url", 400},
		{"URL unparsable", `{"otpauth_url": "otpauth://totp/x?secret=%zz"}`, "bad_otpauth_url", 400},
		{"URL too long", `{"otpauth_url": "otpauth://totp/x?secret=` + seedSHA1 + `&issuer=` + strings.Repeat("a", 4100) + `"}`, "bad_otpauth_url", 400},
		{"URL bad secret", `{"otpauth_url": "otpauth://totp/x?secret=0000"}`, "bad_secret", 400},
		{"URL bad period", `{"otpauth_url": "otpauth://totp/x?secret=` + seedSHA1 + `&period=abc"}`, "bad_period", 400},
		{"URL bad digits", `{"otpauth_url": "otpauth://totp/x?secret=` + seedSHA1 + `&digits=4"}`, "bad_digits", 400},
		{"URL bad algorithm", `{"otpauth_url": "otpauth://totp/x?secret=` + seedSHA1 + `&algorithm=MD5"}`, "bad_algorithm", 400},
		{"period 0", `{"secret": "` + seedSHA1 + `", "period": 0}`, "bad_period", 400},
		{"period over a day", `{"secret": "` + seedSHA1 + `", "period": 86401}`, "bad_period", 400},
		{"digits 5", `{"secret": "` + seedSHA1 + `", "digits": 5}`, "bad_digits", 400},
		{"digits 11", `{"secret": "` + seedSHA1 + `", "digits": 11}`, "bad_digits", 400},
		{"algorithm MD5", `{"secret": "` + seedSHA1 + `", "algorithm": "MD5"}`, "bad_algorithm", 400},
		{"time not RFC 3339", `{"secret": "` + seedSHA1 + `", "time": "yesterday"}`, "bad_time", 400},
		{"time before 1970", `{"secret": "` + seedSHA1 + `", "time": "1969-12-31T23:59:59Z"}`, "bad_time", 400},
		{"too large", `{"secret": "` + strings.Repeat(" ", 70<<10) + `"}`, "too_large", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := e.totp(tt.body)
			wantError(t, r, tt.status)
			if code := errorCode(r.body); code != tt.code {
				t.Errorf("POST /api/v1/totp %.200s = %d %s, want code %s", tt.body, r.status, r.body, tt.code)
			}
		})
	}
}

// TestTOTPRateLimited checks that the route, which needs no token, is still held to the
// client's request rate.
func TestTOTPRateLimited(t *testing.T) {
	e := newTOTPEnv(t, Options{RequestRate: limit.Rate{N: 2, Per: time.Hour}})
	for i := range 2 {
		if r, _ := e.totp(`{"secret": "` + seedSHA1 + `"}`); r.status != http.StatusOK {
			t.Fatalf("request %d = %d %s, want 200", i+1, r.status, r.body)
		}
	}
	r, _ := e.totp(`{"secret": "` + seedSHA1 + `"}`)
	if r.status != http.StatusTooManyRequests || errorCode(r.body) != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Errorf("third request = %d %s, want 429 rate_limited with Retry-After", r.status, r.body)
	}
}

// FuzzTOTP checks that no body makes POST /api/v1/totp panic or answer anything but a
// code or a 400 (413 past the body limit).
func FuzzTOTP(f *testing.F) {
	f.Add(`{"secret": "` + seedSHA1 + `", "digits": 8, "time": "1970-01-01T00:00:59Z"}`)
	f.Add(`{"otpauth_url": "otpauth://totp/x?secret=` + seedSHA512 + `&algorithm=SHA512&digits=10&period=86400"}`)
	f.Add(`{"otpauth_url": "otpauth://hotp/x?secret=A&period=-1", "algorithm": "md5"}`)
	f.Add(`{"secret": "a-b c=", "period": 1, "time": "9999-12-31T23:59:59.999999999Z"}`)
	st := memstore.New(memstore.Options{})
	f.Cleanup(func() { st.Close() })
	s := New(Options{Domains: []string{"mayfly.test"}, Secret: []byte(secret), RequestRate: limit.Rate{N: -1}}, st, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/totp", strings.NewReader(body))
		s.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var got totpResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Code) != got.Digits || len(got.NextCode) != got.Digits || got.ExpiresIn < 0 || got.ExpiresIn > got.Period {
				t.Fatalf("POST %q = 200 %s: not a code", body, rec.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("POST %q = %d %s", body, rec.Code, rec.Body)
		}
	})
}
