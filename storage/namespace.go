package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Namespaces ("Teams", issue 24): a namespace named "ci" owns every address
// ci.<anything>@<one of our domains>. Its keys open those inboxes and no other; its
// settings (a default TTL, limits) apply to them; the store counts its usage.

// ErrExists is returned for a namespace name already taken.
var ErrExists = errors.New("storage: already exists")

// KeyPrefix starts every namespace key, so a secret's kind shows without a lookup.
const KeyPrefix = "mfk_"

// ActivityMax is how many entries of activity the store keeps, across all nodes.
const ActivityMax = 500

// Namespace is one team's share of the service.
type Namespace struct {
	Name       string
	TTL        time.Duration // default TTL of its inboxes' mail; 0 = the receiver's
	MaxInboxes int           // 0 = no limit
	MaxBytes   int64         // stored bytes across its inboxes; 0 = no limit
	SendLimit  string        // replies of all its inboxes together, as "20/h"; "" = the per-inbox default
	Created    time.Time
	Keys       []NamespaceKey // oldest first; filled by GetNamespace and ListNamespaces
	Usage      Usage          // filled by GetNamespace and ListNamespaces
}

// NamespaceKey is one key of a namespace, as stored: never the key itself.
type NamespaceKey struct {
	ID       string // "k_..."
	Prefix   string // the key's first characters, to tell keys apart
	Hash     string // HashKey of the key
	Created  time.Time
	LastUsed time.Time // zero = never
}

// Usage is what a namespace holds and has sent, counted by the store as mail comes and goes.
type Usage struct {
	Inboxes  int   // inboxes counted against MaxInboxes (AdmitInbox), not yet expired
	Messages int   // messages stored in its inboxes
	Bytes    int64 // their sizes
	Sends    int64 // replies sent, ever (AddNamespaceSends)
}

