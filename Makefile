# Two commands do their own set-up on a fresh machine (Python 3.11+ as python3):
#   make run   materialize the latest partition end to end on the embedded default
#   make test  lint and run the whole test suite
VENV := .venv
BIN := $(VENV)/bin
export NAVIANCE_HOME ?= $(CURDIR)/.naviance
export DAGSTER_HOME ?= $(NAVIANCE_HOME)/dagster_home

.PHONY: run dev test test-each lint format clean

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,deploy]"
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	umask 077 && mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/naviance-pipeline run

dev: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	umask 077 && $(BIN)/dagster dev -w workspace.yaml

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Every test file alone, two at a time (.ci/each-test-file: a file must pass on its own too).
test-each: $(BIN)/.installed
	PYTHON=$(BIN)/python .ci/each-test-file -j 2

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(NAVIANCE_HOME) .pytest_cache .ruff_cache
