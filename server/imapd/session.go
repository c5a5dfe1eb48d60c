package imapd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mayfly-mail/mayfly/server/gate"
	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// session is one IMAP connection. imapserver calls its methods one at a time from the
// connection's goroutine, except Idle, which runs while that goroutine waits for DONE.
type session struct {
	srv    *Server
	c      *conn
	logger *slog.Logger
	// ctx is the connection's: imapserver's methods take none, and Close cancels it.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once

	inbox string // set by a successful login

	rate *limit.Pacer // Options.CommandRate; nil = no limit
	// answered says that the last command reached a method of ours and succeeded, so
	// the Poll imapserver makes after it is part of it, not a NOOP of its own.
	answered atomic.Bool

	// mu guards view against Idle's goroutine, which imapserver leaves running when
	// the connection fails during IDLE (or the client ends it with something other
	// than DONE): Close must wait for it before it closes the view.
	mu     sync.Mutex
	view   *view // the selected mailbox, nil when none is
	closed bool
	idling sync.WaitGroup
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)

func newSession(l *listener, c *conn) *session {
	ctx, cancel := context.WithCancel(l.base)
	s := &session{
		srv:    l.srv,
		c:      c,
		logger: l.srv.logger.With("remote", c.RemoteAddr().String()),
		ctx:    ctx,
		cancel: cancel,
		rate:   l.srv.opts.CommandRate.Pacer(l.srv.autologout),
	}
	s.srv.metrics.sessions.Inc()
	return s
}

func (s *session) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.mu.Lock()
		s.closed = true
		v := s.view
		s.view = nil
		s.mu.Unlock()
		s.idling.Wait()
		if v != nil {
			v.close()
		}
		s.srv.metrics.sessions.Dec()
		s.c.release()
	})
	return nil
}

// setView makes v the selected mailbox (nil: none) and closes the one before.
func (s *session) setView(v *view) {
	s.mu.Lock()
	old := s.view
	s.view = v
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
}

func (s *session) count(command string) {
	s.srv.metrics.commands.WithLabelValues(command).Inc()
}

// command counts a command that reached the session and takes it from the
// connection's CommandRate.
func (s *session) command(name string) error {
	s.count(name)
	return s.take()
}

// take takes one command from the connection's CommandRate. Past the rate the command
// waits for its turn (limit.Pacer), and the next is not read until it is answered, so
// a pipelining client is slowed, not cut. Only clear abuse, a flood long past the
// burst, is told BYE and the connection closes; the error is for imapserver, whose
// answer to the command goes nowhere.
//
// imapserver calls the session for most commands, and calls Poll after every one that
// succeeds, including NOOP, CHECK, CAPABILITY and ENABLE, which it otherwise answers
// alone: so every command of a logged-in client is taken here once, but for those that
// fail in imapserver's own checks (syntax, state) without touching the store. LOGIN is
// not taken: a connection logs in once, and a wrong password costs the gate's delay.
func (s *session) take() error {
	err := s.rate.Wait(s.ctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, limit.ErrTooFast) {
		// The session is closing (shutdown): drain says BYE.
		return bye("shutting down")
	}
	s.srv.metrics.refused.WithLabelValues(refusedCommands).Inc()
	s.logger.Warn("too many commands, closing the connection")
	// Bye waits for a response being written to end; no method it is called from is
	// inside one (AUTHENTICATE's Login would be, and is not taken).
	if ic := s.c.imapConn(); ic != nil {
		ic.Bye("too many commands (MAYFLY_COMMAND_RATE), slow down")
	}
	return bye("too many commands (MAYFLY_COMMAND_RATE), slow down")
}

// polled is deferred by the commands imapserver polls after when they succeed: all
// but LOGIN, AUTHENTICATE, SELECT and EXAMINE, which never leave answered set.
func (s *session) polled(err *error) {
	s.answered.Store(*err == nil)
}

// guard turns a panic in a command into a NO for that command, so that one odd
// message or request costs the client one answer, not its connection.
func (s *session) guard(command string, err *error) {
	if p := recover(); p != nil {
		s.logger.Error("panic in command", "command", command, "inbox", s.inbox, "err", p, "stack", string(debug.Stack()))
		*err = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error"}
	}
}

