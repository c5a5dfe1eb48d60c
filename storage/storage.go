// Package storage defines the one message model and the Store interface that every
// view of Mayfly (SMTP in, HTTP, WebSocket, IMAP, POP3, submission) adapts.
// It knows nothing of protocols; storage/deps_test.go keeps it that way.
package storage

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned for a message or inbox that does not exist or has expired.
var ErrNotFound = errors.New("storage: message not found")

// ErrUnavailable wraps failures of the backing service (Redis down, timeouts), so views
// can answer "try again later" (SMTP 451, HTTP 503) rather than a permanent error.
var ErrUnavailable = errors.New("storage: unavailable")

// Flags are the IMAP system flags a message carries; every view shares them.
type Flags uint8

const (
	FlagSeen Flags = 1 << iota
	FlagAnswered
	FlagFlagged
	FlagDeleted
)

// Envelope is what the SMTP transaction said, as opposed to what the headers claim.
type Envelope struct {
	From       string   // MAIL FROM; empty for bounces
	Recipients []string // the RCPT TO addresses that led to this inbox, as given
	RemoteIP   string
	Helo       string
}

// AuthResults holds the SPF, DKIM and DMARC verdicts of a received message:
// "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror".
type AuthResults struct {
	SPF   string `json:"spf"`
	DKIM  string `json:"dkim"`
	DMARC string `json:"dmarc"`
	// FromAligned says SPF or DKIM passed for a domain aligned with the From: domain
	// (relaxed: the same organizational domain, RFC 7489 section 3.1), so From: is
	// authenticated even when its domain publishes no DMARC record. Replies go only to
	// addresses such mail, or an SPF pass, vouches for. Not shown by the API.
	FromAligned bool `json:"-"`
}

// Message is one received message in one inbox, as every view sees it.
type Message struct {
	ID    string // unique in the store, opaque to clients
	Inbox string // normalized recipient, e.g. "k3x9@example.org"
	UID   uint32 // per inbox, increasing, never reused: IMAP UID and POP3 UIDL
	Tag   string // the "tag" of box+tag@domain, if the sender used one

	Envelope Envelope

	// Summary fields, parsed once at arrival so listings never re-parse.
	From           string    // header From, decoded
	To             []string  // header To, decoded
	Subject        string    // decoded from RFC 2047
	Date           time.Time // header Date; zero when missing or unparsable
	ReplyTo        []string  // header Reply-To addresses; with From and the envelope sender, who may be replied to
	HasAttachments bool
	// Sent marks the copy of a message the inbox sent (a reply), kept with its mail:
	// the API's "sent", IMAP's Sent mailbox.
	Sent bool

	Size     int64 // len(Raw)
	Received time.Time
	Expires  time.Time // set by the receiver; the store drops the message after it (see Store.Put)
	Flags    Flags
	Auth     AuthResults

	Raw []byte // RFC 5322 bytes exactly as stored; nil unless asked for
}

// Page selects part of an inbox listing, newest first.
type Page struct {
	Before uint32 // only messages with a smaller UID; 0 starts at the newest
	Limit  int    // at most this many; 0 means all
}

// Mailbox describes an inbox for IMAP SELECT and STATUS.
type Mailbox struct {
	UIDValidity uint32
	UIDNext     uint32
	// LastReceived and LastSent are the highest UIDs ever given to received mail and to
	// sent copies (0 for none), so that a view of one kind (IMAP's INBOX, its Sent) has
	// a UIDNEXT that moves only when mail of its kind comes (RFC 3501 section 2.3.1.1).
	LastReceived, LastSent uint32
	Messages               int
	// TTL is how long mail put into the inbox lives, as set by SetInboxTTL; 0 when none
	// is set and the receiver's default applies.
	TTL time.Duration
}

// EventType says what happened to a message.
type EventType uint8

