// Package memstore is the embedded default store: everything in this process's memory,
// bounded in total bytes, with an expiry sweeper. It needs no external service.
package memstore

import (
	"container/heap"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/mayfly-mail/mayfly/storage"
)

// Options configure a Store. Zero values mean the documented defaults.
type Options struct {
	MaxMessages int              // per inbox, the oldest goes first; 0 = 200
	SweepEvery  time.Duration    // how often expired mail is dropped; 0 = 1s
	Now         func() time.Time // the clock; nil = time.Now
	// MemoryLimit bounds what the store holds: message bytes, and an estimate of each
	// message's metadata and each inbox's state (see Memory). Past it, the states of
	// empty inboxes go first, least recently used first, then the messages soonest to
	// expire. 0 = 512MiB. The event logs (events.go) take at most an eighth of it
	// more, trimmed oldest first (Memory.EventLogBytes).
	MemoryLimit int64
}

// mailboxGrace is how long an inbox's UID state (and its settings) outlives its last message,
// so an IMAP client that selected an emptied inbox keeps a valid UIDVALIDITY.
const mailboxGrace = 24 * time.Hour

// Store is an in-memory storage.Store.
type Store struct {
	opts Options
	hub  *storage.Hub

	mu           sync.Mutex
	mailboxes    map[string]*mailbox
	counters     map[counterKey]*counter // CountSend's, swept with the empty mailboxes
	byID         map[string]*entry
	expiry       expiryHeap // every entry, soonest to expire first
	bytes        int64      // message bytes held, a shared raw counted once
	metaBytes    int64      // estimated bytes of the entries' metadata and the mailboxes' state
	empty        emptyList  // mailboxes without messages, least recently used first
	dropped      int64      // empty mailboxes' states dropped for the memory limit
	lastValidity uint32
	secret       []byte

	queue queue      // outgoing mail; see queue.go
	log   eventLog   // see events.go
	hooks webhooks   // see webhooks.go
	names namespaces // see namespaces.go

	stop chan struct{}
	done chan struct{}
}

type mailbox struct {
	uidValidity            uint32
	uidNext                uint32
	lastReceived, lastSent uint32   // see storage.Mailbox
	entries                []*entry // ascending UID
	keepUntil              time.Time
	// settings are SetInbox's, with the faults' attempt counts; settings.TTL is that of
	// mail put from now on, 0 = the Expires the receiver set.
	settings     storage.InboxSettings
	settingsCost int64 // settingsCost(settings), as counted in Store.metaBytes

	name       string
	prev, next *mailbox // in Store.empty while entries is empty
	inEmpty    bool
}

// counterKey names one of CountSend's counters: a key counted in windows of per.
type counterKey struct {
	key string
	per time.Duration
}

// counter is CountSend's count in its current window, kept until the window ends.
type counter struct {
	window int64 // as a multiple of its length since the epoch
	n      int
	until  time.Time
}

type entry struct {
	meta      storage.Message // Raw nil
	raw       *blob
	heapIndex int
	cost      int64 // metaCost(&meta), as counted in Store.metaBytes
}

// Estimates of what the store's own structures cost beyond the strings and slices
// they point to: the struct, its slot in byID (key and value, with the map's share of
// overhead), in the expiry heap and in its mailbox's entries; for a mailbox, the
// struct and its slot in mailboxes. Go rounds each allocation up to a size class; the
// per-string slack below stands for that.
const (
	entryOverhead   = int64(unsafe.Sizeof(entry{})+unsafe.Sizeof(blob{})) + 48 + 8 + 8
	mailboxOverhead = int64(unsafe.Sizeof(mailbox{})) + 48
	stringSlack     = 8
)

// metaCost estimates the bytes one message's metadata takes in the store.
func metaCost(m *storage.Message) int64 {
	n := entryOverhead
	for _, str := range []string{m.ID, m.Inbox, m.Tag, m.From, m.Subject,
		m.Envelope.From, m.Envelope.RemoteIP, m.Envelope.Helo, m.Auth.SPF, m.Auth.DKIM, m.Auth.DMARC} {
		if str != "" {
			n += int64(len(str)) + stringSlack
		}
	}
	for _, list := range [][]string{m.To, m.ReplyTo, m.Envelope.Recipients} {
		for _, str := range list {
			n += int64(unsafe.Sizeof(str)) + int64(len(str)) + stringSlack
		}
	}
	return n
}

func mailboxCost(name string) int64 {
	return mailboxOverhead + int64(len(name)) + stringSlack
}

