package imapd

import (
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mayfly-mail/mayfly/server/mailparse"
	"github.com/mayfly-mail/mayfly/storage"
)

// Fetch answers FETCH and UID FETCH. A message that expired since the client learned
// of it is left out of the answer rather than failing the command: RFC 2180 section
// 4.1 lets a server choose, a NO for the whole command hurts every client, and a UID
// FETCH of a UID that is gone is answered the same way (RFC 9051 section 6.4.9). Its
// EXPUNGE follows at the next command that allows one.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	defer s.polled(&err)
	defer s.guard("fetch", &err)
	if err := s.command(uidName("fetch", numSet)); err != nil {
		return err
	}
	v := s.view
	needRaw := options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	// RFC 9051 section 6.4.5: BODY[...] and BINARY[...] without .PEEK set \Seen,
	// except in a mailbox opened with EXAMINE.
	markSeen := false
	if !v.readOnly {
		for _, bs := range options.BodySection {
			markSeen = markSeen || !bs.Peek
		}
		for _, bs := range options.BinarySection {
			markSeen = markSeen || !bs.Peek
		}
	}

	for _, t := range v.resolve(numSet) {
		var env *imap.Envelope
		if options.Envelope {
			env = s.srv.envelopes.get(t.meta.id)
		}
		var raw []byte
		var msg *mailparse.Message
		if needRaw || options.Envelope && env == nil {
			raw, err = s.raw(t.meta.id)
			if errors.Is(err, storage.ErrNotFound) {
				v.gone(t.meta.uid)
				continue
			}
			if err != nil {
				return s.storeErr("fetch raw", err)
			}
			if needRaw {
				msg = s.srv.parse(t.meta.id, raw)
			}
			if options.Envelope && env == nil {
				if msg != nil {
					env = envelope(msg)
				} else {
					env = headerEnvelope(raw)
				}
				s.srv.envelopes.put(t.meta.id, env)
			}
		}
		flagsChanged := false
		if markSeen && t.meta.flags&storage.FlagSeen == 0 {
			flags, err := s.setFlags(t.meta.id, storage.FlagSeen, 0)
			if errors.Is(err, storage.ErrNotFound) {
				v.gone(t.meta.uid)
				continue
			}
			if err != nil {
				return s.storeErr("fetch set seen", err)
			}
			v.setOwnFlags(t.meta.uid, flags)
			t.meta.flags, flagsChanged = flags, true
		}
		// Everything that parses the message is done before the response starts: a
		// response once begun holds the connection's writer until it is closed.
		resp := buildFetch(t, raw, msg, env, options, flagsChanged)
		if err := resp.write(w.CreateMessage(t.seq)); err != nil {
			return err
		}
	}
	return nil
}

// fetchResponse is one message's FETCH data, ready to write.
type fetchResponse struct {
	uid           imap.UID
	flags         []imap.Flag
	writeFlags    bool
	internalDate  *msgMeta
	size          int64
	writeSize     bool
	envelope      *imap.Envelope
	bodyStructure imap.BodyStructure
	bodies        []*imap.FetchItemBodySection
	bodyData      [][]byte
	binaries      []*imap.FetchItemBinarySection
	binaryData    [][]byte
	binarySizes   []*imap.FetchItemBinarySectionSize
	binarySizeN   []uint32
}

func buildFetch(t target, raw []byte, msg *mailparse.Message, env *imap.Envelope, options *imap.FetchOptions, flagsChanged bool) *fetchResponse {
	r := &fetchResponse{uid: t.meta.uid}
	if options.Flags || flagsChanged {
		// RFC 9051 section 6.4.5: flags that FETCH changed are sent with it.
		r.writeFlags = true
		r.flags = flagList(t.meta.flags, t.keywords)
	}
	if options.InternalDate {
		r.internalDate = &t.meta
	}
	if options.RFC822Size {
		r.writeSize = true
		r.size = t.meta.size
		if raw != nil {
			r.size = int64(len(raw))
		}
	}
	r.envelope = env
	if options.BodyStructure != nil {
		r.bodyStructure = bodyStructure(msg)
	}
	for _, bs := range options.BodySection {
		r.bodies = append(r.bodies, bs)
		r.bodyData = append(r.bodyData, bodySection(msg, bs))
	}
	for _, bs := range options.BinarySection {
		r.binaries = append(r.binaries, bs)
		r.binaryData = append(r.binaryData, binarySection(msg, bs))
	}
	for _, bs := range options.BinarySectionSize {
		r.binarySizes = append(r.binarySizes, bs)
		r.binarySizeN = append(r.binarySizeN, uint32(len(binarySection(msg, &imap.FetchItemBinarySection{Part: bs.Part}))))
	}
	return r
}

func (r *fetchResponse) write(w *imapserver.FetchResponseWriter) error {
	defer func() {
		// An open response holds the connection's writer: release it before the
		// panic becomes this command's NO, or that NO could never be written.
		if p := recover(); p != nil {
			w.Close()
			panic(p)
		}
	}()
	w.WriteUID(r.uid)
	if r.writeFlags {
		w.WriteFlags(r.flags)
	}
	if r.internalDate != nil {
		w.WriteInternalDate(r.internalDate.received)
	}
	if r.writeSize {
		w.WriteRFC822Size(r.size)
	}
	if r.envelope != nil {
		w.WriteEnvelope(r.envelope)
	}
	if r.bodyStructure != nil {
		w.WriteBodyStructure(r.bodyStructure)
	}
	var err error
	for i, bs := range r.bodies {
		lw := w.WriteBodySection(bs, int64(len(r.bodyData[i])))
		err = errors.Join(err, writeAll(lw, r.bodyData[i]))
	}
	for i, bs := range r.binaries {
		lw := w.WriteBinarySection(bs, int64(len(r.binaryData[i])))
		err = errors.Join(err, writeAll(lw, r.binaryData[i]))
	}
	for i, bs := range r.binarySizes {
		w.WriteBinarySectionSize(bs, r.binarySizeN[i])
	}
	return errors.Join(err, w.Close())
}

