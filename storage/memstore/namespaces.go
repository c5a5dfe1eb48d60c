package memstore

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// namespaces are the store's teams (storage.NamespaceStore), under Store.mu: their
// counters change in the same critical section as the mail they count
// (accountLocked, from publishLocked), so they never disagree with it.
type namespaces struct {
	byName   map[string]*namespace
	byHash   map[string]keyRef
	activity []storage.Activity // oldest first, at most storage.ActivityMax
}

type keyRef struct{ name, id string }

type namespace struct {
	ns      storage.Namespace    // settings, Keys, Usage.Sends
	msgs    map[string]int64     // inbox "\n" ID -> size, of the messages counted
	bytes   int64                // their sum
	inboxes map[string]time.Time // the inboxes admitted, until when
}

func (s *Store) nsLocked() *namespaces {
	n := &s.names
	if n.byName == nil {
		n.byName = make(map[string]*namespace)
		n.byHash = make(map[string]keyRef)
	}
	return n
}

// accountLocked counts e against the namespace of its inbox, if any.
func (s *Store) accountLocked(e *storage.Event) {
	name := storage.NamespaceOf(e.Inbox)
	if name == "" {
		return
	}
	ns := s.nsLocked().byName[name]
	if ns == nil {
		return
	}
	key := e.Inbox + "\n" + e.ID
	switch e.Type {
	case storage.EventAdded:
		if e.Message == nil {
			return
		}
		if _, ok := ns.msgs[key]; !ok {
			ns.msgs[key] = e.Message.Size
			ns.bytes += e.Message.Size
		}
		if exp := e.Message.Expires; exp.After(ns.inboxes[e.Inbox]) {
			ns.inboxes[e.Inbox] = exp
		}
	case storage.EventDeleted, storage.EventExpired:
		if size, ok := ns.msgs[key]; ok {
			delete(ns.msgs, key)
			ns.bytes -= size
		}
	}
}

func (s *Store) CreateNamespace(ctx context.Context, ns storage.Namespace, key storage.NamespaceKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nsLocked()
	if n.byName[ns.Name] != nil {
		return fmt.Errorf("namespace %s: %w", ns.Name, storage.ErrExists)
	}
	ns.Keys = []storage.NamespaceKey{key}
	ns.Usage = storage.Usage{}
	n.byName[ns.Name] = &namespace{ns: ns, msgs: make(map[string]int64), inboxes: make(map[string]time.Time)}
	n.byHash[key.Hash] = keyRef{ns.Name, key.ID}
	return nil
}

func nsNotFound(name string) error {
	return fmt.Errorf("namespace %s: %w", name, storage.ErrNotFound)
}

func (s *Store) UpdateNamespace(ctx context.Context, ns storage.Namespace) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	have := s.nsLocked().byName[ns.Name]
	if have == nil {
		return nsNotFound(ns.Name)
	}
	have.ns.TTL, have.ns.MaxInboxes, have.ns.MaxBytes, have.ns.SendLimit = ns.TTL, ns.MaxInboxes, ns.MaxBytes, ns.SendLimit
	return nil
}

// outLocked returns a copy of ns with its usage as of now.
func (s *Store) outLocked(ns *namespace) storage.Namespace {
	now := s.opts.Now()
	for inbox, until := range ns.inboxes {
		if !until.After(now) {
			delete(ns.inboxes, inbox)
		}
	}
	out := ns.ns
	out.Keys = slices.Clone(ns.ns.Keys)
	out.Usage.Inboxes = len(ns.inboxes)
	out.Usage.Messages = len(ns.msgs)
	out.Usage.Bytes = ns.bytes
	return out
}

func (s *Store) GetNamespace(ctx context.Context, name string) (*storage.Namespace, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.nsLocked().byName[name]
	if ns == nil {
		return nil, nsNotFound(name)
	}
	out := s.outLocked(ns)
	return &out, nil
}

func (s *Store) ListNamespaces(ctx context.Context) ([]storage.Namespace, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]storage.Namespace, 0, len(s.nsLocked().byName))
	for _, ns := range s.names.byName {
		out = append(out, s.outLocked(ns))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *Store) DeleteNamespace(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nsLocked()
	ns := n.byName[name]
	if ns == nil {
		return nsNotFound(name)
	}
	for _, k := range ns.ns.Keys {
		delete(n.byHash, k.Hash)
	}
	delete(n.byName, name)
	return nil
}