// settingsCost estimates the bytes an inbox's faults take beyond its mailbox struct.
func settingsCost(set storage.InboxSettings) int64 {
	n := int64(0)
	for _, f := range set.Faults {
		n += int64(unsafe.Sizeof(f)) + int64(len(f.Stage)+len(f.Message)) + 2*stringSlack
	}
	return n
}

// counterCost estimates the bytes one of CountSend's counters takes: its map entry,
// the counter and its key.
func counterCost(key string) int64 {
	return int64(unsafe.Sizeof(counterKey{})+unsafe.Sizeof(&counter{})+unsafe.Sizeof(counter{})) + int64(len(key)) + 2*stringSlack
}

// blob is one copy of raw bytes shared by the deliveries of one message.
type blob struct {
	data []byte
	refs int
}

var _ storage.Store = (*Store)(nil)

// New returns a Store and starts its sweeper; Close stops it.
func New(o Options) *Store {
	if o.MaxMessages <= 0 {
		o.MaxMessages = 200
	}
	if o.MemoryLimit <= 0 {
		o.MemoryLimit = 512 << 20
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{
		opts:      o,
		hub:       storage.NewHub(),
		mailboxes: make(map[string]*mailbox),
		counters:  make(map[counterKey]*counter),
		byID:      make(map[string]*entry),
		secret:    make([]byte, 32),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	rand.Read(s.secret)
	go s.sweepLoop()
	return s
}

// Close stops the sweeper and ends every subscription.
func (s *Store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.hub.Close()
	return nil
}

func (s *Store) sweepLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.SweepEvery)
	defer t.Stop()
	mailboxSweep := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep()
			// Empty inboxes are few to check but many to scan, so once a minute is plenty.
			if time.Since(mailboxSweep) > time.Minute {
				s.sweepMailboxes()
				mailboxSweep = time.Now()
			}
		}
	}
}

// Sweep drops every message whose expiry has passed and reports each as expired.
// The sweeper calls it; tests with their own clock call it directly.
func (s *Store) Sweep() {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.expiry) > 0 && !s.expiry[0].meta.Live(now) {
		s.dropLocked(s.expiry[0], storage.EventExpired)
	}
	s.sweepLogsLocked(now)
}

func (s *Store) sweepMailboxes() {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, mb := range s.mailboxes {
		if len(mb.entries) == 0 && now.After(mb.keepUntil) {
			s.dropMailboxLocked(mb)
		}
	}
	for k, c := range s.counters {
		if !now.Before(c.until) {
			delete(s.counters, k)
			s.metaBytes -= counterCost(k.key)
		}
	}
}

// Stats reports what the store holds, for metrics.
func (s *Store) Stats() (messages int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID), s.bytes
}

// Memory is what the store counts against Options.MemoryLimit, for metrics.
type Memory struct {
	Messages       int   // messages held
	Bytes          int64 // their bytes, a copy shared by several inboxes counted once
	MetadataBytes  int64 // estimated bytes of the messages' metadata and the inboxes' state
	Inboxes        int   // inbox states held (UIDVALIDITY, UIDNEXT, TTL), empty ones included
	DroppedInboxes int64 // states of empty inboxes dropped for the limit since start
	Limit          int64 // Options.MemoryLimit: Bytes + MetadataBytes stays under it
	EventLogBytes  int64 // estimated bytes of the event logs, at most Limit/8 besides
}

// Memory reports what the store counts against its memory limit.
func (s *Store) Memory() Memory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Memory{Messages: len(s.byID), Bytes: s.bytes, MetadataBytes: s.metaBytes,
		Inboxes: len(s.mailboxes), DroppedInboxes: s.dropped, Limit: s.opts.MemoryLimit, EventLogBytes: s.log.bytes}
}

// shrinkLocked drops what the store holds until it is within the memory limit: first
// the states of empty inboxes nobody in this process watches, least recently used
// first (mail matters more than the memory of an inbox that has none; a state made
// again gets a new UIDVALIDITY, so no UID is reused under an old one), then messages,
// the soonest to expire first.
//
// keep, if not nil, is a mailbox the caller is setting up, which stays.
func (s *Store) shrinkLocked(keep *mailbox) {
	for s.bytes+s.metaBytes > s.opts.MemoryLimit {
		if mb := s.evictableLocked(keep); mb != nil {
			s.dropMailboxLocked(mb)
			s.dropped++
			continue
		}
		if len(s.expiry) == 0 {
			return
		}
		s.dropLocked(s.expiry[0], storage.EventExpired)
	}
}

