# Headcount developer entry points. `make help` lists them.
#
# Two private ClickHouse servers, both run by scripts/clickhouse.sh, both on
# 127.0.0.1 only, so `make run` and `make test` can run side by side:
#   run:  HTTP 18123, TCP 19000, data under var/clickhouse/       (kept)
#   test: HTTP 28123, TCP 29000, data under var/test-clickhouse/  (wiped per run)

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
# Each recipe runs as one bash script (traps, variables and `exec` work).
.ONESHELL:
.DEFAULT_GOAL := help
.PHONY: help run test stop clean-data bench load lint deps

CARGO  ?= cargo
PYTHON ?= python3
CH     := scripts/clickhouse.sh

RUN_CH_DIR  := var/clickhouse
RUN_CH      := $(RUN_CH_DIR) 18123 19000
TEST_CH_DIR := var/test-clickhouse
TEST_CH     := $(TEST_CH_DIR) 28123 29000

CONFIG := var/headcount.toml

help: ## list the targets
	@echo "Headcount — make targets:"
	grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 14
	echo
	echo "Local ClickHouse: run 127.0.0.1:18123 (var/clickhouse), test 127.0.0.1:28123 (var/test-clickhouse)"

# ---------------------------------------------------------------------------
# Dependencies: Debian's ClickHouse 18.16 (the oldest version we support).
# ---------------------------------------------------------------------------
deps: ## install clickhouse-server/-client with apt if missing
	@if [[ -x /usr/sbin/clickhouse-server ]] && command -v clickhouse-client >/dev/null; then exit 0; fi
	sudo=; [[ $$(id -u) -eq 0 ]] || sudo=sudo
	echo "Installing clickhouse-server and clickhouse-client (Debian packages)..."
	# No init system here: the package's attempt to start its own server is
	# refused, which is harmless; we run our own servers from var/.
	$$sudo apt-get update
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		clickhouse-server clickhouse-client

# ---------------------------------------------------------------------------
# make run: local ClickHouse (kept running) + headcount in the foreground.
# ---------------------------------------------------------------------------
run: deps $(CONFIG) ## start local ClickHouse (if not running) and headcount serve
	@$(CH) start $(RUN_CH)
	bash scripts/install-geo.sh
	$(CARGO) build --release --bin headcount
	# Where headcount listens, from [server] listen (0.0.0.0 -> 127.0.0.1).
	listen=$$(awk -F'"' '/^\[/ { s = $$0 } s ~ /^\[server\]/ && /^[ \t]*listen[ \t]*=/ { print $$2; exit }' $(CONFIG))
	base="http://$${listen:-127.0.0.1:8080}"; base=$${base/0.0.0.0/127.0.0.1}
	site=$$(awk -F'"' '/^\[\[sites\]\]/ { s = 1 } s && /^[ \t]*domain[ \t]*=/ { print $$2; exit }' $(CONFIG))
	site=$${site:-example.com}
	# make strips leading blanks from recipe lines; a `|` margin keeps them.
	sed 's/^|//' <<EOF
	|
	|================================================================================
	| Headcount on $$base  (config: $(CONFIG))
	|================================================================================
	|Count a page view of $$site:
	|
	|  Pixel, no JavaScript:
	|    <img src="$$base/p.gif?d=$$site&u=https%3A%2F%2F$$site%2F" alt="" width="1" height="1">
	|    i.e. $$base/p.gif?d=$$site&u=<page URL, encoded>[&r=<referrer, encoded>]
	|
	|  fetch, no tracker script (Plausible Events API body):
	|    fetch("$$base/api/event", {method: "POST", keepalive: true,
	|      body: JSON.stringify({n: "pageview", d: "$$site", u: location.href, r: document.referrer})});
	|
	|  From a shell (with a browser's User-Agent: bots are not counted):
	|    curl -si -A 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' '$$base/p.gif?d=$$site&u=https%3A%2F%2F$$site%2F'
	|
	|Operations:
	|  $$base/metrics   Prometheus metrics
	|  $$base/healthz   liveness
	|  $$base/readyz    readiness (ClickHouse reachable)
	|
	|ClickHouse: http://127.0.0.1:18123  (clickhouse-client --port 19000)
	|  data $(RUN_CH_DIR)/data, log $(RUN_CH_DIR)/log/clickhouse-server.log
	|
	|Ctrl-C stops headcount (it flushes first); ClickHouse keeps running: make stop.
	|================================================================================
	|
	EOF
	# exec: Ctrl-C goes straight to headcount (cargo run execs the binary too).
	exec $(CARGO) run --release --bin headcount -- --config $(CONFIG) serve

# The example config, pointed at the local ClickHouse on 18123. Only made when
# absent: edit it freely afterwards.
$(CONFIG):
	@mkdir -p $(@D)
	trap 'rm -f $@.tmp $@.tmp2' EXIT
	$(CARGO) run --release --bin headcount -- config example > $@.tmp
	# Replace `url = "http://127.0.0.1:8123"` in [clickhouse]; fail if absent.
	awk '/^[ \t]*\[/ { s = $$0 }
	  s ~ /^[ \t]*\[clickhouse\]/ && /^[ \t]*url[ \t]*=[ \t]*"http:\/\/127\.0\.0\.1:8123"/ {
	    print "url = \"http://127.0.0.1:18123\""; n++; next }
	  { print }
	  END { exit n == 1 ? 0 : 1 }' $@.tmp > $@.tmp2 || {
	  echo "error: no [clickhouse] url = \"http://127.0.0.1:8123\" line in 'headcount config example'" >&2
	  exit 1; }
	mv $@.tmp2 $@
	echo "Wrote $@ (from 'headcount config example', ClickHouse at 127.0.0.1:18123)"

