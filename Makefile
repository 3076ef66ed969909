# HelpDesk. `make run` serves one node on http://127.0.0.1:8080; `make test` runs every test.
SHELL := /bin/bash
.PHONY: all deps build run cluster test fuzz bench stop clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	swift build

run: build
	scripts/run.sh

# Three nodes behind nginx on :8080 (deploy/nginx.conf), with the databases of `make run`.
cluster: build
	scripts/cluster.sh

test: deps
	scripts/test.sh

# libFuzzer targets (Fuzz/: client frames, RESP replies), FUZZ_SECONDS each (default 300);
# FUZZ_MERGE=1 merges inputs that add coverage into Fuzz/corpus. `make test` runs them for 25 s.
fuzz: deps
	scripts/fuzz.sh

# Release build, two nodes, every bench and Redis's ceilings (BENCHMARKS.md). ARGS="..." runs only the relay with those options.
bench: deps
	scripts/bench.sh $(ARGS)

# Stops the Redis and PostgreSQL that `make run` started (their data stays in .data/run).
stop:
	scripts/services.sh down .data/run

clean: stop
	rm -rf .build .data
