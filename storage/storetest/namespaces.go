package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
)

// The tests of namespaces (storage.NamespaceStore): keys, limits, usage, activity.

var namespaceTests = []struct {
	name string
	fn   func(t *testing.T, newStore NewStore)
}{
	{"NamespaceKeys", testNamespaceKeys},
	{"NamespaceUsage", testNamespaceUsage},
	{"NamespaceMaxInboxes", testNamespaceMaxInboxes},
	{"Activity", testActivity},
}

func testNamespaceKeys(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	now := time.Now().Truncate(time.Millisecond)
	key1, k1 := storage.NewNamespaceKey(now)
	ns := storage.Namespace{Name: "ci", TTL: 2 * time.Hour, MaxInboxes: 3, MaxBytes: 1000, SendLimit: "5/h", Created: now}
	if err := st.CreateNamespace(ctx, ns, k1); err != nil {
		t.Fatalf("CreateNamespace: %v", err)
	}
	if err := st.CreateNamespace(ctx, storage.Namespace{Name: "ci", Created: now}, k1); !errors.Is(err, storage.ErrExists) {
		t.Errorf("CreateNamespace of a taken name = %v, want ErrExists", err)
	}
	if name, err := st.NamespaceOfKey(ctx, storage.HashKey(key1)); err != nil || name != "ci" {
		t.Errorf("NamespaceOfKey(key1) = %q, %v; want ci", name, err)
	}
	if _, err := st.NamespaceOfKey(ctx, storage.HashKey(key1+"x")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("NamespaceOfKey(other) = %v, want ErrNotFound", err)
	}
	got, err := st.GetNamespace(ctx, "ci")
	if err != nil {
		t.Fatalf("GetNamespace: %v", err)
	}
	if got.TTL != ns.TTL || got.MaxInboxes != 3 || got.MaxBytes != 1000 || got.SendLimit != "5/h" || !sameTime(got.Created, now) {
		t.Errorf("GetNamespace = %+v, want the settings of %+v", got, ns)
	}
	if len(got.Keys) != 1 || got.Keys[0].ID != k1.ID || got.Keys[0].Prefix != k1.Prefix || got.Keys[0].LastUsed.IsZero() {
		t.Errorf("GetNamespace keys = %+v, want %s, used", got.Keys, k1.ID)
	}

	// Rotation: the new key opens, the replaced one at once no more.
	key2, k2 := storage.NewNamespaceKey(now.Add(time.Second))
	if err := st.AddNamespaceKey(ctx, "ci", k2, k1.ID); err != nil {
		t.Fatalf("AddNamespaceKey(replace): %v", err)
	}
	if _, err := st.NamespaceOfKey(ctx, storage.HashKey(key1)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("NamespaceOfKey(replaced key) = %v, want ErrNotFound", err)
	}
	if name, err := st.NamespaceOfKey(ctx, storage.HashKey(key2)); err != nil || name != "ci" {
		t.Errorf("NamespaceOfKey(key2) = %q, %v; want ci", name, err)
	}
	if err := st.AddNamespaceKey(ctx, "ci", k2, "k_nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("AddNamespaceKey(replace unknown) = %v, want ErrNotFound", err)
	}
	if err := st.RevokeNamespaceKey(ctx, "ci", k2.ID); err != nil {
		t.Fatalf("RevokeNamespaceKey: %v", err)
	}
	if _, err := st.NamespaceOfKey(ctx, storage.HashKey(key2)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("NamespaceOfKey(revoked key) = %v, want ErrNotFound", err)
	}
	if err := st.RevokeNamespaceKey(ctx, "ci", k2.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RevokeNamespaceKey twice = %v, want ErrNotFound", err)
	}

	ns.TTL, ns.MaxInboxes, ns.SendLimit = time.Hour, 0, ""
	if err := st.UpdateNamespace(ctx, ns); err != nil {
		t.Fatalf("UpdateNamespace: %v", err)
	}
	if err := st.UpdateNamespace(ctx, storage.Namespace{Name: "nope"}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UpdateNamespace(unknown) = %v, want ErrNotFound", err)
	}
	key3, k3 := storage.NewNamespaceKey(now)
	if err := st.AddNamespaceKey(ctx, "ci", k3, ""); err != nil {
		t.Fatalf("AddNamespaceKey: %v", err)
	}
	_, kb := storage.NewNamespaceKey(now)
	if err := st.CreateNamespace(ctx, storage.Namespace{Name: "b", Created: now}, kb); err != nil {
		t.Fatalf("CreateNamespace(b): %v", err)
	}
	list, err := st.ListNamespaces(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "b" || list[1].Name != "ci" || list[1].TTL != time.Hour || list[1].SendLimit != "" || len(list[1].Keys) != 1 {
		t.Errorf("ListNamespaces = %+v, %v; want b, ci (updated, one key)", list, err)
	}
	if err := st.DeleteNamespace(ctx, "ci"); err != nil {
		t.Fatalf("DeleteNamespace: %v", err)
	}
	if _, err := st.NamespaceOfKey(ctx, storage.HashKey(key3)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("NamespaceOfKey after DeleteNamespace = %v, want ErrNotFound", err)
	}
	if _, err := st.GetNamespace(ctx, "ci"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetNamespace after DeleteNamespace = %v, want ErrNotFound", err)
	}
	if err := st.DeleteNamespace(ctx, "ci"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteNamespace twice = %v, want ErrNotFound", err)
	}
	// The name is free again, with nothing of the old one.
	if err := st.CreateNamespace(ctx, storage.Namespace{Name: "ci", Created: now}, k1); err != nil {
		t.Errorf("CreateNamespace after delete: %v", err)
	}
}

// usageOf polls GetNamespace until cond holds: on Redis the counting follows the change
// by one round trip.
func usageOf(t *testing.T, st storage.Store, name string, cond func(storage.Usage) bool) storage.Usage {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ns, err := st.GetNamespace(ctxFor(t), name)
		if err != nil {
			t.Fatalf("GetNamespace: %v", err)
		}
		if cond(ns.Usage) || time.Now().After(deadline) {
			return ns.Usage
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testNamespaceUsage(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	_, k := storage.NewNamespaceKey(time.Now())
	if err := st.CreateNamespace(ctx, storage.Namespace{Name: "qa", Created: time.Now()}, k); err != nil {
		t.Fatalf("CreateNamespace: %v", err)
	}
	a, b, outside := "qa.a@mayfly.test", "qa.b@mayfly.test", "qa@mayfly.test"
	m1, m2, m3, m4 := NewMessage(a, "one"), NewMessage(a, "two"), NewMessage(b, "three"), NewMessage(outside, "four")
	put(t, st, m1, m2, m3, m4)
	want := storage.Usage{Inboxes: 2, Messages: 3, Bytes: m1.Size + m2.Size + m3.Size}
	if got := usageOf(t, st, "qa", func(u storage.Usage) bool { return u == want }); got != want {
		t.Errorf("usage after 3 messages = %+v, want %+v", got, want)
	}
	inboxes, err := st.NamespaceInboxes(ctx, "qa")
	if err != nil || len(inboxes) != 2 || inboxes[0] != a || inboxes[1] != b {
		t.Errorf("NamespaceInboxes = %v, %v; want [%s %s]", inboxes, err, a, b)
	}
	if err := st.Delete(ctx, a, m1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteInbox(ctx, b); err != nil {
		t.Fatal(err)
	}
	want = storage.Usage{Inboxes: 2, Messages: 1, Bytes: m2.Size}
	if got := usageOf(t, st, "qa", func(u storage.Usage) bool { return u == want }); got != want {
		t.Errorf("usage after deletes = %+v, want %+v", got, want)
	}
	if err := st.ReleaseInbox(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := st.AddNamespaceSends(ctx, "qa", 2); err != nil {
		t.Fatal(err)
	}
	want = storage.Usage{Inboxes: 1, Messages: 1, Bytes: m2.Size, Sends: 2}
	if got := usageOf(t, st, "qa", func(u storage.Usage) bool { return u == want }); got != want {
		t.Errorf("usage after release and sends = %+v, want %+v", got, want)
	}
	if err := st.AddNamespaceSends(ctx, "nope", 1); err != nil {
		t.Errorf("AddNamespaceSends(unknown) = %v, want nil", err)
	}
	if _, err := st.GetNamespace(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetNamespace(nope) after a send counted = %v, want ErrNotFound", err)
	}
}

func testNamespaceMaxInboxes(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	_, k := storage.NewNamespaceKey(time.Now())
	if err := st.CreateNamespace(ctx, storage.Namespace{Name: "lim", MaxInboxes: 2, Created: time.Now()}, k); err != nil {
		t.Fatalf("CreateNamespace: %v", err)
	}
	until := time.Now().Add(time.Hour)
	for _, inbox := range []string{"lim.a@mayfly.test", "lim.b@mayfly.test", "lim.a@mayfly.test"} {
		if err := st.AdmitInbox(ctx, inbox, until); err != nil {
			t.Fatalf("AdmitInbox(%s) = %v", inbox, err)
		}
	}
	err := st.AdmitInbox(ctx, "lim.c@mayfly.test", until)
	var le *storage.LimitError
	if !errors.As(err, &le) || le.Limit != "max_inboxes" || le.Namespace != "lim" || le.Value != 2 {
		t.Fatalf("AdmitInbox(third) = %v, want a LimitError of max_inboxes 2", err)
	}
	// An expired inbox frees its place.
	if err := st.AdmitInbox(ctx, "lim.gone@mayfly.test", time.Now().Add(-time.Second)); err == nil {
		t.Errorf("AdmitInbox(fourth, expired) = nil, want the limit")
	}
	if err := st.ReleaseInbox(ctx, "lim.b@mayfly.test"); err != nil {
		t.Fatal(err)
	}
	if err := st.AdmitInbox(ctx, "lim.c@mayfly.test", until); err != nil {
		t.Errorf("AdmitInbox after a release = %v, want nil", err)
	}
	if err := st.AdmitInbox(ctx, "other.x@mayfly.test", until); err != nil {
		t.Errorf("AdmitInbox of no namespace = %v, want nil", err)
	}
}

func testActivity(t *testing.T, newStore NewStore) {
	st := open(t, newStore, Options{})
	ctx := ctxFor(t)
	base := time.Now().UTC().Truncate(time.Second)
	for i := range storage.ActivityMax + 5 {
		ns := "a"
		if i%2 == 1 {
			ns = "b"
		}
		a := storage.Activity{Time: base.Add(time.Duration(i) * time.Second), Kind: "received", Namespace: ns, Address: "x@mayfly.test", Code: i}
		if err := st.AddActivity(ctx, a); err != nil {
			t.Fatalf("AddActivity: %v", err)
		}
	}
	all, err := st.Activity(ctx, "", 0)
	if err != nil || len(all) != storage.ActivityMax || all[0].Code != storage.ActivityMax+4 || !all[0].Time.Equal(base.Add(time.Duration(storage.ActivityMax+4)*time.Second)) {
		t.Fatalf("Activity = %d entries (first %+v), %v; want the last %d, newest first", len(all), all[0], err, storage.ActivityMax)
	}
	bs, err := st.Activity(ctx, "b", 3)
	if err != nil || len(bs) != 3 || bs[0].Namespace != "b" || bs[0].Code != storage.ActivityMax+3 {
		t.Errorf("Activity(b, 3) = %+v, %v", bs, err)
	}
}
