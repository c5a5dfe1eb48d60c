package mx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/server/testlib"
	"github.com/mayfly-mail/mayfly/storage"
)

// setFaults gives inbox faults, as POST /api/v1/inboxes does.
func setFaults(t testing.TB, st storage.Store, inbox string, faults ...storage.Fault) {
	t.Helper()
	if err := st.SetInbox(context.Background(), inbox, storage.InboxSettings{Faults: faults}); err != nil {
		t.Fatal(err)
	}
}

// attempts returns the attempts counted at each of inbox's faults.
func attempts(t testing.TB, st storage.Store, inbox string) []int {
	t.Helper()
	set, err := st.Settings(context.Background(), inbox)
	if err != nil {
		t.Fatal(err)
	}
	n := make([]int, len(set.Faults))
	for i, f := range set.Faults {
		n[i] = f.Attempts
	}
	return n
}

// stored returns how many messages inbox holds.
func stored(t testing.TB, st storage.Store, inbox string) int {
	t.Helper()
	msgs, err := st.List(context.Background(), inbox, storage.Page{})
	if err != nil {
		t.Fatal(err)
	}
	return len(msgs)
}

// wantReply requires err to be the SMTP reply code with a text that starts with text.
func wantReply(t *testing.T, what string, err error, code int, text string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("%s: %v, want %d %s", what, err, code, text)
	}
	got := fmt.Sprintf("%d.%d.%d %s", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	if !strings.HasPrefix(got, text) {
		t.Fatalf("%s: %d %s, want %d %s...", what, code, got, code, text)
	}
}

// TestFaultStages applies each stage's fault, 4xx and 5xx, to the inbox that has it
// over a real session: its attempt refused as the stage says (the RCPT; the RCPT and
// the transaction; the RCPT and the session; the end of DATA), another inbox of the
// same session untouched, and the next attempt delivered.
func TestFaultStages(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		reg := prometheus.NewRegistry()
		addr := start(t, Options{Options: limit.Options{Metrics: reg}}, st)
		for _, stage := range []string{stageConnect, stageMail, stageRcpt, stageData} {
			for _, code := range []int{451, 550} {
				t.Run(fmt.Sprintf("%s %d", stage, code), func(t *testing.T) {
					faulty := fmt.Sprintf("f-%s-%d@mayfly.test", stage, code)
					clean := fmt.Sprintf("c-%s-%d@mayfly.test", stage, code)
					setFaults(t, st, faulty, storage.Fault{Stage: stage, Code: code, Times: 1})
					want := fmt.Sprintf("4.7.1 <%s> greylisted by this inbox's faults (%s stage), try again later", faulty, stage)
					if code >= 500 {
						want = fmt.Sprintf("5.7.1 <%s> refused by this inbox's faults (%s stage)", faulty, stage)
					}
					c := dial(t, addr)
					// The clean inbox first, in a transaction of its own.
					if err := c.SendMail("s@sender.test", []string{clean}, strings.NewReader("Subject: clean\r\n\r\nx\r\n")); err != nil {
						t.Fatalf("to the clean inbox: %v", err)
					}
					if err := c.Mail("s@sender.test", nil); err != nil {
						t.Fatal(err)
					}
					rcpt := c.Rcpt(faulty, nil)
					switch stage {
					case stageData:
						if rcpt != nil {
							t.Fatalf("RCPT of a data fault: %v, want 250", rcpt)
						}
						wantReply(t, "end of DATA", send(c, "Subject: faulty\r\n\r\nx\r\n"), code, want)
					default:
						wantReply(t, "RCPT", rcpt, code, want)
					}
					switch stage {
					case stageConnect:
						if err := c.Reset(); err == nil {
							t.Fatal("the session is still open after a connect fault")
						}
						c = dial(t, addr)
					case stageMail:
						// The MAIL was forgotten: a RCPT must follow a new one, and one a
						// pipelining sender sent in the same transaction is retried.
						wantReply(t, "RCPT after the reset", c.Rcpt(clean, nil), 452, "4.5.3 transaction reset by the faults of <"+faulty+">")
						if err := c.Reset(); err != nil {
							t.Fatal(err)
						}
						wantReply(t, "RCPT without MAIL", c.Rcpt(clean, nil), 503, "5.5.1")
					case stageRcpt:
						// Other recipients of the transaction are unaffected.
						if err := c.Rcpt(clean, nil); err != nil {
							t.Fatalf("RCPT of the clean inbox after the refusal: %v", err)
						}
						if err := send(c, "Subject: clean\r\n\r\nx\r\n"); err != nil {
							t.Fatal(err)
						}
					}
					if err := c.Reset(); err != nil && stage != stageConnect {
						t.Fatal(err)
					}
					if got := stored(t, st, faulty); got != 0 {
						t.Fatalf("%s holds %d messages after its refusal, want 0", faulty, got)
					}
					if err := c.SendMail("s@sender.test", []string{faulty}, strings.NewReader("Subject: faulty\r\n\r\nx\r\n")); err != nil {
						t.Fatalf("second attempt: %v, want it delivered", err)
					}
					if got := stored(t, st, faulty); got != 1 {
						t.Errorf("%s holds %d messages, want 1", faulty, got)
					}
					wantClean := 1
					if stage == stageRcpt {
						wantClean = 2
					}
					if got := stored(t, st, clean); got != wantClean {
						t.Errorf("%s holds %d messages, want %d", clean, got, wantClean)
					}
					if got := attempts(t, st, faulty); got[0] != 1 {
						t.Errorf("attempts %v, want [1]", got)
					}
					class := "4xx"
					if code >= 500 {
						class = "5xx"
					}
					if n := faultsMetric(t, reg, stage, class); n != 1 {
						t.Errorf("mayfly_smtp_faults_total{stage=%q,class=%q} = %v, want 1", stage, class, n)
					}
				})
			}
		}
	})
}

