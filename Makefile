# The README's test command is `make test`: it needs nothing prepared but Python 3.11+
# and root (to install and start a Docker engine when none answers).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_ENV := $(VENV)/test-env.sh

.PHONY: all install venv test test-env lint unit e2e vault-test bench clean

all: test

$(BIN)/.installed: pyproject.toml vault/requirements.txt vault/requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -r vault/requirements.txt -r vault/requirements-dev.txt
	touch $@

venv install: $(BIN)/.installed

## Docker engine, compose plugin and local images; prints POSTGRES_IMAGE=… and PYTHON_IMAGE=…
test-env:
	@bash scripts/test-env.sh

lint: venv
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy

vault-test: venv
	cd vault && VAULT_TEST_SQLITE=1 DJANGO_SECRET_KEY=test-only-not-a-real-secret-key-0123456789abcdefghij \
		../$(BIN)/python manage.py test --noinput -v 1

unit: venv
	$(BIN)/pytest tests/unit tests/cli

## Everything: lint, the vault's own tests, then unit, CLI and e2e tests against a real engine.
test: venv lint vault-test
	bash scripts/test-env.sh | tee $(TEST_ENV).out
	set -a && source <(grep -E '^(POSTGRES|PYTHON)_IMAGE=' $(TEST_ENV).out) && set +a && \
		RECOVERCTL_E2E=required $(BIN)/pytest tests

e2e: venv
	set -a && source <(bash scripts/test-env.sh) && set +a && \
		RECOVERCTL_E2E=required $(BIN)/pytest tests/e2e

## Benchmarks against the raw playbook and the physical limit: make bench [SIZE=large]
SIZE ?= small
bench: venv
	set -a && source <(bash scripts/test-env.sh) && set +a && \
		$(BIN)/python -m bench --size $(SIZE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
