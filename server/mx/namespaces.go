package mx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flashmob/go-guerrilla/backends"
	"github.com/flashmob/go-guerrilla/mail"

	"github.com/mayfly-mail/mayfly/storage"
)

// Namespaces (issue 24): every address of our domains is caught already; for one of
// an existing namespace, name.anything@domain, the receiver also applies the
// namespace's TTL and limits, and records what it received and refused in the
// store's activity.

// namespaceStore is what the receiver needs of storage.NamespaceStore.
type namespaceStore interface {
	GetNamespace(ctx context.Context, name string) (*storage.Namespace, error)
	AdmitInbox(ctx context.Context, inbox string, until time.Time) error
	AddActivity(ctx context.Context, a storage.Activity) error
}

// namespacesKey keys the transaction's map of recipient inbox -> its namespace in
// mail.Envelope.Values, which go-guerrilla empties at every new transaction.
const namespacesKey = "mayfly-namespaces"

// namespaceOf returns the namespace of inbox, nil for none.
func (s *Server) namespaceOf(ctx context.Context, inbox string) (*storage.Namespace, error) {
	if s.opts.Namespaces == nil {
		return nil, nil
	}
	return storage.InboxNamespace(ctx, s.opts.Namespaces, inbox)
}

// namespaceAtRcpt admits the recipient inbox to its namespace, if it has one: past
// max_inboxes (a new inbox) or max_bytes (stored already), the RCPT is answered 452
// 4.2.2, naming the limit, and the sender may try again when the team has cleaned up.
func (b *backend) namespaceAtRcpt(e *mail.Envelope, inbox string) backends.RcptError {
	s := b.s
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StoreTimeout)
	defer cancel()
	ns, err := s.namespaceOf(ctx, inbox)
	if err == nil && ns != nil {
		if ns.MaxBytes > 0 && ns.Usage.Bytes >= ns.MaxBytes {
			err = &storage.LimitError{Namespace: ns.Name, Limit: "max_bytes", Value: ns.MaxBytes}
		} else {
			err = s.opts.Namespaces.AdmitInbox(ctx, inbox, s.now().Add(s.ttlOf(ns)))
		}
	}
	var le *storage.LimitError
	switch {
	case errors.As(err, &le):
		s.refused(ctx, e, inbox, ns.Name, 452, le.Error())
		return fmt.Errorf("4.2.2 <%s> refused: %s, try later", headerSafe(inbox), le)
	case err != nil:
		s.metrics.rejected.WithLabelValues(rejectStore).Inc()
		s.logger.Warn("namespace of a recipient", "remote", e.RemoteIP, "inbox", inbox, "err", err)
		return errors.New("4.3.0 temporary failure, try again later")
	case ns == nil:
		return nil
	}
	byInbox, _ := e.Values[namespacesKey].(map[string]*storage.Namespace)
	if byInbox == nil {
		byInbox = make(map[string]*storage.Namespace)
		e.Values[namespacesKey] = byInbox
	}
	byInbox[inbox] = ns
	return nil
}

func (s *Server) ttlOf(ns *storage.Namespace) time.Duration {
	if ns != nil && ns.TTL > 0 {
		return ns.TTL
	}
	return s.opts.TTL
}

// namespacesAtData gives each message of a namespace's inbox the namespace's TTL (the
// store applies the inbox's own TTL over it, if it has one) and checks max_bytes with
// the message's size: over it, the whole message is refused, 552 5.2.2 naming the
// limit, as one DATA has one reply for all its recipients.
func (s *Server) namespacesAtData(ctx context.Context, e *mail.Envelope, msgs []*storage.Message, size int64) string {
	byInbox, _ := e.Values[namespacesKey].(map[string]*storage.Namespace)
	if len(byInbox) == 0 {
		return ""
	}
	fresh := map[string]*storage.Namespace{}
	for _, m := range msgs {
		ns := byInbox[m.Inbox]
		if ns == nil {
			continue
		}
		m.Expires = m.Received.Add(s.ttlOf(ns))
		if ns.MaxBytes <= 0 {
			continue
		}
		now := fresh[ns.Name]
		if now == nil {
			var err error
			// Read again: the usage seen at RCPT may be a whole DATA old.
			if now, err = s.opts.Namespaces.GetNamespace(ctx, ns.Name); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue // deleted meanwhile: plain catch-all mail now
				}
				s.logger.Warn("namespace at DATA", "remote", e.RemoteIP, "inbox", m.Inbox, "err", err)
				return "451 4.3.0 Error: temporary storage failure, try again later"
			}
			fresh[ns.Name] = now
		}
		if now.Usage.Bytes+size > now.MaxBytes {
			le := &storage.LimitError{Namespace: ns.Name, Limit: "max_bytes", Value: now.MaxBytes}
			s.refused(ctx, e, m.Inbox, ns.Name, 552, le.Error())
			return fmt.Sprintf("552 5.2.2 <%s> refused: %s", headerSafe(m.Inbox), le)
		}
	}
	return ""
}

// refused records a refusal in the store's activity.
func (s *Server) refused(ctx context.Context, e *mail.Envelope, inbox, ns string, code int, reason string) {
	s.activity(ctx, storage.Activity{Time: s.now().UTC(), Kind: "refused", Namespace: ns, Address: inbox, From: envelopeFrom(e), Code: code, Reason: reason})
}

// received records the stored messages of namespaces in the store's activity.
func (s *Server) received(ctx context.Context, e *mail.Envelope, msgs []*storage.Message) {
	byInbox, _ := e.Values[namespacesKey].(map[string]*storage.Namespace)
	for _, m := range msgs {
		if ns := byInbox[m.Inbox]; ns != nil {
			s.activity(ctx, storage.Activity{Time: m.Received.UTC(), Kind: "received", Namespace: ns.Name, Address: m.Inbox, From: m.Envelope.From, ID: m.ID})
		}
	}
}

// activity records a; a failure loses the entry, not the mail.
func (s *Server) activity(ctx context.Context, a storage.Activity) {
	if s.opts.Namespaces == nil {
		return
	}
	if err := s.opts.Namespaces.AddActivity(ctx, a); err != nil {
		s.logger.Debug("activity", "err", err)
	}
}

func envelopeFrom(e *mail.Envelope) string {
	if e.MailFrom.NullPath {
		return ""
	}
	return e.MailFrom.String()
}