// evictableLocked returns the least recently used empty mailbox that no subscriber
// (an IMAP client, a WebSocket) watches, or nil.
func (s *Store) evictableLocked(keep *mailbox) *mailbox {
	for mb := s.empty.head; mb != nil; mb = mb.next {
		if mb != keep && !s.hub.Watched(mb.name) {
			return mb
		}
	}
	return nil
}

func (s *Store) dropMailboxLocked(mb *mailbox) {
	s.empty.remove(mb)
	delete(s.mailboxes, mb.name)
	s.metaBytes -= mailboxCost(mb.name) + mb.settingsCost
}

// Put stores every message. It keeps Raw without copying it, so the caller must not
// change it afterwards; messages sharing one Raw slice share one copy.
func (s *Store) Put(ctx context.Context, msgs ...*storage.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.opts.Now()
	blobs := make(map[*byte]*blob, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		key := unsafe.SliceData(m.Raw)
		b := blobs[key]
		if b == nil {
			b = &blob{data: m.Raw}
			blobs[key] = b
			s.bytes += int64(len(m.Raw))
		}
		b.refs++

		mb := s.mailboxLocked(m.Inbox, now)
		if ttl := mb.settings.TTL; ttl > 0 {
			from := m.Received
			if from.IsZero() {
				from = now
			}
			m.Expires = from.Add(ttl)
		}
		m.UID = mb.uidNext
		mb.uidNext++
		if m.Sent {
			mb.lastSent = m.UID
		} else {
			mb.lastReceived = m.UID
		}
		m.ID = storage.NewID(now)
		if m.Size == 0 {
			m.Size = int64(len(m.Raw))
		}
		if until := m.Expires.Add(mailboxGrace); until.After(mb.keepUntil) {
			mb.keepUntil = until
		}
		e := &entry{meta: *m, raw: b}
		e.meta.Raw = nil
		e.cost = metaCost(&e.meta)
		s.metaBytes += e.cost
		s.empty.remove(mb)
		mb.entries = append(mb.entries, e)
		s.byID[m.ID] = e
		heap.Push(&s.expiry, e)
		added := e.meta
		s.publishLocked(storage.Event{Type: storage.EventAdded, Inbox: m.Inbox, ID: m.ID, UID: m.UID, Message: &added}, e.cost-entryOverhead)
		for len(mb.entries) > s.opts.MaxMessages {
			s.dropLocked(mb.entries[0], storage.EventExpired)
		}
	}
	s.shrinkLocked(nil)
	return nil
}

func (s *Store) mailboxLocked(inbox string, now time.Time) *mailbox {
	mb := s.mailboxes[inbox]
	if mb == nil {
		// UIDVALIDITY only grows, so an inbox forgotten and made again never
		// pairs old UIDs with a validity a client has cached.
		s.lastValidity = max(uint32(now.Unix()), s.lastValidity+1)
		mb = &mailbox{uidValidity: s.lastValidity, uidNext: 1, keepUntil: now.Add(mailboxGrace), name: inbox}
		s.mailboxes[inbox] = mb
		s.metaBytes += mailboxCost(inbox)
	}
	if len(mb.entries) == 0 {
		// Used now: the last to go for the memory limit.
		s.empty.remove(mb)
		s.empty.push(mb)
	}
	return mb
}

// dropLocked removes e everywhere and reports it with event type t.
func (s *Store) dropLocked(e *entry, t storage.EventType) {
	heap.Remove(&s.expiry, e.heapIndex)
	delete(s.byID, e.meta.ID)
	if mb := s.mailboxes[e.meta.Inbox]; mb != nil {
		if i, ok := mb.find(e.meta.UID); ok {
			mb.entries = slices.Delete(mb.entries, i, i+1)
		}
		if len(mb.entries) == 0 {
			s.empty.push(mb)
		}
	}
	s.metaBytes -= e.cost
	if e.raw.refs--; e.raw.refs == 0 {
		s.bytes -= int64(len(e.raw.data))
	}
	s.publishLocked(storage.Event{Type: t, Inbox: e.meta.Inbox, ID: e.meta.ID, UID: e.meta.UID}, 0)
}

func (mb *mailbox) find(uid uint32) (int, bool) {
	i := sort.Search(len(mb.entries), func(i int) bool { return mb.entries[i].meta.UID >= uid })
	return i, i < len(mb.entries) && mb.entries[i].meta.UID == uid
}