func writeAll(lw interface {
	Write([]byte) (int, error)
	Close() error
}, b []byte) error {
	_, err := lw.Write(b)
	return errors.Join(err, lw.Close())
}

// flagList returns the flags of a message as IMAP names them.
func flagList(flags storage.Flags, keywords []imap.Flag) []imap.Flag {
	l := make([]imap.Flag, 0, 4+len(keywords))
	for _, f := range systemFlags {
		if flags&f.bit != 0 {
			l = append(l, f.flag)
		}
	}
	return append(l, keywords...)
}

// splitFlags separates the flags the store keeps from the session's own. \Recent is
// the server's to set (RFC 9051 dropped it) and is ignored.
func splitFlags(flags []imap.Flag) (system storage.Flags, other []imap.Flag) {
next:
	for _, f := range flags {
		for _, sf := range systemFlags {
			if strings.EqualFold(string(f), string(sf.flag)) {
				system |= sf.bit
				continue next
			}
		}
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		if strings.EqualFold(string(f), string(imap.FlagDraft)) {
			f = imap.FlagDraft
		}
		other = append(other, f)
	}
	return system, other
}

// Store answers STORE and UID STORE: \Seen, \Answered, \Flagged and \Deleted go to
// the store, where every view sees them; other flags last as long as the session.
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) (err error) {
	defer s.polled(&err)
	defer s.guard("store", &err)
	if err := s.command(uidName("store", numSet)); err != nil {
		return err
	}
	v := s.view
	if v.readOnly {
		return cannot(v.mailbox.String() + " was opened with EXAMINE: flags cannot change")
	}
	system, other := splitFlags(flags.Flags)
	var add, remove storage.Flags
	switch flags.Op {
	case imap.StoreFlagsSet:
		add, remove = system, allSystem&^system
	case imap.StoreFlagsAdd:
		add = system
	case imap.StoreFlagsDel:
		remove = system
	}
	touchesStore := add|remove != 0
	touchesSession := flags.Op == imap.StoreFlagsSet || len(other) > 0

	for _, t := range v.resolve(numSet) {
		if touchesStore {
			now, err := s.setFlags(t.meta.id, add, remove)
			if errors.Is(err, storage.ErrNotFound) {
				v.gone(t.meta.uid)
				continue
			}
			if err != nil {
				return s.storeErr("store flags", err)
			}
			v.setOwnFlags(t.meta.uid, now)
			t.meta.flags = now
		}
		if touchesSession {
			t.keywords = v.setKeywords(t.meta.uid, flags.Op, other)
		}
		if flags.Silent {
			continue
		}
		rw := w.CreateMessage(t.seq)
		rw.WriteUID(t.meta.uid)
		rw.WriteFlags(flagList(t.meta.flags, t.keywords))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Expunge answers EXPUNGE, UID EXPUNGE and CLOSE: the client's messages marked
// \Deleted are deleted from the store, for every view. The EXPUNGE responses follow
// from the view, as for deletions made elsewhere.
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) (err error) {
	defer s.polled(&err)
	defer s.guard("expunge", &err)
	command := "expunge"
	if uids != nil {
		command = "uid expunge"
	}
	if err := s.command(command); err != nil {
		return err
	}
	v := s.view
	if v.readOnly {
		// CLOSE after EXAMINE comes here too, and must succeed without deleting
		// (RFC 9051 section 6.4.1); imapserver does not tell the two apart.
		return nil
	}
	var set imap.NumSet = imap.SeqSet{{Start: 1, Stop: 0}}
	if uids != nil {
		set = *uids
	}
	for _, t := range v.resolve(set) {
		if t.meta.flags&storage.FlagDeleted == 0 {
			continue
		}
		// The flag may have been taken off elsewhere since the view heard of it.
		m, err := s.get(t.meta.id)
		if errors.Is(err, storage.ErrNotFound) {
			v.gone(t.meta.uid)
			continue
		}
		if err != nil {
			return s.storeErr("expunge get", err)
		}
		if m.Flags&storage.FlagDeleted == 0 {
			continue
		}
		if err := s.delete(t.meta.id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return s.storeErr("expunge delete", err)
		}
		s.logger.Debug("expunged", "id", t.meta.id, "uid", t.meta.uid)
		v.gone(t.meta.uid)
	}
	return nil
}

// The store calls of the selected state, each within its own timeout.

func (s *session) raw(id string) ([]byte, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	return s.srv.store.Raw(ctx, s.inbox, id)
}

func (s *session) get(id string) (*storage.Message, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	return s.srv.store.Get(ctx, s.inbox, id)
}

func (s *session) setFlags(id string, add, remove storage.Flags) (storage.Flags, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	return s.srv.store.SetFlags(ctx, s.inbox, id, add, remove)
}

func (s *session) delete(id string) error {
	ctx, cancel := s.opCtx()
	defer cancel()
	return s.srv.store.Delete(ctx, s.inbox, id)
}
