package storage

import "testing"

func TestKeysOpens(t *testing.T) {
	tokens := NewTokens([]byte("secret"))
	box := "box@mayfly.test"
	for _, tc := range []struct {
		name   string
		keys   Keys
		secret string
		want   bool
	}{
		{"own token", Keys{Tokens: tokens}, tokens.Token(box), true},
		{"other inbox's token", Keys{Tokens: tokens}, tokens.Token("other@mayfly.test"), false},
		{"empty secret, no admin key", Keys{Tokens: tokens}, "", false},
		{"admin key", Keys{Tokens: tokens, APIKey: "admin"}, "admin", true},
		{"wrong admin key", Keys{Tokens: tokens, APIKey: "admin"}, "admin2", false},
	} {
		if got := tc.keys.Opens(box, tc.secret); got != tc.want {
			t.Errorf("%s: Opens = %v, want %v", tc.name, got, tc.want)
		}
	}
}
