package httpapi

import (
	"container/list"
	"strings"
	"sync"
	"time"

	"github.com/mayfly-mail/mayfly/server/httpapi/parse"
)

// defaultParseCache is MAYFLY_PARSE_CACHE's default: a few hundred ordinary mails, or
// three of the largest (a 10 MiB HTML body parses to about 20 MiB: the HTML, and its
// rendering as text).
const defaultParseCache = 64 << 20

// parseCache keeps parsed messages, and the HTML documents made of them, for the
// requests that follow: the page reads a message's JSON and then its HTML, a test's
// waiters all want the message that woke them. It holds at most max bytes, least
// recently used first out, and an entry larger than half of it is not kept at all.
//
// Entries are keyed by inbox and ID. The handlers read a message's metadata from the
// store before asking here, so mail deleted elsewhere (IMAP, POP3, another node) is
// never served from the cache; deleting through the API drops the entry at once, and
// put drops expired entries once a minute, so neither waits for the LRU to free it.
type parseCache struct {
	max int64

	mu      sync.Mutex
	size    int64
	order   *list.List // front = most recent; values are *cacheEntry
	byKey   map[cacheKey]*list.Element
	sweepAt time.Time
	now     func() time.Time
}

type cacheKey struct{ inbox, id string }

// cached is one message parsed, and how its HTML body becomes the html route's document.
type cached struct {
	p      *parse.Parsed
	images *strings.Replacer // the cid: references to URLs; nil: the HTML body as is
	docLen int               // bytes of the document images makes of the HTML body
	raw    []byte            // the message, kept when the document shows its images; else nil
}

type cacheEntry struct {
	key     cacheKey
	c       *cached
	size    int64
	expires time.Time
}

// expired says whether the entry's message is gone by now; one without an expiry
// time (none is stored so, but a zero must not mean "gone at once") never expires here.
func (e *cacheEntry) expired(now time.Time) bool {
	return !e.expires.IsZero() && !e.expires.After(now)
}

func newParseCache(max int64) *parseCache {
	return &parseCache{max: max, order: list.New(), byKey: make(map[cacheKey]*list.Element), now: time.Now}
}

func (pc *parseCache) get(inbox, id string) (*cached, bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	el, ok := pc.byKey[cacheKey{inbox, id}]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if e.expired(pc.now()) {
		pc.removeLocked(el)
		return nil, false
	}
	pc.order.MoveToFront(el)
	return e.c, true
}

// put keeps c for a message that expires at expires; c.size bytes are counted.
func (pc *parseCache) put(inbox, id string, c *cached, expires time.Time) {
	size := c.size()
	if size > pc.max/2 {
		return
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	now := pc.now()
	if now.After(pc.sweepAt) {
		pc.sweepAt = now.Add(time.Minute)
		for el := pc.order.Back(); el != nil; {
			prev := el.Prev()
			if el.Value.(*cacheEntry).expired(now) {
				pc.removeLocked(el)
			}
			el = prev
		}
	}
	k := cacheKey{inbox, id}
	if el, ok := pc.byKey[k]; ok {
		pc.removeLocked(el)
	}
	pc.byKey[k] = pc.order.PushFront(&cacheEntry{key: k, c: c, size: size, expires: expires})
	pc.size += size
	for pc.size > pc.max {
		pc.removeLocked(pc.order.Back())
	}
}

// drop forgets a deleted message.
func (pc *parseCache) drop(inbox, id string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if el, ok := pc.byKey[cacheKey{inbox, id}]; ok {
		pc.removeLocked(el)
	}
}

// dropInbox forgets every message of a deleted inbox.
func (pc *parseCache) dropInbox(inbox string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for el := pc.order.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*cacheEntry).key.inbox == inbox {
			pc.removeLocked(el)
		}
		el = next
	}
}

func (pc *parseCache) removeLocked(el *list.Element) {
	e := pc.order.Remove(el).(*cacheEntry)
	delete(pc.byKey, e.key)
	pc.size -= e.size
}

// bytes is what the cache holds, for tests and the metrics.
func (pc *parseCache) bytes() int64 {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.size
}

// entryOverhead stands for the headers of strings, slices and structs of an entry and
// of each of its items: what a count of string bytes alone would miss.
const entryOverhead = 64

// size estimates the memory c holds: its strings, and a little for every item.
func (c *cached) size() int64 {
	p := c.p
	n := int64(4*entryOverhead + len(p.Text) + len(p.HTML) + len(p.HTMLText))
	n += int64(len(c.raw))
	for _, h := range p.Headers {
		n += int64(entryOverhead + len(h.Name) + len(h.Value))
	}
	for _, a := range p.Attachments {
		n += int64(2*entryOverhead + len(a.Filename) + len(a.ContentType) + len(a.ContentID))
	}
	for _, s := range p.Links {
		n += int64(entryOverhead + len(s))
	}
	// The details' URLs are the same strings as Links; their texts are not.
	for _, l := range p.LinkDetails {
		n += int64(entryOverhead + len(l.Text))
	}
	for _, s := range p.Codes {
		n += int64(entryOverhead + len(s))
	}
	return n
}
