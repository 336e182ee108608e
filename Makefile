# The one test command (README.md): installs what the tests need, idempotently, then vets,
# tests and fuzzes. Works on a fresh Debian machine as root.
GO ?= go
FUZZTIME ?= 5s

.PHONY: test deps vet unit fuzz build

build:
	$(GO) build -o bin/snapinvoker ./cmd/snapinvoker

test: deps vet unit fuzz

deps:
	bash scripts/install-deps.sh

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 20m ./...

fuzz:
	bash scripts/fuzz-all.sh $(FUZZTIME)

.PHONY: run
run: build
	./bin/snapinvoker standalone
