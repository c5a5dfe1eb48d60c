package main

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(Config) bool
		wantOut output
		wantErr bool
	}{
		{
			name: "defaults",
			check: func(c Config) bool {
				return c.Addr == "127.0.0.1:2525" && c.N == 10000 && c.Size == 10<<10 && c.Conns == 8 &&
					c.PerConn == 1 && c.Inboxes == 100 && c.Timeout == 30*time.Second && c.PID == 0
			},
		},
		{
			name: "everything",
			args: []string{"-addr", "127.0.0.1:25", "-n", "5", "-size", "10KB", "-c", "2", "-per-conn", "0", "-to", "x%d@y", "-inboxes", "3", "-from", "a@b", "-ehlo", "h", "-pid", "1", "-timeout", "1s", "-json"},
			check: func(c Config) bool {
				return c.Addr == "127.0.0.1:25" && c.N == 5 && c.Size == 10240 && c.Conns == 2 && c.PerConn == 0 &&
					c.To == "x%d@y" && c.Inboxes == 3 && c.From == "a@b" && c.EHLO == "h" && c.PID == 1 && c.Timeout == time.Second
			},
			wantOut: outJSON,
		},
		{name: "duration without n", args: []string{"-duration", "5s", "-n", "0", "-csv"}, check: func(c Config) bool { return c.Duration == 5*time.Second }, wantOut: outCSV},
		{name: "csv header", args: []string{"-csv-header"}, check: func(Config) bool { return true }, wantOut: outCSVHeader},
		{name: "json and csv", args: []string{"-json", "-csv"}, wantErr: true},
		{name: "bad size", args: []string{"-size", "10XB"}, wantErr: true},
		{name: "no sessions", args: []string{"-c", "0"}, wantErr: true},
		{name: "negative per-conn", args: []string{"-per-conn", "-1"}, wantErr: true},
		{name: "no messages", args: []string{"-n", "0"}, wantErr: true},
		{name: "line break in sender", args: []string{"-from", "a@b\r\nRCPT TO:<x@y>"}, wantErr: true},
		{name: "argument", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, out, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags(%q) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
			if err == nil && (!tt.check(cfg) || out != tt.wantOut) {
				t.Errorf("parseFlags(%q) = %+v, %v, want other values", tt.args, cfg, out)
			}
		})
	}
}

func TestPrintReport(t *testing.T) {
	rep := Report{
		Addr: "127.0.0.1:2525", Size: 1024, Conns: 8, PerConn: 0,
		Sent: 1000, Bytes: 1024000, Errors: map[string]int64{"451": 3, "net": 1}, FirstError: "end of data: unexpected reply 451",
		Connections: 12, Wall: 2 * time.Second,
		Latency:   Latency{P50: 1500 * time.Microsecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 9 * time.Millisecond},
		ClientCPU: 100 * time.Millisecond,
		Server:    &ServerStats{CPU: 250 * time.Millisecond, RSS: 10 << 20},
	}
	tests := []struct {
		name string
		out  output
		want []string
	}{
		{name: "text", out: outText, want: []string{"1000 ok, 4 errors", "451: 3, net: 1", "500.0 msg/s, 0.51 MB/s", "p50 1.500", "p99 3.000", "0.250 ms CPU/msg, RSS 10.0 MiB", "client       0.100 ms"}},
		{name: "csv", out: outCSV, want: []string{"127.0.0.1:2525,1024,8,0,1000,4,2.000,500.0,0.51,1.500,2.000,3.000,9.000,0.250,10240,0.100,false,451=3;net=1\n"}},
		{name: "json", out: outJSON, want: []string{`"msg_per_s":500`, `"p99_ms":3`, `"server_cpu_ms_per_msg":0.25`, `"error_codes":{"451":3,"net":1}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := printReport(&b, rep, tt.out); err != nil {
				t.Fatalf("printReport() error = %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("printReport(%s) = %q, want it to contain %q", tt.name, b.String(), w)
				}
			}
		})
	}

	// The CSV header names every column of the line.
	if h, l := strings.Count(csvHeader, ","), strings.Count(csvLine(rep), ","); h != l {
		t.Errorf("csvHeader has %d commas, csvLine %d", h, l)
	}
	var j map[string]any
	var b strings.Builder
	rep.Server = nil
	_ = printReport(&b, rep, outJSON)
	if err := json.Unmarshal([]byte(b.String()), &j); err != nil {
		t.Fatalf("printReport(json) is not JSON: %v", err)
	}
	if _, ok := j["server_cpu_ms_per_msg"]; ok {
		t.Errorf("printReport(json) without server stats has server_cpu_ms_per_msg")
	}
}
