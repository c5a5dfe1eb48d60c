package backends

import (
	"errors"
)

type RcptError error

var (
	NoSuchUser          = RcptError(errors.New("no such user"))
	StorageNotAvailable = RcptError(errors.New("storage not available"))
	StorageTooBusy      = RcptError(errors.New("storage too busy"))
	StorageTimeout      = RcptError(errors.New("storage timeout"))
	QuotaExceeded       = RcptError(errors.New("quota exceeded"))
	UserSuspended       = RcptError(errors.New("user suspended"))
	StorageError        = RcptError(errors.New("storage error"))
)

// RcptReply is a RcptError that gives the whole reply to the RCPT, its own code
// included, where any other RcptError's text follows the code of the canned
// FailRcptCmd. A backend can so answer a recipient with the code its reason calls
// for (550 for a refusal for good, 451 to have the sender try again later), and have
// the server reset the transaction or close the connection after the reply.
type RcptReply struct {
	// Reply is sent as is, e.g. "550 5.1.1 no such user"; without the line's CRLF.
	Reply string
	// Reset forgets the transaction after the reply, as RSET would: the sender must
	// give MAIL again before another RCPT.
	Reset bool
	// ResetRcpt, when Reset, answers each RCPT that follows before the next MAIL or
	// RSET in place of the 503 for a RCPT without MAIL: a pipelining client sent them
	// in the transaction that was reset (RFC 2920), and a 503 would refuse those
	// recipients for good. Without a code of its own, a 4xx such as "452 4.5.3 ..."
	// has the client send to them in a new transaction.
	ResetRcpt string
	// Close closes the connection after the reply (which should then be a 421,
	// RFC 5321 section 3.8).
	Close bool
}

func (r *RcptReply) Error() string { return r.Reply }
