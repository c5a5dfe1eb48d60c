# The two commands that matter: `make run` (or `go run ./cmd/mayfly`) and `make test`.
GO ?= go
# Patched copies of libraries (see their PATCHES.md): modules of their own.
PATCHED = github.com/flashmob/go-guerrilla/... github.com/emersion/go-imap/v2/...
STATICCHECK_VERSION ?= v0.8.2

.PHONY: run test test-short lint fuzz bench build dist dist-check image

run:
	$(GO) run ./cmd/mayfly

build:
	$(GO) build -o bin/ ./cmd/...

# Release binaries in dist/: static and reproducible, for linux/amd64, linux/arm64,
# darwin/arm64 and windows/amd64, a CycloneDX SBOM each, the container image of the
# linux ones, SHA256SUMS (deploy/dist.sh).
dist:
	GO=$(GO) bash deploy/dist.sh

# The container image, without Docker or any daemon: the linux/amd64 and linux/arm64
# binaries of `make dist` in dist/mayfly-image-linux-*.tar (docker load / podman load)
# and dist/mayfly-image.oci.tar (both platforms, for a registry). deploy/image/main.go.
image:
	PLATFORMS="linux/amd64 linux/arm64" GO=$(GO) bash deploy/dist.sh

# Builds dist/ twice, the second time from a fresh clone with an empty build cache,
# and fails unless the SHA256SUMS are the same. Minutes on two cores: not in `make test`.
dist-check:
	GO=$(GO) bash deploy/dist.sh -check

# Installs what the tests need when missing, starts a throwaway redis-server on a free
# loopback port, runs every test with the race detector, and stops redis again.
# The patched go-guerrilla and go-imap are modules of their own, which ./... leaves out.
test:
	bash .ci/with-services $(GO) test -race -count=1 ./... $(PATCHED)

# Unit tests only, no services: Redis and browser tests skip and say how to enable them.
test-short:
	$(GO) test -count=1 ./... $(PATCHED)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./... github.com/flashmob/go-guerrilla/...
# Upstream go-imap builds go-message headers with unkeyed fields.
	$(GO) vet -composites=false github.com/emersion/go-imap/v2/...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
# The floor build of receive.sh FLOOR=1 (storage/redisstore/floor.go) must keep building.
	$(GO) vet -tags mayfly_floor ./storage/redisstore/
# deploy/: compose config, Kubernetes manifests (kustomize build), the Helm chart (helm
# lint and template), the container image (built, its contents checked), systemd-analyze verify;
# installs docker-compose, systemd and python3-yaml from apt when missing.
	GO=$(GO) STATICCHECK_VERSION=$(STATICCHECK_VERSION) bash deploy/lint.sh

# Runs each fuzz target for a while; crashers land in the package's testdata/fuzz/.
# A count, not a time: Go 1.26's fuzzer can end a timed run with a spurious
# "context deadline exceeded".
FUZZTIME ?= 500000x
fuzz:
	$(GO) test -run XXX -fuzz 'FuzzParse$$' -fuzztime $(FUZZTIME) ./server/mailparse
	$(GO) test -run XXX -fuzz 'FuzzSummarize$$' -fuzztime $(FUZZTIME) ./server/mailparse
	cd server/mx/third_party/go-guerrilla && $(GO) test -run XXX -fuzz 'FuzzReadData$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run XXX -fuzz 'FuzzMessage$$' -fuzztime $(FUZZTIME) ./server/httpapi/parse
	cd server/imapd/third_party/go-imap && $(GO) test -run XXX -fuzz 'FuzzReadIDParams$$' -fuzztime $(FUZZTIME) ./imapserver
	$(GO) test -run XXX -fuzz 'FuzzCodes$$' -fuzztime $(FUZZTIME) ./server/httpapi/parse
	$(GO) test -run XXX -fuzz 'FuzzLinks$$' -fuzztime $(FUZZTIME) ./server/httpapi/parse
	$(GO) test -run XXX -fuzz 'FuzzRenderHTML$$' -fuzztime $(FUZZTIME) ./server/httpapi/parse
	$(GO) test -run XXX -fuzz 'FuzzAuthDetails$$' -fuzztime $(FUZZTIME) ./server/httpapi
	$(GO) test -run XXX -fuzz 'FuzzTOTP$$' -fuzztime $(FUZZTIME) ./server/httpapi
	$(GO) test -run XXX -fuzz 'FuzzStripOwn$$' -fuzztime $(FUZZTIME) ./server/mailauth
	$(GO) test -run XXX -fuzz 'FuzzHeaderParsers$$' -fuzztime $(FUZZTIME) ./server/mailauth
	$(GO) test -run XXX -fuzz 'FuzzParseAddress$$' -fuzztime $(FUZZTIME) ./storage
	$(GO) test -run XXX -fuzz 'FuzzDecodeMeta$$' -fuzztime $(FUZZTIME) ./storage/redisstore
	$(GO) test -run XXX -fuzz 'FuzzEvent$$' -fuzztime $(FUZZTIME) ./storage/redisstore
	$(GO) test -run XXX -fuzz 'FuzzCommand$$' -fuzztime $(FUZZTIME) ./server/pop3d
	$(GO) test -run XXX -fuzz 'FuzzAuthPlain$$' -fuzztime $(FUZZTIME) ./server/pop3d
	$(GO) test -run XXX -fuzz 'FuzzMessage$$' -fuzztime $(FUZZTIME) ./server/pop3d
	$(GO) test -run XXX -fuzz 'FuzzSession$$' -fuzztime $(FUZZTIME) ./server/pop3d
	$(GO) test -run XXX -fuzz 'FuzzMessage$$' -fuzztime $(FUZZTIME) ./server/imapd
	$(GO) test -run XXX -fuzz 'FuzzAuthenticate$$' -fuzztime $(FUZZTIME) ./server/imapd
	$(GO) test -run XXX -fuzz 'FuzzPrepare$$' -fuzztime $(FUZZTIME) ./server/submission
	$(GO) test -run XXX -fuzz 'FuzzAddressesIn$$' -fuzztime $(FUZZTIME) ./server/submission
	$(GO) test -run XXX -fuzz 'FuzzRelayURL$$' -fuzztime $(FUZZTIME) ./server/submission
	$(GO) test -run XXX -fuzz 'FuzzServerReply$$' -fuzztime $(FUZZTIME) ./server/submission
	$(GO) test -run XXX -fuzz 'FuzzBuildReply$$' -fuzztime $(FUZZTIME) ./server/submission
	$(GO) test -run XXX -fuzz 'FuzzPublic$$' -fuzztime $(FUZZTIME) ./server/netguard

# Store, receiver, parser and API benchmarks on both stores (docs/benchmarks.md has the SMTP load figures).
bench:
	bash .ci/with-services $(GO) test -run XXX -bench . -benchmem ./storage/... ./server/...
