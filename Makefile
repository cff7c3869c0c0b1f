# settle — `make run` and `make test` do all set-up on a fresh Debian machine: they start
# (or reuse) PostgreSQL and Redis through scripts/devenv.sh. See `make help`.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Go from the official tarball lives in /usr/local/go/bin; a go already on PATH wins.
export PATH := $(PATH):/usr/local/go/bin

GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
# make test fuzzes for a count of inputs, not a time: with Go 1.26 a -fuzztime
# duration can end in a spurious "context deadline exceeded" failure when the
# machine is busy (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 20000x
STATICCHECK_VERSION := v0.8.2
DEVENV := scripts/devenv.sh
BENCH_FLAGS ?= --customers 10000

.PHONY: help build run test fuzz chaos bench lint env-down clean

help: ## list the targets
	@echo 'usage: make TARGET'
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{ printf "  %-10s %s\n", $$1, $$2 }'

build: ## build bin/settle
	go build -o bin/settle ./cmd/settle

run: ## start settle locally with its own PostgreSQL and Redis (scripts/run.sh)
	bash scripts/run.sh

test: ## start (or reuse) the test PostgreSQL and Redis, then go vet and go test -race ./...
	@command -v go >/dev/null 2>&1 || { echo 'go not found: install Go 1.26 (e.g. in /usr/local/go)' >&2; exit 1; }
	@command -v "$$(go env CC)" >/dev/null 2>&1 || $(DEVENV) install gcc libc6-dev
	@command -v chromium >/dev/null 2>&1 || $(DEVENV) install chromium # the status page's browser test
	@command -v promtool >/dev/null 2>&1 || $(DEVENV) install prometheus # promtool: the alerting rules' checks and unit tests
	@env_lines="$$($(DEVENV) up test)"; eval "$$env_lines"; \
	echo 'go vet ./...'; go vet ./...; \
	echo 'promtool check rules, test rules (docs/deploy/prometheus)'; \
	promtool check rules docs/deploy/prometheus/settle-rules.yaml; \
	(cd docs/deploy/prometheus && promtool test rules settle-rules.test.yaml); \
	echo 'scripts/fuzz.sh $(FUZZTIME)'; scripts/fuzz.sh $(FUZZTIME); \
	echo 'go test $(GO_TEST_FLAGS) ./...'; go test $(GO_TEST_FLAGS) ./...

fuzz: ## every fuzz target for FUZZTIME each (default 60s here, 20000 inputs in make test)
	scripts/fuzz.sh $(if $(filter command line environment,$(origin FUZZTIME)),$(FUZZTIME),60s)

chaos: ## the long seeded fault-injection run (2,000 customers); SETTLE_TEST_CHAOS_SEED=N replays a run
	@env_lines="$$($(DEVENV) up test)"; eval "$$env_lines"; \
	export SETTLE_TEST_CHAOS_CUSTOMERS="$${SETTLE_TEST_CHAOS_CUSTOMERS:-2000}" \
	       SETTLE_TEST_CHAOS_DURATION="$${SETTLE_TEST_CHAOS_DURATION:-3m}" \
	       SETTLE_TEST_CHAOS_CRASH="$${SETTLE_TEST_CHAOS_CRASH:-0.002}"; \
	go test -count=1 -timeout 60m -run TestChaos -v ./internal/chaos/

bench: ## payday benchmark on its own durable PostgreSQL and Redis, JSON on stdout; BENCH_FLAGS='--customers 20000 --floor --chart payday.svg'
	@env_lines="$$($(DEVENV) up bench)"; eval "$$env_lines"; \
	go build -o bin/settle ./cmd/settle; \
	bin/settle bench $(BENCH_FLAGS)

lint: ## gofmt check, go vet, staticcheck and the import rules (internal/archtest); needs no service
	@command -v go >/dev/null 2>&1 || { echo 'go not found: install Go 1.26 (e.g. in /usr/local/go)' >&2; exit 1; }
	@unformatted="$$(find . \( -path ./.dev -o -path ./.git -o -path ./bin \) -prune -o -name '*.go' -print | xargs -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "not gofmt-ed (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	go test -count=1 ./internal/archtest/

env-down: ## stop the PostgreSQL and Redis that run and test started
	$(DEVENV) down run
	$(DEVENV) down test
	$(DEVENV) down bench

clean: ## remove build and test artifacts (not the .dev/ data; see env-down)
	rm -rf bin/ coverage.out coverage.html *.test *.prof
