package imapd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

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

	// mu guards view against Idle's goroutine, which imapserver leaves running when
	// the connection fails during IDLE (or the client ends it with something other
	// than DONE): Close must wait for it before it closes the view.
	mu     sync.Mutex
	view   *view // the selected INBOX, nil when none is
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

// guard turns a panic in a command into a NO for that command, so that one odd
// message or request costs the client one answer, not its connection.
func (s *session) guard(command string, err *error) {
	if p := recover(); p != nil {
		s.logger.Error("panic in command", "command", command, "inbox", s.inbox, "err", p, "stack", string(debug.Stack()))
		*err = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error"}
	}
}

// Login checks the user and password of LOGIN, and of AUTHENTICATE PLAIN, which
// imapserver decodes (and whose authorization identity it checks) for us.
func (s *session) Login(username, password string) error {
	s.count("login")
	inbox, err := s.srv.authenticate(username, password)
	if err != nil {
		s.srv.metrics.logins.WithLabelValues("failed").Inc()
		s.logger.Debug("login refused", "err", err)
		// Tokens are too long to guess; the pause only keeps a script from trying
		// addresses and keys as fast as the network allows.
		select {
		case <-time.After(s.srv.authFailDelay):
		case <-s.ctx.Done():
		}
		return imapserver.ErrAuthFailed
	}
	s.inbox = inbox
	s.logger = s.logger.With("inbox", inbox)
	s.srv.metrics.logins.WithLabelValues("ok").Inc()
	s.logger.Debug("logged in")
	return nil
}

var (
	errBadUser       = errors.New("user is not an address")
	errForeignDomain = errors.New("address is not on one of our domains")
	errBadPassword   = errors.New("password is neither the inbox's token nor the admin key")
)

// authenticate returns the inbox that user names if password opens it. The user is
// the address as a mail client would have it, plus-tag and capitals allowed.
func (s *Server) authenticate(user, password string) (string, error) {
	inbox, _, err := storage.ParseAddress(user)
	if err != nil {
		return "", errBadUser
	}
	if !s.domains[storage.Domain(inbox)] {
		return "", errForeignDomain
	}
	if !s.opts.Keys.Opens(inbox, password) {
		return "", errBadPassword
	}
	return inbox, nil
}

// The one mailbox. RFC 9051 section 5.1: INBOX is case-insensitive.
const (
	inboxName = "INBOX"
	delim     = '/'
)

func isInbox(name string) bool { return strings.EqualFold(name, inboxName) }

func noMailbox(name string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: fmt.Sprintf("No mailbox %q: each address has one, INBOX", name)}
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

func (s *session) Select(mailbox string, options *imap.SelectOptions) (data *imap.SelectData, err error) {
	defer s.guard("select", &err)
	if options.ReadOnly {
		s.count("examine")
	} else {
		s.count("select")
	}
	if !isInbox(mailbox) {
		return nil, noMailbox(mailbox)
	}
	s.setView(nil) // imapserver unselects first; this is for safety only
	v, data, err := openView(s, options.ReadOnly)
	if err != nil {
		return nil, s.storeErr("select", err)
	}
	s.setView(v)
	return data, nil
}

func (s *session) Unselect() error {
	s.count("unselect")
	s.setView(nil)
	return nil
}

func (s *session) Create(mailbox string, options *imap.CreateOptions) error {
	s.count("create")
	return cannot("Each address has one mailbox, INBOX; no others can be made")
}

func (s *session) Delete(mailbox string) error {
	s.count("delete")
	if !isInbox(mailbox) {
		return noMailbox(mailbox)
	}
	return cannot("INBOX cannot be deleted; its mail expires by itself")
}

func (s *session) Rename(mailbox, newName string, options *imap.RenameOptions) error {
	s.count("rename")
	if !isInbox(mailbox) {
		return noMailbox(mailbox)
	}
	return cannot("INBOX cannot be renamed")
}

func (s *session) Subscribe(mailbox string) error {
	s.count("subscribe")
	if !isInbox(mailbox) {
		return noMailbox(mailbox)
	}
	return nil // INBOX is always subscribed
}

func (s *session) Unsubscribe(mailbox string) error {
	s.count("unsubscribe")
	if !isInbox(mailbox) {
		return noMailbox(mailbox)
	}
	return cannot("INBOX is always subscribed")
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) (err error) {
	defer s.guard("list", &err)
	s.count("list")
	if len(patterns) == 0 {
		// RFC 9051 section 6.3.9: LIST "" "" asks for the hierarchy delimiter.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	if options.SelectSpecialUse {
		return nil // INBOX has no special use
	}
	// The name is all letters, so matching upper-cased is matching INBOX
	// case-insensitively.
	match := false
	for _, p := range patterns {
		if imapserver.MatchList(inboxName, delim, strings.ToUpper(ref), strings.ToUpper(p)) {
			match = true
			break
		}
	}
	if !match {
		return nil
	}
	data := &imap.ListData{Mailbox: inboxName, Delim: delim, Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}}
	if options.SelectSubscribed || options.ReturnSubscribed {
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	if options.ReturnStatus != nil {
		if data.Status, err = s.status(options.ReturnStatus); err != nil {
			return s.storeErr("list status", err)
		}
	}
	return w.WriteList(data)
}

func (s *session) Status(mailbox string, options *imap.StatusOptions) (data *imap.StatusData, err error) {
	defer s.guard("status", &err)
	s.count("status")
	if !isInbox(mailbox) {
		return nil, noMailbox(mailbox)
	}
	data, err = s.status(options)
	if err != nil {
		return nil, s.storeErr("status", err)
	}
	return data, nil
}

// status answers STATUS from the store. Every counter is filled in, asked for or not:
// imapserver dereferences the pointers of whatever the client asked for, including
// items we do not support (DELETED-STORAGE), and a nil one would panic.
func (s *session) status(options *imap.StatusOptions) (*imap.StatusData, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	mb, err := s.srv.store.Mailbox(ctx, s.inbox)
	if err != nil {
		return nil, err
	}
	messages, unseen, deleted := uint32(mb.Messages), uint32(0), uint32(0)
	var size, zero int64
	if options.NumUnseen || options.NumDeleted || options.Size {
		list, err := s.srv.store.List(ctx, s.inbox, storage.Page{})
		if err != nil {
			return nil, err
		}
		messages = uint32(len(list))
		for _, m := range list {
			if m.Flags&storage.FlagSeen == 0 {
				unseen++
			}
			if m.Flags&storage.FlagDeleted != 0 {
				deleted++
			}
			size += m.Size
		}
	}
	var recent uint32
	return &imap.StatusData{
		Mailbox:        inboxName,
		NumMessages:    &messages,
		UIDNext:        imap.UID(mb.UIDNext),
		UIDValidity:    mb.UIDValidity,
		NumUnseen:      &unseen,
		NumDeleted:     &deleted,
		Size:           &size,
		NumRecent:      &recent,
		DeletedStorage: &zero,
	}, nil
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	s.count("namespace")
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}}, nil
}

func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	s.count("append")
	if !isInbox(mailbox) {
		return nil, noMailbox(mailbox)
	}
	return nil, cannot("Mail arrives over SMTP only; APPEND is not supported")
}

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	s.count(uidName("copy", numSet))
	return nil, cannot("There is no other mailbox to copy to")
}

func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	s.count(uidName("move", numSet))
	return cannot("There is no other mailbox to move to")
}

func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.view == nil {
		return nil
	}
	return s.view.poll(w, allowExpunge)
}

func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.count("idle")
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