// Login checks the user and password of LOGIN, and of AUTHENTICATE PLAIN, which
// imapserver decodes (and whose authorization identity it checks) for us, at the
// login gate.
func (s *session) Login(username, password string) error {
	s.count("login")
	inbox, err := s.srv.gate().Login(s.ctx, s.srv.logger, s.c.RemoteAddr().String(), limit.Key(s.c.RemoteAddr()), username, password)
	if errors.Is(err, gate.ErrThrottled) {
		s.srv.metrics.refused.WithLabelValues(refusedLogins).Inc()
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: err.Error()}
	}
	if err != nil {
		s.srv.metrics.logins.WithLabelValues("failed").Inc()
		return imapserver.ErrAuthFailed
	}
	s.c.loggedIn.Store(true)
	s.inbox = inbox
	// A namespace key revoked on any node ends the session, IDLE or not: BYE, as at
	// shutdown, between two responses.
	s.srv.gate().Watch(s.ctx, password, func() {
		s.logger.Info("namespace key revoked, closing the connection")
		if ic := s.c.imapConn(); ic != nil {
			ic.Bye(gate.ErrRevoked.Error())
		}
	})
	s.logger = s.logger.With("inbox", inbox)
	s.srv.metrics.logins.WithLabelValues("ok").Inc()
	return nil
}

var errDenied = errors.New("not an address of ours, or a password that is neither its token nor the admin key")

// authenticate returns the inbox that user names if password opens it, as the gate
// decides, counting nothing. The user is the address as a mail client would have it,
// plus-tag and capitals allowed.
func (s *Server) authenticate(user, password string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	inbox, ok := s.gate().Inbox(ctx, user, password)
	if !ok {
		return "", errDenied
	}
	return inbox, nil
}

// Every inbox shows two mailboxes, split by storage.Message.Sent: INBOX, the mail it
// received, and Sent, the copies of the replies it sent, which the submission server
// keeps with its mail (as POP3, which has only the maildrop, leaves them out). A third,
// Trash (RFC 6154 \Trash), is always empty: a message moved or copied there is deleted,
// which is what Thunderbird and Apple Mail do to delete. RFC 9051 section 5.1: INBOX is
// case-insensitive; other names are not.
const (
	inboxName = "INBOX"
	sentName  = "Sent"
	trashName = "Trash"
	delim     = '/'
)

// mailbox is one of the two mailboxes of an inbox. Both are the same store inbox with
// the same UIDVALIDITY: the UIDs of each are a subset of the store's, still ascending
// and never shared, so one UID names one message whichever mailbox holds it.
type mailbox uint8

const (
	mailboxInbox mailbox = iota
	mailboxSent
	mailboxTrash
)

// mailboxes are every inbox's, in the order LIST gives them.
var mailboxes = []mailbox{mailboxInbox, mailboxSent, mailboxTrash}

func (mb mailbox) String() string {
	switch mb {
	case mailboxSent:
		return sentName
	case mailboxTrash:
		return trashName
	}
	return inboxName
}

// holds reports whether m is shown in mb.
func (mb mailbox) holds(m *storage.Message) bool {
	return mb != mailboxTrash && m.Sent == (mb == mailboxSent)
}

// uidNext is mb's UIDNEXT: one above the highest UID mb has ever held, so it moves when
// mb gets mail, even mail expunged since, and stays put when the other mailbox does
// (RFC 3501 section 2.3.1.1). UIDs are the inbox's, one sequence for both mailboxes, so
// the next message mb gets may have a UID above it: UIDNEXT is only a prediction.
func (mb mailbox) uidNext(box storage.Mailbox) imap.UID {
	switch mb {
	case mailboxSent:
		return imap.UID(box.LastSent + 1)
	case mailboxTrash:
		return 1 // it never holds a message
	}
	return imap.UID(box.LastReceived + 1)
}

// specialUse returns mb's RFC 6154 attributes, by which clients find where sent mail
// is whatever its name.
func (mb mailbox) specialUse() []imap.MailboxAttr {
	switch mb {
	case mailboxSent:
		return []imap.MailboxAttr{imap.MailboxAttrSent}
	case mailboxTrash:
		return []imap.MailboxAttr{imap.MailboxAttrTrash}
	}
	return nil
}

// matches reports whether LIST ref patterns names mb.
func (mb mailbox) matches(ref string, patterns []string) bool {
	name := mb.String()
	if mb == mailboxInbox {
		// The name is all letters, so matching upper-cased is matching INBOX
		// case-insensitively.
		ref = strings.ToUpper(ref)
	}
	for _, p := range patterns {
		if mb == mailboxInbox {
			p = strings.ToUpper(p)
		}
		if imapserver.MatchList(name, delim, ref, p) {
			return true
		}
	}
	return false
}

