# aisaas — `make help` lists the targets. Everything runs from .venv (created on first use).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install run test lint fmt migrate seed eval eval-gate services-up services-down services-status shell bench-http clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with dev tools

run: $(STAMP) ## Start everything: embedded Postgres+Redis, migrate, seed demo, web+worker+beat (Ctrl-C stops)
	$(BIN)/python -m aisaas.devstack run --port $(PORT)

# Worker processes for `make test` (pytest-xdist); TEST_WORKERS=0 runs in this one process.
# worksteal: a worker that runs out of tests takes some of the other's, so neither idles at the end.
TEST_WORKERS ?= 2

test: $(STAMP) ## Run the test suite on its own embedded services (safe while `make run` is up)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --ignore=tests/compat $(PYTEST_ARGS)

# The client libraries the compatibility suite drives (tests/compat): a venv of their own, as
# their pins must not meet the project's.
COMPAT_VENV := .venv-compat
COMPAT_STAMP := $(COMPAT_VENV)/.installed

$(COMPAT_STAMP): tests/compat/requirements.txt
	@test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	@echo '*' > $(COMPAT_VENV)/.gitignore
	$(COMPAT_VENV)/bin/pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/pip install --quiet -r tests/compat/requirements.txt
	@touch $(COMPAT_STAMP)

.PHONY: compat
compat: $(STAMP) $(COMPAT_STAMP) ## The real client libraries (openai, Agents SDK, LangChain, LiteLLM) against /v1 (.venv-compat on first run)
	AISAAS_COMPAT_PYTHON=$(COMPAT_VENV)/bin/python $(BIN)/python -m pytest -n 0 tests/compat $(PYTEST_ARGS)

fuzz-api: $(STAMP) ## Fuzz the /v1 API from its OpenAPI document (schemathesis, 500 examples per operation)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(BIN)/python -m pytest -s tests/api/test_schemathesis.py

eval: migrate ## Run every prompt's evals through the gateway and print a table (offline model unless a provider key is set)
	$(BIN)/python manage.py evals run $(EVAL_ARGS)

eval-gate: migrate ## The CI gate: evals vs evals/baselines; fails on a >5 % drop against EVALS_BASE (default origin/main)
	$(BIN)/python manage.py evals compare --base $${EVALS_BASE:-origin/main} $(EVAL_ARGS)

lint: $(STAMP) ## ruff (lint + format check), the import contract (lint-imports) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	DJANGO_SETTINGS_MODULE=aisaas.settings.test $(BIN)/mypy .

fmt: $(STAMP) ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP) ## Apply migrations to the public schema and every workspace schema
	$(BIN)/python manage.py migrate_schemas

seed: $(STAMP) ## Create the demo workspaces and users (idempotent)
	$(BIN)/python manage.py seed_demo

services-up: $(STAMP) ## Start the embedded Postgres and Redis of the dev profile
	$(BIN)/python -m aisaas.devstack up

services-down: $(STAMP) ## Stop the embedded services (dev and test profiles)
	$(BIN)/python -m aisaas.devstack down
	$(BIN)/python -m aisaas.devstack down --profile test

services-status: $(STAMP) ## Show whether the embedded services run
	$(BIN)/python -m aisaas.devstack status
	$(BIN)/python -m aisaas.devstack status --profile test

shell: $(STAMP) ## Django shell on the dev services
	$(BIN)/python manage.py shell

bench-http: $(STAMP) ## LiteLLM's proxy vs our /v1 over HTTP, ~9 min (.venv-litellm on first run; BENCH_ARGS=--quick)
	$(BIN)/python -m benchmarks.http_gateway $(BENCH_ARGS)

.PHONY: bench-rag
bench-rag: $(STAMP) ## BEIR SciFact through our BM25, dense and fused retrieval: nDCG@10, latency, ingestion (~20 min on 2 vCPU)
	$(BIN)/python -m benchmarks.rag.scifact $(BENCH_ARGS)

.PHONY: bench-rag-scale
bench-rag-scale: $(STAMP) ## search_chunks latency at SciFact's ~10k chunks and padded to 100k (~17 min on 2 vCPU)
	$(BIN)/python -m benchmarks.rag.scale $(BENCH_ARGS)

# The retrieval gate's thresholds sit below the demo set's measured hybrid figures
# (recall@3 1.000, nDCG@10 1.000 on onnx-int8, 0.988 on torch; docs/benchmarks.md).
RAG_EVAL_GATE ?= --k 3 --min-recall 0.9 --min-ndcg 0.9

.PHONY: eval-rag
eval-rag: migrate ## Retrieval evals: the demo handbook (evals/rag/demo) indexed for the run and scored; fails below RAG_EVAL_GATE
	$(BIN)/python manage.py rag eval --load evals/rag/demo --qrels evals/rag/demo/qrels.jsonl $(RAG_EVAL_GATE) $(EVAL_ARGS)

clean: services-down ## Stop services and delete .data (all local data!) and caches
	rm -rf .data staticfiles .pytest_cache .mypy_cache .ruff_cache