// liveLocked returns the entry of inbox with id if it has not expired.
func (s *Store) liveLocked(inbox, id string) (*entry, error) {
	e := s.byID[id]
	if e == nil || e.meta.Inbox != inbox || !e.meta.Live(s.opts.Now()) {
		return nil, fmt.Errorf("%s in %s: %w", id, inbox, storage.ErrNotFound)
	}
	return e, nil
}

// List returns inbox's messages newest first.
func (s *Store) List(ctx context.Context, inbox string, page storage.Page) ([]storage.Message, error) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxes[inbox]
	if mb == nil {
		return nil, nil
	}
	end := len(mb.entries)
	if page.Before > 0 {
		end, _ = mb.find(page.Before)
	}
	n := end
	if page.Limit > 0 {
		n = min(n, page.Limit)
	}
	list := make([]storage.Message, 0, n)
	for i := end - 1; i >= 0 && len(list) < cap(list); i-- {
		if e := mb.entries[i]; e.meta.Live(now) {
			list = append(list, e.meta)
		}
	}
	return list, nil
}

// Get returns one message's metadata.
func (s *Store) Get(ctx context.Context, inbox, id string) (*storage.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.liveLocked(inbox, id)
	if err != nil {
		return nil, err
	}
	m := e.meta
	return &m, nil
}

// Raw returns the stored bytes themselves, not a copy: callers must not change them.
func (s *Store) Raw(ctx context.Context, inbox, id string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.liveLocked(inbox, id)
	if err != nil {
		return nil, err
	}
	return e.raw.data, nil
}

// SetFlags adds then removes flags; adding FlagSeen in a burn-after-read inbox deletes
// the message (see storage.Store).
func (s *Store) SetFlags(ctx context.Context, inbox, id string, add, remove storage.Flags) (storage.Flags, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.liveLocked(inbox, id)
	if err != nil {
		return 0, err
	}
	if mb := s.mailboxes[inbox]; add&storage.FlagSeen != 0 && mb != nil && mb.settings.BurnAfterRead {
		flags := (e.meta.Flags|add)&^remove | storage.FlagSeen
		s.dropLocked(e, storage.EventDeleted)
		return flags, nil
	}
	e.meta.Flags = (e.meta.Flags | add) &^ remove
	s.publishLocked(storage.Event{Type: storage.EventFlags, Inbox: inbox, ID: id, UID: e.meta.UID, Flags: e.meta.Flags}, 0)
	return e.meta.Flags, nil
}

// Delete removes one message.
func (s *Store) Delete(ctx context.Context, inbox, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.liveLocked(inbox, id)
	if err != nil {
		return err
	}
	s.dropLocked(e, storage.EventDeleted)
	return nil
}

// DeleteInbox removes every message of inbox; its UID state stays so UIDs continue.
func (s *Store) DeleteInbox(ctx context.Context, inbox string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxes[inbox]
	if mb == nil {
		return 0, nil
	}
	n := len(mb.entries)
	for len(mb.entries) > 0 {
		s.dropLocked(mb.entries[len(mb.entries)-1], storage.EventDeleted)
	}
	return n, nil
}

// Mailbox returns inbox's UID state, making it if the inbox is new.
func (s *Store) Mailbox(ctx context.Context, inbox string) (storage.Mailbox, error) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxLocked(inbox, now)
	mb.keepLocked(now)
	s.shrinkLocked(mb)
	live := 0
	for _, e := range mb.entries {
		if e.meta.Live(now) {
			live++
		}
	}
	return storage.Mailbox{UIDValidity: mb.uidValidity, UIDNext: mb.uidNext,
		LastReceived: mb.lastReceived, LastSent: mb.lastSent, Messages: live}, nil
}

// SetInbox replaces inbox's settings, making its state if the inbox is new, and moves
// the expiry of its stored mail to the new TTL (see storage.Store).
func (s *Store) SetInbox(ctx context.Context, inbox string, set storage.InboxSettings) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	set.TTL = max(set.TTL, 0)
	set.Faults = slices.Clone(set.Faults)
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxLocked(inbox, now)
	same := storage.SameFaults(mb.settings.Faults, set.Faults)
	for i := range set.Faults {
		set.Faults[i].Attempts = 0
		if same {
			set.Faults[i].Attempts = mb.settings.Faults[i].Attempts
		}
	}
	if set.TTL > 0 {
		for _, e := range mb.entries {
			if e.meta.Received.IsZero() {
				continue
			}
			exp := e.meta.Received.Add(set.TTL)
			if exp.Equal(e.meta.Expires) {
				continue
			}
			e.meta.Expires = exp
			heap.Fix(&s.expiry, e.heapIndex)
			if until := exp.Add(mailboxGrace); until.After(mb.keepUntil) {
				mb.keepUntil = until
			}
		}
	}
	cost := settingsCost(set)
	s.metaBytes += cost - mb.settingsCost
	mb.settings, mb.settingsCost = set, cost
	mb.keepLocked(now)
	s.shrinkLocked(mb)
	return nil
}

