#!/usr/bin/env bash
# Release binaries (`make dist`): static, reproducible builds of mayfly for each
# platform in PLATFORMS, into OUT (default dist/), with a CycloneDX SBOM each and
# SHA256SUMS over all of them. The same commit gives the same bytes on any machine
# with the same Go: paths are trimmed, the build ID is empty, and the date stamped in
# is the commit's, not the clock's. VERSION is the tag when HEAD has one. With the
# linux binaries come the container image tarballs (deploy/image/main.go says which).
#
# `deploy/dist.sh -check` builds twice, the second time from a fresh clone at another
# path with an empty build cache, and fails unless the two SHA256SUMS are the same.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
OUT=${OUT:-dist}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/arm64 windows/amd64}
CYCLONEDX=${CYCLONEDX:-github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0}

if [ "${1:-}" = -check ]; then
	# The second build is of a clone, which has only what is committed.
	if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
		echo "dist: -check builds the commit: commit or stash the changes first" >&2
		exit 2
	fi
	OUT=dist "$0"
	tmp=$(mktemp -d)
	trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
	git clone -q --no-hardlinks . "$tmp/src"
	# An empty cache, so nothing compiled by the first build is reused.
	(cd "$tmp/src" && GOCACHE="$tmp/cache" OUT="$tmp/dist" bash deploy/dist.sh)
	if ! diff dist/SHA256SUMS "$tmp/dist/SHA256SUMS"; then
		echo "dist: two builds of $(git rev-parse --short HEAD) differ: not reproducible" >&2
		exit 1
	fi
	echo "dist: reproducible: both builds' SHA256SUMS are the same"
	exit 0
fi

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	echo "dist: warning: uncommitted changes are built in, but the stamped commit does not show them" >&2
fi
commit=$(git rev-parse HEAD)
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD)
export SOURCE_DATE_EPOCH
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)
# The SBOM and the image name an untagged build by a Go pseudo-version of its commit.
pseudo=v0.0.0-$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD)-${commit:0:12}
VERSION=${VERSION:-$(git describe --tags --exact-match HEAD 2>/dev/null || true)}

ldflags="-s -w -buildid= -X main.buildCommit=$commit -X main.buildDate=$date"
if [ -n "$VERSION" ]; then
	ldflags="$ldflags -X main.buildVersion=$VERSION"
fi

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
for p in $PLATFORMS; do
	os=${p%/*} arch=${p#*/}
	bin=mayfly-$os-$arch
	[ "$os" = windows ] && bin=$bin.exe
	# GOFLAGS is cleared so a developer's (e.g. -buildvcs=false, -race) does not leak
	# in; the commit is stamped by -X, so VCS stamping (off in a git worktree) is off.
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOAMD64=v1 GOARM64=v8.0 GOFLAGS= \
		$GO build -trimpath -buildvcs=false -mod=readonly -ldflags "$ldflags" -o "$OUT/$bin" ./cmd/mayfly
	# No serial number or timestamp, so the SBOM is as reproducible as the binary.
	GOFLAGS= $GO run "$CYCLONEDX" bin -json -noserial -notimestamp \
		-version "${VERSION:-$pseudo}" -output "$OUT/${bin%.exe}.cdx.json" "$OUT/$bin"
done
# The container image of the linux binaries, assembled without a container runtime
# (deploy/image): a docker-archive per architecture and an OCI layout of both, with
# the commit's time as every time stamp, so as reproducible as the binaries.
bins=()
for p in $PLATFORMS; do
	case $p in linux/amd64 | linux/arm64) bins+=(-bin "$p=$OUT/mayfly-linux-${p#*/}") ;; esac
done
if [ ${#bins[@]} -gt 0 ]; then
	(cd deploy/image && GOFLAGS= $GO run . "${bins[@]}" -license ../../LICENSE -out "$OUT" \
		-version "${VERSION:-$pseudo}" -commit "$commit" -created "$date")
fi
(cd "$OUT" && sha256sum -- mayfly-* > SHA256SUMS)
echo "dist: $(ls "$OUT" | wc -l) files in $OUT/ for ${VERSION:-(devel)} at ${commit:0:12} ($date)"
