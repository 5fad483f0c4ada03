# The README's quick start is `make up` then `make test`. Both need nothing prepared but
# Python 3.11+ and, on a fresh machine, root (to install and start a Docker engine).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Not in $(VENV): written while the virtualenv is being made.
TEST_ENV_OUT := .test-env.out
SIZE ?= small

.PHONY: all help up tools install venv test test-env lint unit e2e vault-test bench clean

all: test

## What each target does.
help:
	@awk '/^## / { doc = doc (doc ? " " : "") substr($$0, 4); next } /^# / { next } \
		/^[a-z0-9 -]+:/ && doc { split($$0, t, ":"); printf "  make %-11s %s\n", t[1], doc } \
		{ doc = "" }' $(MAKEFILE_LIST)

## The dev stack from nothing, up and healthy; then its URL and what next. [PORT=8000]
# Installs and starts what is missing (a Docker engine and compose: root), takes the official
# images where a registry answers and builds local ones where none does, makes the
# virtualenv, and writes .env with `recoverctl init` when there is none (PORT: its port).
up:
	@$(MAKE) --no-print-directory tools
	@if [ -e .env ]; then echo "make up: .env exists: kept as it is"; \
	else $(BIN)/recoverctl init $(if $(PORT),--port $(PORT)); fi
	@bash scripts/test-env.sh --images .env
	@$(BIN)/recoverctl up
	@$(BIN)/recoverctl ps --json | $(BIN)/python -c "$$UP_NEXT"

# What `make up` prints last: where the vault answers, and what to do next.
define UP_NEXT
import json, sys
status = json.load(sys.stdin)["result"]
ports = [p for s in status["services"] if s["service"] == "backend" for p in s["ports"]]
url = f"http://{ports[0].split('->')[0]}/" if ports else "(no published port: see recoverctl ps)"
compose = f"docker compose -p {status['project']} -f docker-compose.dev.yml"
print(f"""
make up: the vault's dev stack is up at {url}
next:
  make test
      the whole test suite: lint, unit, CLI and end-to-end tests
  {compose} exec backend python manage.py createsuperuser
      your first account; then sign in at {url}
  $(BIN)/recoverctl doctor
      what is left to keep it safe: the key export, backups
  $(BIN)/recoverctl down
      stops the stack; the data stays in its volume""")
endef
export UP_NEXT

## What recoverctl needs here, no stack started (a recovery, playbook.md section 1): a
## Docker engine and compose (root, when missing), .venv, the local images env files name.
tools:
	@bash scripts/test-env.sh --up
	@$(MAKE) --no-print-directory $(BIN)/.runtime
	@for f in .env .env.production; do if [ -e "$$f" ]; then bash scripts/test-env.sh --images "$$f"; fi; done

# Enough to run recoverctl; `make venv` adds the test and vault tools on top.
$(BIN)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/.installed: pyproject.toml vault/requirements.txt vault/requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -r vault/requirements.txt -r vault/requirements-dev.txt
	touch $@

## The virtualenv with every test and lint tool.
venv install: $(BIN)/.installed

## Docker engine, compose plugin, the tests' tools and local images; prints POSTGRES_IMAGE=…, POSTGRES17_IMAGE=…, PYTHON_IMAGE=… and S3TLS_IMAGE=…
test-env:
	@bash scripts/test-env.sh

## ruff and mypy (strict).
lint: venv
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy

## The vault's own Django tests (SQLite, no engine).
vault-test: venv
	cd vault && VAULT_TEST_SQLITE=1 DJANGO_SECRET_KEY=test-only-not-a-real-secret-key-0123456789abcdefghij \
		../$(BIN)/python manage.py test --noinput -v 1

## Unit and CLI tests (no engine).
unit: venv
	$(BIN)/pytest tests/unit tests/cli

## Everything: lint, the vault's own tests, then unit, CLI and e2e tests against a real engine.
# The engine and the images (minutes on a new machine, mostly downloads) are made while the
# virtualenv, lint and the tests that need no engine run; the e2e tests wait for them, then
# run on two workers, a module each (each module has a compose project of its own, and the
# tests mostly wait on containers).
test:
	@rm -f $(TEST_ENV_OUT); bash scripts/test-env.sh > $(TEST_ENV_OUT) 2>&1 & env_pid=$$!; \
	$(MAKE) --no-print-directory venv lint vault-test unit; made=$$?; \
	wait $$env_pid; env_rc=$$?; cat $(TEST_ENV_OUT); \
	if [ $$env_rc != 0 ]; then echo "make test: scripts/test-env.sh failed (exit $$env_rc): its output is above" >&2; exit $$env_rc; fi; \
	if [ $$made != 0 ]; then exit $$made; fi
	set -a && source <(grep -E '^(POSTGRES|POSTGRES17|PYTHON|S3TLS)_IMAGE=' $(TEST_ENV_OUT)) && set +a && \
		RECOVERCTL_E2E=required $(BIN)/pytest -n 2 --dist loadfile --durations=25 tests/e2e

## The e2e tests alone.
e2e: venv
	set -a && source <(bash scripts/test-env.sh) && set +a && \
		RECOVERCTL_E2E=required $(BIN)/pytest -n 2 --dist loadfile --durations=25 tests/e2e

## Benchmarks against the raw playbook and the physical limit: make bench [SIZE=large]
bench: venv
	set -a && source <(bash scripts/test-env.sh) && set +a && \
		$(BIN)/python -m bench --size $(SIZE)

## Remove the virtualenv and the tools' caches.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
