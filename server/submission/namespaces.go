package submission

import (
	"context"
	"fmt"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// namespaceStore is what submission needs of storage.NamespaceStore: a namespace's
// send_limit counts every reply of its inboxes together, over SMTP and HTTP alike.
type namespaceStore interface {
	GetNamespace(ctx context.Context, name string) (*storage.Namespace, error)
	AddNamespaceSends(ctx context.Context, name string, n int) error
	AddActivity(ctx context.Context, a storage.Activity) error
}

// namespaceOf returns the namespace of inbox, nil for none.
func (s *Server) namespaceOf(ctx context.Context, inbox string) (*storage.Namespace, error) {
	if s.opts.Namespaces == nil {
		return nil, nil
	}
	return storage.InboxNamespace(ctx, s.opts.Namespaces, inbox)
}

// namespaceSendKey is the CountSend key of a namespace's send_limit: no address, so it
// meets no inbox's.
const namespaceSendKey = "namespace:"

// countNamespaceSend counts o's recipients against its namespace's send_limit, if it
// has one, after the inbox's own limit (MAYFLY_SEND_LIMIT) let it through.
func (s *Server) countNamespaceSend(ctx context.Context, ns *storage.Namespace, o outgoing) error {
	if ns == nil || ns.SendLimit == "" {
		return nil
	}
	r, err := limit.ParseRate(ns.SendLimit)
	if err != nil {
		return nil // the API checks it when it is set
	}
	n, err := s.store.CountSend(ctx, namespaceSendKey+ns.Name, len(o.to), r.Per)
	if err != nil {
		return fmt.Errorf("count send: %w", err)
	}
	if n > r.N {
		return fmt.Errorf("namespace %s may send to at most %d recipients per %s (send_limit of namespace %s): %w", ns.Name, r.N, window(r.Per), ns.Name, ErrSendLimit)
	}
	return nil
}

// sentFromNamespace counts a reply sent in its namespace's usage and activity; a
// failure loses the count, not the reply.
func (s *Server) sentFromNamespace(ctx context.Context, ns *storage.Namespace, sent *storage.Message) {
	if ns == nil {
		return
	}
	if err := s.opts.Namespaces.AddNamespaceSends(ctx, ns.Name, 1); err != nil {
		s.logger.Warn("namespace sends", "namespace", ns.Name, "err", err)
	}
	a := storage.Activity{Time: sent.Received.UTC(), Kind: "sent", Namespace: ns.Name, Address: sent.Inbox, From: sent.Envelope.From, ID: sent.ID}
	if err := s.opts.Namespaces.AddActivity(ctx, a); err != nil {
		s.logger.Debug("activity", "err", err)
	}
}
