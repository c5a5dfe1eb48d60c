package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		d := make([]time.Duration, len(vs))
		for i, v := range vs {
			d[i] = time.Duration(v) * time.Millisecond
		}
		return d
	}
	ten := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{name: "empty", sorted: nil, p: 50, want: 0},
		{name: "one sample p50", sorted: ms(7), p: 50, want: 7 * time.Millisecond},
		{name: "one sample p99", sorted: ms(7), p: 99, want: 7 * time.Millisecond},
		{name: "p0 is the minimum", sorted: ten, p: 0, want: 1 * time.Millisecond},
		{name: "p50 of ten", sorted: ten, p: 50, want: 5 * time.Millisecond},
		{name: "p90 of ten", sorted: ten, p: 90, want: 9 * time.Millisecond},
		{name: "p99 of ten", sorted: ten, p: 99, want: 10 * time.Millisecond},
		{name: "p100 is the maximum", sorted: ten, p: 100, want: 10 * time.Millisecond},
		{name: "p50 of two", sorted: ms(1, 2), p: 50, want: 1 * time.Millisecond},
		{name: "p51 of two", sorted: ms(1, 2), p: 51, want: 2 * time.Millisecond},
		{name: "p99 of a thousand", sorted: ms(seq(1000)...), p: 99, want: 990 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%d samples, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

// seq returns 1 to n.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

func TestParseStatCPU(t *testing.T) {
	// Fields 3 to 17 of proc(5); utime is 1200 and stime 34.
	const tail = " S 1 1234 1234 0 -1 4194560 1200 0 0 0 1200 34 0 0 20 0 8 0 1000 123456 789"
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "plain", in: "1234 (mayfly)" + tail, want: 1234},
		{name: "name with spaces and parentheses", in: "1234 (a) b (c) d)" + tail, want: 1234},
		{name: "no name", in: "1234 mayfly" + tail, wantErr: true},
		{name: "truncated", in: "1234 (mayfly) S 1 2 3", wantErr: true},
		{name: "not a number", in: "1234 (mayfly)" + strings.Replace(tail, " 1200 34 ", " x 34 ", 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.in))
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("parseStatCPU(%q) = %d, %v, want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseStatusRSS(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "present", in: "Name:\tmayfly\nVmHWM:\t  9000 kB\nVmRSS:\t    6528 kB\nRssAnon:\t 1 kB\n", want: 6528 << 10},
		{name: "last line without newline", in: "Name:\tmayfly\nVmRSS:\t12 kB", want: 12 << 10},
		{name: "absent", in: "Name:\tkthreadd\nState:\tS\n", wantErr: true},
		{name: "other unit", in: "VmRSS:\t12 MB\n", wantErr: true},
		{name: "not a number", in: "VmRSS:\tmany kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusRSS([]byte(tt.in))
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("parseStatusRSS(%q) = %d, %v, want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("needs /proc, as on the Linux machines make test runs on: %v", err)
	}
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Errorf("readCPU(self) error = %v", err)
	}
	if rss, err := readRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("readRSS(self) = %d, %v, want > 0", rss, err)
	}
	if _, err := readCPU(-1); err == nil {
		t.Errorf("readCPU(-1) error = nil, want one")
	}
}
