package imapd

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mayfly-mail/mayfly/storage"
)

// view is a session's selected mailbox: what the store holds of it now (live), what the
// client has been told (client), and the changes between the two that wait for a point
// where the protocol lets them be told (pending). Store events move live ahead and
// queue pending; Poll and Idle hand pending to the client.
//
// imapserver offers MailboxTracker for this, but it cannot say how many messages the
// client knows (what "*" means while an EXPUNGE waits), it maps sequence numbers
// wrongly while one EXISTS for several new messages waits (its own TODO), it holds
// back new mail and flags behind a waiting EXPUNGE during FETCH, and it panics on an
// update its count does not expect. Keeping the client's list here makes all of it
// exact.
type view struct {
	sess        *session
	store       store
	inbox       string
	mailbox     mailbox // which of the inbox's messages are shown: the store's events carry all
	readOnly    bool
	uidValidity uint32
	logger      *slog.Logger

	mu        sync.Mutex
	live      map[imap.UID]*msgMeta // what the store holds, as far as its events tell
	client    []imap.UID            // the messages the client knows, ascending: seq n is client[n-1]
	pending   []update              // in the order they happened
	maxUID    imap.UID              // the highest UID ever live here; UIDs only grow
	keywords  map[imap.UID][]imap.Flag
	searchRes imap.UIDSet // SEARCH RETURN (SAVE), for "$"

	notify    chan struct{} // wakes Idle; one buffered wake-up is enough
	cancel    context.CancelFunc
	subCancel context.CancelFunc // of the current subscription; touched by run only after open
	done      chan struct{}
}

// msgMeta is what a view keeps of a message: enough to answer FLAGS, INTERNALDATE,
// RFC822.SIZE and most SEARCH keys without the store.
type msgMeta struct {
	id       string
	uid      imap.UID
	flags    storage.Flags
	size     int64
	received time.Time
	date     time.Time // of the Date header; zero when missing
}

func metaOf(m *storage.Message) *msgMeta {
	return &msgMeta{id: m.ID, uid: imap.UID(m.UID), flags: m.Flags, size: m.Size, received: m.Received, date: m.Date}
}

type updateKind uint8

const (
	updExists updateKind = iota + 1
	updExpunge
	updFlags
)

// update is one change the client has not been told of. Flags are read when it is
// told, so it learns the latest.
type update struct {
	kind updateKind
	uid  imap.UID
}

// The flags of this mailbox. Only the four the store keeps are permanent; \Draft and
// keywords may be set but last as long as the session (RFC 9051 section 7.1:
// PERMANENTFLAGS lists what persists).
var (
	mailboxFlags   = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}
	permanentFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen}
	systemFlags    = []struct {
		flag imap.Flag
		bit  storage.Flags
	}{
		{imap.FlagSeen, storage.FlagSeen},
		{imap.FlagAnswered, storage.FlagAnswered},
		{imap.FlagFlagged, storage.FlagFlagged},
		{imap.FlagDeleted, storage.FlagDeleted},
	}
	allSystem = storage.FlagSeen | storage.FlagAnswered | storage.FlagFlagged | storage.FlagDeleted
)

