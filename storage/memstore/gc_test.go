package memstore

import "testing"

func TestGCPercent(t *testing.T) {
	tests := []struct {
		name string
		live uint64
		want int
	}{
		{"nothing live yet", 0, 100},
		{"small store: Go's default", 8 << 20, 100},
		{"16 MiB of slack", 64 << 20, 25},
		{"full store: a tenth", 600 << 20, 10},
		{"larger still", 4 << 30, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcPercent(tt.live); got != tt.want {
				t.Errorf("gcPercent(%d) = %d, want %d", tt.live, got, tt.want)
			}
		})
	}
}
