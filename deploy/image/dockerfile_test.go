package main

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct {
	cmd, args string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

// deploy/Dockerfile, for those who build with Docker, makes the image `make image`
// makes: its final stage holds only what -rootfs lays out, and says what Config says.
// (Without a Docker daemon here, the test reads the Dockerfile rather than builds it.)
func TestDockerfile(t *testing.T) {
	all := parseDockerfile(t, "../Dockerfile")
	last := -1
	for i, in := range all {
		if in.cmd == "FROM" {
			last = i
		}
	}
	if last < 0 || all[last].args != "scratch" {
		t.Fatalf("the final stage is not FROM scratch")
	}
	if !slices.ContainsFunc(all[:last], func(in instruction) bool {
		return in.cmd == "RUN" && strings.Contains(in.args, "go run . -rootfs /rootfs")
	}) {
		t.Error("the build stage does not lay out /rootfs with deploy/image (go run . -rootfs /rootfs)")
	}

	want := Config(Meta{Created: time.Unix(0, 0)})
	seen := map[string]bool{}
	for _, in := range all[last+1:] {
		seen[in.cmd] = true
		switch in.cmd {
		case "COPY":
			if in.args != "--from=build /rootfs/ /" {
				t.Errorf("COPY %s: the final stage copies only /rootfs/ from the build stage", in.args)
			}
		case "ENV":
			if got := strings.Fields(in.args); !slices.Equal(got, want.Env) {
				t.Errorf("ENV %q, want %q", got, want.Env)
			}
		case "EXPOSE":
			if got := strings.Fields(in.args); !slices.Equal(got, Ports) {
				t.Errorf("EXPOSE %q, want %q", got, Ports)
			}
		case "USER":
			if in.args != want.User {
				t.Errorf("USER %s, want %s", in.args, want.User)
			}
		case "WORKDIR":
			if in.args != want.WorkingDir {
				t.Errorf("WORKDIR %s, want %s", in.args, want.WorkingDir)
			}
		case "STOPSIGNAL":
			if in.args != want.StopSignal {
				t.Errorf("STOPSIGNAL %s, want %s", in.args, want.StopSignal)
			}
		case "ENTRYPOINT":
			checkJSON(t, in, want.Entrypoint)
		case "CMD":
			checkJSON(t, in, want.Cmd)
		case "HEALTHCHECK":
			hc := want.Healthcheck
			opts := "--interval=" + hc.Interval.String() + " --timeout=" + hc.Timeout.String() +
				" --start-period=" + hc.StartPeriod.String() + " --retries=" + strconv.Itoa(hc.Retries) + " CMD "
			rest, ok := strings.CutPrefix(in.args, opts)
			if !ok {
				t.Errorf("HEALTHCHECK %s, want it to start %q", in.args, opts)
				continue
			}
			checkJSON(t, instruction{"HEALTHCHECK CMD", rest}, hc.Test[1:])
		case "LABEL":
			labels := Labels(Meta{})
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				if v = strings.Trim(v, `"`); labels[k] != v {
					t.Errorf("LABEL %s=%s, the image says %q", k, v, labels[k])
				}
			}
		default:
			t.Errorf("%s in the final stage: the image built without Docker has no such step", in.cmd)
		}
	}
	for _, cmd := range []string{"COPY", "ENV", "EXPOSE", "USER", "WORKDIR", "STOPSIGNAL", "ENTRYPOINT", "CMD", "HEALTHCHECK"} {
		if !seen[cmd] {
			t.Errorf("the final stage has no %s", cmd)
		}
	}
}

func checkJSON(t *testing.T, in instruction, want []string) {
	t.Helper()
	var got []string
	if err := json.Unmarshal([]byte(in.args), &got); err != nil {
		t.Errorf("%s %s: not the JSON (exec) form: %v", in.cmd, in.args, err)
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s %q, want %q", in.cmd, got, want)
	}
}