const (
	EventAdded EventType = iota + 1
	EventFlags
	EventDeleted
	EventExpired // dropped by the store: past its expiry, over the inbox cap or the memory limit
)

func (t EventType) String() string {
	switch t {
	case EventAdded:
		return "added"
	case EventFlags:
		return "flags"
	case EventDeleted:
		return "deleted"
	case EventExpired:
		return "expired"
	}
	return "unknown"
}

// Event is a change to one message of one inbox.
type Event struct {
	Type    EventType
	Inbox   string
	ID      string
	UID     uint32
	Flags   Flags    // the new flags, for EventFlags
	Message *Message // the metadata (Raw nil), for EventAdded
}

// Store keeps messages until they expire. It is safe for concurrent use.
// Methods that take an inbox expect it normalized (see ParseAddress).
type Store interface {
	// Put stores every message or none. Messages may share one Raw slice (one delivery
	// to several inboxes); the store keeps it once where it can. Put sets ID and UID,
	// and keeps the Flags set (a sent copy is stored seen).
	// A message keeps its Expires unless its inbox has a TTL (see SetInboxTTL): then it
	// expires at Received plus that TTL instead (now plus the TTL when Received is zero),
	// and Put sets Expires to that, so the caller sees when the message will go.
	Put(ctx context.Context, msgs ...*Message) error
	// List returns the metadata of an inbox, newest first, Raw nil.
	List(ctx context.Context, inbox string, page Page) ([]Message, error)
	// Get returns the metadata of one message, Raw nil.
	Get(ctx context.Context, inbox, id string) (*Message, error)
	// Raw returns the bytes of one message exactly as stored.
	Raw(ctx context.Context, inbox, id string) ([]byte, error)
	// SetFlags adds then removes flags and returns the flags now set.
	SetFlags(ctx context.Context, inbox, id string, add, remove Flags) (Flags, error)
	Delete(ctx context.Context, inbox, id string) error
	// DeleteInbox deletes every message of an inbox and returns how many there were.
	DeleteInbox(ctx context.Context, inbox string) (int, error)
	// Mailbox returns the UIDVALIDITY, next UID, message count and TTL of an inbox.
	Mailbox(ctx context.Context, inbox string) (Mailbox, error)
	// SetInboxTTL sets how long mail put into inbox from now on lives, overriding the
	// Expires its receiver sets; messages already stored keep their expiry. A ttl of
	// zero or less removes the setting, so the receiver's default applies again. The
	// inbox's state is made if it is new (an inbox is created before any mail comes), and
	// the setting is kept as long as the inbox's UID state: a grace period past the expiry
	// of its last message, and at least the ttl plus that grace after the last
	// SetInboxTTL or Mailbox call. The store does not bound ttl; the caller does
	// (MAYFLY_MAX_TTL).
	SetInboxTTL(ctx context.Context, inbox string, ttl time.Duration) error
	// Subscribe reports the events of an inbox until ctx ends, then closes the channel.
	// It never slows Put: a subscriber that falls behind gets its channel closed
	// early and must List again.
	Subscribe(ctx context.Context, inbox string) (<-chan Event, error)
	// Secret returns the store's token key: shared by every node of a Redis store,
	// made once per process by the memory store.
	Secret(ctx context.Context) ([]byte, error)
	// CountSend adds n to the counter of key in the current window of length per
	// (windows start at multiples of per since the Unix epoch; each length has its own
	// counter) and returns what the window holds, these n included: the send limits'
	// counters, shared by every node. The send limit of an inbox counts under the
	// inbox's address; other limits use keys that are no address (no "@"), such as
	// "client:192.0.2.1", so they never meet an inbox's.
	CountSend(ctx context.Context, key string, n int, per time.Duration) (int, error)
	Ping(ctx context.Context) error
	Close() error
}

// Live reports whether m is still to be shown at now.
func (m *Message) Live(now time.Time) bool {
	return m.Expires.IsZero() || now.Before(m.Expires)
}
