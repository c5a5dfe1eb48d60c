package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/mayfly-mail/mayfly/server/dkimkey"
	"github.com/mayfly-mail/mayfly/server/dnsclient"
	"github.com/mayfly-mail/mayfly/server/httpapi"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/mx"
	"github.com/mayfly-mail/mayfly/server/submission"
	"github.com/mayfly-mail/mayfly/storage"
)

// newSubmission makes the outbound side: the submission listeners, and the queue
// workers that deliver replies whether they came over SMTP or the HTTP API, so it runs
// even with both listeners off.
func newSubmission(cfg Config, keys storage.Keys, front limit.Options, tlsConfig *tls.Config, st storage.Store, queue storage.Queue, res *dnsclient.Resolver, logger *slog.Logger) (*submission.Server, error) {
	if queue == nil {
		return nil, fmt.Errorf("submission: the %T store keeps no outgoing queue", st)
	}
	var signer crypto.Signer
	if cfg.DKIMKey != "" {
		var err error
		if signer, err = dkimkey.Load(cfg.DKIMKey); err != nil {
			return nil, err
		}
	}
	return submission.New(submission.Options{
		Namespaces:      st,
		Addr:            cfg.SubmissionAddr,
		TLSAddr:         cfg.SubmissionsAddr,
		Hostname:        cfg.Hostname,
		Domains:         cfg.Domains,
		Keys:            keys,
		TLS:             tlsConfig,
		MaxMessageSize:  cfg.MaxMessageSize,
		MaxRecipients:   cfg.MaxReplyRcpts,
		SendLimit:       submission.SendLimit(cfg.SendLimit),
		ClientSendLimit: submission.SendLimit(cfg.ClientSendLimit),
		OutboundRate:    submission.SendLimit(cfg.OutboundRate),
		Unverified:      !cfg.Verify,
		AllowPrivate:    cfg.AllowPrivate,
		TTL:             cfg.TTL,
		DKIM:            signer,
		DKIMSelector:    cfg.DKIMSelector,
		Relay:           cfg.Relay,
		OutboundPort:    cfg.OutboundPort,
		Resolver:        res,
		Options:         front,
	}, st, queue, logger)
}

// replier gives the HTTP reply route submission's answers in HTTP terms.
type replier struct{ sub *submission.Server }

func (r replier) Reply(ctx context.Context, client netip.Addr, inbox, id, text, html string) (*storage.Message, error) {
	m, err := r.sub.Reply(ctx, client, inbox, id, text, html)
	switch {
	case errors.Is(err, submission.ErrTooManyRecipients):
		return nil, httpapi.Refusal(http.StatusUnprocessableEntity, "too_many_recipients", err.Error())
	case errors.Is(err, submission.ErrBareLineEnd):
		return nil, httpapi.Refusal(http.StatusBadRequest, "bare_cr", err.Error())
	case errors.Is(err, submission.ErrNotCorrespondent):
		return nil, httpapi.Refusal(http.StatusForbidden, "not_correspondent", err.Error())
	case errors.Is(err, submission.ErrSendLimit):
		return nil, httpapi.Refusal(http.StatusTooManyRequests, "send_limit", err.Error())
	case errors.Is(err, submission.ErrTooLarge):
		return nil, httpapi.Refusal(http.StatusRequestEntityTooLarge, "too_large", err.Error())
	}
	return m, err
}

// injector gives the HTTP inject route the receiver's refusals in HTTP terms.
type injector struct{ mx *mx.Server }

func (i injector) Inject(ctx context.Context, inbox, remoteIP string, raw []byte) (*storage.Message, error) {
	m, err := i.mx.Inject(ctx, inbox, remoteIP, raw)
	var r *mx.InjectRefusal
	switch {
	case errors.As(err, &r) && r.TooLarge():
		return nil, httpapi.Refusal(http.StatusRequestEntityTooLarge, "too_large", err.Error())
	case errors.As(err, &r):
		return nil, httpapi.RefusalRetry(http.StatusTooManyRequests, "receive_rate_limited", err.Error(), r.RetryAfter())
	}
	return m, err
}