// faultsMetric reads mayfly_smtp_faults_total{stage, class}.
func faultsMetric(t *testing.T, reg *prometheus.Registry, stage, class string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mayfly_smtp_faults_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["stage"] == stage && labels["class"] == class {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no mayfly_smtp_faults_total{stage=%q,class=%q}", stage, class)
	return 0
}

// TestFaultSequence: faults of a stage apply in their order, each for its times, and
// times 0 is every attempt; a message of the inbox's own is its reply's text, less
// any CR or LF.
func TestFaultSequence(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		addr := start(t, Options{}, st)
		c := dial(t, addr)
		setFaults(t, st, "seq@mayfly.test",
			storage.Fault{Stage: stageRcpt, Code: 451, Times: 2},
			storage.Fault{Stage: stageRcpt, Code: 550, Times: 1, Message: "5.1.1 gone\r\n250 2.0.0 smuggled"})
		if err := c.Mail("s@sender.test", nil); err != nil {
			t.Fatal(err)
		}
		wantReply(t, "attempt 1", c.Rcpt("seq@mayfly.test", nil), 451, "4.7.1 <seq@mayfly.test> greylisted")
		wantReply(t, "attempt 2", c.Rcpt("seq+tag@mayfly.test", nil), 451, "4.7.1 <seq@mayfly.test> greylisted")
		wantReply(t, "attempt 3", c.Rcpt("seq@mayfly.test", nil), 550, "5.1.1 gone250 2.0.0 smuggled")
		if err := c.Rcpt("seq@mayfly.test", nil); err != nil {
			t.Fatalf("attempt 4: %v, want 250", err)
		}
		if err := c.Reset(); err != nil {
			t.Fatalf("RSET after the faults: %v (a reply line too many?)", err)
		}
		if got, want := attempts(t, st, "seq@mayfly.test"), []int{2, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("attempts %v, want %v", got, want)
		}

		setFaults(t, st, "always@mayfly.test", storage.Fault{Stage: stageRcpt, Code: 452})
		if err := c.Mail("s@sender.test", nil); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			wantReply(t, fmt.Sprint("always, attempt ", i+1), c.Rcpt("always@mayfly.test", nil), 452, "4.7.1")
		}
		if got := attempts(t, st, "always@mayfly.test"); got[0] != 3 {
			t.Errorf("attempts of times 0: %v, want [3]", got)
		}
	})
}

