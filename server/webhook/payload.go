package webhook

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strings"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// The events a webhook may subscribe to, and the one only the test route sends.
const (
	EventReceived = "message.received"
	EventDeleted  = "message.deleted"
	EventExpired  = "message.expired"
	EventTest     = "webhook.test"
)

// Events are the events a webhook may subscribe to.
var Events = []string{EventReceived, EventDeleted, EventExpired}

// eventType is the webhook event of a store event, "" for none: a flag change is no
// webhook's business, and the copy of a reply the inbox sent was not received.
func eventType(e *storage.Event) string {
	switch e.Type {
	case storage.EventAdded:
		if e.Message == nil || e.Message.Sent {
			return ""
		}
		return EventReceived
	case storage.EventDeleted:
		return EventDeleted
	case storage.EventExpired:
		return EventExpired
	}
	return ""
}

// deliveryID is the webhook-id of an event: the same whenever the feed hands the event
// out (a node died before acknowledging it), so the store keeps one delivery of it per
// webhook and the receiver, deduplicating by webhook-id, one event.
func deliveryID(typ, inbox, id string) string {
	sum := sha256.Sum256([]byte(typ + "\x00" + inbox + "\x00" + id))
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}

// payload is the JSON body of a delivery (Standard Webhooks: type, timestamp, data).
type payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      eventData `json:"data"`
}

// eventData says which message an event is about; a received message comes with what
// the API's listing shows of it, its codes and links.
type eventData struct {
	Inbox   string `json:"inbox"`
	ID      string `json:"id,omitempty"`
	Message any    `json:"message,omitempty"`
	Webhook string `json:"webhook,omitempty"` // the test event's
}

func encodePayload(typ string, at time.Time, data eventData) ([]byte, error) {
	return json.Marshal(payload{Type: typ, Timestamp: at.UTC(), Data: data})
}
