# `make run` and `make test` set everything up on a fresh machine with python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The reference graphql-sse client the GraphQL-over-SSE tests run under node
# (tests/streaming/test_graphql_sse_js.py, skipped where it is not installed).
JS_DIR := tests/js
JS_STAMP := $(JS_DIR)/node_modules/.installed

.PHONY: run test lint typecheck unit bench setup js clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,test,redis,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/aipasta serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# One worker per core, at most four: each worker starts its own embedded database.
unit: $(STAMP) js
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4

js: $(JS_STAMP)

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(JS_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the graphql-sse client tests will be skipped"; fi

test: lint typecheck unit

# The gateway beside the upstream simulator, a few minutes; `make bench BENCH_ARGS=--quick` ~1 min,
# BENCH_ARGS=--profile adds a py-spy profile of chat at concurrency 50. See bench/README.md.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(JS_DIR)/node_modules