func mailboxNamed(name string) (mailbox, bool) {
	switch {
	case strings.EqualFold(name, inboxName):
		return mailboxInbox, true
	case name == sentName:
		return mailboxSent, true
	case name == trashName:
		return mailboxTrash, true
	}
	return 0, false
}

func noMailbox(name string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: fmt.Sprintf("No mailbox %q: each address has three, INBOX, Sent and Trash", name)}
}

func cannot(text string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: text}
}

// storeErr chooses the answer to a failed store call: UNAVAILABLE when the store (or
// this connection's shutdown) is why, so clients retry later; SERVERBUG otherwise.
func (s *session) storeErr(op string, err error) error {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return err
	}
	if errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.logger.Warn("store unavailable", "op", op, "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Mail store unavailable, try again later"}
	}
	s.logger.Error("store", "op", op, "err", err)
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error"}
}

// opCtx bounds one store call, so a store that hangs costs a NO, not a session.
func (s *session) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.srv.opTimeout)
}

func (s *session) Select(name string, options *imap.SelectOptions) (data *imap.SelectData, err error) {
	defer s.guard("select", &err)
	s.answered.Store(false) // imapserver's SELECT calls Unselect first, and polls after neither
	command := "select"
	if options.ReadOnly {
		command = "examine"
	}
	if err := s.command(command); err != nil {
		return nil, err
	}
	mb, ok := mailboxNamed(name)
	if !ok {
		return nil, noMailbox(name)
	}
	s.setView(nil) // imapserver unselects first; this is for safety only
	v, data, err := openView(s, mb, options.ReadOnly)
	if err != nil {
		return nil, s.storeErr("select", err)
	}
	s.setView(v)
	return data, nil
}

func (s *session) Unselect() (err error) {
	defer s.polled(&err)
	if err := s.command("unselect"); err != nil {
		return err
	}
	s.setView(nil)
	return nil
}

func (s *session) Create(name string, options *imap.CreateOptions) (err error) {
	defer s.polled(&err)
	if err := s.command("create"); err != nil {
		return err
	}
	if mb, ok := mailboxNamed(name); ok {
		// RFC 9051 section 6.3.4: creating a mailbox that exists is an error. Clients
		// that did not find Sent by its \Sent attribute try this.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: fmt.Sprintf("%s exists already", mb)}
	}
	return cannot("Each address has three mailboxes, INBOX, Sent and Trash; no others can be made")
}

func (s *session) Delete(name string) (err error) {
	defer s.polled(&err)
	if err := s.command("delete"); err != nil {
		return err
	}
	mb, ok := mailboxNamed(name)
	if !ok {
		return noMailbox(name)
	}
	return cannot(fmt.Sprintf("%s cannot be deleted; its mail expires by itself", mb))
}

func (s *session) Rename(name, newName string, options *imap.RenameOptions) (err error) {
	defer s.polled(&err)
	if err := s.command("rename"); err != nil {
		return err
	}
	mb, ok := mailboxNamed(name)
	if !ok {
		return noMailbox(name)
	}
	return cannot(fmt.Sprintf("%s cannot be renamed", mb))
}

func (s *session) Subscribe(name string) (err error) {
	defer s.polled(&err)
	if err := s.command("subscribe"); err != nil {
		return err
	}
	if _, ok := mailboxNamed(name); !ok {
		return noMailbox(name)
	}
	return nil // every mailbox is always subscribed
}

