# The whole set-up on a fresh machine: `make run` and `make test`.

CARGO ?= cargo
NODE_TESTS := tests/node

.PHONY: run build release test test-rust test-alerts test-node test-browser test-schemathesis schemathesis-venv node-deps lint fmt clippy doc bench fuzz soak clean

## Start the server on the embedded defaults (in-memory storage, 127.0.0.1:8080).
run:
	$(CARGO) run --release -p chat-server

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release -p chat-server

## Every test: Rust (unit, integration, storage against a private redis-server) and the
## socket.io-client protocol suite (Node) against the real server binary.
# The Node protocol suite runs last: its closing lines (tests, pass, fail) end the log.
test: lint test-rust test-alerts test-schemathesis test-browser test-node

test-rust:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

## The Prometheus alerting rules: promtool (Debian's package prometheus, which .ci/run
## installs) checks deploy/prometheus/alerts.yml and runs its unit tests, alerts.test.yml.
## Without promtool it skips with a notice, except under CI=true, where it fails.
test-alerts:
	@if command -v promtool >/dev/null 2>&1; then \
	  promtool check rules deploy/prometheus/alerts.yml && \
	  promtool test rules deploy/prometheus/alerts.test.yml; \
	elif [ "$$CI" = true ]; then \
	  echo "promtool is missing (apt-get install prometheus)"; exit 1; \
	else \
	  echo "promtool not found: the alert rule tests are skipped (apt-get install prometheus)"; \
	fi

node-deps:
	cd $(NODE_TESTS) && npm ci --no-audit --no-fund --loglevel=error

test-node: node-deps
	$(CARGO) build -p chat-server
	cd $(NODE_TESTS) && CHAT_SERVER_BIN=$(CURDIR)/target/debug/chat-server node --test --test-concurrency=2 --test-reporter=spec

## The web client (web/, served by chat-server at /) in Debian's Chromium, driven by
## playwright-core against the real binary. Without Chromium it skips with a notice, except
## under CI=true, where it fails. UPDATE_DOC_SCREENSHOT=1 also refreshes docs/screenshot.png.
CHROMIUM_BIN ?= /usr/bin/chromium
test-browser:
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	$(CARGO) build -p chat-server
	cd tests/browser && CHAT_SERVER_BIN=$(CURDIR)/target/debug/chat-server CHROMIUM_BIN=$(CHROMIUM_BIN) node --test --test-concurrency=1 --test-reporter=spec

## The REST API fuzzed by schemathesis (from PyPI, into target/venv) against the real binary
## and the OpenAPI document it serves, every check on; then the admin API on the same binary's
## admin listener against its own document, with the admin token; about 60 s. See
## tests/schemathesis/.
SCHEMATHESIS_VERSION ?= 4.32.5
schemathesis-venv: target/venv/.schemathesis-$(SCHEMATHESIS_VERSION)
target/venv/.schemathesis-$(SCHEMATHESIS_VERSION):
	python3 -m venv target/venv
	target/venv/bin/pip install --quiet --disable-pip-version-check schemathesis==$(SCHEMATHESIS_VERSION)
	touch $@

test-schemathesis: schemathesis-venv
	$(CARGO) build -p chat-server
	tests/schemathesis/run.sh

lint: fmt clippy doc

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## Benchmarks (not run by CI): release build, memory mode, Redis mode (private redis-server on a
## random port), three nodes on one private Redis, then three nodes on a private three-master
## Redis Cluster; every chat-loadgen scenario (connect and broadcast not on three nodes), Redis
## commands per search and per message; writes docs/benchmarks.md. See bench/run.sh, bench/notes.md.
bench:
	bash bench/run.sh

## Fuzzing (not part of make test): every cargo-fuzz (libFuzzer) target of fuzz/ for FUZZ_SECS
## seconds each, on stable Rust through RUSTC_BOOTSTRAP=1. Seeds in fuzz/corpus/<target>/ are
## only read; what a run learns goes to fuzz/target/corpus/<target>/, crashes to
## fuzz/artifacts/<target>/ (then make a regression test of them). See fuzz/README.md.
FUZZ_SECS ?= 60
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	for target in $$(RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
	  mkdir -p fuzz/target/corpus/$$target && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$target fuzz/target/corpus/$$target fuzz/corpus/$$target \
	    -- -max_total_time=$(FUZZ_SECS) -print_final_stats=1 || exit 1; \
	done

## Long randomized fault injection (not part of make test): crates/signaling/tests/simulation.rs
## over SOAK_SEEDS seeds of SOAK_STEPS steps, starting no new seed after SOAK_SECS seconds;
## prints the totals (operations, faults by kind, violations). SIM_FAULTS picks the fault kinds
## (default: the set that passes; `all` for every kind). A failing seed prints its schedule and
## a minimal one; replay it with SIM_SEED=<n>.
SOAK_SEEDS ?= 100000
SOAK_STEPS ?= 2000
SOAK_SECS ?= 600
## Then the same against real processes: tests/node/chaos.test.js (three chat-server nodes on a
## private redis-server, SIGKILL/SIGSTOP of nodes, Redis killed and restarted) over
## CHAOS_SOAK_SEEDS seeds (1..n) of CHAOS_SOAK_STEPS steps; prints its own totals. CHAOS_FAULTS
## picks its fault kinds (default kill,pause; kill,redis,pause for every kind). A failing seed
## prints its schedule; replay it with CHAOS_SEED=<n>.
CHAOS_SOAK_SEEDS ?= 50
CHAOS_SOAK_STEPS ?= 200
soak: node-deps
	SIM_SEEDS=$(SOAK_SEEDS) SIM_STEPS=$(SOAK_STEPS) SOAK_SECS=$(SOAK_SECS) \
	  $(CARGO) test --release -p chat-signaling --test simulation -- --nocapture
	$(CARGO) build -p chat-server
	cd $(NODE_TESTS) && CHAT_SERVER_BIN=$(CURDIR)/target/debug/chat-server \
	  CHAOS_SEEDS=$(CHAOS_SOAK_SEEDS) CHAOS_STEPS=$(CHAOS_SOAK_STEPS) $(if $(CHAOS_FAULTS),CHAOS_FAULTS=$(CHAOS_FAULTS)) \
	  node --test --test-reporter=spec chaos.test.js

clean:
	$(CARGO) clean
	rm -rf $(NODE_TESTS)/node_modules
