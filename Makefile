# Pulse — the front door. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/pulsehq/pulse/functions/cli.Version=$(VERSION)
TOOLS := integration-tests/tools/install.sh
# Where `make run` keeps the hub's state (the embedded local store).
RUN_DIR ?= .run

.PHONY: all build lambda site run test test-unit test-ts test-site bench bench-peers fuzz openapi generate tools fmt vet clean help

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: site ## build bin/pulse (with the dashboard) and bin/pulse-agent
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/pulse ./functions/cmd/pulse
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/pulse-agent ./agent/cmd/pulse-agent

# The hub as AWS Lambda functions (docs/functions.md, infra/aws/template.yaml): one binary for the API
# and the tick function, for the provided.al2023 runtime on arm64 (LAMBDA_ARCH=amd64 for x86_64).
LAMBDA_ARCH ?= arm64
lambda: site ## build bin/lambda/bootstrap, the hub as Lambda functions (with the dashboard), for infra/aws/template.yaml
	CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_ARCH) $(GO) build -tags lambda.norpc -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/lambda/bootstrap ./functions/cmd/pulse-lambda

# The dashboard (site/): npm ci and vite build into site/dist/app, which bin/pulse embeds. `go build`
# alone needs no Node: it embeds a placeholder page saying to run `make build`.
site: ## build the dashboard into site/dist/app (npm ci + vite build; Node 20)
	bash site/build.sh

run: build ## run a hub on the embedded local store and one local agent (state in .run/; Ctrl-C stops both)
	RUN_DIR=$(RUN_DIR) bash infra/local/run.sh

tools: ## build and cache the pinned S3 servers the tests use (MinIO, versitygw, SeaweedFS); install dockerd, busybox-static, prometheus, chromium and systemd (Debian) if missing
	@bash $(TOOLS) all >/dev/null
	@bash $(TOOLS) docker >/dev/null
	@bash $(TOOLS) prometheus >/dev/null
	@bash $(TOOLS) chromium >/dev/null
	@bash $(TOOLS) systemd >/dev/null

# The tests start real MinIO, versitygw and SeaweedFS servers; their binaries are built once and cached
# (~/.cache/pulse-tools; with PULSE_SEAWEEDFS_BIN set the SeaweedFS tests fail rather than skip when weed
# cannot run). The container tests start private Docker daemons (PULSE_DOCKERD_BIN: with it
# set they fail rather than skip when no daemon comes up). -p 1 keeps the two cores for one package
# at a time. PULSE_SYSTEMD_ANALYZE makes the single-box tests (infra/single-box's units and install.sh)
# fail rather than skip without systemd-analyze.
# The end-to-end suite then runs a second time in the Garage-like mode (PULSE_E2E_UNCONDITIONAL=1: every
# store it makes is unconditional+s3:// on MinIO, conditional writes ignored; docs/garage.md).
TEST_ENV = PULSE_MINIO_BIN=$$(bash $(TOOLS) minio) PULSE_VERSITYGW_BIN=$$(bash $(TOOLS) versitygw) PULSE_SEAWEEDFS_BIN=$$(bash $(TOOLS) seaweedfs) PULSE_DOCKERD_BIN=$$(bash $(TOOLS) docker) PULSE_PROMETHEUS_BIN=$$(bash $(TOOLS) prometheus) PULSE_CHROMIUM_BIN=$$(bash $(TOOLS) chromium) PULSE_SYSTEMD_ANALYZE=$$(bash $(TOOLS) systemd)
test: tools vet test-ts ## run every test: unit, store conformance on local/MinIO/versitygw/SeaweedFS, containers on a private dockerd, the single-box install, end-to-end (twice: also as on Garage)
	set -o pipefail; $(TEST_ENV) \
		$(GO) test -count=1 -p 1 -timeout 30m -v ./... 2>&1 | grep -v -E '^=== (RUN|PAUSE|CONT|NAME)'
	set -o pipefail; $(TEST_ENV) PULSE_E2E_UNCONDITIONAL=1 \
		$(GO) test -count=1 -timeout 30m -v ./integration-tests/ 2>&1 | grep -v -E '^=== (RUN|PAUSE|CONT|NAME)'

test-ts: ## check openapi/ts/pulse-api.d.ts against openapi/openapi.yaml and type-check its use (npm ci in openapi/)
	bash openapi/ts/check.sh

# The dashboard's end-to-end test alone (make test runs it too, as integration-tests' TestDashboard):
# builds the site, embeds it in a pulse, starts it on MinIO with a real agent and runs Playwright in
# Debian's Chromium (site/e2e); screenshots land in site/test-results/screenshots. About 30 s.
test-site: ## the dashboard's Playwright test against a real hub and agent (installs Debian's chromium if missing)
	@bash $(TOOLS) chromium >/dev/null
	set -o pipefail; PULSE_MINIO_BIN=$$(bash $(TOOLS) minio) PULSE_CHROMIUM_BIN=$$(bash $(TOOLS) chromium) \
		$(GO) test -count=1 -timeout 10m -v -run '^TestDashboard$$' ./integration-tests/ 2>&1 | grep -v -E '^=== (RUN|PAUSE|CONT|NAME)'

