package httpapi

import (
	"encoding/base32"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Bounds on what POST /api/v1/totp takes: a sign-up page's secret is 16 to 64 base32
// characters and its otpauth URI a few hundred bytes; anything far longer is not one.
const (
	maxTOTPSecret = 1024 // base32 characters, spaces and dashes left out
	maxTOTPURL    = 4096 // bytes
	maxTOTPPeriod = 24 * 60 * 60
)

// totpRequest is the body of POST /api/v1/totp. Period, digits and algorithm, when
// given, override the otpauth URI's (and the RFC 6238 defaults: 30, 6, SHA1).
type totpRequest struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
	Period     *int   `json:"period"`
	Digits     *int   `json:"digits"`
	Algorithm  string `json:"algorithm"`
	Time       string `json:"time"` // RFC 3339; empty = now
}

type totpResponse struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
	ExpiresIn int       `json:"expires_in"` // whole seconds until code changes, rounded up
	NextCode  string    `json:"next_code"`
	Period    int       `json:"period"`
	Digits    int       `json:"digits"`
	Algorithm string    `json:"algorithm"`
}

// totpCode answers POST /api/v1/totp with the RFC 6238 code of a secret, as the
// authenticator app a sign-up page asks for would show it, and the next one, so a test
// near the end of a period can use that. It needs no inbox token: it computes from what
// the caller sends, stores nothing and reads no inbox, so it is held only to the
// per-client request rate (MAYFLY_HTTP_RATE) that limitRate applies.
func (s *Server) totpCode(c echo.Context) error {
	var req totpRequest
	if err := s.decodeBody(c, &req, false, `{"secret"} or {"otpauth_url"}, optionally "period", "digits", "algorithm", "time"`); err != nil {
		return err
	}
	p, err := req.params()
	if err != nil {
		return err
	}
	now := time.Now()
	if req.Time != "" {
		now, err = time.Parse(time.RFC3339Nano, req.Time)
		if err != nil || now.Unix() < 0 {
			return errorf(http.StatusBadRequest, "bad_time", "time %q: want an RFC 3339 time after 1970, such as 2026-01-02T15:04:05Z", clip(req.Time))
		}
	}
	counter := now.Unix() / int64(p.period)
	opts := totp.ValidateOpts{Period: uint(p.period), Digits: otp.Digits(p.digits), Algorithm: p.algorithm}
	code, err := totp.GenerateCodeCustom(p.secret, now, opts)
	if err != nil {
		return errorf(http.StatusBadRequest, "bad_secret", "secret: %v", err)
	}
	expires := time.Unix((counter+1)*int64(p.period), 0).UTC()
	next, err := totp.GenerateCodeCustom(p.secret, expires, opts)
	if err != nil {
		return errorf(http.StatusBadRequest, "bad_secret", "secret: %v", err)
	}
	return c.JSON(http.StatusOK, totpResponse{
		Code:      code,
		ExpiresAt: expires,
		ExpiresIn: int(math.Ceil(expires.Sub(now).Seconds())),
		NextCode:  next,
		Period:    p.period,
		Digits:    p.digits,
		Algorithm: p.algorithm.String(),
	})
}

type totpParams struct {
	secret    string // base32, upper case, unpadded
	period    int
	digits    int
	algorithm otp.Algorithm
}

// params checks a request and fills in what it leaves out from its otpauth URI, else
// from RFC 6238's defaults.
func (r *totpRequest) params() (totpParams, error) {
	p := totpParams{period: 30, digits: 6, algorithm: otp.AlgorithmSHA1}
	period, digits, algorithm := "", "", ""
	switch {
	case (r.Secret == "") == (r.OTPAuthURL == ""):
		return p, errorf(http.StatusBadRequest, "bad_request", "give either secret or otpauth_url")
	case r.OTPAuthURL != "":
		if len(r.OTPAuthURL) > maxTOTPURL {
			return p, errorf(http.StatusBadRequest, "bad_otpauth_url", "otpauth_url: %d bytes, at most %d", len(r.OTPAuthURL), maxTOTPURL)
		}
		key, err := otp.NewKeyFromURL(r.OTPAuthURL)
		if err != nil {
			return p, errorf(http.StatusBadRequest, "bad_otpauth_url", "otpauth_url: %v", err)
		}
		u, _ := url.Parse(key.URL()) // NewKeyFromURL parsed it already
		if !strings.EqualFold(u.Scheme, "otpauth") || !strings.EqualFold(key.Type(), "totp") {
			return p, errorf(http.StatusBadRequest, "bad_otpauth_url", "otpauth_url: want otpauth://totp/LABEL?secret=..., not %s://%s/ (only time-based codes are computed here)", clip(u.Scheme), clip(u.Host))
		}
		q := u.Query()
		if key.Secret() == "" {
			return p, errorf(http.StatusBadRequest, "bad_otpauth_url", "otpauth_url: no secret parameter")
		}
		r.Secret = key.Secret()
		period, digits, algorithm = q.Get("period"), q.Get("digits"), q.Get("algorithm")
	}
	secret, err := normalizeSecret(r.Secret)
	if err != nil {
		return p, err
	}
	p.secret = secret
	if r.Period != nil {
		period = strconv.Itoa(*r.Period)
	}
	if period != "" {
		n, err := strconv.Atoi(period)
		if err != nil || n < 1 || n > maxTOTPPeriod {
			return p, errorf(http.StatusBadRequest, "bad_period", "period %q: want whole seconds from 1 to %d", clip(period), maxTOTPPeriod)
		}
		p.period = n
	}
	if r.Digits != nil {
		digits = strconv.Itoa(*r.Digits)
	}
	if digits != "" {
		// RFC 4226 section 5.3: at least 6 digits; a 31-bit value has at most 10.
		n, err := strconv.Atoi(digits)
		if err != nil || n < 6 || n > 10 {
			return p, errorf(http.StatusBadRequest, "bad_digits", "digits %q: want 6 to 10", clip(digits))
		}
		p.digits = n
	}
	if r.Algorithm != "" {
		algorithm = r.Algorithm
	}
	if algorithm != "" {
		// RFC 6238 section 1.2: HMAC-SHA-1, HMAC-SHA-256 or HMAC-SHA-512.
		switch strings.ToUpper(strings.ReplaceAll(algorithm, "-", "")) {
		case "SHA1":
			p.algorithm = otp.AlgorithmSHA1
		case "SHA256":
			p.algorithm = otp.AlgorithmSHA256
		case "SHA512":
			p.algorithm = otp.AlgorithmSHA512
		default:
			return p, errorf(http.StatusBadRequest, "bad_algorithm", "algorithm %q: want SHA1, SHA256 or SHA512", clip(algorithm))
		}
	}
	return p, nil
}

// normalizeSecret reads a base32 secret the way people copy it from a sign-up page:
// in any case, in groups split by spaces or dashes, with or without padding.
func normalizeSecret(s string) (string, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, s)
	s = strings.TrimRight(strings.ToUpper(s), "=")
	if len(s) > maxTOTPSecret {
		return "", errorf(http.StatusBadRequest, "bad_secret", "secret: %d characters, at most %d", len(s), maxTOTPSecret)
	}
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil || len(key) == 0 {
		return "", errorf(http.StatusBadRequest, "bad_secret", "secret: want base32 (A-Z, 2-7), as a sign-up page shows it")
	}
	return s, nil
}

// clip shortens what a caller sent for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
