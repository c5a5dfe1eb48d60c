package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// The tests of an inbox's settings (SetInbox, Settings, FaultAttempt) and of burn after
// read, which SetFlags applies.

func testSettingsRoundTrip(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)

	set, err := st.Settings(ctx, inbox)
	if err != nil || set.TTL != 0 || set.BurnAfterRead || set.Faults != nil {
		t.Fatalf("Settings of an unknown inbox = %+v, %v; want the zero value", set, err)
	}
	if n, err := st.FaultAttempt(ctx, inbox, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("FaultAttempt of an unknown inbox = %d, %v; want ErrNotFound", n, err)
	}
	if set, err := st.Settings(ctx, inbox); err != nil || set.TTL != 0 || set.BurnAfterRead || set.Faults != nil {
		t.Errorf("Settings of an unknown inbox after FaultAttempt = %+v, %v; want the zero value", set, err)
	}

	want := storage.InboxSettings{
		TTL:           90 * time.Minute,
		BurnAfterRead: true,
		Faults: []storage.Fault{
			{Stage: "rcpt", Code: 451, Times: 1},
			{Stage: "data", Code: 554, Message: "5.7.1 refused: \"test\" {braces} %", Times: 3, Delay: 2500 * time.Millisecond},
			{Stage: "connect", Delay: 2 * time.Second},
		},
	}
	give := want
	give.Faults = slices.Clone(want.Faults)
	give.Faults[0].Attempts = 7 // ignored by SetInbox
	if err := st.SetInbox(ctx, inbox, give); err != nil {
		t.Fatalf("SetInbox: %v", err)
	}
	got, err := st.Settings(ctx, inbox)
	if err != nil || got.TTL != want.TTL || got.BurnAfterRead != want.BurnAfterRead || !slices.Equal(got.Faults, want.Faults) {
		t.Errorf("Settings after SetInbox(%+v) = %+v, %v; want it back, attempts 0", want, got, err)
	}
	if mb, err := st.Mailbox(ctx, inbox); err != nil || mb.UIDValidity == 0 || mb.Messages != 0 {
		t.Errorf("Mailbox after SetInbox = %+v, %v; want a new inbox's state", mb, err)
	}
	if got, err := st.Settings(ctx, "other-"+inbox); err != nil || got.TTL != 0 || got.BurnAfterRead || got.Faults != nil {
		t.Errorf("Settings of another inbox = %+v, %v; want the zero value", got, err)
	}

	// Replacing: every field, the faults cleared.
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Settings(ctx, inbox); err != nil || got.TTL != time.Minute || got.BurnAfterRead || len(got.Faults) != 0 {
		t.Errorf("Settings after SetInbox(TTL 1m) = %+v, %v; want TTL 1m alone", got, err)
	}
	if n, err := st.FaultAttempt(ctx, inbox, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("FaultAttempt after the faults were cleared = %d, %v; want ErrNotFound", n, err)
	}
}

func testFaultCounters(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	faults := []storage.Fault{{Stage: "rcpt", Code: 451, Times: 2}, {Stage: "mail", Code: 421, Message: "busy"}}
	attempt := func(fault, want int) {
		t.Helper()
		if n, err := st.FaultAttempt(ctx, inbox, fault); err != nil || n != want {
			t.Fatalf("FaultAttempt(%d) = %d, %v; want %d", fault, n, err, want)
		}
	}
	attempts := func(why string, want ...int) {
		t.Helper()
		set, err := st.Settings(ctx, inbox)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, f := range set.Faults {
			got = append(got, f.Attempts)
		}
		if !slices.Equal(got, want) {
			t.Errorf("attempts %s = %v, want %v", why, got, want)
		}
	}
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{Faults: faults}); err != nil {
		t.Fatal(err)
	}
	attempt(0, 1)
	attempt(0, 2)
	attempt(1, 1)
	attempts("after three attempts", 2, 1)
	for _, bad := range []int{-1, 2, 1000} {
		if n, err := st.FaultAttempt(ctx, inbox, bad); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("FaultAttempt(%d) of 2 faults = %d, %v; want ErrNotFound", bad, n, err)
		}
	}

	// Only the TTL and burn after read change: the counters stay.
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: time.Hour, BurnAfterRead: true, Faults: slices.Clone(faults)}); err != nil {
		t.Fatal(err)
	}
	attempts("after the TTL changed", 2, 1)
	attempt(0, 3)

	// Any change to the faults restarts them all.
	changed := slices.Clone(faults)
	changed[1].Message = "busier"
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: time.Hour, Faults: changed}); err != nil {
		t.Fatal(err)
	}
	attempts("after a fault changed", 0, 0)
	attempt(1, 1)
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{TTL: time.Hour, Faults: changed}); err != nil {
		t.Fatal(err)
	}
	attempts("after the faults were cleared and set again", 0, 0)
}

