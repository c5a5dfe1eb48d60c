package redisstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// A message's metadata is stored, in its hash's "meta" field and in its added event,
// in a compact binary form rather than JSON: decoding JSON took half the CPU time of a
// List (4-5µs a message), this takes a tenth of a microsecond and its strings are
// slices of the reply, not copies. ID, inbox, UID and flags live elsewhere (the key,
// the uid and flags fields).
//
// The form is a version byte (metaVersion) then, in this order: Tag, Envelope.From,
// Envelope.Recipients, Envelope.RemoteIP, Envelope.Helo, From, To, Subject, Date,
// attachments (1 or 0), Size, Received, Expires, Auth.SPF, Auth.DKIM, Auth.DMARC,
// ReplyTo, Sent (1 or 0), Auth.FromAligned (1 or 0); records written before ReplyTo
// existed end at Auth.DMARC, those written before FromAligned at Sent.
// A string is its length as a uvarint then its bytes; a list of strings is the count as
// a uvarint then the strings; numbers are varints; times are unix microseconds, 0 for
// the zero time. This is stored data: a new field goes at the end (decoders ignore what
// follows the fields they know), and nothing is reordered or removed.
const metaVersion = 1

var errBadMeta = errors.New("malformed metadata")

func encodeMeta(m *storage.Message) []byte {
	b, _ := encodeMetaExpires(m)
	return b
}

// encodeMetaExpires is encodeMeta that also says where Expires starts in the result,
// so the put script can write another expiry there (see putScript).
func encodeMetaExpires(m *storage.Message) (b []byte, at int) {
	n := 1 + 3*binary.MaxVarintLen64 + 16 + len(m.Tag) + len(m.Envelope.From) + len(m.Envelope.RemoteIP) +
		len(m.Envelope.Helo) + len(m.From) + len(m.Subject) + len(m.Auth.SPF) + len(m.Auth.DKIM) + len(m.Auth.DMARC)
	for _, r := range m.Envelope.Recipients {
		n += len(r) + 2
	}
	for _, r := range m.To {
		n += len(r) + 2
	}
	for _, r := range m.ReplyTo {
		n += len(r) + 2
	}
	b = make([]byte, 0, n+16)
	b = append(b, metaVersion)
	b = appendString(b, m.Tag)
	b = appendString(b, m.Envelope.From)
	b = appendStrings(b, m.Envelope.Recipients)
	b = appendString(b, m.Envelope.RemoteIP)
	b = appendString(b, m.Envelope.Helo)
	b = appendString(b, m.From)
	b = appendStrings(b, m.To)
	b = appendString(b, m.Subject)
	b = binary.AppendVarint(b, micros(m.Date))
	attach := byte(0)
	if m.HasAttachments {
		attach = 1
	}
	b = append(b, attach)
	b = binary.AppendVarint(b, m.Size)
	b = binary.AppendVarint(b, micros(m.Received))
	at = len(b)
	b = binary.AppendVarint(b, micros(m.Expires))
	b = appendString(b, m.Auth.SPF)
	b = appendString(b, m.Auth.DKIM)
	b = appendString(b, m.Auth.DMARC)
	b = appendStrings(b, m.ReplyTo)
	sent := byte(0)
	if m.Sent {
		sent = 1
	}
	b = append(b, sent)
	aligned := byte(0)
	if m.Auth.FromAligned {
		aligned = 1
	}
	b = append(b, aligned)
	return b, at
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, list []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(list)))
	for _, s := range list {
		b = appendString(b, s)
	}
	return b
}

// metaReader reads the fields of encoded metadata; the first error sticks.
type metaReader struct {
	data string
	err  error
}

func (r *metaReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	for i := 0; i < len(r.data) && i < binary.MaxVarintLen64; i++ {
		c := r.data[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.data = r.data[i+1:]
			return v
		}
	}
	r.err = errBadMeta
	return 0
}

func (r *metaReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *metaReader) byte() byte {
	if r.err != nil || len(r.data) == 0 {
		r.err = errBadMeta
		return 0
	}
	c := r.data[0]
	r.data = r.data[1:]
	return c
}

func (r *metaReader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.data)) {
		r.err = errBadMeta
		return ""
	}
	s := r.data[:n]
	r.data = r.data[n:]
	return s
}

func (r *metaReader) strings() []string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.data)) { // each string takes a byte at least
		r.err = errBadMeta
		return nil
	}
	if n == 0 {
		return nil
	}
	list := make([]string, n)
	for i := range list {
		list[i] = r.string()
	}
	return list
}

