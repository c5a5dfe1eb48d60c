package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{name: "plain bytes", in: "1500", want: 1500},
		{name: "bytes unit", in: "1500B", want: 1500},
		{name: "1KiB", in: "1KiB", want: 1024},
		{name: "10KiB", in: "10KiB", want: 10240},
		{name: "100KiB", in: "100KiB", want: 102400},
		{name: "KB means KiB", in: "1KB", want: 1024},
		{name: "10KB", in: "10KB", want: 10240},
		{name: "lower case", in: "10kb", want: 10240},
		{name: "k", in: "2k", want: 2048},
		{name: "MiB", in: "1MiB", want: 1 << 20},
		{name: "MB means MiB", in: "2MB", want: 2 << 20},
		{name: "largest", in: "64MiB", want: 64 << 20},
		{name: "too large", in: "65MiB", wantErr: true},
		{name: "GiB", in: "1GiB", wantErr: true},
		{name: "zero", in: "0", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "unit only", in: "KiB", wantErr: true},
		{name: "fraction", in: "1.5KiB", wantErr: true},
		{name: "negative", in: "-1", wantErr: true},
		{name: "space", in: "10 KiB", wantErr: true},
		{name: "overflow", in: "99999999999999999999999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("parseSize(%q) = %d, %v, want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if f := sizeFlag(got); err == nil {
				if back, err := parseSize(f.String()); back != got || err != nil {
					t.Errorf("parseSize(%q) = %d, %v, want %d back from -size's default text", f.String(), back, err, got)
				}
			}
		})
	}
}

func FuzzParseSize(f *testing.F) {
	f.Add("10KiB")
	f.Add("1500")
	f.Fuzz(func(t *testing.T, in string) {
		n, err := parseSize(in)
		if err == nil && (n < 1 || n > maxSize) {
			t.Fatalf("parseSize(%q) = %d, want 1 to %d", in, n, maxSize)
		}
	})
}

func TestBuildBody(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{
		{name: "smallest", n: 3},
		{name: "short line", n: 10},
		{name: "one byte short of a line", n: lineLen + 1},
		{name: "one line", n: lineLen + 2},
		{name: "a line and one byte", n: lineLen + 3},
		{name: "a line and two bytes", n: lineLen + 4},
		{name: "a line and a tiny one", n: lineLen + 5},
		{name: "two lines", n: 2 * (lineLen + 2)},
		{name: "1000", n: 1000},
		{name: "10KiB", n: 10 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := buildBody(tt.n)
			if len(body) != tt.n {
				t.Errorf("buildBody(%d) has %d bytes", tt.n, len(body))
			}
			lines := strings.SplitAfter(string(body), "\r\n")
			if last := lines[len(lines)-1]; last != "" {
				t.Errorf("buildBody(%d) ends in %q, want CRLF", tt.n, last)
			}
			dots := 0
			for _, l := range lines[:len(lines)-1] {
				text := strings.TrimSuffix(l, "\r\n")
				if len(text) == 0 || len(text) > lineLen || strings.ContainsAny(text, "\r\n ") {
					t.Errorf("buildBody(%d) has line %q, want 1 to %d printable characters", tt.n, l, lineLen)
				}
				for _, c := range []byte(text) {
					if c < '!' || c > '~' {
						t.Errorf("buildBody(%d) has byte %#x, want printable ASCII", tt.n, c)
						break
					}
				}
				if strings.HasPrefix(text, ".") {
					dots++
				}
			}
			if len(lines) > 2 && dots == 0 {
				t.Errorf("buildBody(%d) has no line starting with a dot", tt.n)
			}

			wire := dotStuff(body)
			got, err := readData(bufio.NewReader(bytes.NewReader(wire)))
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("readData(dotStuff(buildBody(%d))) = %q, %v, want the body back", tt.n, got, err)
			}
		})
	}
}

func TestTemplateSize(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		inboxes int
		want    int
	}{
		{name: "1KiB", size: 1 << 10, inboxes: 100, want: 1 << 10},
		{name: "100KiB", size: 100 << 10, inboxes: 1, want: 100 << 10},
		{name: "odd", size: 777, inboxes: 10, want: 777},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("127.0.0.1:1")
			cfg.Size, cfg.Inboxes = tt.size, tt.inboxes
			now := time.Now()
			tmpl := newTemplate(cfg, now)
			if tmpl.size != tt.want {
				t.Errorf("newTemplate(size %d).size = %d, want %d", tt.size, tmpl.size, tt.want)
			}
			// The longest recipient gets exactly the size; the message numbers do not
			// change it.
			hdr := tmpl.appendHeader(nil, 1234567, tt.inboxes-1, now)
			if got := len(hdr) + len(tmpl.body); got != tt.want {
				t.Errorf("message to the last inbox has %d bytes, want %d", got, tt.want)
			}
		})
	}
}

func TestTemplateTinySize(t *testing.T) {
	cfg := testConfig("127.0.0.1:1")
	cfg.Size = 10 // smaller than the header block: the body is one short line
	tmpl := newTemplate(cfg, time.Now())
	if string(tmpl.body) != "!\r\n" || string(tmpl.wire) != "!\r\n.\r\n" {
		t.Errorf("newTemplate(size 10) body %q, wire %q, want %q and %q", tmpl.body, tmpl.wire, "!\r\n", "!\r\n.\r\n")
	}
}