// Settings returns inbox's settings; an unknown inbox has the zero value.
func (s *Store) Settings(ctx context.Context, inbox string) (storage.InboxSettings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxes[inbox]
	if mb == nil {
		return storage.InboxSettings{}, nil
	}
	set := mb.settings
	set.Faults = slices.Clone(set.Faults)
	return set, nil
}

// FaultAttempt counts one attempt at fault number fault of inbox.
func (s *Store) FaultAttempt(ctx context.Context, inbox string, fault int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxes[inbox]
	if mb == nil || fault < 0 || fault >= len(mb.settings.Faults) {
		return 0, fmt.Errorf("fault %d of %s: %w", fault, inbox, storage.ErrNotFound)
	}
	mb.settings.Faults[fault].Attempts++
	return mb.settings.Faults[fault].Attempts, nil
}

// keepLocked keeps mb's state, and so its settings, for its TTL and the grace after now.
func (mb *mailbox) keepLocked(now time.Time) {
	if until := now.Add(mb.settings.TTL + mailboxGrace); until.After(mb.keepUntil) {
		mb.keepUntil = until
	}
}

// Subscribe reports inbox's events until ctx ends.
func (s *Store) Subscribe(ctx context.Context, inbox string) (<-chan storage.Event, error) {
	return s.hub.Subscribe(ctx, inbox), nil
}

// Secret returns a key made at start: tokens last as long as this process, as the mail does.
func (s *Store) Secret(ctx context.Context) ([]byte, error) {
	return s.secret, nil
}

// CountSend counts n sends under key in its current window; see storage.Store.
func (s *Store) CountSend(ctx context.Context, key string, n int, per time.Duration) (int, error) {
	if per <= 0 {
		return 0, fmt.Errorf("count send: window %v", per)
	}
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	window := now.UnixNano() / int64(per)
	ck := counterKey{key, per}
	c := s.counters[ck]
	if c == nil {
		c = &counter{}
		s.counters[ck] = c
		// Counted with the metadata, so that counters make room by pushing mail out
		// rather than growing past MAYFLY_MEMORY_LIMIT; their number is bounded by the
		// send limits they count.
		s.metaBytes += counterCost(key)
		s.shrinkLocked(nil)
	}
	if c.window != window {
		// The count must outlive its window's end only, whatever the inbox holds.
		*c = counter{window: window, until: time.Unix(0, (window+1)*int64(per))}
	}
	c.n += n
	return c.n, nil
}

// Ping always succeeds: the store is this process.
func (s *Store) Ping(ctx context.Context) error {
	return nil
}

// expiryHeap orders entries by expiry, soonest first; an entry knows its index so it
// can leave the heap early (deleted, over the cap).
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return expiresBefore(h[i].meta.Expires, h[j].meta.Expires) }

// expiresBefore orders expiry times with the zero time (never) last.
func expiresBefore(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return !a.IsZero() && b.IsZero()
	}
	return a.Before(b)
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.heapIndex = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// emptyList is a doubly linked list of the mailboxes that hold no message, through
// their prev and next, so that the least recently used one is found and dropped in
// constant time however many inboxes there are.
type emptyList struct {
	head, tail *mailbox
}

func (l *emptyList) push(mb *mailbox) {
	if mb.inEmpty {
		return
	}
	mb.inEmpty = true
	mb.prev, mb.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = mb
	} else {
		l.head = mb
	}
	l.tail = mb
}

func (l *emptyList) remove(mb *mailbox) {
	if !mb.inEmpty {
		return
	}
	mb.inEmpty = false
	if mb.prev != nil {
		mb.prev.next = mb.next
	} else {
		l.head = mb.next
	}
	if mb.next != nil {
		mb.next.prev = mb.prev
	} else {
		l.tail = mb.prev
	}
	mb.prev, mb.next = nil, nil
}
