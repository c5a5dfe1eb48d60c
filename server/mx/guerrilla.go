package mx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	guerrilla "github.com/flashmob/go-guerrilla"
	glog "github.com/flashmob/go-guerrilla/log"
	"github.com/flashmob/go-guerrilla/mail"
	"github.com/flashmob/go-guerrilla/response"
	"github.com/sirupsen/logrus"
)

// go-guerrilla's quirks, kept in this file.

// go-guerrilla's canned replies are package globals, meant to be set in init. Ours
// put the right codes where its defaults are wrong for a catch-all MX:
//   - a foreign domain is refused for good (RFC 5321 section 3.6.2: never a relay),
//     not with its 454 that invites retries;
//   - go-guerrilla answers a refusal of ValidateRcpt with FailRcptCmd, a space and
//     the error's text (but a backends.RcptReply, our patch, which an inbox's faults
//     use to give their own codes), so one reply code serves them all, and the error
//     carries the enhanced code and the words. That code is 452: RFC 5321 section 4.5.3.1.10
//     requires it over the recipient limit, and for a rate limit it means what 450
//     would, this recipient not now, so the sender delivers to the others and retries
//     this one later;
//   - a message over the limit gets 552 5.3.4 (RFC 1870 section 6, RFC 3463), not 451,
//     which would have the sender retry the same oversized message for days. go-guerrilla
//     reports an oversized DATA and a read error in DATA with the same reply, so a client
//     whose connection fails mid-DATA also reads 552; such a client rarely reads at all.
func init() {
	// The banner reads "SMTP Guerrilla(<Version>)"; say who answers.
	guerrilla.Version = "Mayfly"
	response.Canned.ErrorRelayDenied = &response.Response{
		EnhancedCode: ".7.1", BasicCode: 550, Class: response.ClassPermanentFailure,
		Comment: "Relay access denied: we accept mail only for our own domains, not",
	}
	// Without an enhanced code a Response is its Comment, verbatim.
	response.Canned.FailRcptCmd = &response.Response{Comment: "452"}
	tooBig := &response.Response{
		EnhancedCode: response.MessageTooBigForSystem, BasicCode: 552, Class: response.ClassPermanentFailure,
		Comment: "Message size exceeds fixed maximum message size:",
	}
	response.Canned.FailReadErrorDataCmd = tooBig
	response.Canned.FailMessageSizeExceeded = tooBig
	// In DATA this means the byte budget (size + 1MB) ran out, not a long line.
	response.Canned.FailReadLimitExceededDataCmd = tooBig
	// Options.MaxStalledCommands, which cmd/mayfly sets from this setting.
	response.Canned.ErrorTooManyStalledCommands = &response.Response{
		EnhancedCode: ".7.0", BasicCode: 421, Class: response.ClassTransientFailure,
		Comment: "Too many commands without a transaction (MAYFLY_SMTP_MAX_STALLED_COMMANDS), closing",
	}

	// A Response formats itself on first use and keeps the text in an unguarded
	// field, so two sessions sending the same canned reply for the first time race
	// (seen at shutdown, when every session gets ErrorShutdown at once). Formatting
	// them all here, before any session, leaves only reads.
	canned := reflect.ValueOf(&response.Canned).Elem()
	for i := range canned.NumField() {
		if r, ok := canned.Field(i).Interface().(*response.Response); ok && r != nil {
			_ = r.String()
		}
	}
}

// newGuerrillaLogger routes go-guerrilla's logrus output into our slog logger: its
// errors as warnings, the rest as debug. Below debug the chatter of every connection
// ("Handle client", "Client closed the connection") is not even formatted.
func newGuerrillaLogger(logger *slog.Logger) glog.Logger {
	l := logrus.New()
	l.Out = io.Discard
	l.Level = logrus.ErrorLevel
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		l.Level = logrus.DebugLevel
	}
	l.Hooks.Add(slogHook{logger.With("lib", "go-guerrilla")})
	// HookedLogger's own AddHook and SetLevel act on logrus's global logger; we never call them.
	return &glog.HookedLogger{Logger: l}
}

type slogHook struct {
	logger *slog.Logger
}

func (h slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	if e.Level <= logrus.ErrorLevel {
		level = slog.LevelWarn
	}
	args := make([]any, 0, 2*len(e.Data))
	for k, v := range e.Data {
		if k == logrus.ErrorKey {
			k = "err"
		}
		args = append(args, k, v)
	}
	h.logger.Log(context.Background(), level, e.Message, args...)
	return nil
}

// currentCertificate is the certificate cfg serves now: the one GetConfigForClient
// hands out when there is one (a certificate that reloads), else the first.
func currentCertificate(cfg *tls.Config) (*tls.Certificate, error) {
	if cfg.GetConfigForClient != nil {
		if c, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{}); err == nil && c != nil && len(c.Certificates) > 0 {
			return &c.Certificates[0], nil
		}
	}
	if len(cfg.Certificates) == 0 {
		return nil, errors.New("no certificate")
	}
	return &cfg.Certificates[0], nil
}

// writeKeyPair writes cert where go-guerrilla can load it: it takes only file names.
// dir is private to this process; "" makes a new one. Each file is written aside and
// renamed, so go-guerrilla never loads half of one.
func writeKeyPair(dir string, cert *tls.Certificate) (string, error) {
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", err
	}
	made := false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "mayfly-smtp-tls-"); err != nil {
			return "", err
		}
		made = true
	}
	var certPEM []byte
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	write := func(name string, data []byte) error {
		tmp := filepath.Join(dir, name+".new")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(dir, name))
	}
	if err := errors.Join(write("cert.pem", certPEM), write("key.pem", keyPEM)); err != nil {
		if made {
			removeKeyPair(dir)
		}
		return "", err
	}
	return dir, nil
}

func removeKeyPair(dir string) {
	os.RemoveAll(dir)
}

// receivedHeader is the trace field of RFC 5321 section 4.4, with the protocol names of
// RFC 3848. The "for" clause names the recipient only when there is one, so a copy
// shared by several inboxes does not disclose the others.
func receivedHeader(e *mail.Envelope, hostname, id, forRcpt string, at time.Time) []byte {
	with := "SMTP"
	if e.ESMTP {
		with = "ESMTP"
	}
	if e.TLS {
		with += "S"
	}
	b := make([]byte, 0, 256)
	b = append(b, "Received: from "...)
	b = append(b, headerSafe(e.Helo)...)
	b = append(b, " (["...)
	b = append(b, headerSafe(e.RemoteIP)...)
	b = append(b, "])\r\n\tby "...)
	b = append(b, headerSafe(hostname)...)
	b = append(b, " (Mayfly) with "...)
	b = append(b, with...)
	b = append(b, " id "...)
	b = append(b, id...)
	if forRcpt != "" {
		b = append(b, "\r\n\tfor <"...)
		b = append(b, headerSafe(forRcpt)...)
		b = append(b, '>')
	}
	b = append(b, "; "...)
	b = at.AppendFormat(b, time.RFC1123Z)
	return append(b, "\r\n"...)
}

// headerSafe keeps client-supplied text from breaking out of the header field.
func headerSafe(s string) string {
	if s == "" {
		return "unknown"
	}
	if !strings.ContainsAny(s, "\r\n\x00") {
		return s
	}
	return strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(s)
}