// openView subscribes to the inbox's events, then lists it, so that nothing that
// happens in between is missed (an event for what the list already shows is a no-op).
func openView(s *session, mb mailbox, readOnly bool) (*view, *imap.SelectData, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	v := &view{
		sess:     s,
		store:    s.srv.store,
		inbox:    s.inbox,
		mailbox:  mb,
		readOnly: readOnly,
		logger:   s.logger,
		live:     make(map[imap.UID]*msgMeta),
		keywords: make(map[imap.UID][]imap.Flag),
		notify:   make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	fail := func(err error) (*view, *imap.SelectData, error) {
		cancel()
		return nil, nil, err
	}
	events, err := v.subscribe(ctx)
	if err != nil {
		return fail(err)
	}
	opCtx, opCancel := s.opCtx()
	defer opCancel()
	box, err := v.store.Mailbox(opCtx, v.inbox)
	if err != nil {
		return fail(err)
	}
	list, err := v.store.List(opCtx, v.inbox, storage.Page{})
	if err != nil {
		return fail(err)
	}
	v.uidValidity = box.UIDValidity
	var firstUnseen uint32
	for i := len(list) - 1; i >= 0; i-- { // List is newest first
		if !mb.holds(&list[i]) {
			continue
		}
		m := metaOf(&list[i])
		if m.uid <= v.maxUID {
			continue // not in UID order: cannot be
		}
		v.live[m.uid] = m
		v.client = append(v.client, m.uid)
		v.maxUID = m.uid
		if firstUnseen == 0 && m.flags&storage.FlagSeen == 0 {
			firstUnseen = uint32(len(v.client))
		}
	}
	// Taken before run starts, which changes the view as events come.
	data := &imap.SelectData{
		Flags:             mailboxFlags,
		PermanentFlags:    permanentFlags,
		NumMessages:       uint32(len(v.client)),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           max(mb.uidNext(box), v.maxUID+1), // maxUID: a store that kept no LastReceived/LastSent
		UIDValidity:       box.UIDValidity,
	}
	go v.run(ctx, events)
	return v, data, nil
}

// close stops the event goroutine and waits for it.
func (v *view) close() {
	v.cancel()
	<-v.done
}

func (v *view) subscribe(ctx context.Context) (<-chan storage.Event, error) {
	subCtx, cancel := context.WithCancel(ctx)
	events, err := v.store.Subscribe(subCtx, v.inbox)
	if err != nil {
		cancel()
		return nil, err
	}
	if v.subCancel != nil {
		v.subCancel()
	}
	v.subCancel = cancel
	return events, nil
}

// run applies the inbox's events until the view closes. A subscription the store
// closes early (this session fell behind, or Redis's event connection was lost) may
// have missed events: run subscribes again and lists the inbox to catch up.
func (v *view) run(ctx context.Context, events <-chan storage.Event) {
	defer close(v.done)
	defer func() {
		if v.subCancel != nil {
			v.subCancel()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				if events = v.resubscribe(ctx); events == nil {
					return
				}
				continue
			}
			if !v.apply(e) {
				// Something the events cannot tell: ask the store.
				err := v.resync(ctx)
				if errors.Is(err, errValidityChanged) {
					return
				}
				if err != nil && ctx.Err() == nil {
					v.logger.Warn("imap resync", "err", err)
				}
			}
		}
	}
}

