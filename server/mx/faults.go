package mx

import (
	"context"
	"fmt"
	"time"

	"github.com/flashmob/go-guerrilla/backends"
	"github.com/flashmob/go-guerrilla/mail"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/storage"
)

// Per-inbox SMTP faults (storage.Fault, the "faults" of POST /api/v1/inboxes): the
// receiver answers an inbox's mail with the codes and delays the inbox asks for, so
// that a sender's retry logic can be tested. The recipient is known only at RCPT, so
// the connect, mail and rcpt stages are all decided there (one Settings read per RCPT),
// and the data stage at the end of DATA.

// Stages of a fault, in the order a session reaches them.
const (
	stageConnect = "connect"
	stageMail    = "mail"
	stageRcpt    = "rcpt"
	stageData    = "data"
)

// rcptStages are the stages decided at RCPT, in the order a real server would refuse.
var rcptStages = [...]string{stageConnect, stageMail, stageRcpt}

// Classes of mayfly_smtp_faults_total: a refusal by its code's class, delayed or not,
// or a fault that only delays.
const (
	class4xx   = "4xx"
	class5xx   = "5xx"
	classDelay = "delay"
)

func newFaultsMetric() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mayfly_smtp_faults_total",
		Help: "Inbox faults applied (an inbox's \"faults\" setting), by stage (connect, mail, rcpt, data) and class: 4xx or 5xx for a refusal, delayed or not, delay for a fault that only delays.",
	}, []string{"stage", "class"})
	for _, stage := range []string{stageConnect, stageMail, stageRcpt, stageData} {
		for _, class := range []string{class4xx, class5xx, classDelay} {
			v.WithLabelValues(stage, class)
		}
	}
	return v
}

// faultsKey holds a transaction's *txFaults in the envelope's Values, which
// go-guerrilla empties whenever the transaction ends.
const faultsKey = "mayfly.faults"

// txFaults is what a transaction remembers of its recipients' faults.
type txFaults struct {
	// alone is the inbox whose connect, mail or data faults act on the whole
	// transaction, which it so has to itself.
	alone string
	data  bool // alone has data faults, applied at the end of DATA
}

// applies reports whether f is not used up, as far as its Attempts say.
func applies(f storage.Fault) bool { return f.Times <= 0 || f.Attempts < f.Times }

// isolating reports whether faults still hold a stage whose reply acts on the whole
// transaction (connect closes the session, mail resets it, data refuses the message),
// and whether one of them is of the data stage.
func isolating(faults []storage.Fault) (isolate, data bool) {
	for _, f := range faults {
		if !applies(f) {
			continue
		}
		switch f.Stage {
		case stageConnect, stageMail:
			isolate = true
		case stageData:
			isolate, data = true, true
		}
	}
	return isolate, data
}

// errFaultStore answers a recipient whose faults could not be read or counted: not
// accepted silently, as a test relies on its fault being applied. While the store is
// down, this is where most senders are told to retry.
func (s *Server) errFaultStore(inbox string) *backends.RcptReply {
	s.metrics.rejected.WithLabelValues(rejectStore).Inc()
	return &backends.RcptReply{Reply: fmt.Sprintf("451 4.3.0 <%s> temporary storage failure, try again later", headerSafe(inbox))}
}

// faultsAtRcpt applies inbox's faults of the connect, mail and rcpt stages to the RCPT
// that named it, the last of e.RcptTo, and keeps a transaction that the faults act on
// to the inbox alone.
func (b *backend) faultsAtRcpt(e *mail.Envelope, inbox string) backends.RcptError {
	s := b.s
	tx, _ := e.Values[faultsKey].(*txFaults)
	if tx != nil && tx.alone != inbox {
		// RFC 5321 section 4.5.3.1.10: a 452 has the sender send to this recipient in
		// another transaction.
		return &backends.RcptReply{Reply: fmt.Sprintf("452 4.5.3 <%s> not in this transaction: <%s> has faults (its faults setting) that act on the whole transaction, send to <%[1]s> in another",
			headerSafe(inbox), headerSafe(tx.alone))}
	}
	set, err := s.settings(inbox)
	if err != nil {
		s.logger.Error("read inbox settings", "remote", e.RemoteIP, "inbox", inbox, "err", err)
		return s.errFaultStore(inbox)
	}
	if len(set.Faults) == 0 {
		return nil
	}
	isolate, data := isolating(set.Faults)
	if isolate && tx == nil {
		for _, r := range e.RcptTo[:len(e.RcptTo)-1] {
			if other, _, err := storage.ParseAddress(r.User + "@" + r.Host); err == nil && other != inbox {
				return &backends.RcptReply{Reply: fmt.Sprintf("452 4.5.3 <%s> has faults (its faults setting) that act on the whole transaction, send to it in a transaction of its own",
					headerSafe(inbox))}
			}
		}
	}
	for _, stage := range rcptStages {
		f, ok, err := s.faultAttempt(inbox, set.Faults, stage)
		if err != nil {
			s.logger.Error("count a fault attempt", "remote", e.RemoteIP, "inbox", inbox, "err", err)
			return s.errFaultStore(inbox)
		}
		if !ok {
			continue
		}
		reply, stopped := b.apply(e, inbox, stage, f)
		if stopped {
			// go-guerrilla has already told idle sessions to end, and would wait for
			// this one's next command for a whole Timeout.
			return &backends.RcptReply{Reply: "421 4.3.2 " + headerSafe(s.opts.Hostname) + " shutting down, try again later", Close: true}
		}
		if reply != "" {
			r := &backends.RcptReply{Reply: reply, Close: stage == stageConnect}
			if stage == stageMail {
				// A pipelining sender's next RCPTs were of the transaction reset: a
				// 503 (RCPT without MAIL) would refuse those other inboxes for good.
				r.Reset = true
				r.ResetRcpt = fmt.Sprintf("452 4.5.3 transaction reset by the faults of <%s> (its faults setting), send to this recipient in a new one", headerSafe(inbox))
			}
			return r
		}
	}
	if isolate {
		if e.Values == nil {
			e.Values = make(map[string]any)
		}
		e.Values[faultsKey] = &txFaults{alone: inbox, data: data}
	}
	return nil
}

