# The README's commands. Every target creates the virtualenv first if needed.
SHELL := /bin/bash
PYTHON ?= $(shell pyenv which python3.12 2>/dev/null || command -v python3.12 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
CHROMIUM ?= /usr/bin/chromium
WEB_DEPS := web/node_modules/.package-lock.json
BENCH_DEPS := devtools/bench/dynalite/node_modules/.package-lock.json

.PHONY: install lock audit web-deps bench-deps browser redis-server cost test test-unit docs lint screenshots run bench ingest package stage-config \
        deploy-quote deploy-backtest deploy-alerts deploy-web clean

install: $(VENV)/.installed

# Exactly the lock (requirements-dev.txt), every hash checked: pip installs the locked
# uv, and uv makes the virtualenv hold what the lock says and nothing else.
$(VENV)/.installed: requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 12), f"Python 3.12 is required, found {sys.version}"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m devtools.release.lock --bootstrap
	$(BIN)/uv pip sync --quiet --require-hashes --python $(BIN)/python requirements-dev.txt
	touch $@

# Re-resolve the locks from the *.in ranges: all packages, or ARGS="moto" for one,
# ARGS=--keep to take an edited .in in and move nothing else. The test run decides.
lock: install
	$(BIN)/python -m devtools.release.lock $(ARGS)

# The dashboard's one dependency (lightweight-charts), exactly as web/package-lock.json pins it.
web-deps: $(WEB_DEPS)

$(WEB_DEPS): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "make: npm is needed for the dashboard's chart library: install Node.js and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# dynalite (DynamoDB on LevelDB) for the alerts benchmark, as devtools/bench/dynalite/package-lock.json pins it.
bench-deps: $(BENCH_DEPS)

$(BENCH_DEPS): devtools/bench/dynalite/package.json devtools/bench/dynalite/package-lock.json
	@command -v npm >/dev/null || { echo "make: npm is needed for the benchmark's dynalite: install Node.js and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	cd devtools/bench/dynalite && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser download cannot work here). Installed from Debian when we can, else one line says how.
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	  fi; \
	  test -x $(CHROMIUM) || { echo "make: the browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install chromium' (or set CHROMIUM=/path/to/chromium)"; exit 1; }; \
	}

# The cluster-mode TLS Redis tests run Debian's redis-server (built with TLS) and openssl.
redis-server:
	@command -v redis-server >/dev/null && command -v openssl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's redis-server and openssl for the cluster-mode TLS tests"; \
	    apt-get install -y -qq redis-server openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-server openssl >/dev/null; }; \
	  fi; \
	  command -v redis-server >/dev/null || { echo "make: the cluster tests need redis-server with TLS: run 'sudo apt-get install redis-server'"; exit 1; }; \
	}

# Advisories PyPI knows of in the runtime locks (needs the network; not part of make test).
audit: install
	$(BIN)/python -m devtools.release.audit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m devtools.release.lock --check
	$(BIN)/python -m devtools.release.typecheck

test: lint web-deps browser redis-server
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest

# The tests that need no server (tests/unit/): the condition language, firing decisions,
# adjustment, Fibonacci aggregation, indicators, the calendar, the cursor codec; seconds.
test-unit: install
	$(BIN)/python -m pytest tests/unit

# The documentation site, built strictly (a broken link or a missing page is an error, as
# in make test) and served on DOCS_PORT. Built and served as files, not with `mkdocs
# serve`: that needs watchdog, which the lock leaves out (devtools/release/lock.py says why).
DOCS_PORT ?= 8000
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "the documentation: http://127.0.0.1:$(DOCS_PORT)/ (Ctrl-C stops it)"
	$(BIN)/python -m http.server $(DOCS_PORT) --bind 127.0.0.1 --directory build/site

# The README's pictures of the dashboard, from the browser tests.
screenshots: web-deps browser
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest tests/test_dashboard.py

run: install web-deps
	$(BIN)/python -m devtools.local.stack

bench: install web-deps bench-deps browser redis-server
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m devtools.bench $(ARGS)

ingest: install
	$(BIN)/python -m batch.ingest $(ARGS)

STAGE ?= aws-prod

# The monthly bill, read from the templates (make package's and the stacks').
cost: install
	$(BIN)/python -m devtools.release.cost $(ARGS)

package: install
	$(BIN)/python -m devtools.release.packaging quote backtest alerts --stage $(STAGE)

deploy-quote deploy-backtest deploy-alerts: deploy-%: install
	$(BIN)/python -m devtools.release.deploy $* --stage $(STAGE) --bucket "$(DEPLOY_BUCKET)"

deploy-web: install web-deps
	$(BIN)/python -m devtools.release.deploy_web --stage $(STAGE)

stage-config: install
	$(BIN)/python -m devtools.release.stage_config --stage $(STAGE)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis web/node_modules devtools/bench/dynalite/node_modules