// resubscribe returns a fresh subscription once the inbox has been listed again, or
// nil when the view closes first.
func (v *view) resubscribe(ctx context.Context) <-chan storage.Event {
	wait := 50 * time.Millisecond
	for {
		events, err := v.subscribe(ctx)
		if err == nil {
			if err = v.resync(ctx); err == nil {
				v.logger.Debug("imap events resubscribed")
				return events
			}
		}
		if ctx.Err() != nil || errors.Is(err, errValidityChanged) {
			return nil
		}
		v.logger.Warn("imap events lost; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, v.sess.srv.retryMax)
	}
}

// apply brings live up to date with one event and queues what the client must be
// told. It reports false when the event cannot be applied without the store's help.
func (v *view) apply(e storage.Event) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			v.logger.Error("panic applying an event", "err", p, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	switch e.Type {
	case storage.EventAdded:
		m := e.Message
		if m == nil {
			return false
		}
		if !v.mailbox.holds(m) {
			// The other mailbox's: nothing to tell. Its UID still comes from the
			// inbox's one counter, so one below what this view has seen may mean the
			// UID state was made anew, as below.
			return imap.UID(m.UID) > v.lastUID()
		}
		v.mu.Lock()
		added := v.addLocked(metaOf(m))
		v.mu.Unlock()
		if !added && imap.UID(m.UID) < v.lastUID() {
			// A UID below ones already seen: the inbox's UID state was made anew
			// (it outlived its grace period), which only a resync can tell.
			return false
		}
	case storage.EventFlags:
		v.mu.Lock()
		v.flagsLocked(v.uidOfLocked(e), e.Flags)
		v.mu.Unlock()
	case storage.EventDeleted, storage.EventExpired:
		v.mu.Lock()
		v.goneLocked(v.uidOfLocked(e))
		v.mu.Unlock()
	}
	v.wake()
	return true
}

func (v *view) lastUID() imap.UID {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.maxUID
}

// uidOfLocked returns the UID of an event's message, by ID if the event lacks it.
func (v *view) uidOfLocked(e storage.Event) imap.UID {
	if e.UID != 0 {
		return imap.UID(e.UID)
	}
	for uid, m := range v.live {
		if m.id == e.ID {
			return uid
		}
	}
	return 0
}

// resync lists the inbox and turns the difference from live into updates, as if the
// events it missed had come. A new UIDVALIDITY cannot be told to a client mid-session
// (RFC 9051 section 2.3.1.1): the session ends with a BYE and the client starts over.
func (v *view) resync(ctx context.Context) error {
	opCtx, cancel := context.WithTimeout(ctx, v.sess.srv.opTimeout)
	defer cancel()
	mb, err := v.store.Mailbox(opCtx, v.inbox)
	if err != nil {
		return err
	}
	if mb.UIDValidity != v.uidValidity {
		v.logger.Info("uidvalidity changed; ending the session", "was", v.uidValidity, "now", mb.UIDValidity)
		if ic := v.sess.c.imapConn(); ic != nil {
			ic.Bye(v.mailbox.String() + " was reset (new UIDVALIDITY); please reconnect")
		}
		return errValidityChanged
	}
	list, err := v.store.List(opCtx, v.inbox, storage.Page{})
	if err != nil {
		return err
	}
	v.mu.Lock()
	listed := make(map[imap.UID]bool, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		if !v.mailbox.holds(&list[i]) {
			continue
		}
		m := metaOf(&list[i])
		listed[m.uid] = true
		if _, ok := v.live[m.uid]; ok {
			v.flagsLocked(m.uid, m.flags)
		} else {
			v.addLocked(m)
		}
	}
	for uid := range v.live {
		if !listed[uid] {
			v.goneLocked(uid)
		}
	}
	v.mu.Unlock()
	v.wake()
	return nil
}

func (v *view) wake() {
	select {
	case v.notify <- struct{}{}:
	default:
	}
}

// addLocked makes a new message live and queues its EXISTS. A message at or below
// the highest UID seen cannot be shown: sequence numbers follow UIDs, so it would have
// to go before messages the client knows. Either it came and went already, or it
// belongs to an earlier UIDVALIDITY.
func (v *view) addLocked(m *msgMeta) bool {
	if old, ok := v.live[m.uid]; ok {
		if old.flags != m.flags {
			v.flagsLocked(m.uid, m.flags)
		}
		return true
	}
	if m.uid <= v.maxUID {
		return false
	}
	v.live[m.uid] = m
	v.maxUID = m.uid
	v.pending = append(v.pending, update{kind: updExists, uid: m.uid})
	return true
}

// goneLocked drops a deleted or expired message: an EXPUNGE for the client if it knows
// the message, else its EXISTS is taken back before it is told.
func (v *view) goneLocked(uid imap.UID) {
	if _, ok := v.live[uid]; !ok {
		return
	}
	delete(v.live, uid)
	delete(v.keywords, uid)
	if _, known := slices.BinarySearch(v.client, uid); known {
		v.pending = append(v.pending, update{kind: updExpunge, uid: uid})
		return
	}
	v.pending = slices.DeleteFunc(v.pending, func(u update) bool { return u.uid == uid })
}

// gone is goneLocked for a message the store no longer has though no event said so
// yet (it expired a moment ago).
func (v *view) gone(uid imap.UID) {
	v.mu.Lock()
	v.goneLocked(uid)
	v.mu.Unlock()
}

func (v *view) flagsLocked(uid imap.UID, flags storage.Flags) {
	m := v.live[uid]
	if m == nil || m.flags == flags {
		return
	}
	m.flags = flags
	if _, known := slices.BinarySearch(v.client, uid); !known {
		return // the client will ask for the flags of a message it has not seen yet
	}
	for _, u := range v.pending {
		if u.kind == updFlags && u.uid == uid {
			return
		}
	}
	v.pending = append(v.pending, update{kind: updFlags, uid: uid})
}

// setOwnFlags records flags this session set and tells the client itself, in the
// command's own FETCH response: no update is queued for them.
func (v *view) setOwnFlags(uid imap.UID, flags storage.Flags) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if m := v.live[uid]; m != nil {
		m.flags = flags
	}
	v.pending = slices.DeleteFunc(v.pending, func(u update) bool { return u.kind == updFlags && u.uid == uid })
}

