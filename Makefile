# hookbridge: make run | make test | make send | make fuzz | make bench
GO       ?= go
BIN      := bin/bridge
CONFIG   ?= config.example.yaml
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 60s
# make send / make routes-test: which source of CONFIG, and its sample payload
SOURCE   ?= helloclient
PAYLOAD  ?= $(firstword $(wildcard testdata/payloads/$(SOURCE)-*.json))

# Development secrets for `make run` and `make send` on config.example.yaml.
# Real deployments set these in the environment (or ${file:...}) instead.
export HELLOCLIENT_SIGNING_KEY ?= dev-helloclient-signing-key
export HELPCRUNCH_SIGNING_KEY ?= dev-helpcrunch-signing-key
export CRISP_HOOK_KEY ?= dev-crisp-hook-key
export CRISP_SIGNING_SECRET ?= dev-crisp-signing-secret
export SOCIALBOARDS_VERIFY_TOKEN ?= dev-socialboards-verify-token
export SOCIALBOARDS_KEY ?= dev-socialboards-key
export USERECHO_KEY ?= dev-userecho-key
export HMAC_SECRET ?= dev-hmac-secret
export STANDARDWEBHOOKS_SECRET ?= whsec_ZGV2LXN0YW5kYXJkLXdlYmhvb2tzLXNlY3JldA==
export GITHUB_WEBHOOK_SECRET ?= dev-github-webhook-secret
export SLACK_SIGNING_SECRET ?= dev-slack-signing-secret
export META_VERIFY_TOKEN ?= dev-meta-verify-token
export META_APP_SECRET ?= dev-meta-app-secret
export STRIPE_WEBHOOK_SECRET ?= whsec_devstripewebhooksigningsecret

.PHONY: build run send routes-test validate test fuzz bench clean

# The bridge is pure Go: a static binary, and cheaper than a cgo build,
# whose every Pebble cache allocation is a C call (BENCHMARKS.md).
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/bridge

## run: build and run the bridge on config.example.yaml (events go to ./data/events.jsonl)
run: build
	@echo "hookbridge: webhooks on http://$(or $(BRIDGE_LISTEN),127.0.0.1:8080)/webhooks/<source>, events written to $(or $(BRIDGE_DATA),$(CURDIR)/data)/events.jsonl"
	@echo "hookbridge: in another terminal: make send   (then: tail -f data/events.jsonl)"
	./$(BIN) run -c $(CONFIG)

## send: sign the sample Hello Client lead (or SOURCE=name's sample, or PAYLOAD=file) as the provider would and post it to `make run`
send: build
	./$(BIN) send -c $(CONFIG) --source $(SOURCE) $(or $(PAYLOAD),$(error no testdata/payloads/$(SOURCE)-*.json: give PAYLOAD=file))

## routes-test: show what the sample payload becomes and what each sink would get; nothing is sent
routes-test: build
	./$(BIN) routes test -c $(CONFIG) --source $(SOURCE) $(or $(PAYLOAD),$(error no testdata/payloads/$(SOURCE)-*.json: give PAYLOAD=file))

validate: build
	./$(BIN) validate -c $(CONFIG)

## test: every test, with the race detector
test:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) ./.ci/fuzz

## bench: the load benchmark of BENCHMARKS.md
bench: build
	$(GO) run ./bench -bridge $(BIN)

clean:
	rm -rf bin data
