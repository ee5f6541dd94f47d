# Two commands do their own set-up on a fresh machine (Python 3.11+ as python3):
#   make run   materialize the latest partition end to end on the embedded default
#   make test  lint, check the Dagster definitions and run the whole test suite
# Both install exactly what uv.lock pins (uv itself is pinned below and bootstrapped into .uv/):
# `run` the core install alone (no Celery, Redis or PostgreSQL drivers), `test` every extra.
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export NAVIANCE_HOME ?= $(CURDIR)/.naviance
export DAGSTER_HOME ?= $(NAVIANCE_HOME)/dagster_home
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= python3
# dg is run from the project's own venv without activating it.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

.PHONY: run dev test test-each lint format lock core all-extras clean

$(UV):
	python3 -m venv .uv
	.uv/bin/python -m pip install -q uv==$(UV_VERSION)

# The core install, as locked; extras already installed stay (--inexact).
core: $(UV)
	$(UV) sync --frozen --inexact --quiet

# Everything the tests need: the core plus the dev, postgres and deploy extras, as locked.
all-extras: $(UV)
	$(UV) sync --frozen --all-extras --quiet

# After editing pyproject.toml's dependencies: re-resolve and commit uv.lock.
lock: $(UV)
	$(UV) lock

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	umask 077 && mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: core $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/naviance-pipeline run

dev: core $(DAGSTER_HOME)/dagster.yaml
	umask 077 && $(BIN)/dagster dev -w workspace.yaml

test: all-extras
	$(BIN)/ruff check .
	$(BIN)/dg check defs
	$(BIN)/python -m pytest

# Every test file alone, two at a time (.ci/each-test-file: a file must pass on its own too).
test-each: all-extras
	PYTHON=$(BIN)/python .ci/each-test-file -j 2

lint: all-extras
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: all-extras
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(NAVIANCE_HOME) .pytest_cache .ruff_cache .uv