// decodeMeta fills the metadata fields of m from data. The strings it sets share data's
// memory.
func decodeMeta(data string, m *storage.Message) error {
	r := metaReader{data: data}
	if r.byte() != metaVersion {
		return errBadMeta
	}
	m.Tag = r.string()
	m.Envelope.From = r.string()
	m.Envelope.Recipients = r.strings()
	m.Envelope.RemoteIP = r.string()
	m.Envelope.Helo = r.string()
	m.From = r.string()
	m.To = r.strings()
	m.Subject = r.string()
	m.Date = fromMicros(r.varint())
	m.HasAttachments = r.byte() == 1
	m.Size = r.varint()
	m.Received = fromMicros(r.varint())
	m.Expires = fromMicros(r.varint())
	m.Auth.SPF = r.string()
	m.Auth.DKIM = r.string()
	m.Auth.DMARC = r.string()
	if r.err == nil && len(r.data) > 0 {
		m.ReplyTo = r.strings()
		m.Sent = r.byte() == 1
	}
	if r.err == nil && len(r.data) > 0 {
		m.Auth.FromAligned = r.byte() == 1
	}
	return r.err
}

// micros covers any year a Date header may claim (int64 microseconds span ±292,000
// years, nanoseconds only 1678 to 2262).
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// expiryMillis is when Redis drops a message: the millisecond of its expiry rounded up,
// so no event says it expired while Message.Live still holds.
func expiryMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// storedFault is how the state's faults field keeps one storage.Fault, Attempts aside.
type storedFault struct {
	Stage   string `json:"s"`
	Code    int    `json:"c,omitempty"`
	Message string `json:"m,omitempty"`
	Times   int    `json:"t,omitempty"`
	Delay   int64  `json:"d,omitempty"` // ns
}

// encodeFaults is the state's faults field: "" for none. The encoding is
// deterministic, so the settings script compares faults by comparing strings.
func encodeFaults(faults []storage.Fault) (string, error) {
	if len(faults) == 0 {
		return "", nil
	}
	list := make([]storedFault, len(faults))
	for i, f := range faults {
		list[i] = storedFault{Stage: f.Stage, Code: f.Code, Message: f.Message, Times: f.Times, Delay: int64(f.Delay)}
	}
	b, err := json.Marshal(list)
	return string(b), err
}

func decodeFaults(data string) ([]storage.Fault, error) {
	if data == "" {
		return nil, nil
	}
	var list []storedFault
	if err := json.Unmarshal([]byte(data), &list); err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	faults := make([]storage.Fault, len(list))
	for i, f := range list {
		faults[i] = storage.Fault{Stage: f.Stage, Code: f.Code, Message: f.Message, Times: f.Times, Delay: time.Duration(f.Delay)}
	}
	return faults, nil
}

var errBadEvent = errors.New("malformed event")

// eventHeader splits a published event into its type and inbox and the rest, so an
// event for an inbox nobody here watches costs no more than this.
func eventHeader(payload string) (t storage.EventType, inbox, rest string, err error) {
	kind, rest, ok1 := strings.Cut(payload, "\n")
	inbox, rest, ok2 := strings.Cut(rest, "\n")
	if !ok1 || !ok2 || len(kind) != 1 {
		return 0, "", "", errBadEvent
	}
	switch kind[0] {
	case 'a':
		t = storage.EventAdded
	case 'f':
		t = storage.EventFlags
	case 'd':
		t = storage.EventDeleted
	case 'e':
		t = storage.EventExpired
	default:
		return 0, "", "", errBadEvent
	}
	return t, inbox, rest, nil
}

// parseEvent decodes the rest of an event after eventHeader: "id\nuid\nflags\nmeta".
func parseEvent(t storage.EventType, inbox, rest string) (storage.Event, error) {
	f := strings.SplitN(rest, "\n", 4)
	if len(f) != 4 {
		return storage.Event{}, errBadEvent
	}
	uid, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return storage.Event{}, errBadEvent
	}
	flags, err := strconv.ParseUint(f[2], 10, 8)
	if err != nil {
		return storage.Event{}, errBadEvent
	}
	e := storage.Event{Type: t, Inbox: inbox, ID: f[0], UID: uint32(uid), Flags: storage.Flags(flags)}
	if t == storage.EventAdded {
		m := &storage.Message{ID: e.ID, Inbox: inbox, UID: e.UID, Flags: e.Flags}
		if err := decodeMeta(f[3], m); err != nil {
			return storage.Event{}, err
		}
		e.Message = m
	}
	return e, nil
}
