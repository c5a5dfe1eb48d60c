package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/server/limit"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig("mayfly", nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Domains, []string{"mayfly.test"}) || c.SMTPAddr != "127.0.0.1:2525" || c.HTTPAddr != "127.0.0.1:8025" ||
		c.IMAPAddr != "127.0.0.1:1143" || c.POP3Addr != "127.0.0.1:1110" || c.SubmissionAddr != "127.0.0.1:2587" ||
		c.TTL != time.Hour || c.MaxTTL != 24*time.Hour || c.MemoryLimit != 512<<20 || c.MaxMessageSize != 10<<20 ||
		c.MaxMessages != 200 || c.SendLimit != (limit.Rate{N: 20, Per: time.Hour}) || c.OutboundPort != 25 || c.DKIMSelector != "mayfly" ||
		c.RedisURL != "" || c.Public || c.IMAPSAddr != "" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestConfigPrecedence(t *testing.T) {
	vars := map[string]string{"MAYFLY_SMTP_ADDR": "127.0.0.1:25", "MAYFLY_TTL": "2h", "MAYFLY_DOMAINS": "A.example, b.example", "MAYFLY_HTTP_ADDR": ""}
	c, err := parseConfig("mayfly", []string{"-ttl", "3h", "-max-ttl=48h"}, env(vars), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPAddr != "127.0.0.1:25" {
		t.Errorf("SMTPAddr = %q, want the variable's", c.SMTPAddr)
	}
	if c.TTL != 3*time.Hour || c.MaxTTL != 48*time.Hour {
		t.Errorf("TTL, MaxTTL = %v, %v; want the flags'", c.TTL, c.MaxTTL)
	}
	if !slices.Equal(c.Domains, []string{"a.example", "b.example"}) {
		t.Errorf("Domains = %q", c.Domains)
	}
	if c.HTTPAddr != "" {
		t.Errorf("HTTPAddr = %q, want off: an empty variable turns a listener off", c.HTTPAddr)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"bad size", []string{"-max-message-size", "10MB"}, nil, "max-message-size"},
		{"bad duration env", nil, map[string]string{"MAYFLY_TTL": "forever"}, "MAYFLY_TTL"},
		{"ttl over max", []string{"-ttl", "48h"}, nil, "max-ttl"},
		{"bad address", []string{"-smtp-addr", "localhost"}, nil, "smtp-addr"},
		{"no smtp", []string{"-smtp-addr", ""}, nil, "smtp-addr"},
		{"bad redis", []string{"-redis-url", "http://x"}, nil, "redis-url"},
		{"bad rspamd", nil, map[string]string{"MAYFLY_RSPAMD_URL": "127.0.0.1:11334"}, "MAYFLY_RSPAMD_URL"},
		{"bad rate", []string{"-send-limit", "20/week"}, nil, "send-limit"},
		{"bad bool", nil, map[string]string{"MAYFLY_PUBLIC": "maybe"}, "MAYFLY_PUBLIC"},
		{"no domain", []string{"-domains", " , "}, nil, "domains"},
		{"bad domain", []string{"-domains", "a@b"}, nil, "domains"},
		{"half tls", []string{"-tls-cert", "c.pem"}, nil, "tls-key"},
		{"acme and files", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-acme-email", "ops@x.test"}, nil, "acme-email and tls-cert"},
		{"bad acme email", nil, map[string]string{"MAYFLY_ACME_EMAIL": "ops"}, "MAYFLY_ACME_EMAIL"},
		{"bad acme url", []string{"-acme-url", "letsencrypt.org/directory"}, nil, "acme-url"},
		{"no acme dir", []string{"-acme-dir", ""}, nil, "acme-dir"},
		{"short secret", []string{"-secret", "abc"}, nil, "secret"},
		{"stray argument", []string{"extra"}, nil, "extra"},
		{"unknown flag", []string{"-nope"}, nil, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("mayfly", tt.args, env(tt.vars), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig(%q, %v) = %v, want an error naming %s", tt.args, tt.vars, err, tt.want)
			}
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig("mayfly serve", []string{"-help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help: %v, want flag.ErrHelp", err)
	}
	for _, s := range settings() {
		if !strings.Contains(out.String(), "-"+s.name+"  ("+s.env()+", default ") {
			t.Errorf("help does not list -%s with %s and its default", s.name, s.env())
		}
	}
	for _, v := range []string{"MAYFLY_DOMAINS", "MAYFLY_REDIS_URL", "MAYFLY_MEMORY_LIMIT", "MAYFLY_CORS_ORIGINS", "MAYFLY_DNS", "MAYFLY_TLS_KEY", "MAYFLY_DKIM_SELECTOR", "MAYFLY_SEND_LIMIT", "MAYFLY_OUTBOUND_PORT"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("help does not mention %s", v)
		}
	}
}

// TestConfigurationDocListsEverySetting keeps docs/configuration.md in step with the
// settings: every flag and its variable in the table, with the default the code has.
func TestConfigurationDocListsEverySetting(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // flag -> its table row
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, f := range strings.Split(first, ",") {
			rows[strings.Trim(strings.TrimSpace(f), "`")] = line
		}
	}
	for _, s := range settings() {
		row, ok := rows["-"+s.name]
		if !ok {
			t.Errorf("docs/configuration.md has no row for -%s", s.name)
			continue
		}
		if !strings.Contains(row, "`"+s.env()+"`") {
			t.Errorf("the row of -%s does not name %s", s.name, s.env())
		}
		if s.def != "" && s.name != "hostname" && !strings.Contains(row, "`"+s.def+"`") {
			t.Errorf("the row of -%s does not give its default `%s`", s.name, s.def)
		}
	}
}