// poll tells the client what changed. Where EXPUNGE is not allowed (during FETCH,
// STORE and SEARCH, RFC 9051 section 7.5.1), the expunges wait, while new messages and
// flags are told at once: the client's numbering still holds the expunged messages.
func (v *view) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	type response struct {
		kind  updateKind
		num   uint32 // sequence number, or the count for EXISTS
		uid   imap.UID
		flags []imap.Flag
	}
	v.mu.Lock()
	if len(v.pending) == 0 {
		v.mu.Unlock()
		return nil
	}
	var out []response
	var rest []update
	for _, u := range v.pending {
		switch u.kind {
		case updExpunge:
			if !allowExpunge {
				rest = append(rest, u)
				continue
			}
			i, ok := slices.BinarySearch(v.client, u.uid)
			if !ok {
				continue
			}
			v.client = slices.Delete(v.client, i, i+1)
			out = append(out, response{kind: updExpunge, num: uint32(i + 1)})
		case updExists:
			if _, ok := v.live[u.uid]; !ok {
				continue
			}
			v.client = append(v.client, u.uid)
			if n := len(out); n > 0 && out[n-1].kind == updExists {
				out[n-1].num = uint32(len(v.client)) // one EXISTS for a burst
				continue
			}
			out = append(out, response{kind: updExists, num: uint32(len(v.client))})
		case updFlags:
			i, ok := slices.BinarySearch(v.client, u.uid)
			m := v.live[u.uid]
			if !ok || m == nil {
				continue
			}
			out = append(out, response{kind: updFlags, num: uint32(i + 1), uid: u.uid, flags: flagList(m.flags, v.keywords[m.uid])})
		}
	}
	v.pending = rest
	v.mu.Unlock()

	for _, r := range out {
		var err error
		switch r.kind {
		case updExpunge:
			err = w.WriteExpunge(r.num)
		case updExists:
			err = w.WriteNumMessages(r.num)
		case updFlags:
			err = w.WriteMessageFlags(r.num, r.uid, r.flags)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// idle tells the client of every change as it comes, until DONE.
func (v *view) idle(w *imapserver.UpdateWriter, stop <-chan struct{}, ctx context.Context) error {
	for {
		if err := v.poll(w, true); err != nil {
			return err
		}
		select {
		case <-v.notify:
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// target is a message a command is about, as the client numbers it.
type target struct {
	seq      uint32
	meta     msgMeta
	keywords []imap.Flag
}

// resolve returns the messages of numSet that the client knows and the store still
// has, in sequence order. Those the store dropped are left out: their EXPUNGE comes
// at the next point that allows it.
func (v *view) resolve(numSet imap.NumSet) []target {
	v.mu.Lock()
	defer v.mu.Unlock()
	in := v.matcherLocked(numSet)
	var out []target
	for i, uid := range v.client {
		seq := uint32(i + 1)
		if !in(seq, uid) {
			continue
		}
		if m := v.live[uid]; m != nil {
			out = append(out, target{seq: seq, meta: *m, keywords: slices.Clone(v.keywords[uid])})
		}
	}
	return out
}

// matcherLocked turns a set as the client wrote it ("*", "$") into a test.
func (v *view) matcherLocked(numSet imap.NumSet) func(seq uint32, uid imap.UID) bool {
	switch set := numSet.(type) {
	case imap.SeqSet:
		r := staticRanges(seqRanges(set), uint32(len(v.client)))
		return func(seq uint32, _ imap.UID) bool { return inRanges(r, seq) }
	case imap.UIDSet:
		if imap.IsSearchRes(set) {
			set = v.searchRes
		}
		var last uint32
		if n := len(v.client); n > 0 {
			last = uint32(v.client[n-1])
		}
		r := staticRanges(uidRanges(set), last)
		return func(_ uint32, uid imap.UID) bool { return inRanges(r, uint32(uid)) }
	}
	return func(uint32, imap.UID) bool { return false }
}

type numRange struct{ start, stop uint32 }

func seqRanges(set imap.SeqSet) []numRange {
	r := make([]numRange, len(set))
	for i, s := range set {
		r[i] = numRange{s.Start, s.Stop}
	}
	return r
}

func uidRanges(set imap.UIDSet) []numRange {
	r := make([]numRange, len(set))
	for i, s := range set {
		r[i] = numRange{uint32(s.Start), uint32(s.Stop)}
	}
	return r
}

// staticRanges replaces "*" (0) by the largest number in use and orders each range:
// RFC 9051 section 9, "4:2" is "2:4", and "*" is the last message even when a range
// goes past it.
func staticRanges(r []numRange, last uint32) []numRange {
	for i := range r {
		if r[i].start == 0 {
			r[i].start = last
		}
		if r[i].stop == 0 {
			r[i].stop = last
		}
		if r[i].start > r[i].stop {
			r[i].start, r[i].stop = r[i].stop, r[i].start
		}
	}
	return r
}

func inRanges(r []numRange, n uint32) bool {
	for _, x := range r {
		if n >= x.start && n <= x.stop {
			return true
		}
	}
	return false
}

// setKeywords applies a STORE to the session-only flags of a message and returns them.
func (v *view) setKeywords(uid imap.UID, op imap.StoreFlagsOp, flags []imap.Flag) []imap.Flag {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.live[uid]; !ok {
		return nil
	}
	cur := v.keywords[uid]
	switch op {
	case imap.StoreFlagsSet:
		cur = nil
		fallthrough
	case imap.StoreFlagsAdd:
		for _, f := range flags {
			if !slices.ContainsFunc(cur, func(c imap.Flag) bool { return strings.EqualFold(string(c), string(f)) }) {
				cur = append(cur, f)
			}
		}
	case imap.StoreFlagsDel:
		cur = slices.DeleteFunc(slices.Clone(cur), func(c imap.Flag) bool {
			return slices.ContainsFunc(flags, func(f imap.Flag) bool { return strings.EqualFold(string(c), string(f)) })
		})
	}
	if len(cur) == 0 {
		delete(v.keywords, uid)
		return nil
	}
	v.keywords[uid] = cur
	return slices.Clone(cur)
}

// errValidityChanged ends a view whose inbox was made anew under it.
var errValidityChanged = errors.New("uidvalidity changed")