stop: ## stop the local ClickHouse servers (run's and a leftover test one)
	@$(CH) stop $(RUN_CH)
	$(CH) stop $(TEST_CH)

clean-data: stop ## stop ClickHouse and delete its data (var/clickhouse, var/test-clickhouse)
	@rm -rf $(RUN_CH_DIR) $(TEST_CH_DIR)
	echo "Removed $(RUN_CH_DIR) and $(TEST_CH_DIR) (kept $(CONFIG), keys and var/venv-chdb)"

# ---------------------------------------------------------------------------
# make test: a fresh ClickHouse of its own, the Rust suites, the SQL check.
# ---------------------------------------------------------------------------
test: deps ## run all tests against a fresh private ClickHouse (28123)
	@# A server left over from an interrupted run would hold the ports.
	$(CH) stop $(TEST_CH) 2>/dev/null
	rm -rf $(TEST_CH_DIR)
	trap '$(CH) stop $(TEST_CH)' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	$(CH) start $(TEST_CH)
	# GeoIP data (country mmdb, ASN ranges) from npm; a no-op when present.
	bash scripts/install-geo.sh
	export HEADCOUNT_TEST_REQUIRE_GEO=1    # geo tests fail rather than skip
	export HEADCOUNT_TEST_CLICKHOUSE_URL=http://127.0.0.1:28123
	export HEADCOUNT_TEST_CLICKHOUSE_DATA="$(CURDIR)/$(TEST_CH_DIR)"
	export HEADCOUNT_TEST_CLICKHOUSE_LOG="$(CURDIR)/$(TEST_CH_DIR)/log/clickhouse-server.log"
	failed=()
	# Every step runs even if an earlier one failed; the status says if any did.
	if $(CARGO) nextest --version >/dev/null 2>&1; then
	  $(CARGO) nextest run --workspace --all-targets --no-fail-fast || failed+=("cargo nextest run")
	else
	  echo "cargo-nextest not found; using cargo test"
	  $(CARGO) test --workspace --all-targets --no-fail-fast || failed+=("cargo test")
	fi
	$(CARGO) test --doc || failed+=("cargo test --doc")
	$(PYTHON) scripts/check_sql_modern.py || failed+=("check_sql_modern.py")
	# The tracker and the pixel in a real browser (Debian chromium + playwright-core).
	bash scripts/test-browser.sh || failed+=("browser tests")
	if (( $${#failed[@]} )); then
	  printf 'make test: FAILED: %s\n' "$${failed[@]}" >&2
	  echo "ClickHouse log: $$HEADCOUNT_TEST_CLICKHOUSE_LOG (kept until the next make test)" >&2
	  exit 1
	fi
	echo "make test: all steps passed"

# ---------------------------------------------------------------------------
# Other chores.
# ---------------------------------------------------------------------------
bench: ## cargo bench (see benches/)
	@$(CARGO) bench

load: ## /p.gif throughput vs nginx empty_gif and a bare hyper server (see BENCHMARKS.md)
	@bash benches/run-baselines.sh throughput 3

lint: ## clippy with warnings as errors, rustfmt check
	@$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) fmt --check
