package mx

import "testing"

func TestWireBytes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "T"},
		{"a\r\nb\r\n", "Ta\r\nb\r\n"},
		{"no newline", "Tno newline"},
	}
	for _, tt := range tests {
		got := wireBytes([]byte("T"), []byte(tt.in))
		if string(got) != tt.want || cap(got) != len(got) {
			t.Errorf("wireBytes(%q) = %q (cap %d), want %q, exact size", tt.in, got, cap(got), tt.want)
		}
	}
}
