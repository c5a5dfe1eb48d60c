package storage

import (
	"strings"
	"testing"
	"time"
)

func TestNamespaceOf(t *testing.T) {
	for _, tt := range []struct{ inbox, want string }{
		{"ci.signup@mayfly.test", "ci"},
		{"ci.a.b@mayfly.test", "ci"},
		{"team-7.x@mayfly.test", "team-7"},
		{"ci@mayfly.test", ""},
		{".ci@mayfly.test", ""},
		{"-ci.x@mayfly.test", ""},
		{"Ci.x@mayfly.test", ""}, // not normalized: no namespace
		{"a_b.x@mayfly.test", ""},
		{strings.Repeat("a", 32) + ".x@mayfly.test", ""},
		{strings.Repeat("a", 31) + ".x@mayfly.test", strings.Repeat("a", 31)},
		{"noat", ""},
	} {
		if got := NamespaceOf(tt.inbox); got != tt.want {
			t.Errorf("NamespaceOf(%q) = %q, want %q", tt.inbox, got, tt.want)
		}
	}
}

func TestNamespaceKeyShape(t *testing.T) {
	key, k := NewNamespaceKey(time.Now())
	if !IsNamespaceKey(key) || !strings.HasPrefix(key, k.Prefix) || k.Hash != HashKey(key) || strings.Contains(k.Hash, key) || !strings.HasPrefix(k.ID, "k_") {
		t.Errorf("NewNamespaceKey = %q, %+v", key, k)
	}
	if other, _ := NewNamespaceKey(time.Now()); other == key {
		t.Error("two keys alike")
	}
	for _, s := range []string{"", "mfk_", "mfk_abc", "xfk_" + strings.Repeat("0", 64), key + "0"} {
		if IsNamespaceKey(s) {
			t.Errorf("IsNamespaceKey(%q) = true", s)
		}
	}
}

func FuzzNamespaceOf(f *testing.F) {
	f.Add("ci.signup@mayfly.test")
	f.Add("a.b.c@d@e")
	f.Fuzz(func(t *testing.T, s string) {
		inbox, _, err := ParseAddress(s)
		if err != nil {
			return
		}
		name := NamespaceOf(inbox)
		if name != "" && (!ValidNamespace(name) || !strings.HasPrefix(inbox, name+".")) {
			t.Errorf("NamespaceOf(%q) = %q", inbox, name)
		}
	})
}
