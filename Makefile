# The README's commands. Every target creates the virtualenv first if needed.
SHELL := /bin/bash
PYTHON ?= $(shell pyenv which python3.12 2>/dev/null || command -v python3.12 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
REQS := requirements-dev.txt $(wildcard */requirements.txt)

.PHONY: install test lint run bench ingest package stage-config deploy-quote deploy-backtest deploy-alerts clean

install: $(VENV)/.installed

$(VENV)/.installed: $(REQS)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 12), f"Python 3.12 is required, found {sys.version}"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

run: install
	$(BIN)/python -m devtools.stack

bench: install
	$(BIN)/python -m devtools.bench

ingest: install
	$(BIN)/python -m shared.history.ingest $(ARGS)

STAGE ?= prod

package: install
	$(BIN)/python -m devtools.packaging quote backtest alerts --stage $(STAGE)

deploy-quote deploy-backtest deploy-alerts: deploy-%: install
	$(BIN)/python -m devtools.deploy $* --stage $(STAGE) --bucket "$(DEPLOY_BUCKET)"

stage-config: install
	$(BIN)/python -m devtools.stage_config --stage $(STAGE)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
