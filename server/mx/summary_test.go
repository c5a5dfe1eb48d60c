package mx

import "testing"

func TestWireBytes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "T"},
		{"a\nb\n", "Ta\r\nb\r\n"},
		{"a\r\n", "Ta\r\r\n"}, // a CR that stood before CRLF on the wire
		{"no newline", "Tno newline"},
		{"\n\n", "T\r\n\r\n"},
	}
	for _, tt := range tests {
		got := wireBytes([]byte("T"), []byte(tt.in))
		if string(got) != tt.want || cap(got) != len(got) {
			t.Errorf("wireBytes(%q) = %q (cap %d), want %q, exact size", tt.in, got, cap(got), tt.want)
		}
	}
}