// TestFaultDelay: a delay comes before the reply (the normal one when the fault has no
// code), and at the end of DATA too.
func TestFaultDelay(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		reg := prometheus.NewRegistry()
		addr := start(t, Options{Options: limit.Options{Metrics: reg}}, st)
		const delay = 300 * time.Millisecond
		setFaults(t, st, "slow@mayfly.test",
			storage.Fault{Stage: stageRcpt, Delay: delay, Times: 1},
			storage.Fault{Stage: stageData, Code: 451, Delay: delay, Times: 1})
		c := dial(t, addr)
		if err := c.Mail("s@sender.test", nil); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		if err := c.Rcpt("slow@mayfly.test", nil); err != nil {
			t.Fatalf("RCPT with a delay only: %v, want 250", err)
		}
		if took := time.Since(begin); took < delay {
			t.Errorf("RCPT answered after %v, want at least %v", took, delay)
		}
		begin = time.Now()
		wantReply(t, "end of DATA", send(c, "Subject: x\r\n\r\nx\r\n"), 451, "4.7.1")
		if took := time.Since(begin); took < delay {
			t.Errorf("DATA answered after %v, want at least %v", took, delay)
		}
		if err := c.SendMail("s@sender.test", []string{"slow@mayfly.test"}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatalf("second attempt: %v", err)
		}
		if n := faultsMetric(t, reg, stageRcpt, classDelay); n != 1 {
			t.Errorf("faults{rcpt, delay} = %v, want 1", n)
		}
		if n := faultsMetric(t, reg, stageData, class4xx); n != 1 {
			t.Errorf("faults{data, 4xx} = %v, want 1", n)
		}
	})
}

// TestFaultDelayThenRefusal: a connect fault that only delays, longer than the store's
// timeout, then the rcpt stage's refusal, at the same RCPT; and a delay is cut at the
// session's Timeout.
func TestFaultDelayThenRefusal(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		const delay = 500 * time.Millisecond
		addr := start(t, Options{StoreTimeout: delay / 2, Timeout: time.Second}, st)
		setFaults(t, st, "twice@mayfly.test",
			storage.Fault{Stage: stageConnect, Delay: delay, Times: 1},
			storage.Fault{Stage: stageRcpt, Code: 451, Times: 1})
		setFaults(t, st, "long@mayfly.test", storage.Fault{Stage: stageRcpt, Delay: time.Hour, Times: 1})
		c := dial(t, addr)
		if err := c.Mail("s@sender.test", nil); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		wantReply(t, "RCPT", c.Rcpt("twice@mayfly.test", nil), 451, "4.7.1 <twice@mayfly.test> greylisted by this inbox's faults (rcpt stage)")
		if took := time.Since(begin); took < delay {
			t.Errorf("RCPT answered after %v, want at least %v", took, delay)
		}
		begin = time.Now()
		if err := c.Rcpt("long@mayfly.test", nil); err != nil {
			t.Fatalf("RCPT after a delay cut at Timeout: %v, want 250", err)
		}
		if took := time.Since(begin); took < time.Second || took > 10*time.Second {
			t.Errorf("RCPT with an hour's delay answered after %v, want the Timeout, 1s", took)
		}
	})
}

