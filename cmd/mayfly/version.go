package main

import (
	"runtime/debug"
	"strings"
)

// Set by release builds (make dist) with -ldflags "-X main.buildVersion=v1.2.3 ...":
// a build from a work tree has no module version, and a stripped, -trimpath build
// of a tag should still say which tag. Empty means "ask the build info".
var (
	buildVersion string
	buildCommit  string
	buildDate    string
)

// buildInfo is what `mayfly version` and the startup log line say about the binary.
type buildInfo struct {
	Version string // a tag (v1.2.3), or (devel)
	Commit  string // the full VCS revision, "" when unknown
	Date    string // the commit's time (RFC 3339), "" when unknown
	Dirty   bool   // built from a work tree with uncommitted changes
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(devel)"}
	if info, ok := debug.ReadBuildInfo(); ok {
		b = fromBuildInfo(info)
	}
	return b.override(buildVersion, buildCommit, buildDate)
}

func fromBuildInfo(info *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: "(devel)"}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Date = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		}
	}
	return b
}

// override lets the -X values win: they are set on purpose by a release build.
func (b buildInfo) override(version, commit, date string) buildInfo {
	if version != "" {
		b.Version = version
	}
	if commit != "" {
		b.Commit, b.Dirty = commit, false
	}
	if date != "" {
		b.Date = date
	}
	return b
}

// String is one line: "v1.2.3 (commit 0123456789ab, 2026-12-07T08:00:00Z)", the
// commit cut to 12 hex digits as git shows it, "+dirty" after it when the tree had changes.
func (b buildInfo) String() string {
	var extra []string
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if b.Dirty {
			c += "+dirty"
		}
		extra = append(extra, "commit "+c)
	}
	if b.Date != "" {
		extra = append(extra, "built "+b.Date)
	}
	if len(extra) == 0 {
		return b.Version
	}
	return b.Version + " (" + strings.Join(extra, ", ") + ")"
}

func version() string { return readBuildInfo().String() }
