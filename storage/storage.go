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
}

// Fault makes the receiver answer an inbox's mail with an SMTP error, a delay or both,
// so that a sender's retry logic can be tested (POST /api/v1/inboxes "faults").
type Fault struct {
	Stage   string        // "connect", "mail", "rcpt" or "data"
	Code    int           // SMTP reply code, 400-599; 0 = no refusal, only Delay
	Message string        // reply text after the code; empty = a default naming the fault
	Times   int           // attempts answered so, then passed; 0 = every attempt
	Delay   time.Duration // waited before the reply
	// Attempts is how many attempts have reached this fault so far (FaultAttempt):
	// filled by Settings, ignored by SetInbox.
	Attempts int
}

// InboxSettings is what an inbox keeps besides its mail: set when it is created,
// changed with PATCH /api/v1/inboxes/{address}.
type InboxSettings struct {
	TTL           time.Duration // how long its mail lives; 0 = the receiver's default
	BurnAfterRead bool          // a message is deleted once it is seen (SetFlags adds FlagSeen)
	Faults        []Fault
}

// SameFaults reports whether a and b declare the same faults, Attempts aside: SetInbox
// restarts the attempt counters only when they differ.
func SameFaults(a, b []Fault) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.Attempts, y.Attempts = 0, 0
		if x != y {
			return false
		}
	}
	return true
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
	// A message keeps its Expires unless its inbox has a TTL (see SetInbox): then it
	// expires at Received plus that TTL instead (now plus the TTL when Received is zero),
	// and Put sets Expires to that, so the caller sees when the message will go.
	Put(ctx context.Context, msgs ...*Message) error
	// List returns the metadata of an inbox, newest first, Raw nil.
	List(ctx context.Context, inbox string, page Page) ([]Message, error)
	// Get returns the metadata of one message, Raw nil.
	Get(ctx context.Context, inbox, id string) (*Message, error)
	// Raw returns the bytes of one message exactly as stored.
	Raw(ctx context.Context, inbox, id string) ([]byte, error)
	// SetFlags adds then removes flags and returns the flags now set. Adding FlagSeen to
	// a message of a BurnAfterRead inbox deletes the message instead (an EventDeleted, as
	// Delete reports) and returns the flags with FlagSeen set: one place, so that every
	// view (IMAP FETCH BODY[], POP3 RETR, the HTTP API) burns a read message the same way.
	SetFlags(ctx context.Context, inbox, id string, add, remove Flags) (Flags, error)
	Delete(ctx context.Context, inbox, id string) error
	// DeleteInbox deletes every message of an inbox and returns how many there were.
	DeleteInbox(ctx context.Context, inbox string) (int, error)
	// Mailbox returns the UIDVALIDITY, next UID and message count of an inbox.
	Mailbox(ctx context.Context, inbox string) (Mailbox, error)
	// SetInbox replaces the settings of inbox. Its TTL applies to mail put from now on,
	// overriding the Expires its receiver sets, and to the mail already there: each
	// stored message then expires at its Received plus the TTL, earlier or later than
	// before. A TTL of zero or less removes the setting: the receiver's default applies
	// to later mail, stored mail keeps its expiry. The fault attempt counters restart at
	// 0 when the faults differ from the ones set (SameFaults), and are kept otherwise.
	// The inbox's state is made if it is new (an inbox is created before any mail
	// comes), and the settings are kept as long as the inbox's UID state: a grace period
	// past the expiry of its last message, and at least the TTL plus that grace after
	// the last SetInbox or Mailbox call. The store does not bound the settings; the
	// caller does (MAYFLY_MAX_TTL, the API's checks of faults).
	SetInbox(ctx context.Context, inbox string, s InboxSettings) error
	// Settings returns the settings of inbox, each fault with its Attempts. It only
	// reads: an unknown inbox gives the zero value and no error, and makes no state.
	// It is cheap (the receiver calls it at every RCPT): a map read, one round trip.
	Settings(ctx context.Context, inbox string) (InboxSettings, error)
	// FaultAttempt counts one attempt at fault number fault (an index into the
	// current Faults of inbox) and returns the count, this one included; atomic across
	// the nodes sharing the store. A fault the inbox does not have (its faults changed
	// since they were read, or it has none) gives an error wrapping ErrNotFound.
	FaultAttempt(ctx context.Context, inbox string, fault int) (int, error)
	// Subscribe reports the events of an inbox until ctx ends, then closes the channel.
	// It never slows Put: a subscriber that falls behind gets its channel closed
	// early and must List again. Subscribing to NamespaceWatch(name) reports the
	// events of every inbox of that namespace.
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

	// EventLog and WebhookStore are issue 18's (events.go): every node's view of the
	// events above, kept for a while, and the webhooks' subscriptions and deliveries.
	EventLog
	WebhookStore
	// NamespaceStore is issue 24's (namespace.go): teams, their keys, usage and the
	// recent activity.
	NamespaceStore
}

// Live reports whether m is still to be shown at now.
func (m *Message) Live(now time.Time) bool {
	return m.Expires.IsZero() || now.Before(m.Expires)
}