func (s *Store) AddNamespaceKey(ctx context.Context, name string, key storage.NamespaceKey, replace string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nsLocked()
	ns := n.byName[name]
	if ns == nil {
		return nsNotFound(name)
	}
	if replace != "" {
		i := slices.IndexFunc(ns.ns.Keys, func(k storage.NamespaceKey) bool { return k.ID == replace })
		if i < 0 {
			return fmt.Errorf("key %s: %w", replace, storage.ErrNotFound)
		}
		delete(n.byHash, ns.ns.Keys[i].Hash)
		ns.ns.Keys = slices.Delete(ns.ns.Keys, i, i+1)
	}
	ns.ns.Keys = append(ns.ns.Keys, key)
	n.byHash[key.Hash] = keyRef{name, key.ID}
	return nil
}

func (s *Store) RevokeNamespaceKey(ctx context.Context, name, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nsLocked()
	ns := n.byName[name]
	if ns == nil {
		return nsNotFound(name)
	}
	i := slices.IndexFunc(ns.ns.Keys, func(k storage.NamespaceKey) bool { return k.ID == id })
	if i < 0 {
		return fmt.Errorf("key %s: %w", id, storage.ErrNotFound)
	}
	delete(n.byHash, ns.ns.Keys[i].Hash)
	ns.ns.Keys = slices.Delete(ns.ns.Keys, i, i+1)
	return nil
}

func (s *Store) NamespaceOfKey(ctx context.Context, hash string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nsLocked()
	ref, ok := n.byHash[hash]
	if !ok {
		return "", fmt.Errorf("namespace key: %w", storage.ErrNotFound)
	}
	ns := n.byName[ref.name]
	for i := range ns.ns.Keys {
		if ns.ns.Keys[i].ID == ref.id {
			ns.ns.Keys[i].LastUsed = s.opts.Now()
		}
	}
	return ref.name, nil
}

func (s *Store) AdmitInbox(ctx context.Context, inbox string, until time.Time) error {
	name := storage.NamespaceOf(inbox)
	if name == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.nsLocked().byName[name]
	if ns == nil {
		return nil
	}
	now := s.opts.Now()
	have, ok := ns.inboxes[inbox]
	if !ok || !have.After(now) {
		live := 0
		for _, t := range ns.inboxes {
			if t.After(now) {
				live++
			}
		}
		if max := ns.ns.MaxInboxes; max > 0 && live >= max {
			return &storage.LimitError{Namespace: name, Limit: "max_inboxes", Value: int64(max)}
		}
	}
	if until.After(have) {
		ns.inboxes[inbox] = until
	}
	return nil
}

func (s *Store) ReleaseInbox(ctx context.Context, inbox string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns := s.nsLocked().byName[storage.NamespaceOf(inbox)]; ns != nil {
		delete(ns.inboxes, inbox)
	}
	return nil
}

func (s *Store) NamespaceInboxes(ctx context.Context, name string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.nsLocked().byName[name]
	if ns == nil {
		return nil, nsNotFound(name)
	}
	now := s.opts.Now()
	var out []string
	for inbox, until := range ns.inboxes {
		if until.After(now) {
			out = append(out, inbox)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *Store) AddNamespaceSends(ctx context.Context, name string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns := s.nsLocked().byName[name]; ns != nil {
		ns.ns.Usage.Sends += int64(n)
	}
	return nil
}

func (s *Store) AddActivity(ctx context.Context, a storage.Activity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nsLocked()
	if len(n.activity) >= storage.ActivityMax {
		n.activity = slices.Delete(n.activity, 0, len(n.activity)-storage.ActivityMax+1)
	}
	n.activity = append(n.activity, a)
	return nil
}

func (s *Store) Activity(ctx context.Context, namespace string, limit int) ([]storage.Activity, error) {
	s.mu.Lock()
	all := slices.Clone(s.nsLocked().activity)
	s.mu.Unlock()
	slices.Reverse(all)
	return storage.FilterActivity(all, namespace, limit), nil
}