func testFaultAttemptConcurrent(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	inbox := inboxFor(t)
	if err := st.SetInbox(ctx, inbox, storage.InboxSettings{Faults: []storage.Fault{{Stage: "rcpt", Code: 451, Times: 1}}}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	counts := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { counts[i], errs[i] = st.FaultAttempt(ctx, inbox, 0) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(counts)
	for i, c := range counts {
		if c != i+1 {
			t.Fatalf("counts of %d concurrent attempts, sorted = %v; want 1..%d each once", n, counts, n)
		}
	}
	if set, err := st.Settings(ctx, inbox); err != nil || len(set.Faults) != 1 || set.Faults[0].Attempts != n {
		t.Errorf("Settings after %d attempts = %+v, %v", n, set, err)
	}
}

// testTTLMovesStoredMail checks that a TTL set on an inbox with mail moves that mail's
// expiry, later or earlier, and that the store drops it at the new time, not the old.
func testTTLMovesStoredMail(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	longer, shorter := inboxFor(t), "shorter-"+inboxFor(t)
	const short = 1500 * time.Millisecond

	// Put with a short TTL, then made longer.
	if err := st.SetInbox(ctx, longer, storage.InboxSettings{TTL: short}); err != nil {
		t.Fatal(err)
	}
	kept := NewMessage(longer, "kept longer")
	put(t, st, kept)
	// Put with the receiver's hour, then made shorter.
	soon := NewMessage(shorter, "goes sooner")
	put(t, st, soon)
	events := Subscribe(t, ctx, st, shorter)
	keptEvents := Subscribe(t, ctx, st, longer)

	if err := st.SetInbox(ctx, longer, storage.InboxSettings{TTL: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetInbox(ctx, shorter, storage.InboxSettings{TTL: 2 * short}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, longer, kept.ID); err != nil || !sameTime(got.Expires, kept.Received.Add(2*time.Hour)) {
		t.Errorf("Get after the TTL grew = %+v, %v; want Expires Received + 2h", got, err)
	}
	if list, err := st.List(ctx, longer, storage.Page{}); err != nil || len(list) != 1 || !sameTime(list[0].Expires, kept.Received.Add(2*time.Hour)) {
		t.Errorf("List after the TTL grew = %+v, %v; want Expires Received + 2h", list, err)
	}
	if got, err := st.Get(ctx, shorter, soon.ID); err != nil || !sameTime(got.Expires, soon.Received.Add(2*short)) {
		t.Errorf("Get after the TTL shrank = %+v, %v; want Expires Received + %v", got, err, 2*short)
	}

	// The shortened message goes at its new time; by then the lengthened one's old
	// expiry has passed, so it would have gone too had its expiry not moved.
	e := Next(t, events)
	if e.Type != storage.EventExpired || e.ID != soon.ID {
		t.Fatalf("event %+v, want %s expired", e, soon.ID)
	}
	if now := time.Now(); now.Before(soon.Received.Add(2 * short)) {
		t.Errorf("expired at %v, before its new expiry %v", now, soon.Received.Add(2*short))
	}
	if _, err := st.Get(ctx, shorter, soon.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get of the shortened message after it expired: %v, want ErrNotFound", err)
	}
	if !time.Now().After(kept.Received.Add(short)) {
		t.Fatal("the lengthened message's old expiry has not passed yet")
	}
	if got, err := st.Get(ctx, longer, kept.ID); err != nil {
		t.Errorf("Get of the lengthened message past its old expiry: %v, want it kept", err)
	} else if raw, err := st.Raw(ctx, longer, kept.ID); err != nil || len(raw) == 0 {
		t.Errorf("Raw of the lengthened message past its old expiry: %q, %v", raw, err)
	} else if !sameTime(got.Expires, kept.Received.Add(2*time.Hour)) {
		t.Errorf("Expires %v, want %v", got.Expires, kept.Received.Add(2*time.Hour))
	}
	// The sweeper ran many times since the old expiry (at most every second): it
	// reported nothing for the lengthened inbox.
	select {
	case e := <-keptEvents:
		t.Errorf("lengthened inbox got event %+v", e)
	default:
	}
}

func testBurnAfterRead(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	burn, plain := inboxFor(t), "plain-"+inboxFor(t)
	if err := st.SetInbox(ctx, burn, storage.InboxSettings{BurnAfterRead: true}); err != nil {
		t.Fatal(err)
	}
	msgs := putN(t, st, burn, 2)
	kept := putN(t, st, plain, 1)[0]
	events := Subscribe(t, ctx, st, burn)

	// Other flags do not burn.
	got, err := st.SetFlags(ctx, burn, msgs[0].ID, storage.FlagFlagged|storage.FlagAnswered, 0)
	if err != nil || got != storage.FlagFlagged|storage.FlagAnswered {
		t.Fatalf("SetFlags(+flagged +answered) = %b, %v", got, err)
	}
	if e := Next(t, events); e.Type != storage.EventFlags || e.ID != msgs[0].ID {
		t.Errorf("event %+v, want flags of %s", e, msgs[0].ID)
	}
	if _, err := st.Get(ctx, burn, msgs[0].ID); err != nil {
		t.Fatalf("Get after other flags: %v", err)
	}

	// Seen burns.
	got, err = st.SetFlags(ctx, burn, msgs[0].ID, storage.FlagSeen, storage.FlagAnswered)
	if want := storage.FlagSeen | storage.FlagFlagged; err != nil || got != want {
		t.Errorf("SetFlags(+seen -answered) in a burn inbox = %b, %v; want %b", got, err, want)
	}
	if e := Next(t, events); e.Type != storage.EventDeleted || e.ID != msgs[0].ID || e.UID != msgs[0].UID {
		t.Errorf("event %+v, want %s deleted", e, msgs[0].ID)
	}
	if _, err := st.Get(ctx, burn, msgs[0].ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get of a burned message: %v, want ErrNotFound", err)
	}
	if _, err := st.Raw(ctx, burn, msgs[0].ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Raw of a burned message: %v, want ErrNotFound", err)
	}
	if _, err := st.SetFlags(ctx, burn, msgs[0].ID, storage.FlagSeen, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetFlags of a burned message: %v, want ErrNotFound", err)
	}
	if list, err := st.List(ctx, burn, storage.Page{}); err != nil || len(list) != 1 || list[0].ID != msgs[1].ID {
		t.Errorf("List after a burn = %v, %v; want the other message alone", subjects(list), err)
	}
	if mb, err := st.Mailbox(ctx, burn); err != nil || mb.Messages != 1 {
		t.Errorf("Mailbox after a burn = %+v, %v; want 1 message", mb, err)
	}

	// An inbox without burn after read keeps its read mail.
	if got, err := st.SetFlags(ctx, plain, kept.ID, storage.FlagSeen, 0); err != nil || got != storage.FlagSeen {
		t.Errorf("SetFlags(+seen) in a plain inbox = %b, %v", got, err)
	}
	if m, err := st.Get(ctx, plain, kept.ID); err != nil || m.Flags != storage.FlagSeen {
		t.Errorf("Get after +seen in a plain inbox = %+v, %v; want it kept, seen", m, err)
	}

	// Turned off, reading keeps; turned on again, it burns.
	if err := st.SetInbox(ctx, burn, storage.InboxSettings{}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.SetFlags(ctx, burn, msgs[1].ID, storage.FlagSeen, 0); err != nil || got != storage.FlagSeen {
		t.Errorf("SetFlags(+seen) after burn was turned off = %b, %v", got, err)
	}
	if _, err := st.Get(ctx, burn, msgs[1].ID); err != nil {
		t.Errorf("Get after burn was turned off: %v, want it kept", err)
	}
}