test-unit: ## quick tests that need no S3 server: every package but the S3 backend and the end-to-end suite (under a minute)
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /integration-tests -e /functions/store/s3 -e /functions/store/awss3)

# Every figure ends in a table beside its goal (integration-tests/tools/benchtable; docs/benchmarks.md).
bench: tools ## print the figures beside their goals: store latency, command latency and fan-out, writes, hub and agent footprint, the dashboard's first load
	set -o pipefail; export PULSE_MINIO_BIN=$$(bash $(TOOLS) minio) PULSE_VERSITYGW_BIN=$$(bash $(TOOLS) versitygw) PULSE_SEAWEEDFS_BIN=$$(bash $(TOOLS) seaweedfs) PULSE_CHROMIUM_BIN=$$(bash $(TOOLS) chromium); \
	( $(GO) test -run '^$$' -bench . -benchtime 200x -count 1 ./functions/store/local/ ./functions/store/s3/ ./policy/ && \
	$(GO) test -run '^$$' -bench 'EnqueueToEnvelope' -benchtime 200x -count 1 -timeout 30m ./integration-tests/ && \
	$(GO) test -run '^$$' -bench 'WritesPerAgent|Fanout1000|FanoutHubKilled|HubMemoryWaitingPolls|IdleAgent|StoreRequestsPerIdleAgent|WorkflowSteps|WorkflowEventCost|PlanConverge|PlanIdleAgentCPU|FunctionIdleAgent|AlertTick1000|MetricsWritesPerAgent|MetricsIngest1000|MetricAlerts1000|MetricsQuery24h|Dashboard' -benchtime 1x -count 1 -timeout 30m ./integration-tests/ ) 2>&1 | \
	$(GO) run ./integration-tests/tools/benchtable

# Pulse against a peer on the same machine in the same run: 50 real pulse-agent processes on MinIO
# against Ansible ad hoc (connection=local, forks=50). Not part of `make test` or `make bench`: it needs
# Ansible, which it installs from Debian when missing (as root, like the S3 servers, once).
bench-peers: tools build ## time pulse run --wait on 50 real agents against Ansible ad hoc uptime (installs ansible if missing)
	command -v ansible >/dev/null || apt-get install -y ansible
	export PULSE_MINIO_BIN=$$(bash $(TOOLS) minio) PULSE_VERSITYGW_BIN=$$(bash $(TOOLS) versitygw); \
	set -o pipefail; $(GO) test -run '^$$' -bench '^BenchmarkPeersAnsible$$' -benchtime 1x -count 1 -timeout 30m ./integration-tests/ 2>&1 | \
	$(GO) run ./integration-tests/tools/benchtable -ran

# Every fuzz target, as package:Function. Their seed corpora (f.Add, and testdata/fuzz/ where a crash
# was found) run as ordinary tests in `make test` and `make test-unit`; `make fuzz` mutates them.
FUZZ_TARGETS := \
	./agent/wire:FuzzVerifyEnvelope \
	./agent/wire:FuzzPollResponse \
	./agent/httpsig:FuzzVerify \
	./agent/integrations/standard:FuzzAgentConfig \
	./functions/workflow:FuzzLoad \
	./functions/alert:FuzzParse \
	./functions/hub/fleet:FuzzSelect \
	./functions/store/local:FuzzFileURL \
	./functions/store/backends:FuzzOpen \
	./functions/hub:FuzzAgentBodies
FUZZTIME ?= 2m
# Minimising each new corpus entry is bounded, or a slow target (workflows compile CEL) spends its
# whole time minimising large inputs.
FUZZMINIMIZETIME ?= 10s

fuzz: ## run every fuzz target for FUZZTIME each (default 2m), one after another; stops at the first crash
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg; \
	done

openapi: ## regenerate the committed OpenAPI documents in openapi/
	$(GO) run ./functions/cmd/pulse openapi --out openapi

generate: openapi ## regenerate the documents, then the Go client (openapi/client) and TypeScript types (openapi/ts)
	cd openapi/client && $(GO) tool oapi-codegen -config oapi-codegen.yaml ../openapi-3.0.yaml
	bash openapi/ts/check.sh --write

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l functions agent integration-tests openapi policy site/*.go 2>/dev/null); \
		if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

fmt:
	gofmt -w functions agent integration-tests openapi site/*.go

clean:
	rm -rf $(BIN) $(RUN_DIR) site/dist/app site/test-results