func (s *session) Unsubscribe(name string) (err error) {
	defer s.polled(&err)
	if err := s.command("unsubscribe"); err != nil {
		return err
	}
	mb, ok := mailboxNamed(name)
	if !ok {
		return noMailbox(name)
	}
	return cannot(fmt.Sprintf("%s is always subscribed", mb))
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) (err error) {
	defer s.polled(&err)
	defer s.guard("list", &err)
	if err := s.command("list"); err != nil {
		return err
	}
	if len(patterns) == 0 {
		// RFC 9051 section 6.3.9: LIST "" "" asks for the hierarchy delimiter.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	for _, mb := range mailboxes {
		use := mb.specialUse()
		if options.SelectSpecialUse && len(use) == 0 || !mb.matches(ref, patterns) {
			continue
		}
		// RFC 6154 section 2: the special-use attributes may come without RETURN
		// (SPECIAL-USE), and clients that send a plain LIST (Thunderbird) find Sent by
		// them.
		data := &imap.ListData{Mailbox: mb.String(), Delim: delim, Attrs: append([]imap.MailboxAttr{imap.MailboxAttrHasNoChildren}, use...)}
		if options.SelectSubscribed || options.ReturnSubscribed {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil {
			if data.Status, err = s.status(mb, options.ReturnStatus); err != nil {
				return s.storeErr("list status", err)
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Status(name string, options *imap.StatusOptions) (data *imap.StatusData, err error) {
	defer s.polled(&err)
	defer s.guard("status", &err)
	if err := s.command("status"); err != nil {
		return nil, err
	}
	mb, ok := mailboxNamed(name)
	if !ok {
		return nil, noMailbox(name)
	}
	data, err = s.status(mb, options)
	if err != nil {
		return nil, s.storeErr("status", err)
	}
	return data, nil
}

// status answers STATUS from the store. Every counter is filled in, asked for or not:
// imapserver dereferences the pointers of whatever the client asked for, including
// items we do not support (DELETED-STORAGE), and a nil one would panic.
//
// The store counts the inbox as a whole, so even MESSAGES needs the listing to tell
// mb's share.
func (s *session) status(mb mailbox, options *imap.StatusOptions) (*imap.StatusData, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	box, list, err := s.listing(ctx)
	if err != nil {
		return nil, err
	}
	var messages, unseen, deleted, recent uint32
	var size, zero int64
	uidNext := mb.uidNext(box)
	for i := range list {
		m := &list[i]
		if !mb.holds(m) {
			continue
		}
		// Inbox state written before the store kept LastReceived/LastSent has neither.
		uidNext = max(uidNext, imap.UID(m.UID)+1)
		messages++
		if m.Flags&storage.FlagSeen == 0 {
			unseen++
		}
		if m.Flags&storage.FlagDeleted != 0 {
			deleted++
		}
		size += m.Size
	}
	return &imap.StatusData{
		Mailbox:        mb.String(),
		NumMessages:    &messages,
		UIDNext:        uidNext,
		UIDValidity:    box.UIDValidity,
		NumUnseen:      &unseen,
		NumDeleted:     &deleted,
		Size:           &size,
		NumRecent:      &recent,
		DeletedStorage: &zero,
	}, nil
}

func (s *session) Namespace() (_ *imap.NamespaceData, err error) {
	defer s.polled(&err)
	if err := s.command("namespace"); err != nil {
		return nil, err
	}
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}}, nil
}

// ID answers RFC 2971's ID, which Thunderbird and Apple Mail send, the latter before
// logging in: imapserver closes a connection on an unknown command before login. The
// client's name is logged, to tell which client a session was; the server says only
// its name.
func (s *session) ID(client *imap.IDData) (_ *imap.IDData, err error) {
	defer s.polled(&err)
	if err := s.command("id"); err != nil {
		return nil, err
	}
	if client != nil {
		s.logger.Debug("client identified", "name", client.Name, "version", client.Version)
	}
	return &imap.IDData{Name: "Mayfly"}, nil
}

// Limits on matching an APPEND to Sent with the sent copy it repeats: the client's
// copy is read only this far for its header, and only this many of the newest sent
// copies are looked at, as clients APPEND right after the message went out.
const (
	appendHeaderMax = 64 << 10
	appendCopies    = 20
)

// Append refuses every APPEND but one: mail reaches INBOX over SMTP only. Clients such
// as Thunderbird APPEND what they have just sent to Sent, but the submission server,
// the only way an inbox sends, has kept the copy there already. An APPEND to Sent whose
// Message-ID is that of a sent copy we keep is answered OK with that copy's UID, and
// nothing is stored: the client is satisfied and no reply shows twice. Others get a NO
// that says to turn the client's copy off.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (_ *imap.AppendData, err error) {
	defer s.polled(&err)
	defer s.guard("append", &err)
	if err := s.command("append"); err != nil {
		return nil, err
	}
	mb, ok := mailboxNamed(name)
	if !ok {
		return nil, noMailbox(name)
	}
	if mb != mailboxSent {
		return nil, cannot("Mail arrives over SMTP only; APPEND is not supported")
	}
	// imapserver reads and discards whatever is left of the literal.
	head, err := io.ReadAll(io.LimitReader(r, appendHeaderMax))
	if err != nil {
		return nil, err
	}
	if id := headerEnvelope(head).MessageID; id != "" {
		data, err := s.sentCopy(id)
		if err != nil {
			return nil, s.storeErr("append", err)
		}
		if data != nil {
			s.logger.Debug("append to Sent matched a sent copy", "uid", data.UID)
			return data, nil
		}
	}
	return nil, cannot("Sent keeps its own copy of every reply sent through this server and takes no other mail; turn off saving a copy of sent mail")
}

// listing reads the inbox's UID state and its whole list, which STATUS and the
// sent-copy match both count from.
func (s *session) listing(ctx context.Context) (storage.Mailbox, []storage.Message, error) {
	box, err := s.srv.store.Mailbox(ctx, s.inbox)
	if err != nil {
		return storage.Mailbox{}, nil, err
	}
	list, err := s.srv.store.List(ctx, s.inbox, storage.Page{})
	return box, list, err
}

// sentCopy returns the APPENDUID of the newest sent copy with Message-ID id among the
// last appendCopies, or nil when none has it.
func (s *session) sentCopy(id string) (*imap.AppendData, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	box, list, err := s.listing(ctx)
	if err != nil {
		return nil, err
	}
	looked := 0
	for i := range list { // newest first
		m := &list[i]
		if !m.Sent {
			continue
		}
		if looked++; looked > appendCopies {
			break
		}
		env := s.srv.envelopes.get(m.ID)
		if env == nil {
			raw, err := s.srv.store.Raw(ctx, s.inbox, m.ID)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			env = headerEnvelope(raw)
			s.srv.envelopes.put(m.ID, env)
		}
		if env.MessageID == id {
			return &imap.AppendData{UIDValidity: box.UIDValidity, UID: imap.UID(m.UID)}, nil
		}
	}
	return nil, nil
}

// Copy answers COPY: to Trash it deletes, as Move does; clients without MOVE copy to
// Trash, then mark \Deleted and expunge what is already gone.
func (s *session) Copy(numSet imap.NumSet, dest string) (_ *imap.CopyData, err error) {
	defer s.polled(&err)
	defer s.guard("copy", &err)
	if err := s.command(uidName("copy", numSet)); err != nil {
		return nil, err
	}
	if err := s.trash(numSet, dest, "copied"); err != nil {
		return nil, err
	}
	// No COPYUID: Trash keeps nothing, so there are no UIDs to give, as for a mailbox
	// without persistent UIDs (RFC 4315's UIDNOTSTICKY case).
	return nil, nil
}

// Move answers MOVE: only to Trash, where it deletes. The EXPUNGE responses come from
// the view, in the poll imapserver makes before the tagged OK.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) (err error) {
	defer s.polled(&err)
	defer s.guard("move", &err)
	if err := s.command(uidName("move", numSet)); err != nil {
		return err
	}
	return s.trash(numSet, dest, "moved")
}

// trash deletes the messages of numSet from the store for a COPY or MOVE to Trash, and
// refuses any other destination: a message's mailbox is fixed by how it came.
func (s *session) trash(numSet imap.NumSet, dest, verb string) error {
	if mb, ok := mailboxNamed(dest); !ok || mb != mailboxTrash {
		return cannot(fmt.Sprintf("Messages cannot be %s to %q: INBOX holds the mail received, Sent the replies sent; only Trash takes messages, and deletes them", verb, dest))
	}
	v := s.view
	if v.readOnly {
		return cannot(fmt.Sprintf("%s is read-only (EXAMINE): SELECT it to delete messages", v.mailbox))
	}
	for _, t := range v.resolve(numSet) {
		if err := s.delete(t.meta.id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return s.storeErr(verb+" delete", err)
		}
		s.logger.Debug("deleted to trash", "id", t.meta.id, "uid", t.meta.uid)
		v.gone(t.meta.uid)
	}
	return nil
}

// Poll is imapserver's NOOP and CHECK, and it follows every other command that
// succeeded after login.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if !s.answered.Swap(false) {
		if err := s.take(); err != nil {
			return err
		}
	}
	if s.view == nil {
		return nil
	}
	return s.view.poll(w, allowExpunge)
}

// Idle does not set answered: it runs beside imapserver's reading of DONE, and the
// Poll after it counts as a command of its own, so an IDLE takes two of CommandRate.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := s.command("idle"); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	v := s.view
	s.idling.Add(1)
	s.mu.Unlock()
	defer s.idling.Done()
	if v == nil {
		// Nothing selected, nothing to report: wait for DONE like any IDLE.
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	return v.idle(w, stop, s.ctx)
}

func uidName(command string, numSet imap.NumSet) string {
	if _, ok := numSet.(imap.UIDSet); ok {
		return "uid " + command
	}
	return command
}