// faultsAtData applies the data stage's faults of the transaction's inbox, when it has
// some, at the end of DATA: the reply to send in place of storing the message, or "".
func (b *backend) faultsAtData(e *mail.Envelope) string {
	tx, _ := e.Values[faultsKey].(*txFaults)
	if tx == nil || !tx.data {
		return ""
	}
	s := b.s
	// Read again: the faults may have changed since the RCPT, and the counts with them.
	set, err := s.settings(tx.alone)
	if err == nil {
		var f storage.Fault
		var ok bool
		if f, ok, err = s.faultAttempt(tx.alone, set.Faults, stageData); err == nil && ok {
			// Cut short by a shutdown, the reply is the same: go-guerrilla ends the
			// session after the end of DATA's reply then.
			reply, _ := b.apply(e, tx.alone, stageData, f)
			return reply
		}
	}
	if err != nil {
		s.logger.Error("apply data faults", "remote", e.RemoteIP, "inbox", tx.alone, "err", err)
		s.metrics.messages.WithLabelValues("failed").Inc()
		return "451 4.3.0 Error: temporary storage failure, try again later"
	}
	return ""
}

// settings reads inbox's settings within StoreTimeout.
func (s *Server) settings(inbox string) (storage.InboxSettings, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StoreTimeout)
	defer cancel()
	return s.store.Settings(ctx, inbox)
}

// faultAttempt counts an attempt at the first of faults of stage that is not used up
// and returns it; ok is false when none applies. Faults apply in their order, each for
// its Times attempts (0: every attempt). Each count has StoreTimeout of its own: an
// earlier stage's delay may have taken longer.
func (s *Server) faultAttempt(inbox string, faults []storage.Fault, stage string) (f storage.Fault, ok bool, err error) {
	for i, f := range faults {
		if f.Stage != stage || !applies(f) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.StoreTimeout)
		n, err := s.store.FaultAttempt(ctx, inbox, i)
		cancel()
		if err != nil {
			return f, false, fmt.Errorf("fault attempt %s %d: %w", inbox, i, err)
		}
		if f.Times <= 0 || n <= f.Times {
			f.Attempts = n
			return f, true, nil
		}
		// Another session's attempt used it up since Settings: the next one applies.
	}
	return storage.Fault{}, false, nil
}

// apply waits f's delay and returns its reply, "" when it only delays: the normal
// reply follows. stopped says the server began to shut down during the delay.
func (b *backend) apply(e *mail.Envelope, inbox, stage string, f storage.Fault) (reply string, stopped bool) {
	s := b.s
	stopped = !b.pause(f.Delay)
	// The API takes 400 to 599; anything else (a store edited by hand) refuses nothing.
	if f.Code < 400 || f.Code > 599 {
		s.metrics.faults.WithLabelValues(stage, classDelay).Inc()
		s.logger.Info("fault", "remote", e.RemoteIP, "inbox", inbox, "stage", stage, "attempt", f.Attempts, "delay", f.Delay)
		return "", stopped
	}
	class := class4xx
	if f.Code >= 500 {
		class = class5xx
	}
	switch {
	case f.Message != "":
		reply = fmt.Sprintf("%d %s", f.Code, headerSafe(f.Message))
	case class == class4xx:
		reply = fmt.Sprintf("%d 4.7.1 <%s> greylisted by this inbox's faults (%s stage), try again later", f.Code, headerSafe(inbox), stage)
	default:
		reply = fmt.Sprintf("%d 5.7.1 <%s> refused by this inbox's faults (%s stage)", f.Code, headerSafe(inbox), stage)
	}
	s.metrics.faults.WithLabelValues(stage, class).Inc()
	s.logger.Info("fault", "remote", e.RemoteIP, "inbox", inbox, "stage", stage, "code", f.Code, "attempt", f.Attempts, "delay", f.Delay)
	return reply, stopped
}

// pause waits d, at most Options.Timeout (past it a sender gives up on the reply as we
// would on its command), and no longer once the server shuts down: false then.
func (b *backend) pause(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(min(d, b.s.opts.Timeout))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.stop:
		return false
	}
}