// TestFaultIsolation: an inbox whose faults act on the whole transaction has it to
// itself: named after another inbox, or another inbox named after it, the later RCPT is
// answered 452 4.5.3 and the others' mail is delivered (or refused) as if alone.
func TestFaultIsolation(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		addr := start(t, Options{}, st)
		for _, stage := range []string{stageConnect, stageMail, stageData} {
			t.Run(stage, func(t *testing.T) {
				faulty, clean := "iso-"+stage+"@mayfly.test", "iso-clean-"+stage+"@mayfly.test"
				setFaults(t, st, faulty, storage.Fault{Stage: stage, Code: 451})

				// Another inbox first: the faulty one waits for a transaction of its own.
				c := dial(t, addr)
				if err := c.Mail("s@sender.test", nil); err != nil {
					t.Fatal(err)
				}
				if err := c.Rcpt(clean, nil); err != nil {
					t.Fatal(err)
				}
				wantReply(t, "faulty RCPT after another inbox", c.Rcpt(faulty, nil), 452, "4.5.3 <"+faulty+"> has faults")
				if err := send(c, "Subject: x\r\n\r\nx\r\n"); err != nil {
					t.Fatalf("DATA to the clean inbox: %v", err)
				}
				if got := stored(t, st, clean); got != 1 {
					t.Errorf("%s holds %d, want 1", clean, got)
				}
				if got := attempts(t, st, faulty); got[0] != 0 {
					t.Errorf("attempts %v after a 452 4.5.3, want [0]", got)
				}
				if stage != stageData {
					return
				}
				// The faulty inbox first (accepted, its fault is at DATA): another inbox
				// waits, and another address of the same inbox does not.
				if err := c.Mail("s@sender.test", nil); err != nil {
					t.Fatal(err)
				}
				if err := c.Rcpt(faulty, nil); err != nil {
					t.Fatal(err)
				}
				if err := c.Rcpt(strings.Replace(faulty, "@", "+tag@", 1), nil); err != nil {
					t.Fatalf("the same inbox, tagged: %v", err)
				}
				wantReply(t, "RCPT after the faulty inbox", c.Rcpt(clean, nil), 452, "4.5.3 <"+clean+"> not in this transaction")
				wantReply(t, "end of DATA", send(c, "Subject: x\r\n\r\nx\r\n"), 451, "4.7.1")
				if got := stored(t, st, clean); got != 1 {
					t.Errorf("%s holds %d, want still 1", clean, got)
				}
				// The transaction ended: the next one starts afresh.
				if err := c.SendMail("s@sender.test", []string{clean}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// TestFaultsUnderLoad: 20 senders at once, each delivering one message to a faulty inbox
// and a clean one in one transaction, as an MTA does, and retrying what was refused or
// deferred: every clean message is stored once and never refused, every faulty one
// refused exactly its times, then stored once.
func TestFaultsUnderLoad(t *testing.T) {
	const senders = 20
	eachStore(t, func(t *testing.T, st storage.Store) {
		// One client address for 20 senders.
		addr := start(t, Options{Options: limit.Options{MaxConnectionsPerIP: 2 * senders}}, st)
		stages := []string{stageConnect, stageMail, stageRcpt, stageData}
		var wg sync.WaitGroup
		errs := make(chan error, 2*senders)
		for i := range senders {
			faulty, clean := fmt.Sprintf("load-f%d@mayfly.test", i), fmt.Sprintf("load-c%d@mayfly.test", i)
			times := 1 + i%3
			code := 451
			if i%2 == 1 {
				code = 554
			}
			setFaults(t, st, faulty, storage.Fault{Stage: stages[i%4], Code: code, Times: times})
			// Half the senders name the faulty inbox first, half the clean one.
			rcpts := []string{faulty, clean}
			if (i/4)%2 == 1 {
				rcpts = []string{clean, faulty}
			}
			wg.Go(func() {
				if err := mtaSend(addr, rcpts, code, map[string]int{faulty: times, clean: 0}); err != nil {
					errs <- fmt.Errorf("sender %d: %w", i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i := range senders {
			for _, inbox := range []string{fmt.Sprintf("load-f%d@mayfly.test", i), fmt.Sprintf("load-c%d@mayfly.test", i)} {
				if got := stored(t, st, inbox); got != 1 {
					t.Errorf("%s holds %d messages, want 1", inbox, got)
				}
			}
		}
	})
}

// mtaSend delivers one message to rcpts as an MTA does: one transaction for all the
// recipients still pending, each round in a new session, until every one is accepted
// (the sessions here are quick: a round is a retry). A recipient answered 452 4.5.3 is
// sent again in the next round; one answered code (at RCPT, or at the end of DATA for
// the recipients accepted) counts a refusal. It fails unless each recipient was refused
// exactly want[rcpt] times.
func mtaSend(addr string, rcpts []string, code int, want map[string]int) error {
	refused := map[string]int{}
	pending := rcpts
	for round := 0; len(pending) > 0; round++ {
		if round > 10 {
			return fmt.Errorf("%v still pending after 10 rounds", pending)
		}
		var err error
		if pending, err = mtaRound(addr, pending, code, refused); err != nil {
			return err
		}
	}
	for r, n := range want {
		if refused[r] != n {
			return fmt.Errorf("refused %v, want %v", refused, want)
		}
	}
	return nil
}

// mtaRound is one session of mtaSend: it returns the recipients still pending.
func mtaRound(addr string, pending []string, code int, refused map[string]int) ([]string, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return nil, err
	}
	if err := c.Mail("s@sender.test", nil); err != nil {
		return nil, err
	}
	var accepted, left []string
	for j, r := range pending {
		err := c.Rcpt(r, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, r)
			continue
		case !errors.As(err, &se):
			// A connect fault closed the session: the rest next round.
			return append(append(left, accepted...), pending[j:]...), nil
		case se.Code == code:
			refused[r]++
		case se.Code == 452 && se.EnhancedCode == smtp.EnhancedCode{4, 5, 3}:
		default:
			return nil, fmt.Errorf("RCPT %s: %v", r, err)
		}
		left = append(left, r)
	}
	if len(accepted) == 0 {
		return left, nil
	}
	err = send(c, "Subject: load\r\n\r\nx\r\n")
	var se *smtp.SMTPError
	switch {
	case err == nil:
	case errors.As(err, &se) && se.Code == code:
		for _, r := range accepted {
			refused[r]++
		}
		left = append(left, accepted...)
	default:
		return nil, fmt.Errorf("DATA to %v: %v", accepted, err)
	}
	return left, nil
}

// TestFaultDelayShutdown: a session held by a long delay does not hold the shutdown: the
// delay ends, the RCPT is answered 421 and the session closed.
func TestFaultDelayShutdown(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		srv := New(Options{Hostname: "mx.mayfly.test", Domains: []string{"mayfly.test"}, Options: limit.Options{ShutdownTimeout: 10 * time.Second}}, st, testLogger(t))
		addr, stop := testlib.Serve(t, srv.Serve)
		setFaults(t, st, "held@mayfly.test", storage.Fault{Stage: stageRcpt, Delay: time.Hour})
		c := dial(t, addr)
		if err := c.Mail("s@sender.test", nil); err != nil {
			t.Fatal(err)
		}
		replied := make(chan error, 1)
		go func() { replied <- c.Rcpt("held@mayfly.test", nil) }()
		testlib.WaitFor(t, "the delay to start", func() bool { return attempts(t, st, "held@mayfly.test")[0] == 1 })
		begin := time.Now()
		stop()
		if took := time.Since(begin); took > 3*time.Second {
			t.Errorf("shutdown took %v with a session in a fault's delay, want it prompt", took)
		}
		wantReply(t, "RCPT cut short", testlib.Next(t, replied, 5*time.Second, "reply to the delayed RCPT"), 421, "4.3.2")
	})
}

// noFaults completes a fake store that only stores: no inbox has faults.
type noFaults struct{}

func (noFaults) Settings(context.Context, string) (storage.InboxSettings, error) {
	return storage.InboxSettings{}, nil
}

func (noFaults) FaultAttempt(context.Context, string, int) (int, error) {
	return 0, errors.New("no faults")
}

// settingsFailing is a store whose Settings fails.
type settingsFailing struct {
	storage.Store
}

func (settingsFailing) Settings(context.Context, string) (storage.InboxSettings, error) {
	return storage.InboxSettings{}, errors.New("store down")
}

// TestFaultSettingsError: a recipient whose settings cannot be read is refused for
// now, not accepted with its faults unapplied.
func TestFaultSettingsError(t *testing.T) {
	eachStore(t, func(t *testing.T, st storage.Store) {
		reg := prometheus.NewRegistry()
		c := dial(t, start(t, Options{Options: limit.Options{Metrics: reg}}, settingsFailing{st}))
		if err := c.Mail("s@sender.test", nil); err != nil {
			t.Fatal(err)
		}
		wantReply(t, "RCPT", c.Rcpt("x@mayfly.test", nil), 451, "4.3.0")
		if n := rejected(t, reg, rejectStore); n != 1 {
			t.Errorf("mayfly_smtp_rejected_total{reason=store} = %v, want 1", n)
		}
	})
}