// Activity is one entry of the store's recent activity: mail received, refused or sent.
type Activity struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"` // "received", "refused", "sent"
	Namespace string    `json:"namespace,omitempty"`
	Address   string    `json:"address"`
	From      string    `json:"from,omitempty"`
	ID        string    `json:"id,omitempty"`
	Code      int       `json:"code,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// LimitError is a refusal for a namespace's limit: Limit names the setting.
type LimitError struct {
	Namespace string
	Limit     string // "max_inboxes", "max_bytes", "send_limit"
	Value     int64
}

func (e *LimitError) Error() string {
	return "namespace " + e.Namespace + " is at its " + e.Limit + " (" + strconv.FormatInt(e.Value, 10) + ")"
}

// NamespaceStore keeps the namespaces, their keys, usage and the recent activity.
// Every node of a Redis store sees the same: a key revoked on one is refused on every
// other from its next lookup.
type NamespaceStore interface {
	// CreateNamespace stores ns's name and settings (Keys and Usage ignored) with its
	// first key; ErrExists when the name is taken.
	CreateNamespace(ctx context.Context, ns Namespace, key NamespaceKey) error
	// UpdateNamespace replaces the settings of ns.Name; ErrNotFound when there is none.
	UpdateNamespace(ctx context.Context, ns Namespace) error
	// GetNamespace returns a namespace with its keys and usage; ErrNotFound.
	GetNamespace(ctx context.Context, name string) (*Namespace, error)
	// ListNamespaces returns every namespace, with keys and usage, sorted by name.
	ListNamespaces(ctx context.Context) ([]Namespace, error)
	// DeleteNamespace drops a namespace, its keys first (they open nothing from then
	// on), its settings and counters; ErrNotFound. Its mail is the caller's to delete
	// (NamespaceInboxes before, DeleteInbox after).
	DeleteNamespace(ctx context.Context, name string) error
	// AddNamespaceKey adds a key; with replace set, the key of that ID is revoked in
	// the same call. ErrNotFound for an unknown namespace or replace.
	AddNamespaceKey(ctx context.Context, name string, key NamespaceKey, replace string) error
	// RevokeNamespaceKey drops one key; ErrNotFound.
	RevokeNamespaceKey(ctx context.Context, name, id string) error
	// NamespaceOfKey returns the namespace a key with HashKey hash opens, and notes its
	// use; ErrNotFound for no key. One round trip: it is called per login and request.
	NamespaceOfKey(ctx context.Context, hash string) (string, error)
	// AdmitInbox counts inbox against its namespace's MaxInboxes until until (it stays
	// counted while it has mail: each message added moves until to its expiry). An
	// inbox already counted is admitted again; a new one past the limit gets a
	// *LimitError. An inbox of no namespace (NamespaceOf, or no such namespace) is
	// admitted and counted nowhere.
	AdmitInbox(ctx context.Context, inbox string, until time.Time) error
	// ReleaseInbox stops counting inbox against its namespace (it was deleted).
	ReleaseInbox(ctx context.Context, inbox string) error
	// NamespaceInboxes returns the inboxes counted for a namespace, sorted.
	NamespaceInboxes(ctx context.Context, name string) ([]string, error)
	// AddNamespaceSends adds n to a namespace's count of replies sent.
	AddNamespaceSends(ctx context.Context, name string, n int) error
	// AddActivity records a: the store keeps the last ActivityMax entries.
	AddActivity(ctx context.Context, a Activity) error
	// Activity returns up to limit entries, newest first, of namespace ("" = all).
	Activity(ctx context.Context, namespace string, limit int) ([]Activity, error)
}

// ValidNamespace reports whether name can name a namespace: lower-case letters,
// digits and "-", starting with a letter or digit, at most 31 characters, no dot.
func ValidNamespace(name string) bool {
	if name == "" || len(name) > 31 || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NamespaceOf returns the namespace name a normalized inbox would belong to: its local
// part up to the first dot, when that is a valid name; "" otherwise. Whether that
// namespace exists is the store's to say.
func NamespaceOf(inbox string) string {
	at := strings.LastIndexByte(inbox, '@')
	if at < 0 {
		return ""
	}
	name, _, ok := strings.Cut(inbox[:at], ".")
	if !ok || !ValidNamespace(name) {
		return ""
	}
	return name
}

// InboxNamespace returns the namespace inbox belongs to: nil when its address names
// none, or one that does not exist (then it is an inbox like any other).
func InboxNamespace(ctx context.Context, st interface {
	GetNamespace(ctx context.Context, name string) (*Namespace, error)
}, inbox string) (*Namespace, error) {
	name := NamespaceOf(inbox)
	if name == "" || st == nil {
		return nil, nil
	}
	ns, err := st.GetNamespace(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("namespace of %s: %w", inbox, err)
	}
	return ns, nil
}

// NewNamespaceKey returns a new key (KeyPrefix and 256 random bits) and its stored
// form: an ID, the prefix shown to tell keys apart, and the hash looked up at login.
func NewNamespaceKey(now time.Time) (string, NamespaceKey) {
	b := make([]byte, 32)
	rand.Read(b)
	key := KeyPrefix + hex.EncodeToString(b)
	id := make([]byte, 6)
	rand.Read(id)
	return key, NamespaceKey{ID: "k_" + hex.EncodeToString(id), Prefix: key[:len(KeyPrefix)+6], Hash: HashKey(key), Created: now}
}

// HashKey is the stored form of a namespace key: SHA-256 suffices, the key holding 256
// random bits (no dictionary to try), and is fast enough to run per request.
func HashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// IsNamespaceKey reports whether secret has the shape of a namespace key.
func IsNamespaceKey(secret string) bool {
	return strings.HasPrefix(secret, KeyPrefix) && len(secret) == len(KeyPrefix)+64
}

// FilterActivity returns the entries of namespace ("" = all), at most limit (0 = all).
func FilterActivity(all []Activity, namespace string, limit int) []Activity {
	out := make([]Activity, 0, min(len(all), max(limit, 0)+1))
	for _, a := range all {
		if namespace != "" && a.Namespace != namespace {
			continue
		}
		out = append(out, a)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}
